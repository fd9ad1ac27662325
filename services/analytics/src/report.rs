//! A campaign's statistics from its aggregates: counts and rates per arm, and each arm
//! against control by `herald-stats` (GrowthBook's engine at its default settings).

use std::collections::BTreeMap;

use herald_core::time::proto_from_ms;
use herald_proto::analytics::v1::{
    CampaignStats, Comparison, Effect, Experiment, GoalVersion, Metric, SampleRatioCheck,
    StatsMethod, Test, UniqueUsers, VariantStats,
};
use herald_runtime::Error;
use herald_stats::{
    DEFAULT_SRM_MIN_USERS, DEFAULT_SRM_THRESHOLD, DEFAULT_TUNING, Insufficient, Sample,
    SampleRatio, Settings, compare, sample_ratio,
};
use prost::Message;

use crate::aggregates::{CONTROL, goal};
use crate::store::Aggregate;

/// The goal version `wanted` (0: the latest) among `goals` (oldest first); `None` when
/// the campaign has none yet.
pub fn goal_version(goals: &[goal::Model], wanted: u32) -> Result<Option<&goal::Model>, Error> {
    if wanted == 0 {
        return Ok(goals.last());
    }
    goals
        .iter()
        .find(|g| i64::from(g.version) == i64::from(wanted))
        .map(Some)
        .ok_or_else(|| Error::NotFound(format!("goal version {wanted} of the campaign")))
}

/// What one arm (or the variants combined) counted.
#[derive(Debug, Default, Clone, Copy)]
struct Arm {
    sent: (u64, u64),
    delivered: (u64, u64),
    impressions: (u64, u64),
    clicks: (u64, u64),
    dismissals: (u64, u64),
    assigned: u64,
    exposures: u64,
    exposed: u64,
    conversions: u64,
}

impl Arm {
    fn add(&mut self, row: &Aggregate, goal_version: i32) {
        let both = (row.total, row.users);
        let plus = |a: &mut (u64, u64)| {
            a.0 += both.0;
            a.1 += both.1;
        };
        let versioned = row.goal_version == goal_version;
        match row.metric {
            Metric::Sent => plus(&mut self.sent),
            Metric::Delivered => plus(&mut self.delivered),
            Metric::Impressions => plus(&mut self.impressions),
            Metric::Clicks => plus(&mut self.clicks),
            Metric::Dismissals => plus(&mut self.dismissals),
            Metric::Assigned => self.assigned += row.users,
            Metric::Exposed if versioned => {
                self.exposures += row.total;
                self.exposed += row.users;
            }
            Metric::Conversions if versioned => self.conversions += row.users,
            _ => {}
        }
    }

    fn merge(&mut self, other: &Arm) {
        for (a, b) in [
            (&mut self.sent, other.sent),
            (&mut self.delivered, other.delivered),
            (&mut self.impressions, other.impressions),
            (&mut self.clicks, other.clicks),
            (&mut self.dismissals, other.dismissals),
        ] {
            a.0 += b.0;
            a.1 += b.1;
        }
        self.assigned += other.assigned;
        self.exposures += other.exposures;
        self.exposed += other.exposed;
        self.conversions += other.conversions;
    }

    /// Conversions out of exposed users.
    fn sample(&self) -> Sample {
        Sample::proportion(self.exposed, self.conversions.min(self.exposed))
    }
}

/// `numerator / denominator`, or 0 when the denominator is 0.
fn rate(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

fn test(interval: herald_stats::Interval, p_value: f64) -> Test {
    Test {
        lower: interval.lower,
        upper: interval.upper,
        p_value,
    }
}

fn effect(result: Result<herald_stats::Effect, Insufficient>) -> Effect {
    match result {
        Err(why) => Effect {
            insufficient_data: why.to_string(),
            ..Default::default()
        },
        Ok(e) => Effect {
            insufficient_data: String::new(),
            estimate: e.fixed.moments.estimate,
            sequential: Some(test(e.sequential.interval, e.sequential.p_value)),
            fixed_horizon: Some(test(e.fixed.interval, e.fixed.p_value)),
            chance_to_beat_control: e.bayesian.chance_to_win,
            credible: Some(test(e.bayesian.credible, 0.0)),
        },
    }
}

fn variant_stats(
    variant_id: &str,
    control: bool,
    arm: &Arm,
    baseline: Option<&Arm>,
    settings: &Settings,
) -> VariantStats {
    let vs_control = baseline.map(|c| {
        let compared = compare(&c.sample(), &arm.sample(), settings);
        Comparison {
            absolute: Some(effect(compared.absolute)),
            relative: Some(effect(compared.relative)),
        }
    });
    let relative = vs_control
        .as_ref()
        .and_then(|c| c.relative.as_ref())
        .filter(|e| e.insufficient_data.is_empty());
    VariantStats {
        variant_id: variant_id.to_owned(),
        control,
        sent: arm.sent.0,
        delivered: arm.delivered.0,
        impressions: arm.impressions.0,
        clicks: arm.clicks.0,
        dismissals: arm.dismissals.0,
        conversions: arm.conversions,
        click_rate: rate(arm.clicks.0, arm.impressions.0),
        dismissal_rate: rate(arm.dismissals.0, arm.impressions.0),
        conversion_rate: rate(arm.conversions, arm.exposed),
        uplift: relative.map_or(0.0, |e| e.estimate),
        confidence: relative
            .and_then(|e| e.sequential.as_ref())
            .map_or(0.0, |t| 1.0 - t.p_value),
        assigned: arm.assigned,
        exposures: arm.exposures,
        exposed: arm.exposed,
        users: Some(UniqueUsers {
            sent: arm.sent.1,
            delivered: arm.delivered.1,
            impressions: arm.impressions.1,
            clicks: arm.clicks.1,
            dismissals: arm.dismissals.1,
        }),
        vs_control,
    }
}

/// The method `herald-stats` compares with: GrowthBook's defaults, with the version's
/// sequential tuning.
fn method(settings: &Settings) -> StatsMethod {
    StatsMethod {
        metric: "proportion of exposed users who converted".into(),
        alpha: settings.alpha,
        sequential_tuning: settings.tuning,
        prior: "flat (improper)".into(),
        default_test: "sequential".into(),
    }
}

/// The experiment a goal version's exposures carried; `None` when they carried none.
fn experiment(goal: &goal::Model) -> Option<Experiment> {
    if goal.experiment.is_empty() {
        return None;
    }
    Experiment::decode(goal.experiment.as_slice()).ok()
}

/// The sample-ratio check of the exposed users of control and each variant against the
/// allocation.
fn sample_ratio_check(experiment: &Experiment, arms: &BTreeMap<&str, Arm>) -> SampleRatioCheck {
    let exposed = |id: &str| arms.get(id).map_or(0, |a| a.exposed);
    let mut users = vec![exposed(CONTROL)];
    let mut weights = vec![f64::from(experiment.control_weight)];
    for v in &experiment.variants {
        users.push(exposed(&v.variant_id));
        weights.push(f64::from(v.weight));
    }
    let verdict = sample_ratio(
        &users,
        &weights,
        DEFAULT_SRM_MIN_USERS,
        DEFAULT_SRM_THRESHOLD,
    );
    let (insufficient_data, p_value, mismatch) = match verdict {
        SampleRatio::Insufficient { min_users } => (
            format!("fewer than {min_users} exposed users per weighted arm on average"),
            0.0,
            false,
        ),
        SampleRatio::Ok { p_value } => (String::new(), p_value, false),
        SampleRatio::Mismatch { p_value } => (String::new(), p_value, true),
    };
    SampleRatioCheck {
        insufficient_data,
        p_value,
        mismatch,
        threshold: DEFAULT_SRM_THRESHOLD,
    }
}

/// The statistics of `campaign_id` from its aggregates `rows`, conversions and exposures
/// under `goal` (none: the campaign has had no exposure).
pub fn campaign_stats(
    campaign_id: String,
    goal: Option<&goal::Model>,
    lifetime: bool,
    rows: &[Aggregate],
) -> CampaignStats {
    let version = goal.map_or(-1, |g| g.version);
    let experiment = goal.and_then(experiment);
    let settings = Settings {
        tuning: experiment
            .as_ref()
            .map(|e| f64::from(e.sequential_tuning))
            .filter(|t| *t > 0.0)
            .unwrap_or(DEFAULT_TUNING),
        ..Settings::default()
    };
    let mut arms: BTreeMap<&str, Arm> = BTreeMap::new();
    for row in rows {
        arms.entry(row.arm.as_str()).or_default().add(row, version);
    }
    let sample_ratio = experiment.as_ref().map(|e| sample_ratio_check(e, &arms));
    let control = arms.remove(CONTROL);
    // Compared only once control has exposed users.
    let baseline = control.as_ref().filter(|c| c.exposed > 0);
    let mut total = Arm::default();
    let mut variants: Vec<VariantStats> = arms
        .iter()
        .map(|(id, arm)| {
            total.merge(arm);
            variant_stats(id, false, arm, baseline, &settings)
        })
        .collect();
    if let Some(c) = &control {
        variants.push(variant_stats("", true, c, None, &settings));
    }
    CampaignStats {
        campaign_id,
        variants,
        total: Some(variant_stats("", false, &total, baseline, &settings)),
        goal: goal.map(|g| GoalVersion {
            version: g.version.max(0) as u32,
            event_name: g.event_name.clone(),
            attribution_window: Some(prost_types::Duration {
                seconds: g.window_ms / 1000,
                nanos: ((g.window_ms % 1000) * 1_000_000) as i32,
            }),
            first_exposure_time: Some(proto_from_ms(g.first_at)),
            experiment: experiment.clone(),
        }),
        method: Some(method(&settings)),
        lifetime,
        sample_ratio,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(arm: &str, version: i32, metric: Metric, total: u64, users: u64) -> Aggregate {
        Aggregate {
            arm: arm.into(),
            goal_version: version,
            metric,
            total,
            users,
        }
    }

    fn goal(version: i32) -> goal::Model {
        goal::Model {
            workspace_id: "w".into(),
            campaign_id: "c".into(),
            event_name: "purchased".into(),
            window_ms: 86_400_000,
            version,
            experiment: Vec::new(),
            first_at: 0,
        }
    }

    /// GrowthBook's Welch vector: control 14/28, variant 16/30, relative lift 0.06667,
    /// CI (-0.47767, 0.61101), p 0.80707.
    #[test]
    fn the_comparison_is_growthbooks_on_exposed_users() {
        let g = goal(1);
        let rows = [
            row("", 1, Metric::Exposed, 28, 28),
            row("", 1, Metric::Conversions, 14, 14),
            row("v1", 1, Metric::Exposed, 31, 30),
            row("v1", 1, Metric::Conversions, 16, 16),
            // Another goal version counts nothing here.
            row("v1", 2, Metric::Conversions, 9, 9),
        ];
        let stats = campaign_stats("c".into(), Some(&g), true, &rows);
        let v1 = &stats.variants[0];
        assert_eq!((v1.exposures, v1.exposed, v1.conversions), (31, 30, 16));
        let relative = v1.vs_control.as_ref().unwrap().relative.as_ref().unwrap();
        let fixed = relative.fixed_horizon.as_ref().unwrap();
        let near = |a: f64, b: f64| (a - b).abs() < 5e-6;
        assert!(near(relative.estimate, 0.06667), "{relative:?}");
        assert!(near(fixed.lower, -0.47767) && near(fixed.upper, 0.61101));
        assert!(near(fixed.p_value, 0.80707));
        assert!(near(v1.uplift, 0.06667));
        assert!(stats.variants[1].control && stats.variants[1].vs_control.is_none());
        assert_eq!(stats.total.as_ref().unwrap().conversions, 16);
    }

    #[test]
    fn without_control_or_units_there_is_no_number_to_misread() {
        let g = goal(1);
        let rows = [row("v1", 1, Metric::Exposed, 3, 3)];
        let stats = campaign_stats("c".into(), Some(&g), true, &rows);
        assert!(stats.variants[0].vs_control.is_none());
        let rows = [
            row("", 1, Metric::Exposed, 5, 5),
            row("v1", 1, Metric::Exposed, 3, 3),
        ];
        let stats = campaign_stats("c".into(), Some(&g), true, &rows);
        let relative = stats.variants[0]
            .vs_control
            .as_ref()
            .unwrap()
            .relative
            .clone()
            .unwrap();
        assert!(!relative.insufficient_data.is_empty());
        assert_eq!(
            (relative.estimate, stats.variants[0].confidence),
            (0.0, 0.0)
        );
    }

    /// GrowthBook's SRM vector: exposures [1000, 1200] at 50/50, p 0.000020079.
    #[test]
    fn the_sample_ratio_is_checked_against_the_versions_allocation() {
        let mut g = goal(1);
        g.experiment = Experiment {
            variants: vec![herald_proto::analytics::v1::ArmWeight {
                variant_id: "v1".into(),
                weight: 50,
            }],
            control_weight: 50,
            sequential_tuning: 20_000,
        }
        .encode_to_vec();
        let rows = [
            row("", 1, Metric::Exposed, 1000, 1000),
            row("v1", 1, Metric::Exposed, 1200, 1200),
        ];
        let stats = campaign_stats("c".into(), Some(&g), true, &rows);
        let srm = stats.sample_ratio.unwrap();
        assert!(srm.mismatch && srm.insufficient_data.is_empty());
        assert!((srm.p_value - 0.000020079).abs() < 5e-10, "{}", srm.p_value);
        assert_eq!(stats.method.unwrap().sequential_tuning, 20_000.0);
        // Seven users: too few to judge.
        let rows = [
            row("", 1, Metric::Exposed, 2, 2),
            row("v1", 1, Metric::Exposed, 5, 5),
        ];
        let srm = campaign_stats("c".into(), Some(&g), true, &rows)
            .sample_ratio
            .unwrap();
        assert!(!srm.mismatch && !srm.insufficient_data.is_empty());
    }

    #[test]
    fn an_unknown_goal_version_is_not_found() {
        let goals = [goal(1), goal(2)];
        assert_eq!(goal_version(&goals, 0).unwrap().unwrap().version, 2);
        assert_eq!(goal_version(&goals, 1).unwrap().unwrap().version, 1);
        assert!(goal_version(&goals, 3).is_err());
        assert!(goal_version(&[], 0).unwrap().is_none());
    }
}
