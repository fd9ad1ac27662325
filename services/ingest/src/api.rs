//! The gRPC adapter of ingest: authenticate, validate, store, answer.

use futures::StreamExt;
use herald_outbox::Outbox;
use herald_proto::ingest::v1::ingest_service_server::IngestService;
use herald_proto::ingest::v1::*;
use herald_runtime::{Caller, FieldViolation};
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status, Streaming};

use crate::error::Error;
use crate::store::{self, Incoming};
use crate::validate;

/// Events committed per transaction on a TrackStream.
const STREAM_CHUNK: usize = 500;

pub struct Ingest {
    pub db: DatabaseConnection,
    pub outbox: Outbox,
}

fn workspace<T>(request: &Request<T>) -> Result<String, Status> {
    Caller::of(request)?
        .workspace()
        .map(str::to_owned)
        .ok_or_else(|| Status::permission_denied("ingest RPCs need a workspace API key"))
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, Error> {
    value.ok_or_else(|| Error::Invalid(vec![FieldViolation::new(field, "is required")]))
}

#[tonic::async_trait]
impl IngestService for Ingest {
    async fn track(
        &self,
        request: Request<TrackRequest>,
    ) -> Result<Response<TrackResponse>, Status> {
        let workspace = workspace(&request)?;
        let mut event = required(request.into_inner().event, "event")?;
        let violations = validate::event("event", &mut event, validate::now());
        let duplicate = self
            .record_one(&workspace, violations, Incoming::Event(event))
            .await?;
        Ok(Response::new(TrackResponse { duplicate }))
    }

    async fn track_batch(
        &self,
        request: Request<TrackBatchRequest>,
    ) -> Result<Response<TrackBatchResponse>, Status> {
        let workspace = workspace(&request)?;
        let events = request.into_inner().events;
        if events.is_empty() || events.len() > validate::MAX_BATCH {
            return Err(Error::Invalid(vec![FieldViolation::new(
                "events",
                format!(
                    "must hold 1..={} events, got {}",
                    validate::MAX_BATCH,
                    events.len()
                ),
            )])
            .into());
        }
        let now = validate::now();
        let mut violations = Vec::new();
        let records: Vec<Incoming> = events
            .into_iter()
            .enumerate()
            .map(|(i, mut event)| {
                violations.extend(validate::event(&format!("events[{i}]"), &mut event, now));
                Incoming::Event(event)
            })
            .collect();
        if !violations.is_empty() {
            return Err(Error::Invalid(violations).into());
        }
        let outcome = store::record(&self.db, &self.outbox, &workspace, &records).await?;
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
            let mut event = required(message?.event, &format!("events[{position}]"))?;
            let violations =
                validate::event(&format!("events[{position}]"), &mut event, validate::now());
            if !violations.is_empty() {
                return Err(Error::Invalid(violations).into());
            }
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
        let violations = validate::identity("identity", &mut identity, validate::now());
        let duplicate = self
            .record_one(&workspace, violations, Incoming::Identity(identity))
            .await?;
        Ok(Response::new(IdentifyResponse { duplicate }))
    }

    async fn delete_user(
        &self,
        _: Request<DeleteUserRequest>,
    ) -> Result<Response<DeleteUserResponse>, Status> {
        Err(herald_runtime::not_yet_implemented(
            "IngestService.DeleteUser",
        ))
    }

    async fn export_user(
        &self,
        _: Request<ExportUserRequest>,
    ) -> Result<Response<ExportUserResponse>, Status> {
        Err(herald_runtime::not_yet_implemented(
            "IngestService.ExportUser",
        ))
    }
}

impl Ingest {
    /// Stores one validated record (refusing it when `violations` is not empty); true
    /// when its message_id was seen before.
    async fn record_one(
        &self,
        workspace: &str,
        violations: Vec<FieldViolation>,
        incoming: Incoming,
    ) -> Result<bool, Status> {
        if !violations.is_empty() {
            return Err(Error::Invalid(violations).into());
        }
        let outcome = store::record(&self.db, &self.outbox, workspace, &[incoming]).await?;
        Ok(outcome.duplicates() == 1)
    }

    async fn commit_chunk(
        &self,
        workspace: &str,
        chunk: &mut Vec<Incoming>,
        response: &mut TrackStreamResponse,
    ) -> Result<(), Status> {
        if chunk.is_empty() {
            return Ok(());
        }
        let outcome = store::record(&self.db, &self.outbox, workspace, chunk).await?;
        response.accepted += outcome.accepted();
        response.duplicates += outcome.duplicates();
        chunk.clear();
        Ok(())
    }
}
