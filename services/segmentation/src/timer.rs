//! A user's timer: due at the earliest instant one of their memberships can change by
//! time alone (a window sliding past an event, a relative-time threshold). When it fires,
//! the user is evaluated again at that instant, which emits the transitions and schedules
//! the next timer; no periodic sweep is involved.

use herald_timers::{Timer, TimerHandler};

use crate::store::{self, Segmenter};

/// Fires users' timers.
pub struct Due(pub Segmenter);

#[async_trait::async_trait]
impl TimerHandler for Due {
    async fn fire(&self, timer: &Timer) -> Result<(), String> {
        let workspace = std::str::from_utf8(&timer.payload)
            .map_err(|_| format!("timer {:?} has no workspace", timer.key))?;
        let user = store::timer_user(workspace, &timer.key)
            .ok_or_else(|| format!("timer {:?} is not a user's of {workspace:?}", timer.key))?;
        store::time_passed(&self.0, workspace, user)
            .await
            .map_err(|e| e.to_string())
    }
}
