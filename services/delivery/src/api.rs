//! The gRPC adapters of delivery: the public API for end users' app sessions and the
//! internal API for trigger.

use herald_core::{Timestamp, Violations};
use herald_outbox::Outbox;
use herald_proto::common::v1::MessageState;
use herald_proto::delivery::v1::delivery_internal_service_server::DeliveryInternalService;
use herald_proto::delivery::v1::delivery_service_server::DeliveryService;
use herald_proto::delivery::v1::*;
use herald_runtime::{Caller, CancellationToken, Clock, Error, require_workspace};
use herald_timers::Timers;
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::hub::Hub;
use crate::push::Providers;
use crate::subscribe::{self, Session};
use crate::{page, store, validate};

/// Inbox page size when the request names none.
const DEFAULT_PAGE_SIZE: u64 = 20;
/// Largest inbox page.
const MAX_PAGE_SIZE: u64 = 100;

/// Both gRPC services of delivery; cheap to clone.
#[derive(Clone)]
pub struct Api {
    pub db: DatabaseConnection,
    pub outbox: Outbox,
    /// The timers of pushes held by their user's quiet hours.
    pub timers: Timers,
    pub hub: Hub,
    pub clock: Clock,
    /// The channel providers this deployment has (push or not).
    pub providers: Providers,
    pub shutdown: CancellationToken,
    /// A stream sends a heartbeat after this long without a write.
    pub heartbeat_after: std::time::Duration,
    /// The workspaces' display settings, a stream's first item.
    pub display: std::sync::Arc<crate::display::DisplaySource>,
}

/// The token's workspace, user, and when the token expires.
fn user<T>(request: &Request<T>) -> Result<(String, String, Timestamp), Error> {
    match Caller::of(request)? {
        Caller::User {
            workspace,
            user_id,
            expires_at,
        } => Ok((workspace.clone(), user_id.clone(), *expires_at)),
        _ => Err(Error::PermissionDenied(
            "delivery's public API needs a user token".into(),
        )),
    }
}

/// A request's optional user_id must be empty or the token's user.
fn same_user(token_user: &str, requested: &str) -> Result<(), Error> {
    if requested.is_empty() || requested == token_user {
        Ok(())
    } else {
        Err(Error::PermissionDenied(
            "a user token only gives access to its own user".into(),
        ))
    }
}

#[tonic::async_trait]
impl DeliveryService for Api {
    type SubscribeStream = subscribe::Stream;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let (workspace, user_id, expires_at) = user(&request)?;
        let request = request.into_inner();
        same_user(&user_id, &request.user_id)?;
        if request.session_id.chars().count() > 128 {
            return Err(Error::invalid("session_id", "must be at most 128 characters").into());
        }
        let session = Session {
            db: self.db.clone(),
            outbox: self.outbox.clone(),
            clock: self.clock.clone(),
            workspace,
            user_id,
            session_id: request.session_id,
            // The stream closes when the token it was opened with expires.
            expires_at,
            shutdown: self.shutdown.clone(),
            heartbeat_after: self.heartbeat_after,
            display: self.display.clone(),
        };
        Ok(Response::new(session.open(&self.hub)?))
    }

    async fn list_inbox(
        &self,
        request: Request<ListInboxRequest>,
    ) -> Result<Response<ListInboxResponse>, Status> {
        let (workspace, user_id, _) = user(&request)?;
        let request = request.into_inner();
        same_user(&user_id, &request.user_id)?;
        let limit = match request.page_size {
            n if n < 0 => return Err(Error::invalid("page_size", "must not be negative").into()),
            0 => DEFAULT_PAGE_SIZE,
            n => (n as u64).min(MAX_PAGE_SIZE),
        };
        let after = match request.page_token.as_str() {
            "" => None,
            token => Some(page::decode(token).ok_or_else(|| {
                Error::invalid(
                    "page_token",
                    "is not a next_page_token returned by ListInbox",
                )
            })?),
        };
        let now = self.clock.now_ms();
        let mut rows = store::inbox(
            &self.db,
            &workspace,
            &user_id,
            now,
            request.include_archived,
            after.as_ref(),
            limit + 1,
        )
        .await?;
        let next_page_token = if rows.len() as u64 > limit {
            rows.truncate(limit as usize);
            rows.last()
                .map(|m| page::encode(&(m.create_time, m.id.clone())))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let messages = rows
            .iter()
            .map(store::message::Model::to_proto)
            .collect::<Result<_, _>>()?;
        let unread_count = store::unread_count(&self.db, &workspace, &user_id, now).await?;
        Ok(Response::new(ListInboxResponse {
            messages,
            next_page_token,
            unread_count,
        }))
    }

    async fn update_message_state(
        &self,
        request: Request<UpdateMessageStateRequest>,
    ) -> Result<Response<UpdateMessageStateResponse>, Status> {
        let (workspace, user_id, _) = user(&request)?;
        let request = request.into_inner();
        if request.message_id.is_empty() {
            return Err(Error::invalid("message_id", "is required").into());
        }
        let state = match MessageState::try_from(request.state) {
            Ok(
                s @ (MessageState::Displayed
                | MessageState::Clicked
                | MessageState::Dismissed
                | MessageState::Read
                | MessageState::Archived),
            ) => s,
            _ => {
                return Err(Error::invalid(
                    "state",
                    "must be DISPLAYED, CLICKED, DISMISSED, READ or ARCHIVED",
                )
                .into());
            }
        };
        let action_id = if state == MessageState::Clicked {
            request.action_id.as_str()
        } else {
            ""
        };
        let model = store::update_state(
            &self.db,
            &self.outbox,
            &self.clock,
            &workspace,
            &user_id,
            &request.message_id,
            state,
            action_id,
        )
        .await?;
        self.hub.inbox_changed(&workspace, &user_id);
        Ok(Response::new(UpdateMessageStateResponse {
            message: Some(model.to_proto()?),
        }))
    }

    async fn get_preferences(
        &self,
        request: Request<GetPreferencesRequest>,
    ) -> Result<Response<GetPreferencesResponse>, Status> {
        let (workspace, user_id, _) = user(&request)?;
        let preferences = store::preferences(&self.db, &workspace, &user_id)
            .await?
            .unwrap_or_default();
        Ok(Response::new(GetPreferencesResponse {
            preferences: Some(preferences),
        }))
    }

    async fn update_preferences(
        &self,
        request: Request<UpdatePreferencesRequest>,
    ) -> Result<Response<UpdatePreferencesResponse>, Status> {
        let (workspace, user_id, _) = user(&request)?;
        let request = request.into_inner();
        let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
        let mut fields: Vec<&str> = Vec::new();
        let mut violations = Violations::new();
        for (i, path) in paths.iter().enumerate() {
            match validate::PREFERENCE_FIELDS.iter().find(|f| **f == path) {
                Some(field) => fields.push(field),
                None => violations.push(
                    format!("update_mask.paths[{i}]"),
                    format!(
                        "must be one of {}, got {path:?}",
                        validate::PREFERENCE_FIELDS.join(", ")
                    ),
                ),
            }
        }
        if paths.is_empty() {
            fields = validate::PREFERENCE_FIELDS.to_vec();
        }
        let new = request.preferences.unwrap_or_default();
        violations.extend(validate::preferences(&new, &fields));
        violations.finish().map_err(Error::from)?;
        let preferences =
            store::update_preferences(&self.db, &self.clock, &workspace, &user_id, |current| {
                for field in &fields {
                    match *field {
                        "channels" => current.channels = new.channels.clone(),
                        "opted_out_categories" => {
                            current.opted_out_categories = new.opted_out_categories.clone()
                        }
                        _ => current.quiet_hours = new.quiet_hours.clone(),
                    }
                }
            })
            .await?;
        Ok(Response::new(UpdatePreferencesResponse {
            preferences: Some(preferences),
        }))
    }
}

#[tonic::async_trait]
impl DeliveryInternalService for Api {
    async fn deliver(
        &self,
        request: Request<DeliverRequest>,
    ) -> Result<Response<DeliverResponse>, Status> {
        require_workspace(&request, &request.get_ref().workspace_id)?;
        let request = request.into_inner();
        validate::deliver(&request)?;
        let delivered = store::deliver(
            &self.db,
            &self.outbox,
            &self.timers,
            &self.clock,
            self.providers,
            &request.workspace_id,
            &request.deliveries,
        )
        .await?;
        // Only after the commit: a pushed message is always one that exists.
        for message in &delivered.live {
            self.hub.publish(&request.workspace_id, message);
        }
        Ok(Response::new(DeliverResponse {
            results: delivered.results,
        }))
    }

    async fn forget_user(
        &self,
        request: Request<ForgetUserRequest>,
    ) -> Result<Response<ForgetUserResponse>, Status> {
        require_workspace(&request, &request.get_ref().workspace_id)?;
        Err(herald_runtime::not_yet_implemented(
            "DeliveryInternalService.ForgetUser",
        ))
    }
}
