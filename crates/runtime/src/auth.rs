//! Who is calling: server API keys (hashed, scoped to a workspace), the internal key
//! services present to each other, and end-user tokens signed with a workspace secret.
//!
//! The [`AuthLayer`] decides per RPC path which credential is required, answers
//! UNAUTHENTICATED / PERMISSION_DENIED itself, and hands the handler a [`Caller`] in the
//! request extensions.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine;
use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::Status;

use crate::secret::Secret;

/// What a server API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Send events and traits (ingest's public API).
    Ingest,
    /// Manage segments and campaigns, read statistics, delete and export users.
    Admin,
    /// Service-to-service RPCs.
    Internal,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Admin => "admin",
            Scope::Internal => "internal",
        }
    }
}

/// One server API key as configured: only its SHA-256 hash is kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The workspace the key acts on.
    pub workspace: String,
    /// What the key may do.
    pub scopes: Vec<Scope>,
    /// Lowercase hex SHA-256 of the key.
    pub sha256: String,
    /// A label for humans, e.g. "billing backend".
    #[serde(default)]
    pub name: Option<String>,
}

impl ApiKeyConfig {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.workspace.is_empty() {
            return Err("workspace must not be empty".into());
        }
        if self.scopes.is_empty() {
            return Err("scopes must not be empty".into());
        }
        match hex::decode(&self.sha256) {
            Ok(bytes) if bytes.len() == 32 => Ok(()),
            _ => Err("sha256 must be 64 hex characters".into()),
        }
    }
}

/// A workspace and the secret its end-user tokens are signed with (HS256).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceConfig {
    /// The workspace id.
    pub id: String,
    /// HMAC secret for end-user tokens, at least 32 characters.
    pub user_token_secret: Secret,
}

/// Makes a new random API key; returns the key (shown once) and its config entry.
pub fn generate_api_key(workspace: &str, scopes: &[Scope]) -> (Secret, ApiKeyConfig) {
    let key = format!("hk_{}", random_token());
    let entry = ApiKeyConfig {
        workspace: workspace.to_owned(),
        scopes: scopes.to_vec(),
        sha256: hash_key(&key),
        name: None,
    };
    (Secret::new(key), entry)
}

/// The lowercase hex SHA-256 of a key, as stored in `api_keys[].sha256`.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// 32 random bytes, base64url without padding: for keys and secrets.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The authenticated caller of one RPC, found in the request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A server API key of `workspace`.
    Key {
        workspace: String,
        scopes: Vec<Scope>,
    },
    /// Another Herald service (the internal key); the workspace travels in the request.
    Internal,
    /// An end user of `workspace`, from a signed user token valid until `expires_at`.
    User {
        workspace: String,
        user_id: String,
        expires_at: std::time::SystemTime,
    },
}

impl Caller {
    /// The caller of `request`, as put there by [`AuthLayer`].
    pub fn of<T>(request: &tonic::Request<T>) -> Result<&Caller, Status> {
        request
            .extensions()
            .get::<Caller>()
            .ok_or_else(|| Status::unauthenticated("no credentials"))
    }

    /// The workspace of a key or user caller.
    pub fn workspace(&self) -> Option<&str> {
        match self {
            Caller::Key { workspace, .. } | Caller::User { workspace, .. } => Some(workspace),
            Caller::Internal => None,
        }
    }
}

/// The credential an RPC path requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential: health checks and reflection.
    Public,
    /// A server API key with this scope (or the internal key, for `Internal`).
    Scope(Scope),
    /// An end-user token.
    UserToken,
}

/// Maps RPC paths to the access they need, by gRPC service prefix
/// (e.g. `/herald.ingest.v1.IngestService/`).
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    rules: Vec<(String, Access)>,
}

impl AccessPolicy {
    /// Requires `access` for every method of the gRPC service `service`
    /// (a full name such as `herald.ingest.v1.IngestService`).
    pub fn service(mut self, service: &str, access: Access) -> Self {
        self.rules.push((format!("/{service}/"), access));
        self
    }

    /// Requires `access` for one method path, e.g. `/herald.x.v1.XService/Method`;
    /// exact paths take precedence over services.
    pub fn method(mut self, path: &str, access: Access) -> Self {
        self.rules.insert(0, (path.to_owned(), access));
        self
    }

    fn access(&self, path: &str) -> Access {
        for (prefix, access) in &self.rules {
            if path == prefix || (prefix.ends_with('/') && path.starts_with(prefix.as_str())) {
                return *access;
            }
        }
        // Health, reflection and unknown paths (which tonic answers UNIMPLEMENTED).
        Access::Public
    }
}

/// Claims of an end-user token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserClaims {
    /// The user id.
    pub sub: String,
    /// The workspace id.
    pub ws: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

/// Signs an end-user token for `user_id`, valid for `ttl`.
pub fn sign_user_token(
    workspace: &WorkspaceConfig,
    user_id: &str,
    ttl: std::time::Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        + ttl.as_secs();
    let claims = UserClaims {
        sub: user_id.to_owned(),
        ws: workspace.id.clone(),
        exp,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(workspace.user_token_secret.expose().as_bytes()),
    )
}

/// Checks credentials against the configured keys and workspaces.
#[derive(Clone)]
pub struct Authenticator {
    keys: Arc<Vec<([u8; 32], ApiKeyConfig)>>,
    internal: Option<[u8; 32]>,
    workspaces: Arc<HashMap<String, DecodingKey>>,
}

impl Authenticator {
    /// Builds the authenticator from validated configuration.
    pub fn new(
        api_keys: &[ApiKeyConfig],
        internal_key: Option<&Secret>,
        workspaces: &[WorkspaceConfig],
    ) -> Self {
        let keys = api_keys
            .iter()
            .filter_map(|k| {
                let bytes: [u8; 32] = hex::decode(&k.sha256).ok()?.try_into().ok()?;
                Some((bytes, k.clone()))
            })
            .collect();
        Authenticator {
            keys: Arc::new(keys),
            internal: internal_key.map(|k| Sha256::digest(k.expose().as_bytes()).into()),
            workspaces: Arc::new(
                workspaces
                    .iter()
                    .map(|w| {
                        (
                            w.id.clone(),
                            DecodingKey::from_secret(w.user_token_secret.expose().as_bytes()),
                        )
                    })
                    .collect(),
            ),
        }
    }

    /// Checks the `authorization` header of a call that requires `access`.
    pub fn authenticate(
        &self,
        headers: &http::HeaderMap,
        access: Access,
    ) -> Result<Caller, Status> {
        let token = bearer(headers)?;
        match access {
            Access::Public => Err(Status::internal("public calls are not authenticated")),
            Access::UserToken => self.user(token),
            Access::Scope(scope) => self.key(token, scope),
        }
    }

    fn key(&self, token: &str, scope: Scope) -> Result<Caller, Status> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(internal) = &self.internal
            && bool::from(internal.ct_eq(&hash))
        {
            return if scope == Scope::Internal {
                Ok(Caller::Internal)
            } else {
                Err(Status::permission_denied(format!(
                    "the internal key cannot call {} RPCs",
                    scope.name()
                )))
            };
        }
        // Compare against every key, in constant time each, so timing tells nothing
        // about which (or whether any) key matched.
        let mut found: Option<&ApiKeyConfig> = None;
        for (candidate, entry) in self.keys.iter() {
            if bool::from(candidate.ct_eq(&hash)) {
                found = Some(entry);
            }
        }
        let entry = found.ok_or_else(|| Status::unauthenticated("unknown API key"))?;
        if !entry.scopes.contains(&scope) {
            return Err(Status::permission_denied(format!(
                "this API key lacks the {} scope",
                scope.name()
            )));
        }
        Ok(Caller::Key {
            workspace: entry.workspace.clone(),
            scopes: entry.scopes.clone(),
        })
    }

    fn user(&self, token: &str) -> Result<Caller, Status> {
        let invalid = || Status::unauthenticated("invalid user token");
        // Read the workspace first to pick the secret, then verify signature and expiry.
        let payload = token.split('.').nth(1).ok_or_else(invalid)?;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| invalid())?;
        let unverified: UserClaims = serde_json::from_slice(&payload).map_err(|_| invalid())?;
        let key = self.workspaces.get(&unverified.ws).ok_or_else(invalid)?;
        let mut validation = Validation::new(Algorithm::HS256);
        // A little leeway for clock skew between the signer and this server.
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let claims = jsonwebtoken::decode::<UserClaims>(token, key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    Status::unauthenticated("user token expired")
                }
                _ => invalid(),
            })?
            .claims;
        if claims.sub.is_empty() {
            return Err(invalid());
        }
        Ok(Caller::User {
            workspace: claims.ws,
            user_id: claims.sub,
            expires_at: std::time::UNIX_EPOCH + std::time::Duration::from_secs(claims.exp),
        })
    }
}

fn bearer(headers: &http::HeaderMap) -> Result<&str, Status> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| Status::unauthenticated("missing authorization: Bearer <key> header"))?;
    value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Status::unauthenticated("authorization header must be: Bearer <key>"))
}

/// Tower layer that authenticates every call according to an [`AccessPolicy`].
#[derive(Clone)]
pub struct AuthLayer {
    authenticator: Authenticator,
    policy: Arc<AccessPolicy>,
}

impl AuthLayer {
    /// Authenticates calls with `authenticator` as `policy` requires.
    pub fn new(authenticator: Authenticator, policy: AccessPolicy) -> Self {
        AuthLayer {
            authenticator,
            policy: Arc::new(policy),
        }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

/// See [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let access = self.layer.policy.access(request.uri().path());
        if access != Access::Public {
            match self
                .layer
                .authenticator
                .authenticate(request.headers(), access)
            {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                }
                Err(status) => return Box::pin(async move { Ok(status.into_http()) }),
            }
        }
        // Take the service that was driven to readiness, leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(token: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn keys_are_checked_by_hash_and_scope() {
        let (key, entry) = generate_api_key("acme", &[Scope::Ingest]);
        let auth = Authenticator::new(&[entry], Some(&Secret::new("internal-secret")), &[]);
        let caller = auth
            .authenticate(&headers(key.expose()), Access::Scope(Scope::Ingest))
            .unwrap();
        assert_eq!(caller.workspace(), Some("acme"));
        let denied = auth
            .authenticate(&headers(key.expose()), Access::Scope(Scope::Admin))
            .unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        let unknown = auth
            .authenticate(&headers("hk_nope"), Access::Scope(Scope::Ingest))
            .unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::Unauthenticated);
        let missing = auth
            .authenticate(&http::HeaderMap::new(), Access::Scope(Scope::Ingest))
            .unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert_eq!(
            auth.authenticate(&headers("internal-secret"), Access::Scope(Scope::Internal))
                .unwrap(),
            Caller::Internal
        );
        let internal_public = auth
            .authenticate(&headers("internal-secret"), Access::Scope(Scope::Admin))
            .unwrap_err();
        assert_eq!(internal_public.code(), tonic::Code::PermissionDenied);
    }

    #[test]
    fn user_tokens_bind_workspace_and_user() {
        let ws = WorkspaceConfig {
            id: "acme".into(),
            user_token_secret: Secret::new("s".repeat(32)),
        };
        let other = WorkspaceConfig {
            id: "other".into(),
            user_token_secret: Secret::new("t".repeat(32)),
        };
        let auth = Authenticator::new(&[], None, &[ws.clone(), other]);
        let token = sign_user_token(&ws, "u1", std::time::Duration::from_secs(60)).unwrap();
        let Caller::User {
            workspace,
            user_id,
            expires_at,
        } = auth
            .authenticate(&headers(&token), Access::UserToken)
            .unwrap()
        else {
            panic!("a user token gives a user caller");
        };
        assert_eq!((workspace.as_str(), user_id.as_str()), ("acme", "u1"));
        let left = expires_at
            .duration_since(std::time::SystemTime::now())
            .unwrap();
        assert!(
            left <= std::time::Duration::from_secs(60) && left > std::time::Duration::from_secs(50)
        );
        // Signed with another workspace's secret but claiming acme: rejected.
        let forged_ws = WorkspaceConfig {
            id: "acme".into(),
            user_token_secret: Secret::new("t".repeat(32)),
        };
        let forged = sign_user_token(&forged_ws, "u1", std::time::Duration::from_secs(60)).unwrap();
        assert_eq!(
            auth.authenticate(&headers(&forged), Access::UserToken)
                .unwrap_err()
                .code(),
            tonic::Code::Unauthenticated
        );
    }

    #[test]
    fn policy_prefers_exact_methods() {
        let policy = AccessPolicy::default()
            .service("herald.x.v1.XService", Access::Scope(Scope::Admin))
            .method("/herald.x.v1.XService/Open", Access::UserToken);
        assert_eq!(
            policy.access("/herald.x.v1.XService/Open"),
            Access::UserToken
        );
        assert_eq!(
            policy.access("/herald.x.v1.XService/Other"),
            Access::Scope(Scope::Admin)
        );
        assert_eq!(
            policy.access("/grpc.health.v1.Health/Check"),
            Access::Public
        );
    }
}
