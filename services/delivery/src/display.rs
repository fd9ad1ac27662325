//! The workspace's display settings (the least time between two in-app messages), read
//! from trigger (`TriggerInternalService.GetDisplaySettings`) when a Subscribe stream
//! opens and sent as its first item, so that an app spaces what arrives together (the
//! replay of a reconnect) as trigger spaces its sends.
//!
//! Kept a minute per workspace, and looked up one at a time, so a thousand streams
//! opening at once ask trigger once. When trigger does not answer within a second the
//! stream opens without them (the app keeps its own setting) and the answer is not asked
//! for again for ten seconds; a value read before is used meanwhile.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use herald_proto::delivery::v1::DisplaySettings;
use herald_proto::trigger::v1::GetDisplaySettingsRequest;
use herald_proto::trigger::v1::trigger_internal_service_client::TriggerInternalServiceClient;
use herald_runtime::{Config, Downstream};
use tokio::sync::Mutex;

/// How long a stream waits for trigger's answer.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);
/// How long an answer is kept.
const KEEP: Duration = Duration::from_secs(60);
/// How long after a failed lookup trigger is asked again.
const RETRY_AFTER: Duration = Duration::from_secs(10);

struct Known {
    /// The latest answer, if trigger ever gave one.
    settings: Option<DisplaySettings>,
    /// When to ask trigger again.
    refresh_at: Instant,
}

/// The display settings of every workspace with an open stream.
pub struct DisplaySource {
    trigger: Downstream,
    known: Mutex<HashMap<String, Known>>,
}

impl DisplaySource {
    pub fn new(config: &Config) -> Result<DisplaySource, tonic::transport::Error> {
        Ok(DisplaySource {
            trigger: Downstream::connect_lazy(
                "trigger",
                &config.trigger_url,
                config.internal_key.clone(),
                LOOKUP_TIMEOUT,
            )?,
            known: Mutex::new(HashMap::new()),
        })
    }

    /// The settings of `workspace`: kept, or read from trigger; `None` when trigger never
    /// answered.
    pub async fn of(&self, workspace: &str) -> Option<DisplaySettings> {
        // Held across the lookup: the streams of a workspace opening together wait for
        // one answer instead of each asking.
        let mut known = self.known.lock().await;
        if let Some(k) = known.get(workspace)
            && Instant::now() < k.refresh_at
        {
            return k.settings;
        }
        let request = GetDisplaySettingsRequest {
            workspace_id: workspace.to_owned(),
        };
        let answer = TriggerInternalServiceClient::new(self.trigger.channel())
            .get_display_settings(self.trigger.request(request, None))
            .await;
        let entry = known.entry(workspace.to_owned()).or_insert(Known {
            settings: None,
            refresh_at: Instant::now(),
        });
        match answer {
            Ok(answer) => {
                entry.settings = Some(DisplaySettings {
                    min_in_app_interval: answer.into_inner().min_in_app_interval,
                });
                entry.refresh_at = Instant::now() + KEEP;
            }
            Err(status) => {
                tracing::warn!(
                    workspace,
                    code = ?status.code(),
                    error = status.message(),
                    "cannot read the display settings from trigger; streams open without them"
                );
                entry.refresh_at = Instant::now() + RETRY_AFTER;
            }
        }
        entry.settings
    }
}
