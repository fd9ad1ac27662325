//! The gRPC adapter of ingest: authenticate, validate, store, answer.

use futures::StreamExt;
use herald_outbox::Outbox;
use herald_proto::ingest::v1::ingest_service_server::IngestService;
use herald_proto::ingest::v1::*;
use herald_runtime::{Caller, Clock, Error, not_yet_implemented};
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status, Streaming};

use crate::group_commit::GroupCommit;
use crate::store::{self, Entry, Incoming};
use crate::validate;

/// Events committed per transaction on a TrackStream.
const STREAM_CHUNK: usize = 500;

pub struct Ingest {
    pub db: DatabaseConnection,
    pub outbox: Outbox,
    pub clock: Clock,
    /// Where unary calls wait for a shared transaction.
    pub group: GroupCommit,
}

fn workspace<T>(request: &Request<T>) -> Result<String, Error> {
    Ok(Caller::of(request)?.key_workspace()?.to_owned())
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
        let workspace = workspace(&request)?;
        let mut event = required(request.into_inner().event, "event")?;
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
        let workspace = workspace(&request)?;
        let mut identity = required(request.into_inner().identity, "identity")?;
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
