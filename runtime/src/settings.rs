//! Settings: built once at start from layered sources and passed by value — never a global.
//!
//! Layers, lowest first: the compiled-in `config/default.toml`; `config/{CAREPORT_ENV}.toml`
//! (from disk when present, else the copy compiled in for the shipped names `production`,
//! `cluster`, `test`); the file named by `--config`; environment variables
//! `CAREPORT__SECTION__KEY`. Unknown keys are errors, so a typo does not silently do nothing.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use careport_actors::AuthConfig;
use careport_actors::mail::MailConfig;
use careport_ml::MlConfig;
use careport_ml::openai::OpenAiConfig;
use careport_store::{DbConfig, JobConfig, RedisConfig};
use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

const DEFAULTS: &str = include_str!("../../config/default.toml");
const SHIPPED_ENVS: &[(&str, &str)] = &[
    ("production", include_str!("../../config/production.toml")),
    ("cluster", include_str!("../../config/cluster.toml")),
    ("test", include_str!("../../config/test.toml")),
];
/// Prefix of the environment variables that override settings.
pub const ENV_PREFIX: &str = "CAREPORT";

/// Every setting of a careport process.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The deployment environment (`CAREPORT_ENV`), `development` when unset.
    #[serde(skip)]
    pub env: String,
    /// Where the embedded store, generated keys, files and models live.
    pub data_dir: PathBuf,
    /// The address users reach the portal at.
    pub public_url: String,
    pub http: HttpSettings,
    pub database: DbConfig,
    pub redis: RedisConfig,
    pub jobs: JobConfig,
    pub ml: MlConfig,
    /// The optional OpenAI-compatible server (OpenAI, Azure, vLLM, Ollama, llama.cpp).
    pub llm: OpenAiConfig,
    pub log: LogSettings,
    pub secrets: SecretSettings,
    pub auth: AuthConfig,
    pub mail: MailConfig,
    pub clinic: careport_actors::clinic::ClinicConfig,
    pub plugins: careport_actors::plugins::PluginsConfig,
    /// The document vault: frame size, upload limit, links, grants, janitor.
    pub vault: careport_actors::vault::VaultConfig,
    /// Where sealed files are kept: a local directory (default) or S3.
    pub storage: careport_store::objects::StorageConfig,
    /// OCR: workers, limits, automatic reading after uploads, the GPU worker's weights.
    pub ocr: careport_actors::ocr::OcrConfig,
    /// The knowledge base: chunking, embedding jobs, search limits.
    #[serde(default)]
    pub knowledge: careport_actors::knowledge::KnowledgeConfig,
    /// The assistant: emergency number, steps and time limits, sockets per user, suggestions.
    #[serde(default)]
    pub chat: careport_actors::chat::ChatConfig,
    /// This node among several: its name and how often it announces itself.
    #[serde(default)]
    pub cluster: ClusterSettings,
}

/// `[cluster]`: how this node names itself to the others (leases, `careport cluster status`,
/// every log line, `/metrics`) and how often it says it is alive.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// Empty: `host:pid:random` (unique even when two processes share a host).
    pub node_name: String,
    /// How often the node announces itself on the bus; a node not heard for three of these is
    /// gone from `careport cluster status`.
    pub heartbeat_ms: u64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self { node_name: String::new(), heartbeat_ms: 2000 }
    }
}

/// `[http]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// Worker threads; 0 = one per core.
    pub workers: usize,
    pub body_limit_bytes: usize,
    pub request_timeout_secs: u64,
    pub client_timeout_secs: u64,
    pub keep_alive_secs: u64,
    pub shutdown_timeout_secs: u64,
    /// On SIGTERM, how long the node keeps serving after `/readyz` turned 503, so that a load
    /// balancer checking it takes the node out before its listener closes (cluster: 1500).
    pub drain_ms: u64,
    /// Take the client address from `X-Forwarded-For` (set only behind a proxy you run: the
    /// address drives per-IP throttling and the audit trail).
    pub trust_forwarded_for: bool,
}

/// `[log]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// `[secrets]`: each key by value or from a file, never both. `Debug` shows only whether set.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSettings {
    pub master_key: Option<SecretString>,
    pub master_key_file: Option<PathBuf>,
    pub token_key: Option<SecretString>,
    pub token_key_file: Option<PathBuf>,
}

/// Where `CAREPORT__*` variables come from.
enum EnvVars {
    None,
    Process,
    Given(std::collections::HashMap<String, String>),
}

impl Settings {
    /// Load settings for the environment named by `CAREPORT_ENV`, with an optional extra file.
    pub fn load(config_file: Option<&Path>) -> anyhow::Result<Self> {
        let env = std::env::var("CAREPORT_ENV").unwrap_or_else(|_| "development".to_owned());
        Self::load_for(&env, config_file, true)
    }

    /// Load settings for `env`; `with_env_vars = false` ignores `CAREPORT__*` (for tests).
    pub fn load_for(env: &str, config_file: Option<&Path>, with_env_vars: bool) -> anyhow::Result<Self> {
        let vars = if with_env_vars { EnvVars::Process } else { EnvVars::None };
        Self::load_from(env, config_file, vars)
    }

    /// Load settings for `env` with these `CAREPORT__*` variables instead of the process's (a
    /// deployment's variables checked without touching the environment: `docker/compose.yml`).
    pub fn load_with_vars(env: &str, vars: std::collections::HashMap<String, String>) -> anyhow::Result<Self> {
        Self::load_from(env, None, EnvVars::Given(vars))
    }

    fn load_from(env: &str, config_file: Option<&Path>, vars: EnvVars) -> anyhow::Result<Self> {
        if env.is_empty() || !env.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            bail!("CAREPORT_ENV must be a plain name such as production or cluster (got `{env}`)");
        }
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        let on_disk = PathBuf::from(format!("config/{env}.toml"));
        if on_disk.is_file() {
            builder = builder.add_source(File::from(on_disk.clone()).format(FileFormat::Toml));
        } else if let Some((_, text)) = SHIPPED_ENVS.iter().find(|(name, _)| *name == env) {
            builder = builder.add_source(File::from_str(text, FileFormat::Toml));
        } else if env != "development" {
            bail!("CAREPORT_ENV={env}: no {} and no built-in settings of that name", on_disk.display());
        }
        if let Some(path) = config_file {
            if !path.is_file() {
                bail!("--config {}: no such file", path.display());
            }
            builder = builder.add_source(File::from(path).format(FileFormat::Toml));
        }
        let environment = || Environment::with_prefix(ENV_PREFIX).prefix_separator("__").separator("__");
        match vars {
            EnvVars::None => {}
            EnvVars::Process => builder = builder.add_source(environment()),
            EnvVars::Given(map) => builder = builder.add_source(environment().source(Some(map.into_iter().collect()))),
        }
        let config = builder.build().map_err(explain)?;
        let mut settings: Settings = config.try_deserialize().map_err(explain)?;
        settings.env = env.to_owned();
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        careport_actors::clinic::time_zone(&self.clinic.time_zone)?;
        if self.clinic.max_slot_window_days == 0 || self.clinic.booking_horizon_days == 0 {
            bail!("clinic.max_slot_window_days and clinic.booking_horizon_days must be greater than 0");
        }
        if self.vault.max_upload_mib == 0 || self.vault.frame_kib == 0 || self.vault.frame_kib > 16 * 1024 {
            bail!("vault.max_upload_mib must be greater than 0 and vault.frame_kib 1 to 16384");
        }
        if self.vault.max_link_secs == 0 || self.vault.max_grant_days == 0 {
            bail!("vault.max_link_secs and vault.max_grant_days must be greater than 0");
        }
        if self.storage.backend == careport_store::objects::StorageBackend::S3 && self.storage.s3.is_none() {
            bail!("storage.backend = \"s3\" needs a [storage.s3] section with at least `bucket`");
        }
        self.ocr.check().map_err(|e| anyhow::anyhow!(e))?;
        if self.http.body_limit_bytes == 0 {
            bail!("http.body_limit_bytes must be greater than 0");
        }
        if self.jobs.lease_secs == 0 {
            bail!("jobs.lease_secs must be greater than 0");
        }
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            bail!("public_url must start with http:// or https:// (got `{}`)", self.public_url);
        }
        self.auth.validate().map_err(|e| anyhow::anyhow!(e))?;
        if self.auth.argon2.memory_kib < 1024 && self.env != "test" {
            bail!("auth.argon2.memory_kib must be at least 1024 (OWASP recommends 19456)");
        }
        Ok(())
    }

    /// The settings as TOML, with every secret and password replaced by a marker.
    pub fn redacted_toml(&self) -> anyhow::Result<String> {
        fn set(v: &Option<SecretString>) -> &'static str {
            if v.is_some() { "(set, redacted)" } else { "(not set)" }
        }
        let db = &self.database;
        let redis = &self.redis;
        let doc = serde_json::json!({
            "env": self.env,
            "data_dir": self.data_dir,
            "public_url": self.public_url,
            "http": self.http,
            "database": {
                "url": db.redacted_url().unwrap_or_else(|| format!("(sqlite://{}/careport.db)", self.data_dir.display())),
                "max_connections": db.max_connections,
                "acquire_timeout_secs": db.acquire_timeout_secs,
                "connect_retries": db.connect_retries,
                "busy_timeout_ms": db.busy_timeout_ms,
            },
            "redis": {
                "url": redis.redacted_url().unwrap_or_else(|| "(not set: in process)".to_owned()),
                "pool_size": redis.pool_size,
                "connect_timeout_ms": redis.connect_timeout_ms,
                "prefix": redis.prefix,
            },
            "jobs": self.jobs,
            "cluster": self.cluster,
            "ml": self.ml,
            "llm": {
                "base_url": self.llm.base_url.clone().unwrap_or_else(|| "(not set: no external model)".into()),
                "api_key": set(&self.llm.api_key),
                "embedding_model": self.llm.embedding_model,
                "chat_model": self.llm.chat_model,
                "timeout_secs": self.llm.timeout_secs,
                "max_retries": self.llm.max_retries,
                "backoff_base_ms": self.llm.backoff_base_ms,
                "max_concurrency": self.llm.max_concurrency,
                "api_version": self.llm.api_version,
                "redact_with": self.llm.redact_with,
            },
            "log": self.log,
            "secrets": {
                "master_key": set(&self.secrets.master_key),
                "master_key_file": self.secrets.master_key_file.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(not set)".into()),
                "token_key": set(&self.secrets.token_key),
                "token_key_file": self.secrets.token_key_file.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(not set)".into()),
            },
            "auth": self.auth,
            "auth_policy": {
                "max_facts": self.auth.policy.max_facts,
                "max_iterations": self.auth.policy.max_iterations,
                "max_time_ms": self.auth.policy.max_time.as_millis() as u64,
            },
            "mail": {
                "from": self.mail.from,
                "smtp_url": self.mail.smtp_url.as_ref().map(|u| careport_store::redact_url(u.expose_secret()))
                    .unwrap_or_else(|| format!("(not set: {}/outbox/)", self.data_dir.display())),
                "timeout_secs": self.mail.timeout_secs,
            },
            "plugins": {
                "dir": self.plugins.dir.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| format!("(not set: {}/plugins)", self.data_dir.display())),
                "max_time_ms": self.plugins.max_time_ms,
                "max_memory_mib": self.plugins.max_memory_mib,
                "grants": self.plugins.grants,
                "sync_interval_ms": self.plugins.sync_interval_ms,
            },
            "vault": {
                "frame_kib": self.vault.frame_kib,
                "max_upload_mib": self.vault.max_upload_mib,
                "upload_timeout_secs": self.vault.upload_timeout_secs,
                "max_link_secs": self.vault.max_link_secs,
                "max_grant_days": self.vault.max_grant_days,
                "janitor_interval_secs": self.vault.janitor_interval_secs,
                "orphan_grace_secs": self.vault.orphan_grace_secs,
            },
            "storage": {
                "backend": match self.storage.backend { careport_store::objects::StorageBackend::Local => "local", careport_store::objects::StorageBackend::S3 => "s3" },
                "dir": self.storage.dir.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| format!("(not set: {}/vault)", self.data_dir.display())),
                "s3": self.storage.s3.as_ref().map(|s| serde_json::json!({
                    "bucket": s.bucket, "endpoint": s.endpoint, "region": s.region, "prefix": s.prefix,
                    "allow_http": s.allow_http,
                    "access_key_id": if s.access_key_id.is_some() { "(set, redacted)" } else { "(not set: AWS_* environment)" },
                    "secret_access_key": set(&s.secret_access_key),
                })),
            },
            "ocr": self.ocr,
            "clinic": {
                "time_zone": self.clinic.time_zone,
                "reminder_hours_before": self.clinic.reminder_hours_before,
                "booking_horizon_days": self.clinic.booking_horizon_days,
                "max_slot_window_days": self.clinic.max_slot_window_days,
            },
        });
        let mut doc = doc;
        not_set(&mut doc);
        toml::to_string_pretty(&doc).context("Failed to render settings")
    }
}

/// TOML has no null: show unset options as "(not set)".
fn not_set(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Null => *v = serde_json::Value::String("(not set)".into()),
        serde_json::Value::Object(map) => map.values_mut().for_each(not_set),
        serde_json::Value::Array(items) => items.iter_mut().for_each(not_set),
        _ => {}
    }
}

/// Turn a `config` error into one that names the key and where its value came from,
/// including the environment variable's name.
fn explain(e: config::ConfigError) -> anyhow::Error {
    let text = e.to_string();
    let key = match &e {
        config::ConfigError::Type { key: Some(k), .. } => Some(k.clone()),
        _ => text.split('`').nth(1).map(str::to_owned),
    };
    let var = match key {
        Some(k) if text.contains("the environment") => {
            format!(" (variable {ENV_PREFIX}__{})", k.to_uppercase().replace('.', "__"))
        }
        _ => String::new(),
    };
    anyhow::anyhow!("invalid configuration: {text}{var}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_defaults_load() {
        let s = Settings::load_for("development", None, false).expect("defaults load");
        assert_eq!(s.http.port, 8080);
        assert_eq!(s.http.host, "127.0.0.1");
        assert!(s.database.url.is_none(), "embedded store by default");
        assert!(s.redis.url.is_none(), "no Redis by default");
        assert_eq!(s.log.format, LogFormat::Pretty);
        assert!(s.auth.argon2.memory_kib >= 19456 && s.auth.argon2.iterations >= 2, "OWASP minimum");
    }

    #[test]
    fn every_shipped_environment_loads() {
        for (name, _) in SHIPPED_ENVS {
            let s = Settings::load_for(name, None, false).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert_eq!(s.env, *name);
        }
        let prod = Settings::load_for("production", None, false).expect("production");
        assert_eq!(prod.log.format, LogFormat::Json);
    }

    /// No shipped environment carries a key, or a file to read one from: each deployment makes
    /// its own (`careport keys generate`) or has one generated on first start.
    #[test]
    fn no_shipped_environment_carries_a_key() {
        let names = std::iter::once("development").chain(SHIPPED_ENVS.iter().map(|(name, _)| *name));
        for name in names {
            let s = Settings::load_for(name, None, false).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            let k = &s.secrets;
            assert!(k.master_key.is_none() && k.master_key_file.is_none(), "{name} ships a master key");
            assert!(k.token_key.is_none() && k.token_key_file.is_none(), "{name} ships a token key");
        }
        for text in std::iter::once(DEFAULTS).chain(SHIPPED_ENVS.iter().map(|(_, text)| *text)) {
            let parsed: toml::Table = text.parse().expect("shipped TOML");
            if let Some(secrets) = parsed.get("secrets").and_then(|v| v.as_table()) {
                assert!(secrets.is_empty(), "a shipped file sets [secrets]: {secrets:?}");
            }
        }
    }

    /// `text` with each `${…}` of compose's interpolation replaced by `x`.
    fn without_interpolation(text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find("${") {
            out.push_str(&rest[..at]);
            out.push('x');
            rest = rest[at..].find('}').map_or("", |end| &rest[at + end + 1..]);
        }
        out.push_str(rest);
        out
    }

    /// `docker/compose.yml`'s `CAREPORT__` variables (set, commented out, or named in its
    /// comments as what an env file holds), each with the file's value or a stand-in.
    fn compose_vars(compose: &str) -> std::collections::HashMap<String, String> {
        let mut vars = std::collections::HashMap::new();
        for line in compose.lines() {
            let mut rest = line;
            while let Some(at) = rest.find("CAREPORT__") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                let value = rest
                    .strip_prefix(':')
                    .map(|v| without_interpolation(v.trim().trim_matches('"')))
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| "stand-in".to_owned());
                vars.entry(name.trim_end_matches('_').to_owned()).or_insert(value);
            }
        }
        vars
    }

    #[test]
    fn docker_compose_names_only_real_settings_and_runs_three_nodes_behind_haproxy() {
        let compose = include_str!("../../docker/compose.yml");
        let vars = compose_vars(compose);
        for needed in [
            "CAREPORT__DATABASE__URL",
            "CAREPORT__REDIS__URL",
            "CAREPORT__STORAGE__BACKEND",
            "CAREPORT__STORAGE__S3__BUCKET",
            "CAREPORT__STORAGE__S3__ACCESS_KEY_ID",
            "CAREPORT__SECRETS__MASTER_KEY",
            "CAREPORT__HTTP__TRUST_FORWARDED_FOR",
        ] {
            assert!(vars.contains_key(needed), "{needed} is not in docker/compose.yml");
        }
        let env = compose
            .lines()
            .find_map(|l| l.trim().strip_prefix("CAREPORT_ENV:").map(|v| v.trim().to_owned()))
            .expect("CAREPORT_ENV in docker/compose.yml");
        let settings = Settings::load_with_vars(&env, vars.clone())
            .unwrap_or_else(|e| panic!("docker/compose.yml's CAREPORT__ variables are not all settings: {e:#}"));
        assert_eq!(settings.storage.backend, careport_store::objects::StorageBackend::S3);
        assert!(settings.http.trust_forwarded_for, "behind HAProxy");
        // The check can fail: a misspelt variable is refused by name.
        let mut typo = vars;
        typo.insert("CAREPORT__STORAGE__S3__BUCKETT".into(), "x".into());
        let err = Settings::load_with_vars(&env, typo).expect_err("a misspelt variable");
        assert!(format!("{err:#}").contains("bucket"), "{err:#}");

        // Three nodes, each with its own name and data volume, all behind HAProxy, which checks
        // their /readyz.
        let nodes: Vec<&str> =
            compose.lines().filter_map(|l| l.strip_prefix("  careport-").and_then(|r| r.strip_suffix(':'))).collect();
        assert_eq!(nodes, ["1", "2", "3"], "careport nodes in docker/compose.yml");
        for n in &nodes {
            assert!(compose.contains(&format!("- node{n}:/var/lib/careport")), "node {n}'s volume");
            assert!(compose.contains(&format!("hostname: careport-{n} ")), "node {n}'s name");
            assert!(compose.contains(&format!("      - careport-{n}\n")), "HAProxy waits for node {n}");
        }
        assert!(compose.contains("./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg"), "HAProxy's configuration");
        let haproxy = include_str!("../../docker/haproxy.cfg");
        for n in &nodes {
            assert!(haproxy.contains(&format!("server careport-{n} careport-{n}:8080")), "HAProxy sends to node {n}");
        }
        assert!(haproxy.contains("option httpchk GET /readyz"), "HAProxy takes out a node whose /readyz is 503");
        let drain = settings.http.drain_ms;
        assert!(drain >= 1000, "the cluster settings keep a node serving past HAProxy's 1 s check ({drain} ms)");
    }

    #[test]
    fn an_unknown_environment_is_refused() {
        let err = Settings::load_for("staging-typo", None, false).expect_err("unknown env");
        assert!(err.to_string().contains("staging-typo"), "{err}");
    }

    #[test]
    fn a_malformed_file_value_names_the_key_and_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[http]\nport = \"eighty\"\n").expect("write");
        let err = Settings::load_for("development", Some(&path), false).expect_err("bad port");
        let text = format!("{err:#}");
        assert!(text.contains("http.port"), "{text}");
        assert!(text.contains("bad.toml"), "{text}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("typo.toml");
        std::fs::write(&path, "[http]\nprot = 8080\n").expect("write");
        let err = Settings::load_for("development", Some(&path), false).expect_err("typo");
        assert!(format!("{err:#}").contains("prot"), "{err:#}");
    }

    #[test]
    fn redacted_toml_hides_secrets_and_passwords() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[database]\nurl = \"postgres://app:hunter2hunter2@db/careport\"\n[secrets]\nmaster_key = \"very-secret-master\"\n[llm]\napi_key = \"sk-very-secret-llm\"\n",
        )
        .expect("write");
        let s = Settings::load_for("development", Some(&path), false).expect("load");
        let shown = s.redacted_toml().expect("toml");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("very-secret-master"), "{shown}");
        assert!(!shown.contains("sk-very-secret-llm"), "{shown}");
        assert!(shown.contains("postgres://app:***@db/careport"), "{shown}");
        let debug = format!("{s:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("very-secret-master"), "{debug}");
    }
}
