//! The gRPC adapter of ingest: authenticate, validate, store, answer. Track and Identify
//! also take an end-user token, held to the limits of [`UserCalls`].

use futures::StreamExt;
use herald_outbox::Outbox;
use herald_proto::ingest::v1::ingest_service_server::IngestService;
use herald_proto::ingest::v1::*;
use herald_runtime::{Caller, Clock, Error, not_yet_implemented};
use prost::Message;
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status, Streaming};

use crate::group_commit::GroupCommit;
use crate::store::{self, Entry, Incoming};
use crate::user_token::UserCalls;
use crate::validate;

/// Events committed per transaction on a TrackStream.
const STREAM_CHUNK: usize = 500;

pub struct Ingest {
    pub db: DatabaseConnection,
    pub outbox: Outbox,
    pub clock: Clock,
    /// Where unary calls wait for a shared transaction.
    pub group: GroupCommit,
    /// The limits of calls made with end-user tokens.
    pub users: UserCalls,
}

/// The workspace of a server API key, for the RPCs that take nothing else.
fn workspace<T>(request: &Request<T>) -> Result<String, Error> {
    Ok(Caller::of(request)?.key_workspace()?.to_owned())
}

/// Who sent a Track or Identify.
enum Sender {
    /// A server API key of this workspace.
    Key(String),
    /// An end user of `workspace`, with their own token.
    User { workspace: String, user_id: String },
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, Error> {
    value.ok_or_else(|| Error::invalid(field, "is required"))
}

#[tonic::async_trait]
impl IngestService for Ingest {
    async fn track(
        &self,
        request: Request<TrackRequest>,
    ) -> Result<Response<TrackResponse>, Status> {
        let sender = self.sender(&request)?;
        let mut event = required(request.into_inner().event, "event")?;
        let size = event.encoded_len();
        let workspace = self.workspace_for(sender, "event", size, &mut event.user_id)?;
        validate::event("event", &mut event, self.now())?;
        let duplicate = self.record_one(&workspace, Incoming::Event(event)).await?;
        Ok(Response::new(TrackResponse { duplicate }))
    }

    async fn track_batch(
        &self,
        request: Request<TrackBatchRequest>,
    ) -> Result<Response<TrackBatchResponse>, Status> {
        let workspace = workspace(&request)?;
        let events = request.into_inner().events;
        let records = validate::batch(events, self.now())?;
        let entries = Entry::all_here(&workspace, records);
        let outcome = store::record(&self.db, &self.outbox, &self.clock, &entries).await?;
        Ok(Response::new(TrackBatchResponse {
            accepted: outcome.accepted(),
            duplicates: outcome.duplicates(),
        }))
    }

    async fn track_stream(
        &self,
        request: Request<Streaming<TrackStreamRequest>>,
    ) -> Result<Response<TrackStreamResponse>, Status> {
        let workspace = workspace(&request)?;
        let mut stream = request.into_inner();
        let mut response = TrackStreamResponse::default();
        let mut position = 0usize;
        let mut chunk = Vec::new();
        loop {
            // Commit what has arrived whenever the client pauses or the chunk is full.
            let next = if chunk.is_empty() {
                stream.next().await
            } else {
                match futures::FutureExt::now_or_never(stream.next()) {
                    Some(next) => next,
                    None => {
                        self.commit_chunk(&workspace, &mut chunk, &mut response)
                            .await?;
                        continue;
                    }
                }
            };
            let Some(message) = next else { break };
            let field = format!("events[{position}]");
            let mut event = required(message?.event, &field)?;
            validate::event(&field, &mut event, self.now())?;
            position += 1;
            chunk.push(Incoming::Event(event));
            if chunk.len() >= STREAM_CHUNK {
                self.commit_chunk(&workspace, &mut chunk, &mut response)
                    .await?;
            }
        }
        self.commit_chunk(&workspace, &mut chunk, &mut response)
            .await?;
        Ok(Response::new(response))
    }

    async fn identify(
        &self,
        request: Request<IdentifyRequest>,
    ) -> Result<Response<IdentifyResponse>, Status> {
        let sender = self.sender(&request)?;
        if let Sender::User { workspace, .. } = &sender {
            self.users.may_identify(workspace)?;
        }
        let mut identity = required(request.into_inner().identity, "identity")?;
        let size = identity.encoded_len();
        let workspace = self.workspace_for(sender, "identity", size, &mut identity.user_id)?;
        validate::identity("identity", &mut identity, self.now())?;
        let duplicate = self
            .record_one(&workspace, Incoming::Identity(identity))
            .await?;
        Ok(Response::new(IdentifyResponse { duplicate }))
    }

    async fn delete_user(
        &self,
        _: Request<DeleteUserRequest>,
    ) -> Result<Response<DeleteUserResponse>, Status> {
        Err(not_yet_implemented("IngestService.DeleteUser"))
    }

    async fn export_user(
        &self,
        _: Request<ExportUserRequest>,
    ) -> Result<Response<ExportUserResponse>, Status> {
        Err(not_yet_implemented("IngestService.ExportUser"))
    }
}

impl Ingest {
    /// Who sent a Track or Identify. An end user's call counts against their rate here,
    /// before anything else is looked at.
    fn sender<T>(&self, request: &Request<T>) -> Result<Sender, Error> {
        match Caller::of(request)? {
            Caller::User {
                workspace, user_id, ..
            } => {
                self.users.admit(workspace, user_id)?;
                Ok(Sender::User {
                    workspace: workspace.clone(),
                    user_id: user_id.clone(),
                })
            }
            caller => Ok(Sender::Key(caller.key_workspace()?.to_owned())),
        }
    }

    /// The workspace a record (`field`, `size` bytes encoded as sent, for `user_id`) is
    /// stored in: the key's; or the token's, once the record is within the size allowed
    /// to user tokens and for the token's own user (an empty `user_id` is set to it).
    fn workspace_for(
        &self,
        sender: Sender,
        field: &str,
        size: usize,
        user_id: &mut String,
    ) -> Result<String, Error> {
        match sender {
            Sender::Key(workspace) => Ok(workspace),
            Sender::User {
                workspace,
                user_id: token_user,
            } => {
                self.users.own(field, size, user_id, &token_user)?;
                Ok(workspace)
            }
        }
    }

    fn now(&self) -> prost_types::Timestamp {
        herald_core::time::proto(self.clock.now())
    }

    /// Stores one validated record, in a transaction shared with concurrent calls; true
    /// when its message_id was seen before.
    async fn record_one(&self, workspace: &str, incoming: Incoming) -> Result<bool, Error> {
        self.group.record(Entry::here(workspace, incoming)).await
    }

    async fn commit_chunk(
        &self,
        workspace: &str,
        chunk: &mut Vec<Incoming>,
        response: &mut TrackStreamResponse,
    ) -> Result<(), Error> {
        if chunk.is_empty() {
            return Ok(());
        }
        let entries = Entry::all_here(workspace, std::mem::take(chunk));
        let outcome = store::record(&self.db, &self.outbox, &self.clock, &entries).await?;
        response.accepted += outcome.accepted();
        response.duplicates += outcome.duplicates();
        Ok(())
    }
}
