//! The compiled segments of each workspace, kept in memory by segment version. Every
//! create, rule change and delete moves its workspace's version in the same transaction
//! (`segments::bump_version`), so a replica reads one primary-key row per call and
//! recompiles only after a change, made through it or through any other replica.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use herald_rules::engine::{Engine, SegmentDef};
use herald_runtime::Error;
use sea_orm::ConnectionTrait;

use crate::segments;

/// Workspaces kept before the cache starts over.
const CAPACITY: usize = 10_000;

type Entries = HashMap<String, (i64, Arc<Engine>)>;

/// The compiled segments of every workspace, by version.
#[derive(Default)]
pub struct Engines {
    entries: Mutex<Entries>,
}

impl Engines {
    /// The segments of `workspace` as of a version read now: from memory when that
    /// version was seen, else loaded and compiled.
    pub async fn of<C: ConnectionTrait>(
        &self,
        db: &C,
        workspace: &str,
    ) -> Result<Arc<Engine>, Error> {
        // Read before the segments, so what is loaded is at least as new as the version
        // it is kept under.
        let version = segments::segments_version(db, workspace).await?;
        if let Some((seen, engine)) = self.lock().get(workspace)
            && *seen == version
        {
            return Ok(engine.clone());
        }
        let mut defs = Vec::new();
        for stored in segments::active_segments(db, workspace).await? {
            defs.push(SegmentDef {
                rule: segments::rule(&stored)?,
                id: stored.segment_id,
            });
        }
        let (engine, skipped) = Engine::new(defs);
        for s in skipped {
            // Saved rules passed the checks when saved; this one no longer compiles.
            tracing::error!(
                workspace,
                segment = %s.segment_id,
                reason = %s.reason,
                "a stored segment rule does not compile; nobody is its member"
            );
        }
        let engine = Arc::new(engine);
        let mut entries = self.lock();
        if entries.len() >= CAPACITY && !entries.contains_key(workspace) {
            entries.clear();
        }
        entries.insert(workspace.to_owned(), (version, engine.clone()));
        Ok(engine)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The map stays consistent even if a holder panicked: entries are inserted whole.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
