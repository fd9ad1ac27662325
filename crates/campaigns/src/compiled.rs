//! A campaign checked once and prepared for firing many times.

use herald_conditions::Condition;
use herald_core::FieldViolation;
use herald_core::time::{duration_ms, ms_of_proto};
use herald_proto::trigger::v1::{Campaign, trigger::Kind as TriggerKind};

use crate::render::Templates;
use crate::validate;

/// The compiled event trigger: the name it fires on and its property conditions.
#[derive(Debug, Clone)]
pub(crate) struct EventTrigger {
    pub(crate) name: String,
    pub(crate) conditions: Vec<Condition>,
}

/// A stored campaign, with its trigger and audience conditions compiled and its templates
/// parsed, as of one version (its update time).
pub struct CompiledCampaign {
    pub(crate) campaign: Campaign,
    pub(crate) version_ms: i64,
    pub(crate) trigger: Option<EventTrigger>,
    pub(crate) trait_conditions: Vec<Condition>,
    pub(crate) templates: Templates,
}

impl std::fmt::Debug for CompiledCampaign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledCampaign")
            .field("id", &self.campaign.id)
            .field("version_ms", &self.version_ms)
            .finish_non_exhaustive()
    }
}

impl CompiledCampaign {
    /// Compiles `campaign` at version `version_ms`; what cannot be compiled is reported
    /// field by field (a stored campaign was validated when saved, so this means data
    /// that a newer rule refuses, or corruption).
    pub fn compile(
        parser: &liquid::Parser,
        campaign: Campaign,
        version_ms: i64,
    ) -> Result<CompiledCampaign, Vec<FieldViolation>> {
        let trigger = match campaign.trigger.as_ref().and_then(|t| t.kind.as_ref()) {
            Some(TriggerKind::Event(e)) => Some(EventTrigger {
                name: e.event_name.clone(),
                conditions: validate::conditions(
                    "campaign.trigger.event.property_filters",
                    &e.property_filters,
                )?,
            }),
            _ => None,
        };
        let trait_conditions = match &campaign.audience {
            Some(audience) => {
                validate::conditions("campaign.audience.trait_filters", &audience.trait_filters)?
            }
            None => Vec::new(),
        };
        let templates = Templates::compile(parser, &campaign)
            .map_err(|e| vec![FieldViolation::new(e.field, e.error)])?;
        Ok(CompiledCampaign {
            campaign,
            version_ms,
            trigger,
            trait_conditions,
            templates,
        })
    }

    /// The campaign as stored.
    pub fn campaign(&self) -> &Campaign {
        &self.campaign
    }

    /// The campaign's id.
    pub fn id(&self) -> &str {
        &self.campaign.id
    }

    /// The version compiled: the campaign's update time in milliseconds.
    pub fn version_ms(&self) -> i64 {
        self.version_ms
    }

    /// The event an event trigger fires on; `None` for other trigger kinds.
    pub fn event_name(&self) -> Option<&str> {
        self.trigger.as_ref().map(|t| t.name.as_str())
    }

    /// The campaign's creation time in milliseconds (0 when unknown).
    pub fn create_ms(&self) -> i64 {
        self.campaign
            .create_time
            .as_ref()
            .map(ms_of_proto)
            .unwrap_or(0)
    }

    /// How long its messages live, in milliseconds; `None` for ever.
    pub(crate) fn ttl_ms(&self) -> Option<i64> {
        self.campaign.message_ttl.as_ref().map(duration_ms)
    }
}
