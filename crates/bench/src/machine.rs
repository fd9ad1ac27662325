//! What machine the figures come from, and CPU time spent by processes (from /proc).

use std::time::Instant;

/// CPU model, cores, memory and kernel, as one line each.
pub fn describe() -> Vec<(&'static str, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "model name").then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| format!("{:.1} GiB", kb as f64 / (1024.0 * 1024.0)))
        .unwrap_or_else(|| "unknown".into());
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    let kernel = format!(
        "{} {}",
        read("/proc/sys/kernel/ostype"),
        read("/proc/sys/kernel/osrelease")
    );
    vec![
        ("cpu", model),
        ("cores", cores),
        ("memory", memory),
        ("kernel", kernel.trim().to_owned()),
    ]
}

/// Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// User + system CPU seconds used so far by process `pid` (`None` for this process).
pub fn cpu_seconds(pid: Option<u32>) -> f64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the parenthesised command name: state is field 3; utime, stime are 14, 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (tick(11), tick(12)) {
        (Some(u), Some(s)) => (u + s) / TICKS_PER_SEC,
        _ => 0.0,
    }
}

/// Busy CPU seconds of the whole machine so far (all cores), from /proc/stat.
pub fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …: busy = all but idle and iowait.
    let total: f64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    (total - idle) / TICKS_PER_SEC
}

/// CPU used by each service, the bench itself and the whole machine over one phase.
pub struct CpuMeter {
    pids: Vec<(&'static str, u32)>,
    start: Instant,
    services: Vec<f64>,
    me: f64,
    machine: f64,
}

/// Cores used (1.0 = one core busy) per process over a phase.
pub struct CpuUse {
    pub services: Vec<(&'static str, f64)>,
    pub bench: f64,
    pub machine: f64,
}

impl CpuMeter {
    pub fn start(pids: &[(&'static str, u32)]) -> Self {
        CpuMeter {
            pids: pids.to_vec(),
            start: Instant::now(),
            services: pids.iter().map(|(_, p)| cpu_seconds(Some(*p))).collect(),
            me: cpu_seconds(None),
            machine: machine_busy_seconds(),
        }
    }

    pub fn stop(&self) -> CpuUse {
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        CpuUse {
            services: self
                .pids
                .iter()
                .zip(&self.services)
                .map(|((name, pid), before)| (*name, (cpu_seconds(Some(*pid)) - before) / secs))
                .collect(),
            bench: (cpu_seconds(None) - self.me) / secs,
            machine: (machine_busy_seconds() - self.machine) / secs,
        }
    }
}

impl CpuUse {
    /// e.g. `ingest 0.62, segmentation 0.10, … bench 0.40, machine 1.95 cores`.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .services
            .iter()
            .map(|(n, c)| format!("{n} {c:.2}"))
            .collect();
        parts.push(format!("bench {:.2}", self.bench));
        parts.push(format!("whole machine {:.2}", self.machine));
        format!("{} cores", parts.join(", "))
    }
}

/// Resident memory of process `pid` in MiB (VmRSS of /proc/<pid>/status), 0 if unknown.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}
