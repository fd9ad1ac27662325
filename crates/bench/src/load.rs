//! Load generators: a closed loop of concurrent callers, an open-loop paced load, and the
//! event-to-stream probe. Every loop stops by itself at the end of its time window.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::time::MissedTickBehavior;

/// A phase: unmeasured until `measure_from`, measured until `until`, then over.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub measure_from: Instant,
    pub until: Instant,
}

impl Window {
    pub fn new(warmup: Duration, duration: Duration) -> Window {
        let start = Instant::now();
        Window {
            measure_from: start + warmup,
            until: start + warmup + duration,
        }
    }

    /// Length of the measured part, in seconds.
    pub fn secs(&self) -> f64 {
        (self.until - self.measure_from).as_secs_f64()
    }

    /// Did a call that ran from `start` to `end` fall inside the measured part?
    fn counts(&self, start: Instant, end: Instant) -> bool {
        start >= self.measure_from && end <= self.until
    }
}

/// A latency histogram in microseconds, 1 µs .. 10 min, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

pub fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

/// What a load produced over its window.
pub struct LoadResult {
    /// Latency of measured calls, µs.
    pub hist: Histogram<u64>,
    /// Events acknowledged by measured calls.
    pub events: u64,
    /// Events acknowledged over the whole phase, warm-up included.
    pub total_events: u64,
    /// Calls that failed within the measured part.
    pub errors: u64,
    pub first_error: Option<String>,
    /// Length of the measured part, s.
    pub secs: f64,
}

impl LoadResult {
    fn empty(secs: f64) -> LoadResult {
        LoadResult {
            hist: histogram(),
            events: 0,
            total_events: 0,
            errors: 0,
            first_error: None,
            secs,
        }
    }

    fn merge(&mut self, other: LoadResult) {
        self.hist.add(&other.hist).expect("same histogram bounds");
        self.events += other.events;
        self.total_events += other.total_events;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Acknowledged events per second over the measured part.
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.secs
    }

    /// Measured calls that succeeded.
    pub fn calls(&self) -> u64 {
        self.hist.len()
    }

    fn record(&mut self, window: &Window, start: Instant, outcome: Result<u64, tonic::Status>) {
        let end = Instant::now();
        let counted = window.counts(start, end);
        match outcome {
            Ok(events) => {
                self.total_events += events;
                if counted {
                    self.hist.saturating_record(micros(end - start).max(1));
                    self.events += events;
                }
            }
            Err(status) => {
                if counted {
                    self.errors += 1;
                }
                self.first_error
                    .get_or_insert_with(|| format!("{:?}: {}", status.code(), status.message()));
            }
        }
    }
}

/// `tasks` callers, each making one call after another (`call(task, i)`, which returns the
/// number of events the call carried) until the window ends.
pub async fn closed_loop<F, Fut>(tasks: usize, window: Window, call: F) -> LoadResult
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<u64, tonic::Status>> + Send + 'static,
{
    let call = Arc::new(call);
    let mut handles = Vec::new();
    for task in 0..tasks {
        let call = call.clone();
        handles.push(tokio::spawn(async move {
            let mut result = LoadResult::empty(window.secs());
            let mut i = 0u64;
            loop {
                let start = Instant::now();
                if start >= window.until {
                    break;
                }
                let outcome = call(task, i).await;
                i += 1;
                let failed = outcome.is_err();
                result.record(&window, start, outcome);
                if failed {
                    // Do not spin on a failing server.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            result
        }));
    }
    let mut total = LoadResult::empty(window.secs());
    for handle in handles {
        total.merge(handle.await.expect("load task panicked"));
    }
    total
}

/// An open-loop load of `rate` calls per second spread over `tasks` tasks, each ticking
/// on its own interval (staggered) and making its call inline; a tick missed because the
/// previous call was still running is skipped, so the achieved rate shows in the result.
pub async fn paced<F, Fut>(rate: u32, tasks: usize, window: Window, call: F) -> LoadResult
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<u64, tonic::Status>> + Send + 'static,
{
    if rate == 0 {
        return LoadResult::empty(window.secs());
    }
    let call = Arc::new(call);
    let period = Duration::from_secs_f64(tasks as f64 / f64::from(rate));
    let mut handles = Vec::new();
    for task in 0..tasks {
        let call = call.clone();
        let first = tokio::time::Instant::now() + period.mul_f64(task as f64 / tasks as f64);
        handles.push(tokio::spawn(async move {
            let mut result = LoadResult::empty(window.secs());
            let mut ticker = tokio::time::interval_at(first, period);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
            let mut i = 0u64;
            let until = tokio::time::Instant::from_std(window.until);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = tokio::time::sleep_until(until) => break,
                }
                let start = Instant::now();
                if start >= window.until {
                    break;
                }
                let outcome = call(task, i).await;
                i += 1;
                result.record(&window, start, outcome);
            }
            result
        }));
    }
    let mut total = LoadResult::empty(window.secs());
    for handle in handles {
        total.merge(handle.await.expect("paced task panicked"));
    }
    total
}

/// Times from "just before the triggering call" to "item seen on the stream", keyed by a
/// probe sequence number.
#[derive(Default)]
pub struct Probes {
    inner: Mutex<ProbeState>,
}

#[derive(Default)]
struct ProbeState {
    /// Probe → when it was sent and whether it counts (sent within the measured part).
    pending: HashMap<u64, (Instant, bool)>,
    /// Latencies of counted probes, µs.
    hist: Option<Histogram<u64>>,
    sent: u64,
}

/// What the probes measured.
pub struct ProbeResult {
    pub hist: Histogram<u64>,
    /// Counted probes sent.
    pub sent: u64,
    /// Counted probes whose item never arrived within the drain time.
    pub lost: u64,
}

impl Probes {
    /// Notes that probe `seq` is about to be sent.
    pub fn sending(&self, seq: u64, counts: bool) {
        let mut state = self.inner.lock().expect("probe lock");
        state.pending.insert(seq, (Instant::now(), counts));
        if counts {
            state.sent += 1;
        }
    }

    /// Notes that probe `seq` arrived now.
    pub fn arrived(&self, seq: u64) {
        let now = Instant::now();
        let mut state = self.inner.lock().expect("probe lock");
        if let Some((sent, counts)) = state.pending.remove(&seq)
            && counts
        {
            state
                .hist
                .get_or_insert_with(histogram)
                .saturating_record(micros(now - sent).max(1));
        }
    }

    /// Counted probes still in flight.
    pub fn outstanding(&self) -> u64 {
        let state = self.inner.lock().expect("probe lock");
        state.pending.values().filter(|(_, c)| *c).count() as u64
    }

    pub fn result(&self) -> ProbeResult {
        let state = self.inner.lock().expect("probe lock");
        let hist = state.hist.clone().unwrap_or_else(histogram);
        ProbeResult {
            lost: state.pending.values().filter(|(_, c)| *c).count() as u64,
            sent: state.sent,
            hist,
        }
    }
}
