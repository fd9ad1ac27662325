//! Who is calling: server API keys (hashed, scoped to a workspace), the internal key
//! services present to each other, and end-user tokens signed with a workspace secret.
//!
//! The [`AuthLayer`] decides per RPC path which credential is required, answers
//! UNAUTHENTICATED / PERMISSION_DENIED itself, and hands the handler a [`Caller`] in the
//! request extensions.
//!
//! Telling the credentials apart: server API keys (`hk_…`) and the internal key Herald
//! generates are base64url and never contain a `.`; an end-user token is a JWT and always
//! does. A bearer that matches no configured key and contains a `.` is therefore read as a
//! user token: accepted where [`Access::ScopeOrUser`] allows one, and answered
//! PERMISSION_DENIED ("needs a server API key, not a user token") where only a key will do.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine;
use futures::future::BoxFuture;
use herald_core::{Clock, Timestamp};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::Status;

use crate::error::Error;
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
    /// The workspace's IANA time zone, e.g. `Europe/Paris`: analytics' day and week
    /// buckets follow it unless a request names another. Unset means UTC.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Whether ingest's Identify accepts this workspace's end-user tokens (a browser then
    /// sets its own user's traits, forced to the token's user). Off by default: traits
    /// drive segments and campaigns, so unless a workspace opts in only a server key
    /// sets them.
    #[serde(default)]
    pub allow_user_identify: bool,
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
        expires_at: Timestamp,
    },
}

impl Caller {
    /// The caller of `request`, as put there by [`AuthLayer`].
    pub fn of<T>(request: &tonic::Request<T>) -> Result<&Caller, Error> {
        request
            .extensions()
            .get::<Caller>()
            .ok_or_else(|| Error::internal("the call reached a handler without a caller"))
    }

    /// The workspace of a key or user caller.
    pub fn workspace(&self) -> Option<&str> {
        match self {
            Caller::Key { workspace, .. } | Caller::User { workspace, .. } => Some(workspace),
            Caller::Internal => None,
        }
    }

    /// The workspace of a server API key, for RPCs that act on the key's own workspace.
    pub fn key_workspace(&self) -> Result<&str, Error> {
        match self {
            Caller::Key { workspace, .. } => Ok(workspace),
            _ => Err(Error::PermissionDenied(
                "this RPC needs a workspace's server API key".into(),
            )),
        }
    }

    /// Checks that the caller may act on `workspace_id`, the workspace a request names:
    /// Herald's internal key may act on any, a workspace's key only on its own, an end
    /// user on none. Every handler of an internal RPC calls this before anything else.
    pub fn require_workspace(&self, workspace_id: &str) -> Result<(), Error> {
        match self {
            Caller::Internal => Ok(()),
            Caller::Key { workspace, .. } if workspace == workspace_id => Ok(()),
            Caller::Key { .. } => Err(Error::PermissionDenied(
                "this API key cannot act on another workspace".into(),
            )),
            Caller::User { .. } => Err(Error::PermissionDenied(
                "a user token cannot call internal RPCs".into(),
            )),
        }
    }
}

/// [`Caller::require_workspace`] for the caller of `request`.
pub fn require_workspace<T>(request: &tonic::Request<T>, workspace_id: &str) -> Result<(), Error> {
    Caller::of(request)?.require_workspace(workspace_id)
}

/// The credential an RPC path requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential: health checks and reflection.
    Public,
    /// A server API key with this scope (or the internal key, for `Internal`).
    Scope(Scope),
    /// A server API key with this scope, or an end-user token of a configured workspace:
    /// the handler finds a [`Caller::Key`] or a [`Caller::User`] and must limit the
    /// latter to its own user.
    ScopeOrUser(Scope),
    /// An end-user token.
    UserToken,
}

/// Maps RPC paths to the access they need, by gRPC service and, where one method differs
/// from the rest of its service, by method. A path no rule covers is refused: nothing is
/// public by omission.
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    /// `/package.Service/` prefixes and their access.
    services: Vec<(String, Access)>,
    /// Exact `/package.Service/Method` paths and their access; they win over `services`.
    methods: Vec<(String, Access)>,
}

impl AccessPolicy {
    /// Requires `access` for every method of the generated gRPC service `S`.
    pub fn serve<S: tonic::server::NamedService>(self, access: Access) -> Self {
        self.service(S::NAME, access)
    }

    /// Requires `access` for every method of the gRPC service named `service` (a full
    /// name such as `grpc.health.v1.Health`), for services built outside this workspace.
    pub fn service(mut self, service: &str, access: Access) -> Self {
        self.services.push((format!("/{service}/"), access));
        self
    }

    /// Requires `access` for the one method `method` (e.g. `Track`) of the gRPC service
    /// named `service`, whatever its service's rule says and whichever was added first.
    pub fn method(mut self, service: &str, method: &str, access: Access) -> Self {
        self.methods.push((format!("/{service}/{method}"), access));
        self
    }

    /// The access `path` (`/package.Service/Method`) requires: its method's rule, else
    /// its service's; `None` when no rule covers it, which the auth layer refuses.
    pub fn access(&self, path: &str) -> Option<Access> {
        if let Some((_, access)) = self.methods.iter().find(|(exact, _)| exact == path) {
            return Some(*access);
        }
        self.services
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()) && path.len() > prefix.len())
            .map(|(_, access)| *access)
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

/// Signs an end-user token for `user_id`, valid for `ttl` from `now`.
pub fn sign_user_token(
    workspace: &WorkspaceConfig,
    user_id: &str,
    ttl: std::time::Duration,
    now: Timestamp,
) -> Result<String, jsonwebtoken::errors::Error> {
    let exp = u64::try_from(now.as_second())
        .unwrap_or(0)
        .saturating_add(ttl.as_secs());
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

/// Seconds of clock skew allowed between a token's signer and this server.
const LEEWAY_SECS: u64 = 5;

/// Checks credentials against the configured keys and workspaces.
#[derive(Clone)]
pub struct Authenticator {
    keys: Arc<Vec<([u8; 32], ApiKeyConfig)>>,
    internal: Option<[u8; 32]>,
    workspaces: Arc<HashMap<String, DecodingKey>>,
    clock: Clock,
    max_token_lifetime: std::time::Duration,
}

impl Authenticator {
    /// Builds the authenticator from validated configuration; user tokens are checked
    /// against `clock` and may not be valid for longer than `max_token_lifetime`.
    pub fn new(
        api_keys: &[ApiKeyConfig],
        internal_key: Option<&Secret>,
        workspaces: &[WorkspaceConfig],
        clock: Clock,
        max_token_lifetime: std::time::Duration,
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
            clock,
            max_token_lifetime,
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
            Access::Scope(scope) => match self.find_key(token) {
                Some(key) => self.scoped(key, scope),
                None if looks_like_user_token(token) => {
                    Err(Status::permission_denied(needs_a_key(scope)))
                }
                None => Err(Status::unauthenticated("unknown API key")),
            },
            Access::ScopeOrUser(scope) => match self.find_key(token) {
                Some(key) => self.scoped(key, scope),
                None if looks_like_user_token(token) => self.user(token),
                None => Err(Status::unauthenticated("unknown API key")),
            },
        }
    }

    /// The configured key `token` is, if any.
    fn find_key(&self, token: &str) -> Option<Key<'_>> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(internal) = &self.internal
            && bool::from(internal.ct_eq(&hash))
        {
            return Some(Key::Internal);
        }
        // Compare against every key, in constant time each, so timing tells nothing
        // about which (or whether any) key matched.
        let mut found: Option<&ApiKeyConfig> = None;
        for (candidate, entry) in self.keys.iter() {
            if bool::from(candidate.ct_eq(&hash)) {
                found = Some(entry);
            }
        }
        found.map(Key::Api)
    }

    /// The caller of `key`, when it holds `scope`.
    fn scoped(&self, key: Key<'_>, scope: Scope) -> Result<Caller, Status> {
        let entry = match key {
            Key::Internal if scope == Scope::Internal => return Ok(Caller::Internal),
            Key::Internal => {
                return Err(Status::permission_denied(format!(
                    "the internal key cannot call {} RPCs",
                    scope.name()
                )));
            }
            Key::Api(entry) => entry,
        };
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
        // Read the workspace first to pick the secret, then verify the signature.
        let payload = token.split('.').nth(1).ok_or_else(invalid)?;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| invalid())?;
        let unverified: UserClaims = serde_json::from_slice(&payload).map_err(|_| invalid())?;
        let key = self.workspaces.get(&unverified.ws).ok_or_else(invalid)?;
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the injected clock, not the library's.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let claims = jsonwebtoken::decode::<UserClaims>(token, key, &validation)
            .map_err(|_| invalid())?
            .claims;
        if claims.sub.is_empty() {
            return Err(invalid());
        }
        // Whole seconds, compared without overflow however large `exp` is.
        let now = u64::try_from(self.clock.now().as_second()).unwrap_or(0);
        if claims.exp.saturating_add(LEEWAY_SECS) <= now {
            return Err(Status::unauthenticated("user token expired"));
        }
        let latest = now
            .saturating_add(self.max_token_lifetime.as_secs())
            .saturating_add(LEEWAY_SECS);
        if claims.exp > latest {
            return Err(Status::unauthenticated(format!(
                "user token valid for longer than the maximum of {} s; sign it with a nearer exp",
                self.max_token_lifetime.as_secs()
            )));
        }
        let expires_at = i64::try_from(claims.exp)
            .ok()
            .and_then(|exp| Timestamp::from_second(exp).ok())
            .ok_or_else(invalid)?;
        Ok(Caller::User {
            workspace: claims.ws,
            user_id: claims.sub,
            expires_at,
        })
    }
}

/// A configured key that a bearer matched.
#[derive(Clone, Copy)]
enum Key<'a> {
    Internal,
    Api(&'a ApiKeyConfig),
}

/// Whether `token` has the shape of a JWT (server and internal keys have no `.`).
fn looks_like_user_token(token: &str) -> bool {
    token.contains('.')
}

/// Why a user token is refused where only a server key will do.
fn needs_a_key(scope: Scope) -> String {
    match scope {
        Scope::Internal => "this RPC needs Herald's internal key or a server API key with the \
                            internal scope, not a user token"
            .to_owned(),
        scope => format!(
            "this RPC needs a server API key with the {} scope, not a user token",
            scope.name()
        ),
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
        let path = request.uri().path();
        let refused = match self.layer.policy.access(path) {
            None => Some(Status::permission_denied(format!(
                "no such RPC, or no access rule for {path}"
            ))),
            Some(Access::Public) => None,
            Some(access) => match self
                .layer
                .authenticator
                .authenticate(request.headers(), access)
            {
                Ok(caller) => {
                    if let Some(workspace) = caller.workspace() {
                        tracing::Span::current().record("workspace", workspace);
                    }
                    request.extensions_mut().insert(caller);
                    None
                }
                Err(status) => Some(status),
            },
        };
        if let Some(status) = refused {
            return Box::pin(async move { Ok(status.into_http()) });
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
    use std::time::Duration;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn headers(token: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    fn clock() -> Clock {
        Clock::manual("2026-06-01T12:00:00Z".parse().unwrap())
    }

    fn workspace(id: &str, secret: char) -> WorkspaceConfig {
        WorkspaceConfig {
            id: id.into(),
            user_token_secret: Secret::new(secret.to_string().repeat(32)),
            time_zone: None,
            allow_user_identify: false,
        }
    }

    #[test]
    fn keys_are_checked_by_hash_and_scope() {
        let (key, entry) = generate_api_key("acme", &[Scope::Ingest]);
        let auth = Authenticator::new(
            &[entry],
            Some(&Secret::new("internal-secret")),
            &[],
            clock(),
            DAY,
        );
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
        let ws = workspace("acme", 's');
        let clock = clock();
        let auth = Authenticator::new(
            &[],
            None,
            &[ws.clone(), workspace("other", 't')],
            clock.clone(),
            DAY,
        );
        let token = sign_user_token(&ws, "u1", Duration::from_secs(60), clock.now()).unwrap();
        let Caller::User {
            workspace: ws_id,
            user_id,
            expires_at,
        } = auth
            .authenticate(&headers(&token), Access::UserToken)
            .unwrap()
        else {
            panic!("a user token gives a user caller");
        };
        assert_eq!((ws_id.as_str(), user_id.as_str()), ("acme", "u1"));
        assert_eq!(
            expires_at,
            "2026-06-01T12:01:00Z".parse::<Timestamp>().unwrap()
        );
        // Signed with another workspace's secret but claiming acme: rejected.
        let forged = sign_user_token(
            &workspace("acme", 't'),
            "u1",
            Duration::from_secs(60),
            clock.now(),
        )
        .unwrap();
        assert_eq!(
            auth.authenticate(&headers(&forged), Access::UserToken)
                .unwrap_err()
                .code(),
            tonic::Code::Unauthenticated
        );
    }

    #[test]
    fn user_tokens_expire_on_the_injected_clock() {
        let ws = workspace("acme", 's');
        let clock = clock();
        let auth = Authenticator::new(&[], None, std::slice::from_ref(&ws), clock.clone(), DAY);
        let token = sign_user_token(&ws, "u1", Duration::from_secs(60), clock.now()).unwrap();
        clock.advance(Duration::from_secs(60 + LEEWAY_SECS - 1));
        assert!(
            auth.authenticate(&headers(&token), Access::UserToken)
                .is_ok()
        );
        clock.advance(Duration::from_secs(1));
        let expired = auth
            .authenticate(&headers(&token), Access::UserToken)
            .unwrap_err();
        assert_eq!(expired.code(), tonic::Code::Unauthenticated);
        assert!(expired.message().contains("expired"), "{expired:?}");
    }

    #[test]
    fn a_token_valid_beyond_the_maximum_lifetime_is_refused_not_a_panic() {
        let ws = workspace("acme", 's');
        let clock = clock();
        let auth = Authenticator::new(&[], None, std::slice::from_ref(&ws), clock.clone(), DAY);
        for exp in [
            u64::MAX,
            i64::MAX as u64,
            253_402_300_800,
            clock.now().as_second() as u64 + 2 * 86_400,
        ] {
            let claims = UserClaims {
                sub: "u1".into(),
                ws: "acme".into(),
                exp,
            };
            let token = jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(ws.user_token_secret.expose().as_bytes()),
            )
            .unwrap();
            let refused = auth
                .authenticate(&headers(&token), Access::UserToken)
                .unwrap_err();
            assert_eq!(refused.code(), tonic::Code::Unauthenticated, "exp {exp}");
        }
        let ok = sign_user_token(&ws, "u1", DAY, clock.now()).unwrap();
        assert!(auth.authenticate(&headers(&ok), Access::UserToken).is_ok());
    }

    #[test]
    fn the_policy_refuses_what_it_has_no_rule_for() {
        let policy = AccessPolicy::default()
            .service("herald.x.v1.XService", Access::Scope(Scope::Admin))
            .service("grpc.health.v1.Health", Access::Public);
        assert_eq!(
            policy.access("/herald.x.v1.XService/Open"),
            Some(Access::Scope(Scope::Admin))
        );
        assert_eq!(
            policy.access("/grpc.health.v1.Health/Check"),
            Some(Access::Public)
        );
        assert_eq!(policy.access("/herald.x.v1.XServiceOther/Open"), None);
        assert_eq!(policy.access("/herald.x.v1.XService/"), None);
        assert_eq!(policy.access("/unknown.Service/Method"), None);
    }

    #[test]
    fn a_method_rule_wins_over_its_services_rule_in_either_order() {
        let service = "herald.ingest.v1.IngestService";
        let either = Access::ScopeOrUser(Scope::Ingest);
        let key_only = Access::Scope(Scope::Ingest);
        let method_first = AccessPolicy::default()
            .method(service, "Track", either)
            .service(service, key_only);
        let service_first = AccessPolicy::default()
            .service(service, key_only)
            .method(service, "Track", either);
        for policy in [method_first, service_first] {
            assert_eq!(
                policy.access("/herald.ingest.v1.IngestService/Track"),
                Some(either)
            );
            // Exact paths only: a method whose name starts with `Track` keeps the
            // service's rule.
            for other in ["TrackBatch", "TrackStream", "Identify", "Trac"] {
                assert_eq!(
                    policy.access(&format!("/{service}/{other}")),
                    Some(key_only),
                    "{other}"
                );
            }
            assert_eq!(policy.access("/herald.ingest.v1.IngestService/"), None);
            assert_eq!(policy.access("/herald.other.v1.OtherService/Track"), None);
        }
        // A method rule alone covers its one method and nothing else of the service.
        let alone = AccessPolicy::default().method(service, "Track", either);
        assert_eq!(alone.access(&format!("/{service}/Track")), Some(either));
        assert_eq!(alone.access(&format!("/{service}/TrackBatch")), None);
    }

    #[test]
    fn scope_or_user_takes_a_scoped_key_or_a_user_token() {
        let ws = workspace("acme", 's');
        let clock = clock();
        let (ingest_key, ingest) = generate_api_key("acme", &[Scope::Ingest]);
        let (admin_key, admin) = generate_api_key("acme", &[Scope::Admin]);
        let auth = Authenticator::new(
            &[ingest, admin],
            Some(&Secret::new("internal-secret")),
            std::slice::from_ref(&ws),
            clock.clone(),
            DAY,
        );
        let access = Access::ScopeOrUser(Scope::Ingest);
        assert_eq!(
            auth.authenticate(&headers(ingest_key.expose()), access)
                .unwrap(),
            Caller::Key {
                workspace: "acme".into(),
                scopes: vec![Scope::Ingest],
            }
        );
        let token = sign_user_token(&ws, "u1", Duration::from_secs(60), clock.now()).unwrap();
        assert_eq!(
            auth.authenticate(&headers(&token), access).unwrap(),
            Caller::User {
                workspace: "acme".into(),
                user_id: "u1".into(),
                expires_at: "2026-06-01T12:01:00Z".parse().unwrap(),
            }
        );
        let code = |token: &str| auth.authenticate(&headers(token), access).unwrap_err();
        let wrong_scope = code(admin_key.expose());
        assert_eq!(wrong_scope.code(), tonic::Code::PermissionDenied);
        assert!(wrong_scope.message().contains("ingest"), "{wrong_scope:?}");
        assert_eq!(
            code("internal-secret").code(),
            tonic::Code::PermissionDenied
        );
        let unknown = code("hk_nope");
        assert_eq!(unknown.code(), tonic::Code::Unauthenticated);
        assert_eq!(unknown.message(), "unknown API key");
        // JWT-shaped, but not a valid token of a configured workspace.
        let forged = sign_user_token(
            &workspace("acme", 't'),
            "u1",
            Duration::from_secs(60),
            clock.now(),
        )
        .unwrap();
        for bad in [forged.as_str(), "a.b.c", "not.a-token"] {
            let refused = code(bad);
            assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{bad}");
            assert_eq!(refused.message(), "invalid user token", "{bad}");
        }
        clock.advance(Duration::from_secs(60 + LEEWAY_SECS));
        let expired = code(&token);
        assert_eq!(expired.code(), tonic::Code::Unauthenticated);
        assert!(expired.message().contains("expired"), "{expired:?}");
    }

    #[test]
    fn a_user_token_where_a_server_key_is_needed_is_told_so() {
        let ws = workspace("acme", 's');
        let clock = clock();
        let (key, entry) = generate_api_key("acme", &[Scope::Ingest]);
        let auth = Authenticator::new(
            &[entry],
            Some(&Secret::new("internal-secret")),
            std::slice::from_ref(&ws),
            clock.clone(),
            DAY,
        );
        let token = sign_user_token(&ws, "u1", Duration::from_secs(60), clock.now()).unwrap();
        for (scope, mention) in [
            (Scope::Ingest, "server API key with the ingest scope"),
            (Scope::Admin, "server API key with the admin scope"),
            (Scope::Internal, "internal key"),
        ] {
            // A valid token and any other JWT-shaped bearer alike: the shape decides.
            for bearer in [token.as_str(), "a.b.c"] {
                let refused = auth
                    .authenticate(&headers(bearer), Access::Scope(scope))
                    .unwrap_err();
                assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{scope:?}");
                assert!(
                    refused.message().contains(mention)
                        && refused.message().contains("not a user token"),
                    "{refused:?}"
                );
            }
        }
        // Keys still answer as before on the same rule.
        assert!(
            auth.authenticate(&headers(key.expose()), Access::Scope(Scope::Ingest))
                .is_ok()
        );
        let unknown = auth
            .authenticate(&headers("hk_nope"), Access::Scope(Scope::Ingest))
            .unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn generated_keys_never_look_like_user_tokens() {
        for _ in 0..64 {
            let (key, _) = generate_api_key("acme", &[Scope::Ingest]);
            assert!(!looks_like_user_token(key.expose()), "{}", key.expose());
            assert!(!looks_like_user_token(&random_token()));
        }
    }

    #[test]
    fn callers_act_on_their_own_workspace_only() {
        let key = Caller::Key {
            workspace: "b".into(),
            scopes: vec![Scope::Internal, Scope::Admin, Scope::Ingest],
        };
        assert!(key.require_workspace("b").is_ok());
        assert!(matches!(
            key.require_workspace("a"),
            Err(Error::PermissionDenied(_))
        ));
        assert!(Caller::Internal.require_workspace("a").is_ok());
        let user = Caller::User {
            workspace: "a".into(),
            user_id: "u".into(),
            expires_at: Timestamp::MAX,
        };
        assert!(user.require_workspace("a").is_err());
    }
}
