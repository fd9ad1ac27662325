//! The memory allocator of every Herald binary. Each of them (`herald`, the five service
//! binaries, `herald-bench`) links this crate, so each allocates with mimalloc rather than
//! the C library's malloc, and so do the tests that link it.
//!
//! Why: deciding campaigns allocates small, short-lived values on tokio's worker threads,
//! where glibc's per-thread arenas sort freed chunks lazily and trim and regrow their heap
//! (`mprotect`, page faults). In the bench's in-process targeting phase that was about a
//! third of the time per event; with mimalloc (or jemalloc, measured alike) the median
//! fell by about 30% (docs/benchmarks.md, "An allocator for every binary").

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
