//! Command-line settings (hand-parsed: a handful of `--flag value` pairs).

use std::time::Duration;

pub const USAGE: &str = "usage: herald-bench [options]   (or: just bench [options])

  --backend postgres|sqlite   database of the five services (default: postgres when
                              PostgreSQL answers at 127.0.0.1:5432, else sqlite)
  --postgres-url URL          admin database used to create and drop the bench database
                              (default postgres://postgres@127.0.0.1:5432/postgres)
  --duration-secs N           measured time of each phase (default 10)
  --warmup-secs N             unmeasured time before each phase (default 2)
  --concurrency N             concurrent unary Track callers (default 64)
  --channels N                HTTP/2 connections the unary callers share (default 4)
  --batch-size N              events per TrackBatch call, 1..=1000 (default 500)
  --batch-concurrency N       concurrent TrackBatch callers (default 8)
  --background-rate N         background events/s during the latency phase (default 1000)
  --subscribers N             users with an open Subscribe stream (default 50)
  --probe-rate N              matching events/s whose delivery is timed (default 20)
  --hop-rate N                Deliver calls/s of the delivery hop, one at a time (default 100)
  --settle-max-secs N         longest wait for the pipeline to drain between phases (default 60)
  --timers N                  timers pending during the timers phase (default 1000000; 0 skips it)
  --due-timers N              timers due at once, fired during the timers phase (default 20000)
  --idle-secs N               how long the idle services are watched before the load (default 10; 0 skips)
  --idle-streams N            idle Subscribe streams whose memory is measured (default 10000; 0 skips)
  --segment-events N          events timed through in-process segment evaluation, 100 segments
                              (default 100000; 0 skips)
  --segment-users N           users of the in-process segment backfill, 10 segments
                              (default 1000000; 0 skips)
  --segments-only             only the in-process segment phases: no services, no database
  --campaigns N               active campaigns of the in-process targeting phase (default 10000;
                              0 skips)
  --campaign-events N         events timed through in-process campaign targeting (default 30000)
  --campaigns-only            only the in-process campaign phase: no services, no database
                              (with --segments-only too: both in-process phases)
  --stats-interactions N      interactions of one campaign recorded through analytics before
                              its GetCampaignStats latency is timed (default 1000000; 0 skips)
  --stats-only                only the analytics stats phase: the services, no other phase
  --json [FILE]               also write every figure as JSON, under stable names, to FILE
                              (to standard output, after the table, without FILE or with -)
  --markdown                  print the final table as Markdown
  -h, --help                  this text";

/// Which database the services run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// `None` until resolved: chosen by probing 127.0.0.1:5432.
    pub backend: Option<Backend>,
    pub postgres_url: String,
    pub duration: Duration,
    pub warmup: Duration,
    pub concurrency: usize,
    pub channels: usize,
    pub batch_size: usize,
    pub batch_concurrency: usize,
    pub background_rate: u32,
    pub subscribers: usize,
    pub probe_rate: u32,
    pub hop_rate: u32,
    pub settle_max: Duration,
    pub timers: u64,
    pub due_timers: u64,
    pub idle: Duration,
    pub idle_streams: usize,
    pub segment_events: u64,
    pub segment_users: u64,
    /// Only the in-process segment phases: no services, no database.
    pub segments_only: bool,
    pub campaigns: u64,
    pub campaign_events: u64,
    /// Only the in-process campaign phase: no services, no database.
    pub campaigns_only: bool,
    /// Interactions of the campaign whose statistics are timed; 0 skips the phase.
    pub stats_interactions: u64,
    /// Only the analytics stats phase (with the services).
    pub stats_only: bool,
    /// Where the JSON figures go: `Some(None)` is standard output.
    pub json: Option<Option<std::path::PathBuf>>,
    pub markdown: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            backend: None,
            postgres_url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            concurrency: 64,
            channels: 4,
            batch_size: 500,
            batch_concurrency: 8,
            background_rate: 1000,
            subscribers: 50,
            probe_rate: 20,
            hop_rate: 100,
            settle_max: Duration::from_secs(60),
            timers: 1_000_000,
            due_timers: 20_000,
            idle: Duration::from_secs(10),
            idle_streams: 10_000,
            segment_events: 100_000,
            segment_users: 1_000_000,
            segments_only: false,
            campaigns: 10_000,
            campaign_events: 30_000,
            campaigns_only: false,
            stats_interactions: 1_000_000,
            stats_only: false,
            json: None,
            markdown: false,
        }
    }
}

/// What the command line asked for.
pub enum Parsed {
    Run(Box<Settings>),
    Help,
}

pub fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut s = Settings::default();
    let mut it = args.iter().peekable();
    while let Some(flag) = it.next() {
        let flag = flag.as_str();
        match flag {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--markdown" => {
                s.markdown = true;
                continue;
            }
            "--segments-only" => {
                s.segments_only = true;
                continue;
            }
            "--campaigns-only" => {
                s.campaigns_only = true;
                continue;
            }
            "--stats-only" => {
                s.stats_only = true;
                continue;
            }
            // The file is optional: without one (or with -) the JSON goes to stdout.
            "--json" => {
                let file = it.next_if(|next| !next.starts_with("--"));
                s.json = Some(file.filter(|f| *f != "-").map(Into::into));
                continue;
            }
            _ => {}
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .as_str();
        let number = |min: u64, max: u64| -> Result<u64, String> {
            let n: u64 = value
                .parse()
                .map_err(|_| format!("{flag}: {value:?} is not a whole number"))?;
            if n < min || n > max {
                return Err(format!("{flag}: must be within {min}..={max}"));
            }
            Ok(n)
        };
        match flag {
            "--backend" => {
                s.backend = Some(match value {
                    "postgres" | "postgresql" | "pg" => Backend::Postgres,
                    "sqlite" => Backend::Sqlite,
                    _ => return Err("--backend: expected postgres or sqlite".into()),
                })
            }
            "--postgres-url" => {
                if !value.starts_with("postgres://") && !value.starts_with("postgresql://") {
                    return Err("--postgres-url: expected postgres://…".into());
                }
                s.postgres_url = value.to_owned();
            }
            "--duration-secs" => s.duration = Duration::from_secs(number(1, 3600)?),
            "--warmup-secs" => s.warmup = Duration::from_secs(number(0, 600)?),
            "--concurrency" => s.concurrency = number(1, 4096)? as usize,
            "--channels" => s.channels = number(1, 64)? as usize,
            "--batch-size" => s.batch_size = number(1, 1000)? as usize,
            "--batch-concurrency" => s.batch_concurrency = number(1, 256)? as usize,
            "--background-rate" => s.background_rate = number(0, 100_000)? as u32,
            "--subscribers" => s.subscribers = number(1, 10_000)? as usize,
            "--probe-rate" => s.probe_rate = number(1, 1000)? as u32,
            "--hop-rate" => s.hop_rate = number(1, 1000)? as u32,
            "--settle-max-secs" => s.settle_max = Duration::from_secs(number(0, 3600)?),
            "--timers" => s.timers = number(0, 100_000_000)?,
            "--due-timers" => s.due_timers = number(1, 10_000_000)?,
            "--idle-secs" => s.idle = Duration::from_secs(number(0, 600)?),
            "--idle-streams" => s.idle_streams = number(0, 40_000)? as usize,
            "--segment-events" => s.segment_events = number(0, 10_000_000)?,
            "--segment-users" => s.segment_users = number(0, 100_000_000)?,
            "--campaigns" => s.campaigns = number(0, 1_000_000)?,
            "--campaign-events" => s.campaign_events = number(1, 100_000_000)?,
            "--stats-interactions" => s.stats_interactions = number(0, 100_000_000)?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if s.campaigns_only && s.campaigns == 0 {
        return Err("--campaigns-only with --campaigns 0 measures nothing".into());
    }
    if s.segments_only && s.segment_events == 0 && s.segment_users == 0 {
        return Err(
            "--segments-only with --segment-events 0 and --segment-users 0 measures nothing".into(),
        );
    }
    if s.stats_only && s.in_process_only() {
        return Err(
            "--stats-only runs the services: it does not go with --segments-only or --campaigns-only"
                .into(),
        );
    }
    if s.stats_only && s.stats_interactions == 0 {
        return Err("--stats-only with --stats-interactions 0 measures nothing".into());
    }
    Ok(Parsed::Run(Box::new(s)))
}

impl Settings {
    /// Whether only in-process phases run: no services, no database.
    pub fn in_process_only(&self) -> bool {
        self.segments_only || self.campaigns_only
    }

    /// Whether the segment phases run (each may still be skipped with a count of 0).
    pub fn runs_segments(&self) -> bool {
        self.segments_only || !(self.campaigns_only || self.stats_only)
    }

    /// Whether the campaign phase runs.
    pub fn runs_campaigns(&self) -> bool {
        self.campaigns > 0 && (self.campaigns_only || !(self.segments_only || self.stats_only))
    }

    /// Whether the analytics stats phase runs.
    pub fn runs_stats(&self) -> bool {
        self.stats_interactions > 0 && !self.in_process_only()
    }
}
