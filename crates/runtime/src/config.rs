//! Typed configuration, layered: built-in defaults → optional TOML file → `HERALD_*`
//! environment variables. Nothing here binds a port or opens a database, so a bad value
//! is reported before the process touches anything.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::auth::{ApiKeyConfig, WorkspaceConfig};
use crate::secret::Secret;

/// The five Herald services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    Ingest,
    Segmentation,
    Trigger,
    Delivery,
    Analytics,
}

impl ServiceKind {
    /// Every service, in the order events flow through them.
    pub const ALL: [ServiceKind; 5] = [
        ServiceKind::Ingest,
        ServiceKind::Segmentation,
        ServiceKind::Trigger,
        ServiceKind::Delivery,
        ServiceKind::Analytics,
    ];

    /// The lowercase name used in binaries, table prefixes and log fields.
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Ingest => "ingest",
            ServiceKind::Segmentation => "segmentation",
            ServiceKind::Trigger => "trigger",
            ServiceKind::Delivery => "delivery",
            ServiceKind::Analytics => "analytics",
        }
    }

    /// The port each service listens on by default.
    pub fn default_port(self) -> u16 {
        match self {
            ServiceKind::Ingest => 50051,
            ServiceKind::Segmentation => 50052,
            ServiceKind::Trigger => 50053,
            ServiceKind::Delivery => 50054,
            ServiceKind::Analytics => 50055,
        }
    }

    /// Parses a service name as typed on a command line.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl std::fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The configuration of one service process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the gRPC (and gRPC-Web) server listens on.
    pub listen_addr: SocketAddr,
    /// Directory for the embedded SQLite databases and other local state.
    pub data_dir: PathBuf,
    /// Database URL (`sqlite://…` or `postgres://…`); defaults to an SQLite file named
    /// after the service under `data_dir`.
    pub database_url: Option<String>,
    /// Identity of this replica, used to lease outbox work; defaults to the host name.
    pub instance_id: Option<String>,
    /// Log filter in `tracing` syntax, e.g. `info` or `herald=debug,info`.
    pub log: String,
    /// OTLP/gRPC endpoint for traces, e.g. `http://otel-collector:4317`; off when unset.
    pub otlp_endpoint: Option<String>,
    /// Deadline, in milliseconds, for incoming calls that bring none.
    pub default_deadline_ms: u64,
    /// Calls handled at once before new ones are shed with RESOURCE_EXHAUSTED.
    pub max_concurrent_requests: usize,
    /// Largest accepted request message, in bytes.
    pub max_request_bytes: usize,
    /// Bound on draining in-flight calls and open streams at shutdown, in seconds.
    pub shutdown_grace_secs: u64,
    /// Base URL of the ingest service.
    pub ingest_url: String,
    /// Base URL of the segmentation service.
    pub segmentation_url: String,
    /// Base URL of the trigger service.
    pub trigger_url: String,
    /// Base URL of the delivery service.
    pub delivery_url: String,
    /// Base URL of the analytics service.
    pub analytics_url: String,
    /// Key this service presents to the others, and accepts from them, for internal RPCs.
    pub internal_key: Option<Secret>,
    /// Server API keys, stored as SHA-256 hashes.
    pub api_keys: Vec<ApiKeyConfig>,
    /// Workspaces and the secrets their end-user tokens are signed with.
    pub workspaces: Vec<WorkspaceConfig>,
    /// The longest an end-user token may be valid for, in seconds: a token whose `exp`
    /// lies further ahead is refused.
    pub max_user_token_lifetime_secs: u64,
    /// Ingest: the largest event (Track) or identity (Identify) an end-user token may
    /// send, in bytes of its protobuf encoding as sent; server keys keep the general
    /// limits.
    pub user_token_max_event_bytes: usize,
    /// Ingest: Track and Identify calls one end user (a workspace and the token's user)
    /// may make per minute with a user token, refilled evenly; in memory, per replica.
    pub user_token_events_per_minute: u32,
    /// Ingest: how many such calls one end user may make at once before the per-minute
    /// rate applies.
    pub user_token_event_burst: u32,
    /// Attempts after which an outbox item that keeps failing is parked (kept with its
    /// last error, for `herald outbox replay`) instead of retried.
    pub outbox_max_attempts: u32,
    /// Age in seconds after which an outbox item that keeps failing is parked.
    pub outbox_max_age_secs: u64,
    /// How long the dedupe ledgers (the ids a service has already processed) keep an
    /// entry, in seconds; at least `outbox_max_age_secs`, the longest an item is retried.
    pub ledger_retention_secs: u64,
    /// Trigger: how long the decisions ExplainDecision reads are kept, in seconds.
    pub decision_retention_secs: u64,
    /// Delivery: Subscribe streams one user may hold open at once.
    pub max_streams_per_user: usize,
    /// Delivery: Subscribe streams one workspace may hold open at once, in this process.
    pub max_streams_per_workspace: usize,
    /// Delivery: Subscribe streams this process holds open at once.
    pub max_streams: usize,
    /// PostgreSQL connections this process may open (a pool, grown on demand); SQLite
    /// always uses one.
    pub database_max_connections: u32,
    /// Delivery: seconds without a write after which a Subscribe stream sends a heartbeat
    /// (keeps proxies with idle timeouts from cutting the stream).
    pub heartbeat_secs: u64,
    /// Delivery: the push provider's endpoint, an http or https URL that each PUSH message
    /// is POSTed to as JSON (docs/push.md). Unset: this deployment sends no push, and a
    /// PUSH delivery is answered NO_PROVIDER instead of being stored.
    pub push_provider_url: Option<String>,
    /// Delivery: the key presented to the push provider as `authorization: Bearer …`;
    /// no authorization header when unset.
    pub push_provider_key: Option<Secret>,
}

impl Config {
    /// The built-in defaults for `service`: loopback ports, SQLite under `./data`.
    pub fn defaults(service: ServiceKind) -> Self {
        let url = |s: ServiceKind| format!("http://127.0.0.1:{}", s.default_port());
        Config {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], service.default_port())),
            data_dir: PathBuf::from("data"),
            database_url: None,
            instance_id: None,
            log: "info".into(),
            otlp_endpoint: None,
            default_deadline_ms: 30_000,
            max_concurrent_requests: 1024,
            max_request_bytes: 4 * 1024 * 1024,
            shutdown_grace_secs: 20,
            ingest_url: url(ServiceKind::Ingest),
            segmentation_url: url(ServiceKind::Segmentation),
            trigger_url: url(ServiceKind::Trigger),
            delivery_url: url(ServiceKind::Delivery),
            analytics_url: url(ServiceKind::Analytics),
            internal_key: None,
            api_keys: Vec::new(),
            workspaces: Vec::new(),
            max_user_token_lifetime_secs: 30 * 24 * 3600,
            user_token_max_event_bytes: 8 * 1024,
            user_token_events_per_minute: 120,
            user_token_event_burst: 30,
            outbox_max_attempts: 10_000,
            outbox_max_age_secs: 24 * 3600,
            ledger_retention_secs: 7 * 24 * 3600,
            decision_retention_secs: 30 * 24 * 3600,
            max_streams_per_user: 10,
            max_streams_per_workspace: 50_000,
            max_streams: 50_000,
            heartbeat_secs: 15,
            database_max_connections: 16,
            push_provider_url: None,
            push_provider_key: None,
        }
    }

    /// Loads the configuration of `service`: defaults, then the TOML file at `file` (or at
    /// `HERALD_CONFIG` when `file` is `None`), then `HERALD_*` variables from `env`.
    pub fn load(
        service: ServiceKind,
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let file = file.map(Path::to_path_buf).or_else(|| {
            env.iter()
                .find(|(k, _)| k == "HERALD_CONFIG")
                .map(|(_, v)| PathBuf::from(v))
        });
        let mut figment = Figment::from(Serialized::defaults(Config::defaults(service)));
        if let Some(file) = &file {
            if !file.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment.merge(EnvPairs(
            env.into_iter()
                .filter(|(k, _)| {
                    k.starts_with("HERALD_") && !CLIENT_VARIABLES.contains(&k.as_str())
                })
                .collect(),
        ));
        let config: Config = figment.extract().map_err(|e| ConfigError(describe(&e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the cross-field rules serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("invalid {key}: {why}")));
        if self.default_deadline_ms == 0 {
            return bad("default_deadline_ms", "must be greater than 0");
        }
        if self.max_concurrent_requests == 0 {
            return bad("max_concurrent_requests", "must be greater than 0");
        }
        if self.max_request_bytes < 1024 {
            return bad("max_request_bytes", "must be at least 1024");
        }
        if self.max_user_token_lifetime_secs == 0 {
            return bad("max_user_token_lifetime_secs", "must be greater than 0");
        }
        if self.user_token_max_event_bytes < 256
            || self.user_token_max_event_bytes > self.max_request_bytes
        {
            return bad(
                "user_token_max_event_bytes",
                "must be at least 256 and at most max_request_bytes",
            );
        }
        if self.user_token_events_per_minute == 0 {
            return bad(
                "user_token_events_per_minute",
                "must be greater than 0: a rate of 0 would refuse every call made with a user token",
            );
        }
        if self.user_token_event_burst == 0 {
            return bad(
                "user_token_event_burst",
                "must be greater than 0: a burst of 0 would refuse every call made with a user token",
            );
        }
        for (key, value) in [
            ("max_streams_per_user", self.max_streams_per_user),
            ("max_streams_per_workspace", self.max_streams_per_workspace),
            ("max_streams", self.max_streams),
        ] {
            if value == 0 {
                return bad(key, "must be greater than 0");
            }
        }
        if self.database_max_connections == 0 {
            return bad("database_max_connections", "must be greater than 0");
        }
        if self.heartbeat_secs == 0 {
            return bad("heartbeat_secs", "must be greater than 0");
        }
        if self.outbox_max_attempts == 0 {
            return bad("outbox_max_attempts", "must be greater than 0");
        }
        if self.outbox_max_age_secs == 0 {
            return bad("outbox_max_age_secs", "must be greater than 0");
        }
        if self.ledger_retention_secs < self.outbox_max_age_secs {
            return bad(
                "ledger_retention_secs",
                "must be at least outbox_max_age_secs: a retried item must still be recognised as a duplicate",
            );
        }
        if self.decision_retention_secs == 0 {
            return bad("decision_retention_secs", "must be greater than 0");
        }
        for service in ServiceKind::ALL {
            let url = self.url_of(service);
            if url
                .parse::<http::Uri>()
                .map(|u| u.scheme().is_none())
                .unwrap_or(true)
            {
                return bad(
                    &format!("{service}_url"),
                    "must be an absolute URL such as http://host:port",
                );
            }
        }
        if let Some(url) = &self.push_provider_url {
            let uri = url.parse::<http::Uri>().ok();
            let scheme = uri.as_ref().and_then(|u| u.scheme_str());
            if !matches!(scheme, Some("http" | "https"))
                || uri
                    .as_ref()
                    .and_then(|u| u.host())
                    .is_none_or(str::is_empty)
            {
                return bad(
                    "push_provider_url",
                    "must be an http or https URL such as https://push.example.com/send",
                );
            }
        }
        if self.push_provider_key.is_some() && self.push_provider_url.is_none() {
            return bad(
                "push_provider_key",
                "is set but push_provider_url is not: there is no provider to present it to",
            );
        }
        if let Some(url) = &self.database_url
            && !(url.starts_with("sqlite:")
                || url.starts_with("postgres:")
                || url.starts_with("postgresql:"))
        {
            return bad("database_url", "must start with sqlite: or postgres:");
        }
        for (i, key) in self.api_keys.iter().enumerate() {
            key.validate()
                .map_err(|why| ConfigError(format!("invalid api_keys[{i}]: {why}")))?;
        }
        for (i, ws) in self.workspaces.iter().enumerate() {
            if ws.id.is_empty() {
                return bad(&format!("workspaces[{i}].id"), "must not be empty");
            }
            if ws.user_token_secret.expose().len() < 32 {
                return bad(
                    &format!("workspaces[{i}].user_token_secret"),
                    "must be at least 32 characters",
                );
            }
            if let Some(zone) = &ws.time_zone
                && jiff::tz::TimeZone::get(zone).is_err()
            {
                return bad(
                    &format!("workspaces[{i}].time_zone"),
                    "must be an IANA time zone, e.g. Europe/Paris",
                );
            }
        }
        Ok(())
    }

    /// The database URL to use: the configured one, or an SQLite file for `service`.
    pub fn database_url(&self, service: ServiceKind) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir
                    .join(format!("{}.db", service.name()))
                    .display()
            ),
        }
    }

    /// This replica's identity: the configured one, or the host name and process id.
    pub fn instance_id(&self) -> String {
        self.instance_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "localhost".into());
            format!("{host}-{}", std::process::id())
        })
    }

    /// The configured base URL of `service`.
    pub fn url_of(&self, service: ServiceKind) -> &str {
        match service {
            ServiceKind::Ingest => &self.ingest_url,
            ServiceKind::Segmentation => &self.segmentation_url,
            ServiceKind::Trigger => &self.trigger_url,
            ServiceKind::Delivery => &self.delivery_url,
            ServiceKind::Analytics => &self.analytics_url,
        }
    }

    /// Deadline for incoming calls that bring none.
    pub fn default_deadline(&self) -> Duration {
        Duration::from_millis(self.default_deadline_ms)
    }

    /// Bound on the shutdown drain.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// The longest an end-user token may be valid for.
    pub fn max_user_token_lifetime(&self) -> Duration {
        Duration::from_secs(self.max_user_token_lifetime_secs)
    }

    /// How long dedupe ledgers keep their entries.
    pub fn ledger_retention(&self) -> Duration {
        Duration::from_secs(self.ledger_retention_secs)
    }

    /// How long trigger keeps its decisions.
    pub fn decision_retention(&self) -> Duration {
        Duration::from_secs(self.decision_retention_secs)
    }
}

/// `HERALD_*` variables that are not service configuration: the config file's path, and
/// the server key and user token the walkthrough exports for grpcurl in the same shell.
const CLIENT_VARIABLES: [&str; 3] = ["HERALD_CONFIG", "HERALD_KEY", "HERALD_TOKEN"];

/// A configuration that cannot be used; the message names the bad key and its source.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn describe(error: &figment::Error) -> String {
    error
        .clone()
        .into_iter()
        .map(|e| {
            let key = match &e.metadata {
                Some(m) if !e.path.is_empty() => {
                    m.interpolate(&e.profile.clone().unwrap_or_default(), &e.path)
                }
                _ if !e.path.is_empty() => e.path.join("."),
                _ => "configuration".to_owned(),
            };
            let source = match e.metadata.as_ref().and_then(|m| m.source.as_ref()) {
                Some(figment::Source::File(p)) => format!(" in {}", p.display()),
                _ => String::new(),
            };
            format!("invalid {key}{source}: {}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `HERALD_*` variables as a figment provider. Taking the pairs as a value (rather than
/// reading the process environment) lets tests pass config without mutating it. Values
/// are parsed like figment's own `Env`: `8080` is a number, `[a, b]` an array,
/// `{k = "v"}` a table. Errors name the variable, e.g. `HERALD_LISTEN_ADDR`.
struct EnvPairs(Vec<(String, String)>);

impl figment::Provider for EnvPairs {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("environment variable(s)")
            .interpolater(|_, keys| format!("HERALD_{}", keys.join("__").to_ascii_uppercase()))
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        let mut dict = figment::value::Dict::new();
        for (key, value) in &self.0 {
            let key = key["HERALD_".len()..].to_ascii_lowercase();
            let value: figment::value::Value =
                value.parse().expect("figment values parse infallibly");
            dict.insert(key, value);
        }
        Ok(figment::Profile::Default.collect(dict))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_need_no_configuration() {
        let config = Config::load(ServiceKind::Trigger, None, env(&[])).unwrap();
        assert_eq!(config.listen_addr, "127.0.0.1:50053".parse().unwrap());
        assert_eq!(
            config.database_url(ServiceKind::Trigger),
            "sqlite://data/trigger.db?mode=rwc"
        );
    }

    #[test]
    fn environment_overrides_defaults() {
        let config = Config::load(
            ServiceKind::Ingest,
            None,
            env(&[
                ("HERALD_LISTEN_ADDR", "0.0.0.0:9000"),
                ("HERALD_SEGMENTATION_URL", "http://segmentation:50052"),
                ("HERALD_API_KEYS", r#"[{workspace="w", scopes=["ingest"], sha256="1df4b07d05b9b3b1115b4b6b22af319a2f99564a2fa2573a34896063c7513c10"}]"#),
                ("PATH", "/usr/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(config.listen_addr.port(), 9000);
        assert_eq!(config.segmentation_url, "http://segmentation:50052");
        assert_eq!(config.api_keys[0].scopes, [crate::auth::Scope::Ingest]);
    }

    #[test]
    fn the_walkthroughs_shell_variables_are_not_configuration() {
        let config = Config::load(
            ServiceKind::Trigger,
            None,
            env(&[("HERALD_KEY", "hk_x"), ("HERALD_TOKEN", "a.b.c")]),
        );
        assert!(config.is_ok(), "{config:?}");
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let error = Config::load(
            ServiceKind::Ingest,
            None,
            env(&[("HERALD_LISTEN_ADDR", "nowhere")]),
        )
        .unwrap_err();
        assert!(error.to_string().contains("HERALD_LISTEN_ADDR"), "{error}");
        let unknown = Config::load(
            ServiceKind::Ingest,
            None,
            env(&[("HERALD_LISTEN_ADRR", "x")]),
        )
        .unwrap_err();
        assert!(unknown.to_string().contains("listen_adrr"), "{unknown}");
        let url = Config::load(
            ServiceKind::Ingest,
            None,
            env(&[("HERALD_TRIGGER_URL", "trigger")]),
        )
        .unwrap_err();
        assert!(url.to_string().contains("trigger_url"), "{url}");
    }

    #[test]
    fn a_file_sits_between_defaults_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("herald.toml");
        std::fs::write(&file, "log = \"debug\"\nmax_concurrent_requests = 7\n").unwrap();
        let config = Config::load(
            ServiceKind::Delivery,
            Some(&file),
            env(&[("HERALD_MAX_CONCURRENT_REQUESTS", "9")]),
        )
        .unwrap();
        assert_eq!(config.log, "debug");
        assert_eq!(config.max_concurrent_requests, 9);
        std::fs::write(&file, "max_concurrent_requests = \"many\"\n").unwrap();
        let error = Config::load(ServiceKind::Delivery, Some(&file), env(&[])).unwrap_err();
        assert!(
            error.to_string().contains("max_concurrent_requests"),
            "{error}"
        );
        assert!(error.to_string().contains("herald.toml"), "{error}");
    }

    #[test]
    fn ledgers_outlive_retries() {
        let error = Config::load(
            ServiceKind::Trigger,
            None,
            env(&[
                ("HERALD_OUTBOX_MAX_AGE_SECS", "7200"),
                ("HERALD_LEDGER_RETENTION_SECS", "3600"),
            ]),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("ledger_retention_secs"),
            "{error}"
        );
    }

    #[test]
    fn a_push_provider_is_off_by_default_and_its_url_is_checked() {
        let config = Config::load(ServiceKind::Delivery, None, env(&[])).unwrap();
        assert_eq!(config.push_provider_url, None);
        let config = Config::load(
            ServiceKind::Delivery,
            None,
            env(&[
                (
                    "HERALD_PUSH_PROVIDER_URL",
                    "https://push.example.com/v1/send",
                ),
                ("HERALD_PUSH_PROVIDER_KEY", "pk_secret_value"),
            ]),
        )
        .unwrap();
        assert_eq!(
            config.push_provider_url.as_deref(),
            Some("https://push.example.com/v1/send")
        );
        assert_eq!(
            config.push_provider_key.as_ref().map(Secret::expose),
            Some("pk_secret_value")
        );
        assert!(
            !format!("{config:?}").contains("pk_secret_value"),
            "the key is never printed"
        );
        for bad in ["push.example.com", "ftp://push.example.com", "https://"] {
            let error = Config::load(
                ServiceKind::Delivery,
                None,
                env(&[("HERALD_PUSH_PROVIDER_URL", bad)]),
            )
            .unwrap_err();
            assert!(
                error.to_string().contains("push_provider_url"),
                "{bad}: {error}"
            );
        }
        let error = Config::load(
            ServiceKind::Delivery,
            None,
            env(&[("HERALD_PUSH_PROVIDER_KEY", "pk_secret_value")]),
        )
        .unwrap_err();
        assert!(error.to_string().contains("push_provider_key"), "{error}");
        assert!(!error.to_string().contains("pk_secret_value"), "{error}");
    }

    #[test]
    fn a_workspace_time_zone_must_be_an_iana_zone() {
        let secret = "s".repeat(32);
        let workspaces = |zone: &str| {
            format!(r#"[{{id = "acme", user_token_secret = "{secret}", time_zone = "{zone}"}}]"#)
        };
        let ok = workspaces("Europe/Paris");
        let config = Config::load(
            ServiceKind::Analytics,
            None,
            env(&[("HERALD_WORKSPACES", ok.as_str())]),
        )
        .unwrap();
        assert_eq!(
            config.workspaces[0].time_zone.as_deref(),
            Some("Europe/Paris")
        );
        let bad = workspaces("Mars/Olympus");
        let error = Config::load(
            ServiceKind::Analytics,
            None,
            env(&[("HERALD_WORKSPACES", bad.as_str())]),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("workspaces[0].time_zone"),
            "{error}"
        );
    }

    #[test]
    fn user_token_limits_have_defaults_and_refuse_zero() {
        let config = Config::load(ServiceKind::Ingest, None, env(&[])).unwrap();
        assert_eq!(
            (
                config.user_token_max_event_bytes,
                config.user_token_events_per_minute,
                config.user_token_event_burst
            ),
            (8192, 120, 30)
        );
        let config = Config::load(
            ServiceKind::Ingest,
            None,
            env(&[
                ("HERALD_USER_TOKEN_MAX_EVENT_BYTES", "4096"),
                ("HERALD_USER_TOKEN_EVENTS_PER_MINUTE", "60"),
                ("HERALD_USER_TOKEN_EVENT_BURST", "5"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (
                config.user_token_max_event_bytes,
                config.user_token_events_per_minute,
                config.user_token_event_burst
            ),
            (4096, 60, 5)
        );
        for (variable, value, key) in [
            (
                "HERALD_USER_TOKEN_EVENTS_PER_MINUTE",
                "0",
                "user_token_events_per_minute",
            ),
            (
                "HERALD_USER_TOKEN_EVENT_BURST",
                "0",
                "user_token_event_burst",
            ),
            (
                "HERALD_USER_TOKEN_MAX_EVENT_BYTES",
                "0",
                "user_token_max_event_bytes",
            ),
            (
                "HERALD_USER_TOKEN_MAX_EVENT_BYTES",
                "5000000",
                "user_token_max_event_bytes",
            ),
            (
                "HERALD_USER_TOKEN_EVENTS_PER_MINUTE",
                "-1",
                "HERALD_USER_TOKEN_EVENTS_PER_MINUTE",
            ),
        ] {
            let error =
                Config::load(ServiceKind::Ingest, None, env(&[(variable, value)])).unwrap_err();
            assert!(
                error.to_string().contains(key),
                "{variable}={value}: {error}"
            );
        }
    }

    #[test]
    fn user_identify_is_off_unless_a_workspace_allows_it() {
        let secret = "s".repeat(32);
        let workspaces = format!(
            r#"[{{id = "acme", user_token_secret = "{secret}"}}, {{id = "globex", user_token_secret = "{secret}", allow_user_identify = true}}]"#
        );
        let config = Config::load(
            ServiceKind::Ingest,
            None,
            env(&[("HERALD_WORKSPACES", workspaces.as_str())]),
        )
        .unwrap();
        let allowed: Vec<bool> = config
            .workspaces
            .iter()
            .map(|w| w.allow_user_identify)
            .collect();
        assert_eq!(allowed, [false, true]);
    }

    #[test]
    fn the_deploy_example_config_loads() {
        let file =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/overlays/dev/herald.toml");
        let config = Config::load(ServiceKind::Ingest, Some(&file), env(&[])).unwrap();
        assert_eq!(config.workspaces[0].id, "demo");
    }
}
