//! The segments of one workspace, compiled and indexed for incremental evaluation of one
//! user at a time.
//!
//! An [`Engine`] holds every segment's compiled rule in dependency order (a segment after
//! the segments it refers to) and three indexes: which segments read a series, which
//! read a top-level trait key, and which refer to a segment. A [`Profile`] is one user's
//! state: the series the workspace counts and the user's memberships with the instant
//! each can next change by time. Something arriving (an event, a trait update, an
//! interaction) or a due instant marks the segments it can affect; only those, and the
//! segments that refer to one whose answer moved, are evaluated again. The result is the
//! same as evaluating every segment from scratch ([`Engine::evaluate_all`]); the property
//! tests hold the two to that.

use std::collections::{BTreeMap, HashMap};

use herald_proto::segmentation::v1::{EngagementKind, Rule};
use prost::Message;
use prost_types::Struct;

use crate::eval::{self, Compiled, Facts, Instants, Outcome, SeriesSpec, Source};
use crate::series::Series;

/// How far back the minute counts of every event name and of every engagement are kept,
/// whether or not a segment counts them in a window: a segment created later with a
/// window up to this long sees the history. Longer windows keep longer.
pub const HISTORY_MS: i64 = 30 * 86_400_000;

/// One user's state for segment evaluation.
#[derive(Clone, PartialEq, Message)]
pub struct Profile {
    /// Series by key: every event name and every (interaction kind, campaign) the user
    /// ever had, all-time, with minute counts for [`HISTORY_MS`] or the longest window
    /// over them; filtered series from the moment a segment counted them, with minute
    /// counts for as long as the longest window over them.
    #[prost(map = "string, message", tag = "1")]
    pub series: HashMap<String, Series>,
    /// The segments evaluated for this user, by id: members, and non-members whose
    /// answer can change by time.
    #[prost(map = "string, message", tag = "2")]
    pub segments: HashMap<String, Membership>,
    /// The [`Engine::fingerprint`] `segments` was last pruned against (0: never), so the
    /// memberships of deleted segments are dropped once per change of the segment set,
    /// not hashed on every evaluation.
    #[prost(uint64, tag = "3")]
    pub pruned_for: u64,
}

/// A user's last answer for one segment.
#[derive(Clone, PartialEq, Message)]
pub struct Membership {
    /// Whether the user is in the segment.
    #[prost(bool, tag = "1")]
    pub member: bool,
    /// When the user entered (ms since the epoch); 0 when not a member.
    #[prost(int64, tag = "2")]
    pub entered_ms: i64,
    /// When the answer can next change by time (ms since the epoch); 0 for never.
    #[prost(int64, tag = "3")]
    pub next_change_ms: i64,
}

impl Profile {
    /// The segments the user is in, sorted.
    pub fn member_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .segments
            .iter()
            .filter(|(_, m)| m.member)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The earliest instant any membership can change by time.
    pub fn next_change_ms(&self) -> Option<i64> {
        self.segments
            .values()
            .filter(|m| m.next_change_ms != 0)
            .map(|m| m.next_change_ms)
            .min()
    }
}

/// A membership that changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The segment.
    pub segment_id: String,
    /// Entered (true) or exited (false).
    pub entered: bool,
}

/// A segment as the engine receives it.
#[derive(Debug, Clone)]
pub struct SegmentDef {
    pub id: String,
    pub rule: Rule,
}

struct Segment {
    id: String,
    rule: Compiled,
    /// Positions (in `Engine::segments`) of the segments that refer to this one.
    dependents: Vec<usize>,
}

/// The compiled segments of a workspace.
pub struct Engine {
    /// In dependency order.
    segments: Vec<Segment>,
    /// Every series some rule counts, by key, with the longest window over it.
    series: HashMap<String, SeriesSpec>,
    /// Event name → keys of the filtered series fed by it.
    filtered_by_event: HashMap<String, Vec<String>>,
    /// Series key → positions of the segments that read it.
    by_series: HashMap<String, Vec<usize>>,
    /// Top-level trait key → positions of the segments that read it.
    by_trait: HashMap<String, Vec<usize>>,
    /// Segment id → position.
    position: HashMap<String, usize>,
    /// A hash of the segment ids, never 0.
    fingerprint: u64,
}

/// Segments the engine could not compile (a stored rule that no longer passes the
/// checks); they are left out, so nobody is their member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub segment_id: String,
    pub reason: String,
}

impl Engine {
    /// Compiles `segments` (unordered). Rules that fail to compile are skipped and
    /// reported; references to unknown segments are false.
    pub fn new(segments: Vec<SegmentDef>) -> (Engine, Vec<Skipped>) {
        let mut skipped = Vec::new();
        let mut compiled: BTreeMap<String, Compiled> = BTreeMap::new();
        for def in segments {
            match eval::compile(&def.rule) {
                Ok(rule) => {
                    compiled.insert(def.id, rule);
                }
                Err(reason) => skipped.push(Skipped {
                    segment_id: def.id,
                    reason,
                }),
            }
        }
        // Dependency order, depth first from each segment in id order; a cycle (which
        // saving refuses) is cut where it closes.
        let mut order: Vec<String> = Vec::with_capacity(compiled.len());
        let mut state: HashMap<&str, bool> = HashMap::new(); // false: visiting, true: done
        fn visit<'a>(
            id: &'a str,
            compiled: &'a BTreeMap<String, Compiled>,
            state: &mut HashMap<&'a str, bool>,
            order: &mut Vec<String>,
        ) {
            if state.contains_key(id) {
                return;
            }
            state.insert(id, false);
            if let Some(rule) = compiled.get(id) {
                for referenced in &rule.segments {
                    if let Some((key, _)) = compiled.get_key_value(referenced.as_str()) {
                        visit(key, compiled, state, order);
                    }
                }
            }
            state.insert(id, true);
            order.push(id.to_owned());
        }
        for id in compiled.keys() {
            visit(id, &compiled, &mut state, &mut order);
        }
        let position: HashMap<String, usize> = order
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect();
        let mut engine = Engine {
            segments: Vec::with_capacity(order.len()),
            series: HashMap::new(),
            filtered_by_event: HashMap::new(),
            by_series: HashMap::new(),
            by_trait: HashMap::new(),
            fingerprint: fingerprint(&order),
            position,
        };
        for id in order {
            let rule = compiled.remove(&id).expect("ordered ids are compiled");
            engine.segments.push(Segment {
                id,
                rule,
                dependents: Vec::new(),
            });
        }
        for i in 0..engine.segments.len() {
            let rule = &engine.segments[i].rule;
            for spec in &rule.series {
                engine
                    .by_series
                    .entry(spec.key.clone())
                    .or_default()
                    .push(i);
                let merged = engine
                    .series
                    .entry(spec.key.clone())
                    .or_insert_with(|| spec.clone());
                merged.window_ms = merged.window_ms.max(spec.window_ms);
                if let Source::Event { name, filters } = &spec.source
                    && !filters.is_empty()
                {
                    let keys = engine.filtered_by_event.entry(name.clone()).or_default();
                    if !keys.contains(&spec.key) {
                        keys.push(spec.key.clone());
                    }
                }
            }
            for key in &rule.trait_keys {
                engine.by_trait.entry(key.clone()).or_default().push(i);
            }
            let referenced: Vec<usize> = rule
                .segments
                .iter()
                .filter_map(|id| engine.position.get(id).copied())
                .collect();
            for r in referenced {
                if r < i {
                    engine.segments[r].dependents.push(i);
                }
            }
        }
        (engine, skipped)
    }

    /// How many segments the engine evaluates.
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// Whether the workspace has no segments.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Whether any segment reads the top-level trait `key`.
    pub fn reads_trait(&self, key: &str) -> bool {
        self.by_trait.contains_key(key)
    }

    /// How long the minute counts of `key` are kept: the longest window over it, and for
    /// a `history` series (every event name's, every engagement's) at least
    /// [`HISTORY_MS`].
    fn keep_ms(&self, key: &str, history: bool) -> Option<i64> {
        let window = self.series.get(key).and_then(|s| s.window_ms);
        if history {
            Some(window.unwrap_or(0).max(HISTORY_MS))
        } else {
            window
        }
    }

    /// [`Engine::keep_ms`] of a series a segment counts; `None` for one none does (left
    /// as it is until its next occurrence compacts it).
    fn keep_known(&self, key: &str) -> Option<Option<i64>> {
        let history = match &self.series.get(key)?.source {
            Source::Event { filters, .. } => filters.is_empty(),
            Source::Engagement { .. } => true,
        };
        Some(self.keep_ms(key, history))
    }

    /// Counts an event in the user's series (its name's all-time series, and every
    /// filtered series whose filters its properties match), and marks the segments that
    /// read them in `dirty`.
    pub fn record_event(
        &self,
        profile: &mut Profile,
        dirty: &mut Dirty,
        name: &str,
        properties: Option<&Struct>,
        at_ms: i64,
        now_ms: i64,
    ) {
        let key = eval::event_key(name);
        self.record(profile, dirty, key, true, at_ms, now_ms);
        if let Some(keys) = self.filtered_by_event.get(name) {
            for key in keys {
                let Some(SeriesSpec {
                    source: Source::Event { filters, .. },
                    ..
                }) = self.series.get(key)
                else {
                    continue;
                };
                if filters.iter().all(|f| f.matches(properties)) {
                    self.record(profile, dirty, key.clone(), false, at_ms, now_ms);
                }
            }
        }
    }

    /// Counts an interaction with a campaign's messages, and marks the segments that
    /// read its series.
    pub fn record_interaction(
        &self,
        profile: &mut Profile,
        dirty: &mut Dirty,
        kind: EngagementKind,
        campaign_id: &str,
        at_ms: i64,
        now_ms: i64,
    ) {
        let key = eval::engagement_key(kind, campaign_id);
        self.record(profile, dirty, key, true, at_ms, now_ms);
    }

    fn record(
        &self,
        profile: &mut Profile,
        dirty: &mut Dirty,
        key: String,
        history: bool,
        at: i64,
        now: i64,
    ) {
        let keep = self.keep_ms(&key, history);
        if let Some(segments) = self.by_series.get(&key) {
            dirty.mark_all(segments);
        }
        profile.series.entry(key).or_default().record(at, keep, now);
    }

    /// Marks the segments that read any of the top-level trait `keys`.
    pub fn traits_changed<'k>(&self, dirty: &mut Dirty, keys: impl IntoIterator<Item = &'k str>) {
        for key in keys {
            if let Some(segments) = self.by_trait.get(key) {
                dirty.mark_all(segments);
            }
        }
    }

    /// Marks the segments whose answer for this user was due to change by `now_ms`, and
    /// drops the minutes that left every window.
    pub fn time_passed(&self, profile: &mut Profile, dirty: &mut Dirty, now_ms: i64) {
        for (id, m) in &profile.segments {
            if m.next_change_ms != 0
                && m.next_change_ms <= now_ms
                && let Some(&i) = self.position.get(id)
            {
                dirty.mark(i);
            }
        }
        for (key, series) in profile.series.iter_mut() {
            if let Some(keep) = self.keep_known(key) {
                series.compact(keep, now_ms);
            }
        }
    }

    /// A set of segments to evaluate, sized for this engine.
    pub fn dirty(&self) -> Dirty {
        Dirty(vec![false; self.segments.len()])
    }

    /// Marks every segment (a full evaluation).
    pub fn everything(&self) -> Dirty {
        Dirty(vec![true; self.segments.len()])
    }

    /// Marks the segment `id` and, through evaluation, those referring to it.
    pub fn segment(&self, id: &str) -> Dirty {
        let mut dirty = self.dirty();
        if let Some(&i) = self.position.get(id) {
            dirty.mark(i);
        }
        dirty
    }

    /// Evaluates the marked segments at `now_ms`, in dependency order, and the segments
    /// referring to any whose answer moved; stores the answers in `profile` and returns
    /// the memberships that changed, in that order. Memberships of segments the engine
    /// no longer has are dropped without a change (a deleted segment emits no exit).
    pub fn evaluate(
        &self,
        profile: &mut Profile,
        traits: Option<&Struct>,
        mut dirty: Dirty,
        now_ms: i64,
    ) -> Vec<Change> {
        if profile.pruned_for != self.fingerprint {
            profile
                .segments
                .retain(|id, _| self.position.contains_key(id));
            profile.pruned_for = self.fingerprint;
        }
        let mut changes = Vec::new();
        let instants = Instants::default();
        for i in 0..self.segments.len() {
            if !dirty.0[i] {
                continue;
            }
            let segment = &self.segments[i];
            let view = UserView {
                traits,
                profile,
                instants: &instants,
            };
            let outcome = eval::eval(&segment.rule, &view, now_ms);
            let before = profile.segments.get(&segment.id);
            let was_member = before.is_some_and(|m| m.member);
            let before_next = before.map_or(0, |m| m.next_change_ms);
            let next = outcome.next_change_ms.unwrap_or(0);
            if was_member == outcome.member && before_next == next {
                continue;
            }
            if was_member != outcome.member {
                changes.push(Change {
                    segment_id: segment.id.clone(),
                    entered: outcome.member,
                });
            }
            let entered_ms = match (was_member, outcome.member) {
                (_, false) => 0,
                (false, true) => now_ms,
                (true, true) => before.map_or(now_ms, |m| m.entered_ms),
            };
            if !outcome.member && next == 0 {
                profile.segments.remove(&segment.id);
            } else {
                profile.segments.insert(
                    segment.id.clone(),
                    Membership {
                        member: outcome.member,
                        entered_ms,
                        next_change_ms: next,
                    },
                );
            }
            dirty.mark_all(&segment.dependents);
        }
        changes
    }

    /// Evaluates every segment from scratch for a user with `traits` and `series` at
    /// `now_ms`: the reference the incremental path must equal.
    pub fn evaluate_all(
        &self,
        traits: Option<&Struct>,
        series: &HashMap<String, Series>,
        now_ms: i64,
    ) -> Profile {
        let mut profile = Profile {
            series: series.clone(),
            segments: HashMap::new(),
            pruned_for: 0,
        };
        for (key, s) in profile.series.iter_mut() {
            if let Some(keep) = self.keep_known(key) {
                s.compact(keep, now_ms);
            }
        }
        self.evaluate(&mut profile, traits, self.everything(), now_ms);
        profile
    }
}

/// FNV-1a over the sorted segment ids (stable across builds), never 0.
fn fingerprint(ids: &[String]) -> u64 {
    let mut sorted: Vec<&String> = ids.iter().collect();
    sorted.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for id in sorted {
        for byte in id.bytes().chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash | 1
}

/// Segments to evaluate, by position in the engine.
#[derive(Debug, Clone)]
pub struct Dirty(Vec<bool>);

impl Dirty {
    fn mark(&mut self, i: usize) {
        if let Some(d) = self.0.get_mut(i) {
            *d = true;
        }
    }

    fn mark_all(&mut self, positions: &[usize]) {
        for &i in positions {
            self.mark(i);
        }
    }

    /// Whether nothing is marked.
    pub fn is_empty(&self) -> bool {
        !self.0.iter().any(|d| *d)
    }
}

/// A user's traits and profile as the facts a rule is evaluated against; `in_segment`
/// reads the memberships stored in the profile.
pub struct UserView<'a> {
    pub traits: Option<&'a Struct>,
    pub profile: &'a Profile,
    /// The trait instants read so far in this evaluation of the user.
    pub instants: &'a Instants,
}

impl Facts for UserView<'_> {
    fn traits(&self) -> Option<&Struct> {
        self.traits
    }

    fn series(&self, key: &str) -> Option<&Series> {
        self.profile.series.get(key)
    }

    fn instant(&self, value: &prost_types::Value) -> Option<i64> {
        self.instants.of(value)
    }

    fn segment(&self, segment_id: &str) -> Outcome {
        match self.profile.segments.get(segment_id) {
            None => Outcome {
                member: false,
                next_change_ms: None,
            },
            Some(m) => Outcome {
                member: m.member,
                next_change_ms: (m.next_change_ms != 0).then_some(m.next_change_ms),
            },
        }
    }
}
