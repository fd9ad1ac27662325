//! Tenancy, checked by walking the contracts rather than by listing RPCs by hand: every
//! RPC in every service's descriptor set has an access rule (a call without credentials
//! is refused UNAUTHENTICATED, never served), a path no rule covers is refused, health
//! answers without credentials, and a key of another workspace holding every scope is
//! refused on every internal RPC that names this workspace. On SQLite and PostgreSQL,
//! through the five services as separate gRPC servers.

use herald_runtime::ServiceKind;
use herald_runtime::auth::{Scope, generate_api_key};
use herald_tests::Suite;
use prost::Message;
use prost::bytes::{Buf, BufMut};
use prost_types::{FileDescriptorSet, MethodDescriptorProto};
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

/// The workspace of the suite's own credentials.
const HOME: &str = herald_testkit::WORKSPACE;

/// Bytes in, bytes out: calls any method with a hand-encoded request.
#[derive(Debug, Clone, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut bytes = vec![0; src.remaining()];
        src.copy_to_slice(&mut bytes);
        Ok(Some(bytes))
    }
}

/// Calls `path` with `body` and, when given, `authorization: Bearer key`.
async fn call(channel: &Channel, path: &str, body: Vec<u8>, key: Option<&str>) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("channel ready");
    let mut request = tonic::Request::new(body);
    if let Some(key) = key {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    let path = http::uri::PathAndQuery::try_from(path).expect("a path");
    match grpc
        .unary::<Vec<u8>, Vec<u8>, Raw>(request, path, Raw)
        .await
    {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

fn descriptor_set(kind: ServiceKind) -> FileDescriptorSet {
    let bytes = match kind {
        ServiceKind::Ingest => herald_proto::ingest::v1::FILE_DESCRIPTOR_SET,
        ServiceKind::Segmentation => herald_proto::segmentation::v1::FILE_DESCRIPTOR_SET,
        ServiceKind::Trigger => herald_proto::trigger::v1::FILE_DESCRIPTOR_SET,
        ServiceKind::Delivery => herald_proto::delivery::v1::FILE_DESCRIPTOR_SET,
        ServiceKind::Analytics => herald_proto::analytics::v1::FILE_DESCRIPTOR_SET,
    };
    FileDescriptorSet::decode(bytes).expect("descriptor set")
}

/// Every (gRPC service, method) of `kind`'s own package.
fn methods(set: &FileDescriptorSet, kind: ServiceKind) -> Vec<(String, MethodDescriptorProto)> {
    let package = format!("herald.{}.v1", kind.name());
    set.file
        .iter()
        .filter(|f| f.package() == package)
        .flat_map(|f| {
            f.service.iter().flat_map(move |s| {
                s.method
                    .iter()
                    .map(move |m| (format!("{}.{}", f.package(), s.name()), m.clone()))
            })
        })
        .collect()
}

/// A request of `method`'s input type holding only `workspace_id = workspace`, encoded;
/// `None` when the input has no such field.
fn naming_workspace(
    set: &FileDescriptorSet,
    method: &MethodDescriptorProto,
    workspace: &str,
) -> Option<Vec<u8>> {
    let input = method.input_type().trim_start_matches('.');
    let message = set.file.iter().find_map(|f| {
        f.message_type
            .iter()
            .find(|m| format!("{}.{}", f.package(), m.name()) == input)
    })?;
    let field = message.field.iter().find(|f| f.name() == "workspace_id")?;
    let mut body = Vec::new();
    prost::encoding::string::encode(field.number() as u32, &workspace.to_owned(), &mut body);
    Some(body)
}

#[tokio::test]
async fn every_rpc_has_a_rule_and_internal_rpcs_act_on_the_callers_workspace_only() {
    // A key of another workspace with every scope there is.
    let (foreign_key, foreign) =
        generate_api_key("globex", &[Scope::Ingest, Scope::Admin, Scope::Internal]);
    let suite = Suite::start_with(herald_runtime::Clock::system(), |_, config| {
        config.api_keys.push(foreign.clone());
    })
    .await;
    let mut walked = 0;
    for kind in ServiceKind::ALL {
        let channel = suite.channel(kind).await;
        let set = descriptor_set(kind);
        let methods = methods(&set, kind);
        assert!(!methods.is_empty(), "{kind} has RPCs");
        for (service, method) in methods {
            let path = format!("/{service}/{}", method.name());
            walked += 1;
            // A rule covers it, and it requires a credential.
            assert_eq!(
                call(&channel, &path, Vec::new(), None).await,
                Code::Unauthenticated,
                "{path} without credentials"
            );
            if !service.ends_with("InternalService") {
                continue;
            }
            let body = naming_workspace(&set, &method, HOME)
                .unwrap_or_else(|| panic!("{path} names no workspace"));
            assert_eq!(
                call(&channel, &path, body, Some(foreign_key.expose())).await,
                Code::PermissionDenied,
                "{path} with another workspace's key"
            );
        }
        // What no rule covers is refused, whatever the credential.
        let unknown = format!("/herald.{}.v1.NoSuchService/Nothing", kind.name());
        assert_eq!(
            call(
                &channel,
                &unknown,
                Vec::new(),
                Some(suite.credentials.internal_key.expose())
            )
            .await,
            Code::PermissionDenied,
            "{unknown}"
        );
        // Health needs no credential.
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .expect("health answers without credentials");
    }
    assert!(walked >= 30, "walked only {walked} RPCs");
    suite.shutdown().await;
}
