//! The compiled ACTIVE campaigns of each workspace, with its cap rules and settings, kept
//! in memory by version. Every write of a campaign, a cap rule or the settings moves the
//! workspace's version in the same transaction (`store::version`), so a replica reads one
//! primary-key row per batch and recompiles only after a change, made through it or
//! through any other replica.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use herald_campaigns::attention::Workspace;
use herald_campaigns::{CompiledCampaign, MatchIndex};
use herald_core::violation::describe;
use herald_runtime::Error;
use sea_orm::ConnectionTrait;

use crate::store;

/// Workspaces kept before the cache starts over.
const CAPACITY: usize = 10_000;

/// What a workspace decides with: its ACTIVE campaigns, compiled and indexed, and its
/// attention budget.
pub struct Targets {
    pub index: MatchIndex,
    pub workspace: Workspace,
}

/// Workspace → (version, its targets).
type Entries = HashMap<String, (i64, Arc<Targets>)>;

/// The compiled campaigns of every workspace, by version.
pub struct CampaignCache {
    parser: liquid::Parser,
    entries: Mutex<Entries>,
}

impl CampaignCache {
    pub fn new() -> Self {
        CampaignCache {
            parser: herald_campaigns::render::parser(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The Liquid parser, for validation.
    pub fn parser(&self) -> &liquid::Parser {
        &self.parser
    }

    /// The targets of `workspace`, as of a version read now: from memory when that
    /// version was seen, else loaded and compiled.
    pub async fn active<C: ConnectionTrait>(
        &self,
        db: &C,
        workspace: &str,
    ) -> Result<Arc<Targets>, Error> {
        // Read before the campaigns, so what is loaded is at least as new as the version
        // it is kept under.
        let version = store::version(db, workspace).await?;
        if let Some((seen, index)) = self.lock().get(workspace)
            && *seen == version
        {
            return Ok(index.clone());
        }
        let mut compiled = Vec::new();
        for stored in store::active_campaigns(db, workspace).await? {
            let id = stored.campaign.id.clone();
            let campaign =
                CompiledCampaign::compile(&self.parser, stored.campaign, stored.update_time_ms)
                    .map_err(|violations| {
                        // Saved campaigns were valid when saved; this one is not any more.
                        Error::corrupt(format!(
                            "active campaign {id:?} does not compile: {}",
                            describe(&violations)
                        ))
                    })?;
            compiled.push(Arc::new(campaign));
        }
        let (rules, settings) = crate::admin::workspace_rules(db, workspace).await?;
        let index = Arc::new(Targets {
            index: MatchIndex::new(compiled),
            workspace: Workspace::compile(workspace, &rules, &settings),
        });
        let mut entries = self.lock();
        if entries.len() >= CAPACITY && !entries.contains_key(workspace) {
            entries.clear();
        }
        entries.insert(workspace.to_owned(), (version, index.clone()));
        Ok(index)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The map stays consistent even if a holder panicked: entries are inserted whole.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
