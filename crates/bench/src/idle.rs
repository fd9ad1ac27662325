//! The services at rest: CPU and resident memory of each while no call reaches them.

use std::time::Duration;

use crate::fleet::Fleet;
use crate::machine::{CpuMeter, CpuUse, rss_mib};

pub struct Idle {
    pub secs: f64,
    pub cpu: CpuUse,
    /// Resident MiB per service at the end of the window.
    pub rss_mib: Vec<(&'static str, f64)>,
}

impl Idle {
    /// CPU cores the five services used together.
    pub fn cores(&self) -> f64 {
        self.cpu.services.iter().map(|(_, c)| c).sum()
    }

    pub fn max_rss_mib(&self) -> f64 {
        self.rss_mib.iter().map(|(_, m)| *m).fold(0.0, f64::max)
    }
}

/// Watches the idle fleet for `window`: nothing calls it meanwhile.
pub async fn measure(fleet: &Fleet, window: Duration) -> Idle {
    let pids = fleet.pids();
    let meter = CpuMeter::start(&pids);
    tokio::time::sleep(window).await;
    Idle {
        secs: window.as_secs_f64(),
        cpu: meter.stop(),
        rss_mib: pids
            .iter()
            .map(|(name, pid)| (*name, rss_mib(*pid)))
            .collect(),
    }
}
