//! Deciding, for one user and one cause (an event, a segment transition, a timer coming
//! due), what each concerned campaign does, with every gate's verdict in order:
//!
//! trigger → status → schedule → audience → entry → frequency cap → assignment (sticky)
//! → locale → per channel: quiet hours → priority (one campaign per in-app format per
//! cause) → minimum in-app interval → workspace cap rules → render. Rendering comes last
//! (the in-app format is not a template), so only what goes out is rendered.
//!
//! The campaigns deciding together from one cause are taken in precedence order (higher
//! priority, then older, then smaller id), and each one's messages are reserved in the
//! user's [`Ledger`] as soon as they pass, so the next campaign sees them: that is how
//! priority wins the budget and how racing campaigns never overshoot a cap (the caller
//! holds the ledger locked for the whole decision). Only a delivery or a control
//! assignment counts as an entry; a suppressed, capped, delayed or out-prioritised
//! attempt leaves the user eligible.

use std::sync::Arc;

use herald_conditions::Condition;
use herald_core::time::proto_from_ms;
use herald_proto::common::v1::{Channel, InAppFormat, MessageContent};
use herald_proto::trigger::v1 as proto;
use herald_proto::trigger::v1::{DecisionReasonCode as Code, TransitionKind};
use prost_types::Struct;
use prost_types::value::Kind;
use sha2::{Digest, Sha256};

use crate::assign::{Assignment, assign};
use crate::attention::{QuietBehavior, Rule, Workspace};
use crate::compact::{self, Arm, AudienceSketch, Compact, TriggerKind};
use crate::compiled::{CompiledTrigger, EntryRule, Facts};
use crate::ledger::{CampaignEntries, Ledger};
use crate::membership::{SegmentNames, UserSegments};
use crate::render::{self, Globals, RenderErrorKind};
use crate::timer::{self, TimerKind, TimerPayload};
use crate::why::{CampaignWords, ChannelWhy, Why, Words, instant};
use crate::{CompiledCampaign, MatchIndex, locale};

/// What kind of thing caused a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CauseKind {
    Event,
    Transition,
    Timer,
    /// A member of the segment when a segment-entry campaign with
    /// `include_existing_members` became ACTIVE.
    Enrollment,
}

/// What caused a decision: its kind and id (an event's message_id, a transition id, a
/// timer's key and due instant).
#[derive(Debug, Clone, Copy)]
pub struct Cause<'a> {
    pub kind: CauseKind,
    pub id: &'a str,
}

/// The event behind a decision, for triggers and templates.
#[derive(Debug, Clone, Copy)]
pub struct EventView<'a> {
    pub message_id: &'a str,
    pub name: &'a str,
    pub properties: Option<&'a Struct>,
    pub timestamp: Option<&'a prost_types::Timestamp>,
}

/// What is known of the user when deciding.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub user_id: &'a str,
    /// The user's merged traits.
    pub traits: Option<&'a Struct>,
    /// The segments the user is in, as segmentation computed them.
    pub segment_ids: &'a [String],
    /// The user's IANA time zone from the cause (an event's context, a transition's
    /// last-known zone); empty when unknown (then the `time_zone` trait is used).
    pub time_zone: &'a str,
    /// The user's locale from the event's context; empty when unknown (then the `locale`
    /// trait, then the workspace default).
    pub locale: &'a str,
    /// The event, when an event caused the decision or started its timer.
    pub event: Option<EventView<'a>>,
}

fn trait_text<'a>(traits: Option<&'a Struct>, name: &str) -> Option<&'a str> {
    match traits?.fields.get(name)?.kind.as_ref()? {
        Kind::StringValue(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

impl Subject<'_> {
    /// The user's time zone name: the cause's, else the `time_zone` trait; may be empty.
    pub fn zone(&self) -> &str {
        if !self.time_zone.is_empty() {
            return self.time_zone;
        }
        trait_text(self.traits, "time_zone").unwrap_or("")
    }
}

/// One gate's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict<'c> {
    pub code: Code,
    pub passed: bool,
    /// Why, put into words by [`Decision::reason`].
    pub why: Why<'c>,
}

/// One message to send: a rendered content for one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Send {
    /// `campaign:cause:channel`: the same decision always yields the same key.
    pub idempotency_key: String,
    pub channel: Channel,
    pub variant_id: String,
    pub content: MessageContent,
    /// The address trait for push (`push_token`), email (`email`) and SMS (`phone`).
    pub address: String,
    /// When the message expires, in milliseconds; `None` for never.
    pub expire_ms: Option<i64>,
}

/// Where a decision ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Messages go out (see [`Decision::sends`]); some channels may be held back.
    Sent,
    /// The user is in the control holdout: nothing is sent, the entry counts.
    Control,
    /// Nothing goes out; the failing verdict says why.
    Suppressed,
    /// A delay or inactivity timer was started or restarted.
    Scheduled,
    /// Every message was held back by quiet hours until `due_ms`.
    Delayed,
    /// Pending timers were cancelled.
    Cancelled,
}

/// What to do with a durable timer, committed with the decision.
#[derive(Debug, Clone, PartialEq)]
pub enum TimerOp {
    /// Schedule (or replace) `key` at `due_ms`; store it with [`timer::encode`].
    Schedule {
        key: String,
        due_ms: i64,
        payload: Box<TimerPayload>,
        /// Whether it keeps the cause's event (the subject's) as the payload's `event`:
        /// the caller passes its own copy of the event to [`timer::encode`], so deciding
        /// copies none.
        with_event: bool,
    },
    /// Cancel `key`.
    Cancel { key: String },
}

/// The decision for one campaign and one cause. It borrows the words of its campaign's
/// verdicts from the compiled campaign (which outlives it: the caller holds the index),
/// so deciding copies and counts nothing per campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<'c> {
    /// The campaign's id and the words its verdicts name.
    words: HeldWords<'c>,
    pub cause_kind: CauseKind,
    /// The cause's id (borrowed from the cause, which outlives its decisions).
    pub cause_id: &'c str,
    pub verdicts: Vec<Verdict<'c>>,
    pub outcome: Outcome,
    /// The index of the variant assigned; `None` when none or control.
    variant: Option<usize>,
    /// The localization rendered: its index in the assigned variant's (its tag is in the
    /// campaign's words, read when asked for); `None` for the default contents.
    locale: Option<u32>,
    /// The workspace's cap rules, when one stopped a message (a CHANNEL_CAPPED verdict
    /// names it by its index).
    rules: &'c [Rule],
    /// The index of the cap rule that stopped a message, if one did.
    cap_rule: Option<usize>,
    /// The campaign that took the in-app format, if another did.
    pub winner_campaign_id: Option<Arc<str>>,
    pub sends: Vec<Send>,
    /// When a timer is pending (scheduled or delayed), when it is due.
    pub due_ms: Option<i64>,
    pub timers: Vec<TimerOp>,
}

/// A decision's campaign words: borrowed from the compiled campaign, or (for a campaign
/// no longer compiled) its own, boxed so a decision stays small to move.
#[derive(Debug, Clone, PartialEq)]
enum HeldWords<'c> {
    Borrowed(&'c CampaignWords),
    Owned(Box<CampaignWords>),
}

impl std::ops::Deref for HeldWords<'_> {
    type Target = CampaignWords;

    fn deref(&self) -> &CampaignWords {
        match self {
            HeldWords::Borrowed(words) => words,
            HeldWords::Owned(words) => words,
        }
    }
}

impl<'c> Decision<'c> {
    fn new(words: &'c CampaignWords, cause: &Cause<'c>) -> Decision<'c> {
        Decision::of(HeldWords::Borrowed(words), cause)
    }

    fn of(words: HeldWords<'c>, cause: &Cause<'c>) -> Decision<'c> {
        Decision {
            words,
            cause_kind: cause.kind,
            cause_id: cause.id,
            // A decision through every gate of one channel holds about a dozen.
            verdicts: Vec::with_capacity(12),
            outcome: Outcome::Suppressed,
            variant: None,
            locale: None,
            rules: &[],
            cap_rule: None,
            winner_campaign_id: None,
            sends: Vec::new(),
            due_ms: None,
            timers: Vec::new(),
        }
    }

    /// Records a verdict; returns whether it passed.
    fn verdict(&mut self, code: Code, passed: bool, why: impl Into<Why<'c>>) -> bool {
        // Built where it is stored: the closure runs once room is made, so the verdict is
        // written in place, not assembled on the stack and copied (a stalled copy: the
        // copy's wide reads cannot be served from the narrow writes just made).
        self.verdicts.extend(std::iter::once_with(|| Verdict {
            code,
            passed,
            why: why.into(),
        }));
        passed
    }

    /// The id of the cap rule that stopped a message, if one did.
    pub fn cap_rule_id(&self) -> Option<&str> {
        self.cap_rule
            .and_then(|i| self.rules.get(i))
            .map(|rule| &*rule.id)
    }

    /// The campaign decided.
    pub fn campaign_id(&self) -> &str {
        &self.words.id
    }

    /// The variant assigned; `None` when none or control.
    pub fn variant_id(&self) -> Option<&str> {
        let index = self.variant?;
        self.words.variant_ids.get(index).map(|id| &**id)
    }

    /// Why `verdict` (one of this decision's) passed or not, in words, e.g. `trait
    /// filter 0 (plan) does not match`.
    pub fn reason(&self, verdict: &Verdict) -> String {
        verdict.why.describe(&self.words, self.rules).to_string()
    }

    /// The localization rendered (its tag as written); empty for the default contents.
    pub fn locale(&self) -> &str {
        self.localization()
            .and_then(|(variant, at)| self.words.localization(variant, at))
            .unwrap_or_default()
    }

    /// The localization rendered, as [`Why::Locale`] names it.
    fn localization(&self) -> Option<(u32, u32)> {
        let variant = u32::try_from(self.variant?).ok()?;
        Some((variant, self.locale?))
    }

    /// The messages to send; empty unless the outcome is SENT.
    pub fn sends(&self) -> &[Send] {
        &self.sends
    }

    /// The first verdict that did not pass, if any.
    pub fn failed(&self) -> Option<&Verdict<'c>> {
        self.verdicts.iter().find(|v| !v.passed)
    }

    /// The decision as ExplainDecision answers it.
    pub fn to_proto(&self, id: &str, user_id: &str, decide_ms: i64) -> proto::Decision {
        proto::Decision {
            id: id.to_owned(),
            campaign_id: self.campaign_id().to_owned(),
            user_id: user_id.to_owned(),
            decide_time: Some(proto_from_ms(decide_ms)),
            outcome: match self.outcome {
                Outcome::Sent => proto::DecisionOutcome::Sent,
                Outcome::Control => proto::DecisionOutcome::Control,
                Outcome::Suppressed => proto::DecisionOutcome::Suppressed,
                Outcome::Scheduled => proto::DecisionOutcome::Scheduled,
                Outcome::Delayed => proto::DecisionOutcome::Delayed,
                Outcome::Cancelled => proto::DecisionOutcome::Cancelled,
            } as i32,
            reasons: self
                .verdicts
                .iter()
                .map(|v| proto::DecisionReason {
                    code: v.code as i32,
                    message: self.reason(v),
                    passed: v.passed,
                })
                .collect(),
            cause_id: self.cause_id.to_string(),
            variant_id: self.variant_id().unwrap_or_default().to_owned(),
            deliveries: self
                .sends
                .iter()
                .map(|s| proto::ChannelDelivery {
                    channel: s.channel as i32,
                    idempotency_key: s.idempotency_key.clone(),
                })
                .collect(),
            due_time: self.due_ms.map(proto_from_ms),
            cap_rule_id: self.cap_rule_id().unwrap_or_default().to_owned(),
            winner_campaign_id: text(&self.winner_campaign_id),
            locale: self.locale().to_owned(),
            cause: match self.cause_kind {
                CauseKind::Event => proto::DecisionCause::Event,
                CauseKind::Transition => proto::DecisionCause::SegmentTransition,
                CauseKind::Timer => proto::DecisionCause::Timer,
                CauseKind::Enrollment => proto::DecisionCause::Enrollment,
            } as i32,
        }
    }
}

fn text(id: &Option<Arc<str>>) -> String {
    id.as_deref().unwrap_or_default().to_owned()
}

/// A campaign whose trigger matched the cause, about to be decided.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub campaign: &'a CompiledCampaign,
    /// What the gates read of it first: the index's copy when it has the campaign's next
    /// to the others of the cause, else the campaign's own.
    compact: &'a Compact,
    /// Its audience's trait filters: the index's copy, or the campaign's own.
    traits: &'a [Condition],
    /// How the trigger matched, and what a quiet-hours release sends, unless the
    /// trigger fired as the campaign's words say (every event trigger): boxed, so the
    /// candidates of an event are small to write.
    unusual: Option<Box<Unusual<'a>>>,
}

/// How a candidate's trigger matched when not as its campaign's words say.
#[derive(Debug, Clone)]
struct Unusual<'a> {
    matched: Why<'a>,
    /// For a quiet-hours release: what was held back.
    release: Option<Release>,
}

impl<'a> Candidate<'a> {
    /// `campaign`, whose trigger fired as its compiled words say.
    fn fired(campaign: &'a CompiledCampaign) -> Candidate<'a> {
        Candidate::fired_packed(campaign, &campaign.compact, &campaign.trait_conditions)
    }

    /// [`Candidate::fired`], with the index's copies of its [`Compact`] and trait filters.
    fn fired_packed(
        campaign: &'a CompiledCampaign,
        compact: &'a Compact,
        traits: &'a [Condition],
    ) -> Candidate<'a> {
        Candidate {
            campaign,
            compact,
            traits,
            unusual: None,
        }
    }

    /// `campaign`, matched as `matched` says, its quiet-hours `release` if any.
    fn of(
        campaign: &'a CompiledCampaign,
        matched: Why<'a>,
        release: Option<Release>,
    ) -> Candidate<'a> {
        Candidate {
            unusual: Some(Box::new(Unusual { matched, release })),
            ..Candidate::fired(campaign)
        }
    }

    /// How the trigger matched.
    fn matched(&self) -> Why<'a> {
        self.unusual
            .as_ref()
            .map_or(Why::Campaign(Words::Matched), |u| u.matched.clone())
    }

    /// For a quiet-hours release: what was held back.
    fn release(&self) -> Option<&Release> {
        self.unusual.as_ref()?.release.as_ref()
    }
}

/// What a quiet-hours release sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub channels: Vec<Channel>,
    /// Whether the held decision already counted as an entry.
    pub entered: bool,
}

fn failing(conditions: &[Condition], root: Option<&Struct>) -> Option<usize> {
    conditions.iter().position(|c| !c.matches(root))
}

fn filters_match(conditions: &[Condition], event: &EventView) -> bool {
    failing(conditions, event.properties).is_none()
}

fn payload(
    kind: TimerKind,
    workspace: &Workspace,
    campaign_id: &str,
    cause: &Cause,
    subject: &Subject,
    now_ms: i64,
) -> TimerPayload {
    TimerPayload {
        kind: kind as i32,
        workspace_id: workspace.id.clone(),
        campaign_id: campaign_id.to_owned(),
        user_id: subject.user_id.to_owned(),
        cause_id: cause.id.to_owned(),
        // Attached as the timer's `event` instead.
        event: None,
        time_zone: subject.time_zone.to_owned(),
        locale: subject.locale.to_owned(),
        channels: Vec::new(),
        entered: false,
        started_ms: now_ms,
        variant_id: String::new(),
        page_token: String::new(),
        segment_index: 0,
    }
}

/// Schedules the user's next occurrence of `campaign`'s local schedule after `now_ms`,
/// in the user's zone (the cause's, the `time_zone` trait, the schedule's default,
/// UTC). `None` for a campaign without a local schedule.
pub fn schedule_user<'c>(
    campaign: &'c CompiledCampaign,
    workspace: &Workspace,
    cause: &Cause<'c>,
    subject: &Subject,
    now_ms: i64,
) -> Option<Decision<'c>> {
    let mut d = Decision::new(&campaign.words, cause);
    let op = next_occurrence(campaign, workspace, cause, subject, now_ms, &mut d)?;
    d.outcome = if op.is_some() {
        Outcome::Scheduled
    } else {
        Outcome::Suppressed
    };
    if let Some(TimerOp::Schedule { due_ms, .. }) = &op {
        d.due_ms = Some(*due_ms);
    }
    d.timers.extend(op);
    Some(d)
}

/// The timer of the user's next occurrence of the local schedule, with its verdict;
/// `Some(None)` when the schedule never fires again, `None` without a local schedule.
fn next_occurrence(
    campaign: &CompiledCampaign,
    workspace: &Workspace,
    cause: &Cause,
    subject: &Subject,
    now_ms: i64,
    d: &mut Decision,
) -> Option<Option<TimerOp>> {
    let CompiledTrigger::Schedule {
        when, default_zone, ..
    } = &campaign.trigger
    else {
        return None;
    };
    let tz = crate::zone::resolve(&[subject.zone(), default_zone]);
    let zone_name = tz.iana_name().unwrap_or("UTC").to_owned();
    let Some(due_ms) = when.next_after_ms(now_ms, &tz) else {
        d.verdict(
            Code::Timer,
            false,
            format!("the local schedule {when} never fires again in {zone_name}"),
        );
        return Some(None);
    };
    d.verdict(
        Code::Timer,
        true,
        format!(
            "next local occurrence of {when} in {zone_name} at {}",
            instant(due_ms)
        ),
    );
    Some(Some(TimerOp::Schedule {
        key: timer::schedule_key(&workspace.id, subject.user_id, campaign.id()),
        due_ms,
        payload: Box::new(payload(
            TimerKind::Schedule,
            workspace,
            campaign.id(),
            cause,
            subject,
            now_ms,
        )),
        with_event: subject.event.is_some(),
    }))
}

/// Decides everything the event in `subject` causes: cancels the pending timers it
/// cancels, starts or restarts delay and inactivity timers, counts goals, and decides
/// the event and goal campaigns it fires, together (see [`decide`]).
pub fn on_event<'c>(
    index: &'c MatchIndex,
    workspace: &'c Workspace,
    subject: &Subject<'c>,
    ledger: &mut Ledger,
    now_ms: i64,
) -> Vec<Decision<'c>> {
    let Some(event) = subject.event else {
        return Vec::new();
    };
    let cause = Cause {
        kind: CauseKind::Event,
        id: event.message_id,
    };
    let concern = index.concerned(event.name);
    let (fired, compacts) = (concern.campaigns, concern.compact);
    compacts.iter().for_each(Compact::read_ahead);
    for (i, compact) in compacts.iter().enumerate() {
        // A trigger is decided from its compact and filters, at first.
        if compact.filtered || compact.trait_filters {
            let (conditions, traits) = concern.filters(i);
            for condition in conditions.iter().chain(traits) {
                std::hint::black_box(condition.path.as_str().as_bytes().first());
            }
        }
    }
    let mut decisions = Vec::with_capacity(fired.len());
    // From the user's pending timers (a handful), not from the campaigns the event could
    // cancel: an any-event inactivity trigger concerns every event of every user.
    let event_key = index.event_key(event.name);
    let mut cancelling: Vec<&std::sync::Arc<CompiledCampaign>> = ledger
        .keyed_campaigns()
        .filter(|(_, s)| !s.pending_delays.is_empty() || s.inactivity_pending)
        .filter_map(|(key, _)| index.cancelled_keyed(key, &event_key))
        .collect();
    cancelling.sort_by(|a, b| a.precedence(b));
    for campaign in cancelling {
        let state = ledger.campaign_mut(campaign.key());
        let keys: Vec<String> = match &campaign.trigger {
            CompiledTrigger::Delay { .. } => std::mem::take(&mut state.pending_delays),
            CompiledTrigger::Inactivity { .. } if state.inactivity_pending => {
                state.inactivity_pending = false;
                vec![timer::inactivity_key(
                    &workspace.id,
                    subject.user_id,
                    campaign.id(),
                )]
            }
            _ => Vec::new(),
        };
        if keys.is_empty() {
            continue;
        }
        let mut d = Decision::new(&campaign.words, &cause);
        d.verdict(
            Code::Timer,
            true,
            format!(
                "event {:?} cancelled {} pending timer(s)",
                event.name,
                keys.len()
            ),
        );
        d.outcome = Outcome::Cancelled;
        d.timers = keys
            .into_iter()
            .map(|key| TimerOp::Cancel { key })
            .collect();
        decisions.push(d);
    }
    let mut candidates = Vec::with_capacity(fired.len());
    for (i, (campaign, compact)) in fired.iter().zip(compacts).enumerate() {
        let (conditions, traits) = concern.filters(i);
        if compact.trigger == TriggerKind::Event {
            if !compact.filtered || filters_match(conditions, &event) {
                candidates.push(Candidate::fired_packed(campaign, compact, traits));
            }
            continue;
        }
        // Its id and ledger key as the index keeps them, next to the others'.
        let (id, ledger_key) = (&*compact.id, compact.key());
        match compact.trigger {
            TriggerKind::Goal { occurrence } if filters_match(conditions, &event) => {
                let state = ledger.campaign_mut(ledger_key);
                state.goal_count = state.goal_count.saturating_add(1);
                if state.goal_count == occurrence {
                    candidates.push(Candidate::fired_packed(campaign, compact, traits));
                }
            }
            TriggerKind::Delay { delay_ms } if filters_match(conditions, &event) => {
                let key = timer::delay_key(&workspace.id, subject.user_id, id, event.message_id);
                let due_ms = now_ms.saturating_add(delay_ms);
                let state = ledger.campaign_mut(ledger_key);
                if !state.pending_delays.contains(&key) {
                    state.pending_delays.push(key.clone());
                }
                let started = Why::DelayStarted { delay_ms };
                decisions.push(timer_started(
                    TimerKind::Delay,
                    key,
                    due_ms,
                    started,
                    workspace,
                    (campaign, id),
                    &cause,
                    subject,
                    now_ms,
                ));
            }
            TriggerKind::Inactivity { within_ms } => {
                let key = timer::inactivity_key(&workspace.id, subject.user_id, id);
                let due_ms = now_ms.saturating_add(within_ms);
                let state = ledger.campaign_mut(ledger_key);
                let restarted = std::mem::replace(&mut state.inactivity_pending, true);
                let started = Why::InactivityStarted {
                    within_ms,
                    restarted,
                };
                decisions.push(timer_started(
                    TimerKind::Inactivity,
                    key,
                    due_ms,
                    started,
                    workspace,
                    (campaign, id),
                    &cause,
                    subject,
                    now_ms,
                ));
            }
            _ => {}
        }
    }
    decide_all(
        workspace,
        &cause,
        subject,
        (&candidates, Some(index.segment_names())),
        ledger,
        now_ms,
        &mut decisions,
    );
    decisions
}

/// The SCHEDULED decision of a delay or inactivity timer that `subject`'s event started:
/// the trigger's and the timer's verdicts, and the timer `key` to schedule at `due_ms`.
#[allow(clippy::too_many_arguments)]
fn timer_started<'c>(
    kind: TimerKind,
    key: String,
    due_ms: i64,
    started: Why<'c>,
    workspace: &Workspace,
    (campaign, id): (&'c CompiledCampaign, &str),
    cause: &Cause<'c>,
    subject: &Subject,
    now_ms: i64,
) -> Decision<'c> {
    let mut d = Decision::new(&campaign.words, cause);
    d.verdict(Code::TriggerMatched, true, Words::Matched);
    d.verdict(Code::Timer, true, started);
    d.outcome = Outcome::Scheduled;
    d.due_ms = Some(due_ms);
    d.timers.push(TimerOp::Schedule {
        key,
        due_ms,
        payload: Box::new(payload(kind, workspace, id, cause, subject, now_ms)),
        with_event: subject.event.is_some(),
    });
    d
}

/// A segment transition of the user, as [`on_transition`] needs it.
#[derive(Debug, Clone, Copy)]
pub struct TransitionView<'a> {
    pub id: &'a str,
    pub segment_id: &'a str,
    pub kind: TransitionKind,
    pub at_ms: i64,
}

/// Decides the segment-entry campaigns an ENTERED transition fires. An entry from before
/// the campaign became ACTIVE does not fire (it is recorded as such).
pub fn on_transition<'c>(
    index: &'c MatchIndex,
    workspace: &'c Workspace,
    transition: &TransitionView<'c>,
    subject: &Subject<'c>,
    ledger: &mut Ledger,
    now_ms: i64,
) -> Vec<Decision<'c>> {
    if transition.kind != TransitionKind::Entered {
        return Vec::new();
    }
    let cause = Cause {
        kind: CauseKind::Transition,
        id: transition.id,
    };
    let mut early = Vec::new();
    // Local schedules for the segment's members: the new member's next occurrence.
    for campaign in index.schedules_for_segment(transition.segment_id) {
        early.extend(schedule_user(campaign, workspace, &cause, subject, now_ms));
    }
    let mut candidates = Vec::new();
    for campaign in index.for_segment(transition.segment_id) {
        if transition.at_ms < campaign.activate_ms() {
            let mut d = Decision::new(&campaign.words, &cause);
            d.verdict(
                Code::TriggerMatched,
                false,
                format!(
                    "entered segment {:?} at {}, before the campaign became active at {}",
                    transition.segment_id,
                    instant(transition.at_ms),
                    instant(campaign.activate_ms())
                ),
            );
            early.push(d);
        } else {
            candidates.push(Candidate::fired(campaign));
        }
    }
    decide_all(
        workspace,
        &cause,
        subject,
        (&candidates, Some(index.segment_names())),
        ledger,
        now_ms,
        &mut early,
    );
    early
}

/// A timer that came due, as [`on_timer`] needs it.
#[derive(Debug, Clone, Copy)]
pub struct DueTimer<'a> {
    /// Its campaign; `None` when the campaign is no longer ACTIVE.
    pub campaign: Option<&'a CompiledCampaign>,
    /// Its key.
    pub key: &'a str,
    /// What it carries.
    pub payload: &'a TimerPayload,
}

/// Decides a timer that came due (`cause.id` names it). A delay or inactivity timer the
/// ledger no longer holds was cancelled while it fired: nothing is decided.
pub fn on_timer<'c>(
    timer: &DueTimer<'c>,
    workspace: &'c Workspace,
    cause: &Cause<'c>,
    subject: &Subject<'c>,
    ledger: &mut Ledger,
    now_ms: i64,
) -> Option<Decision<'c>> {
    let (campaign, timer_key, payload) = (timer.campaign, timer.key, timer.payload);
    let state = ledger.campaign_mut(&payload.campaign_id);
    let matched = match payload.kind() {
        TimerKind::Delay => {
            let at = state.pending_delays.iter().position(|k| k == timer_key)?;
            state.pending_delays.remove(at);
            "the delay elapsed"
        }
        TimerKind::Inactivity => {
            if !std::mem::replace(&mut state.inactivity_pending, false) {
                return None;
            }
            "the inactivity window elapsed without the expected event"
        }
        TimerKind::Release => "quiet hours ended",
        TimerKind::Schedule => "the local schedule came due",
        TimerKind::Enroll | TimerKind::Unspecified => return None,
    };
    let Some(campaign) = campaign.filter(|c| c.is_active()) else {
        let mut d = Decision::of(
            HeldWords::Owned(Box::new(CampaignWords::bare(&payload.campaign_id))),
            cause,
        );
        d.verdict(Code::TriggerMatched, true, matched);
        d.verdict(
            Code::CampaignNotActive,
            false,
            "the campaign is no longer active: the timer is dropped",
        );
        return Some(d);
    };
    let release = (payload.kind() == TimerKind::Release).then(|| Release {
        channels: payload.release_channels(),
        entered: payload.entered,
    });
    let candidate = Candidate::of(campaign, Why::Fixed(matched), release);
    let mut d = decide(workspace, cause, subject, vec![candidate], ledger, now_ms)
        .into_iter()
        .next()?;
    // A recurring schedule goes on while the user is in one of its segments.
    if let (TimerKind::Schedule, CompiledTrigger::Schedule { segments, .. }) =
        (payload.kind(), &campaign.trigger)
    {
        if segments.iter().any(|s| subject.segment_ids.contains(s)) {
            if let Some(op) =
                next_occurrence(campaign, workspace, cause, subject, now_ms, &mut d).flatten()
            {
                d.timers.push(op);
            }
        } else {
            d.verdict(
                Code::Timer,
                true,
                "the user left the schedule's segments: no next occurrence",
            );
        }
    }
    Some(d)
}

/// Decides `campaign` for a user who was a member of its segment when it became ACTIVE:
/// as for an entry (`include_existing_members`), or, for a local schedule, the user's
/// first occurrence.
pub fn on_enrollment<'c>(
    campaign: &'c CompiledCampaign,
    workspace: &'c Workspace,
    cause: &Cause<'c>,
    subject: &Subject<'c>,
    ledger: &mut Ledger,
    now_ms: i64,
) -> Decision<'c> {
    if let Some(d) = schedule_user(campaign, workspace, cause, subject, now_ms) {
        return d;
    }
    let segment = match &campaign.trigger {
        CompiledTrigger::SegmentEntry { segment_id, .. } => segment_id.as_str(),
        _ => "",
    };
    let matched = format!("a member of segment {segment:?} when the campaign became active");
    let candidate = Candidate::of(campaign, Why::Text(matched), None);
    decide(workspace, cause, subject, vec![candidate], ledger, now_ms)
        .into_iter()
        .next()
        .unwrap_or_else(|| Decision::new(&campaign.words, cause))
}

/// Decides `candidates` (campaigns whose trigger matched `cause` for the user) together,
/// in precedence order, reserving each one's messages in `ledger` before the next.
pub fn decide<'c>(
    workspace: &'c Workspace,
    cause: &Cause<'c>,
    subject: &Subject<'c>,
    mut candidates: Vec<Candidate<'c>>,
    ledger: &mut Ledger,
    now_ms: i64,
) -> Vec<Decision<'c>> {
    candidates.sort_by(|a, b| a.campaign.precedence(b.campaign));
    let mut decisions = Vec::with_capacity(candidates.len());
    decide_all(
        workspace,
        cause,
        subject,
        (&candidates, None),
        ledger,
        now_ms,
        &mut decisions,
    );
    decisions
}

/// [`decide`] for `candidates` already in precedence order, into `decisions`; `names`
/// are the segment names of the index the candidates come from, if they all do.
#[allow(clippy::too_many_arguments)]
fn decide_all<'c>(
    workspace: &'c Workspace,
    cause: &Cause<'c>,
    subject: &Subject<'c>,
    (candidates, names): (&[Candidate<'c>], Option<&SegmentNames>),
    ledger: &mut Ledger,
    now_ms: i64,
    decisions: &mut Vec<Decision<'c>>,
) {
    if candidates.is_empty() {
        return;
    }
    let mut attention = Attention {
        last_in_app_ms: ledger.last_in_app_ms(),
        taken: Vec::new(),
        user_locale: None,
        user_tags: None,
        used: vec![None; workspace.rules.len()],
        segments: None,
        names,
    };
    decisions.reserve(candidates.len());
    for candidate in candidates {
        candidate.compact.prefetch();
        // The variants are read ahead only when the gates may read them: when one does not
        // fit the compact.
        let packed = candidate.compact.arms.as_ref().is_some_and(|arms| {
            (0..usize::from(candidate.compact.variants)).all(|i| arms.arm(i).is_some_and(Arm::fits))
        });
        if !packed {
            candidate.campaign.prefetch_variants();
        }
    }
    for candidate in candidates {
        // Decided in place: a decision is a couple of hundred bytes to move. Built where it
        // is stored, as a verdict is (see `Decision::verdict`).
        decisions.extend(std::iter::once_with(|| {
            Decision::new(&candidate.campaign.words, cause)
        }));
        let d = decisions.last_mut().expect("just pushed");
        gates(
            d,
            workspace,
            cause,
            subject,
            candidate,
            ledger,
            &mut attention,
            now_ms,
        );
    }
}

/// What campaigns deciding from the same cause share.
struct Attention<'s, 'n> {
    /// The latest in-app message before this cause.
    last_in_app_ms: Option<i64>,
    /// The in-app formats taken by this cause, and by which campaign.
    taken: Vec<(InAppFormat, Arc<str>)>,
    /// The user's locale, the same for every campaign of the cause, looked up once the
    /// first campaign picks a variant's contents.
    user_locale: Option<Option<locale::Lookup<'s>>>,
    /// The tags the user's locale is looked for under, as words
    /// ([`compact::tag_word`], 0 for a tag too long), once needed.
    user_tags: Option<Vec<u64>>,
    /// The user's segments, hashed once the first audience needs them.
    segments: Option<UserSegments<'s, 'n>>,
    /// The segment names of the index the campaigns come from, if they all do.
    names: Option<&'n SegmentNames>,
    /// Per workspace cap rule, the messages counted in its window once a campaign of
    /// this cause needed it (counting a calendar day resolves the user's time zone),
    /// kept up to date as messages are reserved.
    used: Vec<Option<u32>>,
}

#[allow(clippy::too_many_arguments)]
fn gates<'c>(
    d: &mut Decision<'c>,
    workspace: &'c Workspace,
    cause: &Cause,
    subject: &Subject<'c>,
    candidate: &Candidate<'c>,
    ledger: &mut Ledger,
    attention: &mut Attention<'c, '_>,
    now_ms: i64,
) {
    let (campaign, compact) = (candidate.campaign, candidate.compact);
    let facts = &compact.facts;
    // The stored campaign: read only where a gate needs more than the compact.
    let c = || campaign.campaign();
    let key = compact.key();
    d.verdict(Code::TriggerMatched, true, candidate.matched());
    if !facts.active {
        d.verdict(Code::CampaignNotActive, false, "the campaign is not active");
        return;
    }
    if !schedule(d, facts, now_ms) || !audience(d, candidate, subject, attention.segments(subject))
    {
        return;
    }
    let entered_already = candidate.release().is_some_and(|r| r.entered);
    let state = ledger.campaign(key);
    if !entered_already && !eligibility(d, facts, state, now_ms) {
        return;
    }

    // Assignment: sticky once the user is exposed to it (sent the variant, held out as
    // control, or held by quiet hours), so new weights only move users who saw nothing.
    let kept = match state {
        Some(state) if state.assigned && state.variant_id.is_empty() => Some(None),
        Some(state) if state.assigned => c()
            .variants
            .iter()
            .position(|v| v.id == state.variant_id)
            .map(Some),
        _ => None,
    };
    let variant_index = match kept {
        Some(index) => index,
        None => match facts.sole_arm.or_else(|| {
            let weights = match &compact.arms {
                Some(arms) => arms.weights(),
                None => &campaign.weights,
            };
            assign(&compact.id, subject.user_id, weights, facts.control_weight)
        }) {
            Some(Assignment::Variant(i)) => Some(i),
            Some(Assignment::Control) => None,
            None => {
                d.verdict(Code::VariantAssigned, false, "every weight is 0");
                return;
            }
        },
    };
    let kept = kept.is_some();
    // Records the user's entry and, when new, the assignment.
    let enter = |ledger: &mut Ledger, entry: bool, variant: Option<&str>| {
        let state = ledger.campaign_mut(key);
        if !kept {
            state.assigned = true;
            state.variant_id = variant.unwrap_or_default().to_owned();
        }
        if entry {
            ledger.enter(key, now_ms, facts.entries_to_keep());
        }
    };
    // Control passes the gates a send passes, on the first variant's channels, and is held
    // out at the moment a message would have gone: the point of the decision where a
    // variant is exposed, so the two arms are counted alike.
    let control = variant_index.is_none();
    let arm_index = variant_index.unwrap_or(0);
    if usize::from(compact.variants) <= arm_index {
        d.verdict(Code::ControlAssigned, true, Why::Control { kept });
        enter(ledger, !entered_already, None);
        d.outcome = Outcome::Control;
        return;
    }
    let variant = || &c().variants[arm_index];
    // What the user gets of the variant (its contents' channels, and the localization
    // chosen) is read from the compact; from the campaign for a variant that does not fit
    // it. Control always gets the default contents.
    let packed = compact
        .arms
        .as_ref()
        .and_then(|arms| arms.arm(arm_index))
        .and_then(|arm| {
            if control {
                Some(arm.defaults())
            } else if arm.localized() {
                arm.pick(attention.user_tags(workspace, subject))
            } else {
                arm.pick(&[])
            }
        });
    // The contents picked from the campaign: at once when the compact cannot say, else
    // once one is rendered.
    let mut picked = if let Some(variant_index) = variant_index {
        d.variant = Some(variant_index);
        d.verdict(
            Code::VariantAssigned,
            true,
            Why::Variant {
                index: variant_index,
                kept,
            },
        );
        // Locale: one language per message.
        let user_locale = attention.user_locale(workspace, subject);
        let (picked, localization, matched, from_default) = match &packed {
            Some(pick) => (
                None,
                pick.localization.map(|(l, _)| l),
                pick.reason(),
                pick.contents.defaulted_channels(),
            ),
            None => {
                let picked = locale::pick_for(variant(), user_locale);
                let (localization, matched) = (picked.localization, picked.reason);
                let from_default = picked.from_default.as_slice().into();
                (Some(picked), localization, matched, from_default)
            }
        };
        d.locale = localization.and_then(|l| u32::try_from(l).ok());
        d.verdict(
            Code::Locale,
            true,
            Why::Locale {
                matched,
                locale: d.localization(),
                user: user_locale.map(|u| u.received()),
                from_default,
            },
        );
        picked
    } else {
        d.verdict(Code::ControlAssigned, true, Why::Control { kept });
        packed.is_none().then(|| locale::pick_for(variant(), None))
    };
    // Each content's channel and in-app format, in order.
    let unpacked: Vec<(Channel, InAppFormat)> = match &picked {
        Some(picked) => picked
            .contents
            .iter()
            .map(|content| (render::channel(content), compact::in_app_format(content)))
            .collect(),
        None => Vec::new(),
    };
    let packed_channels;
    let channels = match &packed {
        Some(pick) if picked.is_none() => {
            packed_channels = pick.contents.channels();
            &packed_channels[..pick.contents.len()]
        }
        _ => unpacked.as_slice(),
    };

    // Built when a content is rendered, at most once.
    let mut globals: Option<Globals> = None;
    let expire_ms = facts.ttl_ms.map(|ttl| now_ms.saturating_add(ttl));
    let quiet = if facts.critical {
        None
    } else if compact.quiet {
        campaign.quiet.as_ref()
    } else {
        workspace.quiet.as_ref()
    };
    let exempt = facts.exempt_from_cap_rules;
    let mut held: Vec<Channel> = Vec::new();
    let mut held_until: Option<i64> = None;
    let mut sent_any = false;
    for (k, &(channel, format)) in channels.iter().enumerate() {
        let on = |why: ChannelWhy| Why::Channel(channel, why);
        if let Some(release) = candidate.release()
            && !release.channels.contains(&channel)
        {
            continue;
        }
        if let Some(quiet) = quiet.filter(|q| q.applies_to(channel))
            && let Some(release_ms) = quiet.release_ms(now_ms, subject.zone(), subject.user_id)
        {
            match quiet.behavior {
                QuietBehavior::Delay => {
                    d.verdict(
                        Code::QuietHours,
                        false,
                        on(ChannelWhy::QuietHeld {
                            until_ms: release_ms,
                        }),
                    );
                    held.push(channel);
                    held_until = Some(held_until.map_or(release_ms, |h| h.max(release_ms)));
                }
                QuietBehavior::Drop => {
                    d.verdict(Code::QuietHours, false, on(ChannelWhy::QuietDropped));
                }
            }
            continue;
        }
        // The format is not a template: the budget is checked before rendering, so only
        // what goes out is rendered.
        if channel == Channel::InApp {
            if let Some((_, winner)) = attention.taken.iter().find(|(f, _)| *f == format) {
                d.winner_campaign_id = Some(winner.clone());
                d.verdict(
                    Code::Priority,
                    false,
                    on(ChannelWhy::FormatTaken {
                        winner: winner.clone(),
                        format,
                    }),
                );
                continue;
            }
            if !exempt
                && workspace.min_in_app_interval_ms > 0
                && let Some(last) = attention.last_in_app_ms
                && now_ms < last.saturating_add(workspace.min_in_app_interval_ms)
            {
                d.verdict(
                    Code::MinInterval,
                    false,
                    on(ChannelWhy::TooSoon {
                        since_ms: now_ms - last,
                        min_ms: workspace.min_in_app_interval_ms,
                    }),
                );
                continue;
            }
        }
        if !exempt
            && let Some(rule) =
                attention.reached_rule(workspace, ledger, subject, channel, format, now_ms)
        {
            (d.rules, d.cap_rule) = (&workspace.rules, Some(rule));
            d.verdict(Code::ChannelCapped, false, on(ChannelWhy::Capped(rule)));
            continue;
        }
        if channel == Channel::InApp {
            d.verdict(Code::Priority, true, on(ChannelWhy::FormatFree { format }));
            d.verdict(
                Code::MinInterval,
                true,
                on(if exempt {
                    ChannelWhy::IntervalExempt
                } else if workspace.min_in_app_interval_ms <= 0 {
                    ChannelWhy::NoInterval
                } else {
                    ChannelWhy::OutsideInterval {
                        min_ms: workspace.min_in_app_interval_ms,
                    }
                }),
            );
        }
        d.verdict(
            Code::ChannelCapped,
            true,
            on(match (exempt, workspace.rules.len()) {
                (true, _) => ChannelWhy::CapExempt,
                (false, 0) => ChannelWhy::NoCapRules,
                (false, n) => ChannelWhy::WithinCaps(n),
            }),
        );
        if control {
            // Held out here: nothing rendered, nothing reserved.
            d.verdict(Code::ControlAssigned, true, on(ChannelWhy::HeldOut));
            sent_any = true;
            continue;
        }
        let c = c();
        let variant = variant();
        // A localization chosen from the compact: its contents, now that one is rendered.
        if picked.is_none() && packed.is_some_and(|p| p.localization.is_some()) {
            picked = Some(locale::pick_for(
                variant,
                attention.user_locale(workspace, subject),
            ));
            debug_assert_eq!(
                picked.as_ref().and_then(|p| p.localization),
                packed.and_then(|p| p.localization).map(|(l, _)| l)
            );
        }
        let content = match &picked {
            Some(picked) => picked
                .contents
                .iter()
                .nth(k)
                .expect("a content per channel"),
            None => &variant.contents[k],
        };
        let globals = globals.get_or_insert_with(|| {
            Globals::new(render::GlobalsInput {
                user_id: subject.user_id,
                traits: subject.traits,
                event: subject.event.map(|e| render::EventInput {
                    name: e.name,
                    properties: e.properties,
                    timestamp: e.timestamp,
                }),
                campaign_id: &c.id,
                campaign_name: &c.name,
                variant_id: &variant.id,
                locale: picked.as_ref().and_then(|p| p.locale).unwrap_or(""),
                workspace_id: &workspace.id,
            })
        });
        let rendered = match campaign.templates.render(content, globals) {
            Ok(rendered) => {
                d.verdict(Code::RenderFailed, true, on(ChannelWhy::Rendered));
                rendered
            }
            Err(e) => {
                let code = match e.kind {
                    RenderErrorKind::Aborted => Code::RenderAborted,
                    _ => Code::RenderFailed,
                };
                d.verdict(
                    code,
                    false,
                    on(ChannelWhy::NotRendered(format!("{}: {}", e.field, e.error))),
                );
                continue;
            }
        };
        // Reserved now, so the campaigns after this one in the same cause see it.
        ledger.sent(&c.id, channel, format, now_ms);
        attention.reserved(workspace, channel, format);
        if channel == Channel::InApp {
            attention.taken.push((format, compact.id.clone()));
        }
        sent_any = true;
        d.sends.push(Send {
            idempotency_key: idempotency_key(&c.id, cause.id, channel),
            channel,
            variant_id: variant.id.clone(),
            address: address(channel, subject.traits),
            content: rendered,
            expire_ms,
        });
    }
    if sent_any || held_until.is_some() {
        let variant = (!control).then(|| variant().id.as_str());
        enter(ledger, sent_any && !entered_already, variant);
    }
    if let Some(due_ms) = held_until {
        let mut release = payload(
            TimerKind::Release,
            workspace,
            &compact.id,
            cause,
            subject,
            now_ms,
        );
        release.channels = held.iter().map(|c| *c as i32).collect();
        release.entered = sent_any || entered_already;
        if !control {
            release.variant_id = variant().id.clone();
        }
        d.timers.push(TimerOp::Schedule {
            key: timer::release_key(&workspace.id, subject.user_id, &compact.id, cause.id),
            due_ms,
            payload: Box::new(release),
            with_event: subject.event.is_some(),
        });
        d.due_ms = Some(due_ms);
    }
    d.outcome = if sent_any && control {
        Outcome::Control
    } else if sent_any {
        Outcome::Sent
    } else if held_until.is_some() {
        Outcome::Delayed
    } else {
        Outcome::Suppressed
    };
}

impl<'s, 'n> Attention<'s, 'n> {
    /// The user's locale for picking contents.
    fn user_locale(
        &mut self,
        workspace: &'s Workspace,
        subject: &Subject<'s>,
    ) -> Option<&locale::Lookup<'s>> {
        self.user_locale
            .get_or_insert_with(|| {
                locale::Lookup::of_user(
                    subject.locale,
                    trait_text(subject.traits, "locale"),
                    &workspace.default_locale,
                )
            })
            .as_ref()
    }

    /// The tags the user's locale is looked for under, as words ([`compact::tag_word`]).
    fn user_tags(&mut self, workspace: &'s Workspace, subject: &Subject<'s>) -> &[u64] {
        if self.user_tags.is_none() {
            let tags = self
                .user_locale(workspace, subject)
                .map_or_else(Vec::new, |u| u.tries().map(compact::tag_word).collect());
            self.user_tags = Some(tags);
        }
        self.user_tags.as_deref().unwrap_or_default()
    }

    /// The user's segments for audiences.
    fn segments(&mut self, subject: &Subject<'s>) -> &UserSegments<'s, 'n> {
        self.segments
            .get_or_insert_with(|| UserSegments::new(subject.segment_ids, self.names))
    }

    /// The index of the first workspace cap rule covering `channel` (and in-app
    /// `format`) that the user has reached at `now_ms`, if any.
    fn reached_rule(
        &mut self,
        workspace: &Workspace,
        ledger: &Ledger,
        subject: &Subject,
        channel: Channel,
        format: InAppFormat,
        now_ms: i64,
    ) -> Option<usize> {
        for (i, (rule, used)) in workspace.rules.iter().zip(self.used.iter_mut()).enumerate() {
            if rule.covers(channel, format)
                && *used.get_or_insert_with(|| rule.used(ledger, now_ms, subject.zone()))
                    >= rule.max
            {
                return Some(i);
            }
        }
        None
    }

    /// Counts a message just reserved in the rules already counted.
    fn reserved(&mut self, workspace: &Workspace, channel: Channel, format: InAppFormat) {
        for (rule, used) in workspace.rules.iter().zip(self.used.iter_mut()) {
            if let Some(used) = used
                && rule.covers(channel, format)
            {
                *used += 1;
            }
        }
    }
}

fn schedule(d: &mut Decision, facts: &Facts, now_ms: i64) -> bool {
    if !facts.scheduled {
        return d.verdict(Code::OutsideSchedule, true, "no schedule");
    }
    if let Some(start) = facts.starts_ms
        && now_ms < start
    {
        return d.verdict(Code::OutsideSchedule, false, Words::Starts);
    }
    if let Some(end) = facts.ends_ms
        && now_ms >= end
    {
        return d.verdict(Code::OutsideSchedule, false, Words::Ended);
    }
    d.verdict(Code::OutsideSchedule, true, "inside the schedule")
}

fn audience(
    d: &mut Decision,
    candidate: &Candidate,
    subject: &Subject,
    segments: &UserSegments,
) -> bool {
    let (campaign, compact) = (candidate.campaign, candidate.compact);
    let (include, exclude) = match &compact.audience {
        AudienceSketch::Everyone => {
            return d.verdict(Code::AudienceSegmentMismatch, true, "every user");
        }
        AudienceSketch::Segments(keys) => (keys.include(), keys.exclude()),
        AudienceSketch::Spilled => (
            campaign.audience_keys.include.as_slice(),
            campaign.audience_keys.exclude.as_slice(),
        ),
    };
    // The ids, for a segment the hash alone does not settle.
    let ids = || {
        campaign
            .campaign()
            .audience
            .as_ref()
            .expect("a campaign with audience keys has an audience")
    };
    let included = if include.is_empty() {
        None
    } else {
        match include
            .iter()
            .enumerate()
            .position(|(i, key)| segments.contains(*key, || &ids().include_segment_ids[i]))
        {
            Some(i) => Some(i),
            None => {
                return d.verdict(Code::AudienceSegmentMismatch, false, Words::NotIncluded);
            }
        }
    };
    if let Some(i) = exclude
        .iter()
        .enumerate()
        .position(|(i, key)| segments.contains(*key, || &ids().exclude_segment_ids[i]))
    {
        return d.verdict(Code::AudienceSegmentMismatch, false, Words::Excluded(i));
    }
    let reason = match included {
        Some(i) => Why::Campaign(Words::IncludedThrough(i)),
        None => Why::Fixed("in the audience"),
    };
    d.verdict(Code::AudienceSegmentMismatch, true, reason);
    if !compact.trait_filters {
        return true;
    }
    if let Some(i) = failing(candidate.traits, subject.traits) {
        return d.verdict(Code::AudienceTraitMismatch, false, Words::TraitFailed(i));
    }
    d.verdict(
        Code::AudienceTraitMismatch,
        true,
        "every trait filter matches",
    );
    true
}

/// The entry policy and the frequency cap, given the user's `state` in the campaign.
fn eligibility(
    d: &mut Decision,
    facts: &Facts,
    state: Option<&CampaignEntries>,
    now_ms: i64,
) -> bool {
    let entries = state.map_or(0, |s| s.entries);
    let last = state.and_then(|s| s.last_entry_ms());
    let entry_ok = match facts.entry {
        EntryRule::EveryTime => d.verdict(Code::Entry, true, "entry: every time"),
        EntryRule::Once if entries > 0 => {
            d.verdict(Code::Entry, false, Why::EnteredAt(last.unwrap_or_default()))
        }
        EntryRule::Once => d.verdict(Code::Entry, true, "entry: once per user, first entry"),
        EntryRule::Cooldown { ms } => match last {
            Some(last) if now_ms < last.saturating_add(ms) => d.verdict(
                Code::Entry,
                false,
                Why::Cooldown {
                    cooldown_ms: ms,
                    last_ms: last,
                },
            ),
            _ => d.verdict(Code::Entry, true, "entry: outside the cooldown"),
        },
    };
    if !entry_ok {
        return false;
    }
    let Some(cap) = facts.frequency_cap else {
        return true;
    };
    let used = match cap.window_ms {
        None => entries,
        Some(window) => {
            let since = now_ms.saturating_sub(window);
            state.map_or(0, |s| {
                s.recent.iter().filter(|at| **at > since).count() as u32
            })
        }
    };
    d.verdict(
        Code::FrequencyCapped,
        used < cap.max,
        Why::FrequencyCap {
            max: cap.max,
            window_ms: cap.window_ms,
            used,
        },
    )
}

/// The first 16 bytes of the SHA-256 of `text`, in hex (32 characters): what stands in a
/// key for a part too long to keep.
pub fn digest(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `campaign:cause:suffix`, at most 128 characters (a long cause id is replaced by its
/// digest).
fn cause_key(campaign_id: &str, cause_id: &str, suffix: &str) -> String {
    if campaign_id.len() + cause_id.len() + suffix.len() + 2 <= 128 {
        return [campaign_id, ":", cause_id, ":", suffix].concat();
    }
    [campaign_id, ":", &digest(cause_id), ":", suffix].concat()
}

/// `campaign:cause:channel`, one per decision and channel: the key of a delivery.
pub fn idempotency_key(campaign_id: &str, cause_id: &str, channel: Channel) -> String {
    cause_key(campaign_id, cause_id, render::channel_name(channel))
}

/// `campaign:cause:exposure`, one per decision: the id of the exposure record a decision
/// to send (a variant) or to hold out (control) leaves for analytics.
pub fn exposure_record_id(campaign_id: &str, cause_id: &str) -> String {
    cause_key(campaign_id, cause_id, "exposure")
}

/// The address trait of `channel`: `email`, `phone` or `push_token`.
fn address(channel: Channel, traits: Option<&Struct>) -> String {
    let name = match channel {
        Channel::Email => "email",
        Channel::Sms => "phone",
        Channel::Push => "push_token",
        _ => return String::new(),
    };
    trait_text(traits, name).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use herald_core::time::proto_from_ms;
    use herald_proto::common::v1::InAppContent;
    use herald_proto::trigger::v1::{
        Campaign, CampaignStatus, DelayAfterEvent, EventTrigger, FrequencyCap, Inactivity,
        QuietHours, TimeTrigger, Trigger, Variant, time_trigger, trigger::Kind as TriggerKind,
    };

    use super::*;
    use crate::ledger::CampaignKey;
    use herald_proto::common::v1::message_content::Body;

    const HOUR: i64 = 3_600_000;

    fn modal(title: &str) -> MessageContent {
        MessageContent {
            body: Some(Body::InApp(InAppContent {
                format: InAppFormat::Modal as i32,
                title: title.into(),
                ..Default::default()
            })),
        }
    }

    fn campaign(id: &str, trigger: TriggerKind) -> Campaign {
        Campaign {
            id: id.into(),
            name: id.into(),
            status: CampaignStatus::Active as i32,
            trigger: Some(Trigger {
                kind: Some(trigger),
            }),
            variants: vec![Variant {
                id: "a".into(),
                weight: 1,
                contents: vec![modal("Hi {{ user.id }}")],
                ..Default::default()
            }],
            create_time: Some(proto_from_ms(0)),
            ..Default::default()
        }
    }

    fn on(event: &str) -> TriggerKind {
        TriggerKind::Event(EventTrigger {
            event_name: event.into(),
            ..Default::default()
        })
    }

    fn index(campaigns: Vec<Campaign>) -> MatchIndex {
        let parser = render::parser();
        MatchIndex::new(
            campaigns
                .into_iter()
                .map(|c| Arc::new(CompiledCampaign::compile(&parser, c, 1).expect("compiles"))),
        )
    }

    fn workspace() -> Workspace {
        let mut w = Workspace::defaults("acme");
        w.min_in_app_interval_ms = 0;
        w
    }

    fn subject<'a>(user: &'a str, message_id: &'a str, name: &'a str) -> Subject<'a> {
        Subject {
            user_id: user,
            traits: None,
            segment_ids: &[],
            time_zone: "",
            locale: "",
            event: Some(EventView {
                message_id,
                name,
                properties: None,
                timestamp: None,
            }),
        }
    }

    fn outcomes<'a>(decisions: &'a [Decision]) -> Vec<(&'a str, Outcome)> {
        decisions
            .iter()
            .map(|d| (d.campaign_id(), d.outcome))
            .collect()
    }

    #[test]
    fn a_ledger_key_finds_its_campaign_even_when_another_id_shares_its_hash() {
        let index = index(vec![
            campaign("cmp_a", on("opened")),
            campaign("cmp_b", on("opened")),
        ]);
        let found = |key| index.campaign_keyed(key).map(|c| c.id().to_owned());
        assert_eq!(found(CampaignKey::new("cmp_a")).as_deref(), Some("cmp_a"));
        assert_eq!(found(CampaignKey::new("cmp_gone")), None);
        // "cmp_b" under "cmp_a"'s hash stands for two ids with one hash.
        let a_hash = CampaignKey::new("cmp_a").hash;
        assert_eq!(
            found(CampaignKey::hashed(a_hash, "cmp_b")).as_deref(),
            Some("cmp_b")
        );
        assert_eq!(found(CampaignKey::hashed(a_hash, "cmp_gone")), None);
    }

    #[test]
    fn an_event_cancels_exactly_the_pending_timers_it_names() {
        let minute = Some(prost_types::Duration {
            seconds: 60,
            nanos: 0,
        });
        let timed =
            |id: &str, kind| campaign(id, TriggerKind::Time(TimeTrigger { kind: Some(kind) }));
        let inactivity = |id: &str, expected: &str| {
            timed(
                id,
                time_trigger::Kind::Inactivity(Inactivity {
                    event_name: "started".into(),
                    expected_event_name: expected.into(),
                    within: minute,
                }),
            )
        };
        let delay = timed(
            "cmp_delay",
            time_trigger::Kind::DelayAfterEvent(DelayAfterEvent {
                event_name: "started".into(),
                delay: minute,
                cancel_event_name: "paid".into(),
                ..Default::default()
            }),
        );
        let parser = render::parser();
        let compiled = |c| CompiledCampaign::compile(&parser, c, 1).expect("compiles");
        let event = compiled(campaign("cmp_event", on("started")));
        // Two ids with one ledger hash: "cmp_shared" is given "cmp_event"'s.
        let mut shared = compiled(inactivity("cmp_shared", "connected"));
        shared.compact.facts.ledger_hash = event.compact.facts.ledger_hash;
        let index = MatchIndex::new(
            [
                delay,
                inactivity("cmp_expected", "connected"),
                inactivity("cmp_any", ""),
            ]
            .map(compiled)
            .into_iter()
            .chain([event, shared])
            .map(Arc::new),
        );
        for (id, event, cancels) in [
            ("cmp_delay", "paid", true),
            ("cmp_delay", "connected", false),
            ("cmp_delay", "started", false),
            ("cmp_expected", "connected", true),
            ("cmp_expected", "paid", false),
            ("cmp_any", "paid", true),
            ("cmp_any", "connected", true),
            ("cmp_any", "started", false),
            ("cmp_event", "connected", false),
            ("cmp_shared", "connected", true),
            ("cmp_shared", "paid", false),
            ("cmp_shared", "started", false),
        ] {
            let campaign = index.campaign(id).expect("indexed");
            assert_eq!(index.cancels(campaign, event), cancels, "{id} by {event}");
            let found = index.cancelled_keyed(campaign.key(), &index.event_key(event));
            assert_eq!(
                found.map(|c| c.id()),
                cancels.then_some(id),
                "{id} by {event}"
            );
        }
    }

    #[test]
    fn an_assignment_is_kept_once_the_user_is_exposed() {
        // Two campaigns on one event in the same modal slot: the first takes it, the
        // second is assigned but out-prioritised, so it keeps nothing.
        let mut first = campaign("cmp_first", on("opened"));
        first.priority = 1;
        let index = index(vec![first, campaign("cmp_second", on("opened"))]);
        let mut ledger = Ledger::default();
        let workspace = workspace();
        let decided = on_event(
            &index,
            &workspace,
            &subject("u", "m1", "opened"),
            &mut ledger,
            0,
        );
        assert_eq!(
            outcomes(&decided),
            [
                ("cmp_first", Outcome::Sent),
                ("cmp_second", Outcome::Suppressed)
            ]
        );
        let first = ledger.campaign("cmp_first").expect("exposed");
        assert!(first.assigned);
        assert_eq!(first.variant_id, "a");
        assert_eq!(first.entries, 1);
        assert_eq!(ledger.campaign("cmp_second"), None);
        ledger.trim(0);
        assert_eq!(ledger.campaigns().len(), 1);
    }

    #[test]
    fn an_inactivity_window_starts_restarts_is_cancelled_and_fires_once() {
        let index = index(vec![campaign(
            "cmp_i",
            TriggerKind::Time(TimeTrigger {
                kind: Some(time_trigger::Kind::Inactivity(Inactivity {
                    event_name: "trial_started".into(),
                    expected_event_name: "connected".into(),
                    within: Some(prost_types::Duration {
                        seconds: 1800,
                        nanos: 0,
                    }),
                })),
            }),
        )]);
        let ws = workspace();
        let mut ledger = Ledger::default();
        let started = on_event(
            &index,
            &ws,
            &subject("u", "m1", "trial_started"),
            &mut ledger,
            0,
        );
        assert_eq!(outcomes(&started), [("cmp_i", Outcome::Scheduled)]);
        assert_eq!(started[0].due_ms, Some(1_800_000));
        let TimerOp::Schedule { key, payload, .. } = &started[0].timers[0] else {
            panic!("a timer is scheduled")
        };
        // Another unrelated event changes nothing; the expected one cancels.
        assert!(on_event(&index, &ws, &subject("u", "m2", "clicked"), &mut ledger, 10).is_empty());
        let cancelled = on_event(
            &index,
            &ws,
            &subject("u", "m3", "connected"),
            &mut ledger,
            20,
        );
        assert_eq!(outcomes(&cancelled), [("cmp_i", Outcome::Cancelled)]);
        assert_eq!(cancelled[0].timers, [TimerOp::Cancel { key: key.clone() }]);
        // A timer that fires after its cancellation decides nothing.
        let cause = Cause {
            kind: CauseKind::Timer,
            id: "t1",
        };
        let campaign = index.campaign("cmp_i").map(|c| c.as_ref());
        let due = DueTimer {
            campaign,
            key,
            payload,
        };
        let s = subject("u", "m1", "trial_started");
        assert!(on_timer(&due, &ws, &cause, &s, &mut ledger, 1_800_000).is_none());
        // Started again and left to run, it fires.
        on_event(
            &index,
            &ws,
            &subject("u", "m4", "trial_started"),
            &mut ledger,
            30,
        );
        let fired = on_timer(&due, &ws, &cause, &s, &mut ledger, 1_800_030).expect("decided");
        assert_eq!(fired.outcome, Outcome::Sent);
        assert_eq!(fired.sends[0].idempotency_key, "cmp_i:t1:in_app");
    }

    #[test]
    fn entry_once_and_the_frequency_cap_count_only_entries() {
        let mut once = campaign("cmp_once", on("opened"));
        once.entry = Some(herald_proto::trigger::v1::Entry {
            policy: herald_proto::trigger::v1::EntryPolicy::Once as i32,
            cooldown: None,
        });
        let mut capped = campaign("cmp_cap", on("opened"));
        capped.variants[0].contents = vec![MessageContent {
            body: Some(Body::InApp(InAppContent {
                format: InAppFormat::Banner as i32,
                title: "Banner".into(),
                ..Default::default()
            })),
        }];
        capped.frequency_cap = Some(FrequencyCap {
            max_deliveries: 2,
            window: Some(prost_types::Duration {
                seconds: 3600,
                nanos: 0,
            }),
        });
        let index = index(vec![once, capped]);
        let ws = workspace();
        let mut ledger = Ledger::default();
        let mut sent = |at: i64, id: &str| {
            on_event(&index, &ws, &subject("u", id, "opened"), &mut ledger, at)
                .iter()
                .filter(|d| d.outcome == Outcome::Sent)
                .map(|d| d.campaign_id().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(sent(0, "m1"), ["cmp_cap", "cmp_once"]);
        assert_eq!(sent(1, "m2"), ["cmp_cap"]);
        assert!(sent(2, "m3").is_empty(), "2 per hour reached");
        assert_eq!(sent(HOUR + 1, "m4"), ["cmp_cap"], "the window slid");
    }

    #[test]
    fn quiet_hours_hold_what_they_name_and_critical_campaigns_pass() {
        let quiet = QuietHours {
            start_local_time: "22:00".into(),
            end_local_time: "08:00".into(),
            default_time_zone: "America/New_York".into(),
            channels: vec![Channel::InApp as i32],
            ..Default::default()
        };
        let mut held = campaign("cmp_held", on("opened"));
        held.quiet_hours = Some(quiet.clone());
        let mut critical = campaign("cmp_critical", on("reset"));
        critical.quiet_hours = Some(quiet);
        critical.critical = true;
        let index = index(vec![held, critical]);
        let ws = workspace();
        let mut ledger = Ledger::default();
        // 2026-03-08T04:30:00Z is 23:30 EST; the next 08:00 is EDT, 12:00Z.
        let now = 1_772_944_200_000;
        let d = on_event(&index, &ws, &subject("u", "m1", "opened"), &mut ledger, now);
        assert_eq!(outcomes(&d), [("cmp_held", Outcome::Delayed)]);
        assert_eq!(d[0].due_ms, Some(1_772_971_200_000));
        let TimerOp::Schedule { payload, .. } = &d[0].timers[0] else {
            panic!("a release is scheduled")
        };
        assert_eq!(payload.release_channels(), [Channel::InApp]);
        assert!(
            !payload.entered,
            "nothing was sent, so the entry is still to come"
        );
        let d = on_event(&index, &ws, &subject("u", "m2", "reset"), &mut ledger, now);
        assert_eq!(outcomes(&d), [("cmp_critical", Outcome::Sent)]);
    }

    #[test]
    fn the_minimum_interval_spaces_in_app_messages_of_different_causes() {
        let index = index(vec![campaign("cmp_a", on("opened"))]);
        let mut ws = workspace();
        ws.min_in_app_interval_ms = 30_000;
        let mut ledger = Ledger::default();
        let first = on_event(&index, &ws, &subject("u", "m1", "opened"), &mut ledger, 0);
        assert_eq!(first[0].outcome, Outcome::Sent);
        let soon = on_event(
            &index,
            &ws,
            &subject("u", "m2", "opened"),
            &mut ledger,
            10_000,
        );
        assert_eq!(soon[0].outcome, Outcome::Suppressed);
        assert_eq!(soon[0].failed().map(|v| v.code), Some(Code::MinInterval));
        let later = on_event(
            &index,
            &ws,
            &subject("u", "m3", "opened"),
            &mut ledger,
            30_000,
        );
        assert_eq!(later[0].outcome, Outcome::Sent);
    }

    #[test]
    fn each_campaign_of_an_event_is_filtered_by_its_own_property_and_trait_filters() {
        use herald_proto::common::v1::ComparisonOperator as Op;
        use herald_proto::trigger::v1::{Audience, GoalTrigger, PropertyFilter};
        use prost_types::Value;
        let text = |s: &str| Value {
            kind: Some(Kind::StringValue(s.into())),
        };
        let filter = |property: &str, value: &str| PropertyFilter {
            property: property.into(),
            operator: Op::Eq as i32,
            value: Some(text(value)),
        };
        let on_filtered = |filters: Vec<PropertyFilter>| {
            TriggerKind::Event(EventTrigger {
                event_name: "checkout".into(),
                property_filters: filters,
            })
        };
        let mut by_trait = campaign("cmp_b", on("checkout"));
        by_trait.audience = Some(Audience {
            trait_filters: vec![filter("country", "FR")],
            ..Default::default()
        });
        let goal = TriggerKind::Goal(GoalTrigger {
            event_name: "checkout".into(),
            property_filters: vec![filter("plan", "team")],
            occurrence: 1,
        });
        // Created in this order, so the index keeps them in it: a campaign's filters are
        // next to those of the campaigns before it, which have more or fewer.
        let mut campaigns = vec![
            campaign("cmp_a", on_filtered(vec![filter("plan", "pro")])),
            by_trait,
            campaign(
                "cmp_c",
                on_filtered(vec![filter("plan", "pro"), filter("source", "ios")]),
            ),
            campaign("cmp_d", goal),
            campaign("cmp_e", on_filtered(vec![filter("source", "web")])),
        ];
        for (n, c) in campaigns.iter_mut().enumerate() {
            c.create_time = Some(proto_from_ms(n as i64));
        }
        let index = index(campaigns);
        let properties = Struct {
            fields: [("plan", text("pro")), ("source", text("web"))]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        };
        let traits = Struct {
            fields: [("country".to_owned(), text("DE"))].into(),
        };
        let base = subject("u", "m1", "checkout");
        let s = Subject {
            traits: Some(&traits),
            event: base.event.map(|e| EventView {
                properties: Some(&properties),
                ..e
            }),
            ..base
        };
        let workspace = workspace();
        let decisions = on_event(&index, &workspace, &s, &mut Ledger::default(), HOUR);
        let ends: Vec<(&str, Option<Code>)> = decisions
            .iter()
            .map(|d| (d.campaign_id(), d.failed().map(|v| v.code)))
            .collect();
        assert_eq!(
            ends,
            [
                ("cmp_a", None),
                ("cmp_b", Some(Code::AudienceTraitMismatch)),
                ("cmp_e", Some(Code::Priority)),
            ]
        );
    }

    #[test]
    fn a_segment_entry_before_activation_does_not_fire() {
        let mut c = campaign(
            "cmp_seg",
            TriggerKind::SegmentEntry(herald_proto::trigger::v1::SegmentEntryTrigger {
                segment_id: "seg_pro".into(),
                ..Default::default()
            }),
        );
        c.activate_time = Some(proto_from_ms(1_000));
        let index = index(vec![c]);
        let ws = workspace();
        let mut ledger = Ledger::default();
        let s = Subject {
            event: None,
            ..subject("u", "", "")
        };
        let entered = |id, at_ms| TransitionView {
            id,
            segment_id: "seg_pro",
            kind: TransitionKind::Entered,
            at_ms,
        };
        let early = on_transition(&index, &ws, &entered("t1", 999), &s, &mut ledger, 2_000);
        assert_eq!(outcomes(&early), [("cmp_seg", Outcome::Suppressed)]);
        let on_time = on_transition(&index, &ws, &entered("t2", 1_000), &s, &mut ledger, 2_000);
        assert_eq!(outcomes(&on_time), [("cmp_seg", Outcome::Sent)]);
        let exited = TransitionView {
            kind: TransitionKind::Exited,
            ..entered("t3", 3_000)
        };
        assert!(on_transition(&index, &ws, &exited, &s, &mut ledger, 3_000).is_empty());
    }
}
