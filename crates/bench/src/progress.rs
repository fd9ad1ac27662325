//! Progress of the long phases on standard error, a line every few seconds, so a run of
//! several minutes never looks hung. Standard output keeps only the figures.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a progress line is printed.
pub const EVERY: Duration = Duration::from_secs(5);

/// Prints progress until dropped.
pub struct Progress {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A phase of known length: "… 10 s of 12 s".
pub fn timed(length: Duration) -> Progress {
    let started = Instant::now();
    every(move || {
        format!(
            "  … {:.0} s of {:.0} s",
            started.elapsed().as_secs_f64(),
            length.as_secs_f64()
        )
    })
}

/// Work counted as it goes: "… 300,000 of 1,000,000 timers".
pub fn counted(done: Arc<AtomicU64>, total: u64, what: &'static str) -> Progress {
    every(move || format!("  … {} of {total} {what}", done.load(Ordering::Relaxed)))
}

fn every(line: impl Fn() -> String + Send + 'static) -> Progress {
    Progress {
        task: tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + EVERY, EVERY);
            loop {
                ticker.tick().await;
                eprintln!("{}", line());
            }
        }),
    }
}
