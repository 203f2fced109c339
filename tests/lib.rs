//! The test harness: `spawn_app()` builds the same `Application` as production on port 0,
//! on a fresh store per test.
//!
//! Backends: every test gets a fresh SQLite file in a temp dir; when `CAREPORT_TEST_PG_URL` is
//! set it gets a fresh PostgreSQL schema instead (created over that admin URL, dropped
//! afterwards unless `CAREPORT_TEST_KEEP_DB` is set). `.ci/run` runs the suite once each way,
//! so one test body runs on both backends. With `CAREPORT_TEST_REDIS_URL` set, apps use Redis
//! (with a key prefix of their own). With `CAREPORT_TEST_S3_ENDPOINT` set (`.ci/run` starts moto
//! for the PostgreSQL run), the vault keeps its objects in S3, under a prefix per app, instead of
//! the local directory. Logs are discarded unless `TEST_LOG` is set.

pub mod llm;
pub mod proxy;

use std::path::PathBuf;
use std::sync::Once;

use careport::Settings;
use careport::startup::{Application, StopHandle};
use careport_actors::JobHandler;
use careport_store::{Backend, Db, DbConfig};
use secrecy::SecretString;
use tempfile::TempDir;

pub use proxy::Proxy;

/// The password every test account gets (long enough, not common).
pub const PASSWORD: &str = "violet-otter-harbour-42";

/// The admin URL of the test PostgreSQL server, when the suite runs on PostgreSQL.
pub fn pg_admin_url() -> Option<String> {
    std::env::var("CAREPORT_TEST_PG_URL").ok().filter(|s| !s.is_empty())
}

/// The test Redis, when the suite runs with Redis.
pub fn redis_url() -> Option<String> {
    std::env::var("CAREPORT_TEST_REDIS_URL").ok().filter(|s| !s.is_empty())
}

/// The SMTP sink (aiosmtpd with a Maildir), when the suite runs with one: its URL and the
/// Maildir it writes (`CAREPORT_TEST_SMTP_URL`, `CAREPORT_TEST_SMTP_MAILDIR`; `.ci/run` starts it).
/// Without it, apps write `.eml` files into their outbox.
pub fn smtp_sink() -> Option<(String, PathBuf)> {
    let url = std::env::var("CAREPORT_TEST_SMTP_URL").ok().filter(|s| !s.is_empty())?;
    let dir = std::env::var("CAREPORT_TEST_SMTP_MAILDIR").ok().filter(|s| !s.is_empty())?;
    Some((url, PathBuf::from(dir)))
}

/// The test S3 server (`CAREPORT_TEST_S3_ENDPOINT`, bucket `CAREPORT_TEST_S3_BUCKET` or
/// `careport-test`), when the suite runs with one.
pub fn s3_storage() -> Option<careport_store::objects::StorageConfig> {
    let endpoint = std::env::var("CAREPORT_TEST_S3_ENDPOINT").ok().filter(|s| !s.is_empty())?;
    let bucket = std::env::var("CAREPORT_TEST_S3_BUCKET").ok().filter(|s| !s.is_empty());
    Some(careport_store::objects::StorageConfig {
        backend: careport_store::objects::StorageBackend::S3,
        dir: None,
        s3: Some(careport_store::objects::S3Config {
            bucket: bucket.unwrap_or_else(|| "careport-test".to_owned()),
            endpoint: Some(endpoint),
            region: "us-east-1".to_owned(),
            access_key_id: Some("testing".to_owned()),
            secret_access_key: Some(SecretString::from("testing")),
            allow_http: true,
            prefix: format!("t-{}/", uuid::Uuid::new_v4().simple()),
        }),
    })
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let settings = careport::settings::LogSettings {
                level: "debug".into(),
                format: careport::settings::LogFormat::Pretty,
            };
            careport::telemetry::init(&settings);
        }
    });
}

/// A fresh, empty store for one test.
pub struct TestDb {
    /// What `database.url` should be for an app on this store.
    pub url: String,
    pub backend: Backend,
    /// The temp dir (SQLite file, and the app's data dir).
    pub dir: TempDir,
    schema: Option<(String, String)>,
}

impl TestDb {
    /// PostgreSQL when `CAREPORT_TEST_PG_URL` is set, else SQLite.
    pub async fn new() -> Self {
        match pg_admin_url() {
            Some(admin) => Self::postgres(&admin).await,
            None => Self::sqlite(),
        }
    }

    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("careport.db").display());
        Self { url, backend: Backend::Sqlite, dir, schema: None }
    }

    /// A schema of its own on the admin URL's database; `vector` stays visible from `public`.
    pub async fn postgres(admin_url: &str) -> Self {
        use sqlx::Connection;
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin_url).await.expect("connect to CAREPORT_TEST_PG_URL");
        // Concurrent test processes may race here; the loser's error is harmless.
        let _ = sqlx::query("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public").execute(&mut conn).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .expect("create schema");
        conn.close().await.ok();
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options=-c%20search_path%3D{schema}%2Cpublic");
        Self {
            url,
            backend: Backend::Postgres,
            dir: tempfile::tempdir().expect("tempdir"),
            schema: Some((admin_url.to_owned(), schema)),
        }
    }

    pub fn config(&self) -> DbConfig {
        DbConfig {
            url: Some(SecretString::from(self.url.clone())),
            max_connections: 5,
            acquire_timeout_secs: 5,
            connect_retries: 0,
            busy_timeout_ms: 5000,
        }
    }

    /// A migrated connection of the test's own, for arranging and asserting.
    pub async fn connect(&self) -> Db {
        let db = Db::connect(&self.config(), self.dir.path()).await.expect("connect test db");
        db.migrate().await.expect("migrate test db");
        db
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, schema)) = self.schema.take() else {
            return;
        };
        if std::env::var_os("CAREPORT_TEST_KEEP_DB").is_some() {
            eprintln!("keeping schema {schema}");
            return;
        }
        // Drop runs inside the test's runtime: use a thread with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

/// The branch of a test that cannot run here because `var` (a service or a model the suite can
/// run without) is unset: it says so and the test returns — unless this run requires `var`.
/// `.ci/run` lists in `CAREPORT_TEST_REQUIRE` what each of its passes must have, so there a
/// missing service fails the test instead of letting it pass silently.
pub fn skipping(var: &str, why: &str) {
    let required = std::env::var("CAREPORT_TEST_REQUIRE").unwrap_or_default();
    assert!(
        !required.split(',').any(|r| r.trim() == var),
        "{var} is required in this run (CAREPORT_TEST_REQUIRE={required}) but is not set"
    );
    eprintln!("skipped: {var} is not set ({why})");
}

/// Settings for a test app on `db`: the `test` environment, port 0, the temp data dir.
pub fn test_settings(db: &TestDb) -> Settings {
    let mut s = Settings::load_for("test", None, false).expect("test settings");
    s.data_dir = db.dir.path().join("data");
    s.http.port = 0;
    s.http.workers = 1;
    s.database = db.config();
    // Explicit keys on both backends, so tests can mint tokens with the app's key.
    s.secrets.master_key = Some(careport::secrets::generate_master_key().into());
    s.secrets.token_key = Some(careport::secrets::generate_token_key().into());
    s.auth.policy_dir = Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"));
    if let Some((url, _)) = smtp_sink() {
        s.mail.smtp_url = Some(SecretString::from(url));
    }
    if let Some(storage) = s3_storage() {
        s.storage = storage;
    }
    if let Some(url) = redis_url() {
        s.redis.url = Some(SecretString::from(url));
        s.redis.prefix = format!("careport-test-{}:", uuid::Uuid::new_v4().simple());
    }
    s
}

/// A running app and what a test needs to talk to it.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    /// The test's own connection to the app's store.
    pub db: Db,
    pub settings: Settings,
    pub data_dir: PathBuf,
    /// The app's actors and providers.
    pub services: careport_actors::Services,
    stop: StopHandle,
    task: Option<actix_web::rt::task::JoinHandle<anyhow::Result<()>>>,
    pub test_db: TestDb,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    /// The newest e-mail to `to` (whole message, headers and body), waiting up to 10 s for it:
    /// from the SMTP sink when the suite has one, else from the app's outbox.
    pub async fn email_to(&self, to: &str) -> String {
        self.emails_to_at_least(to, 1).await.pop().expect("one e-mail")
    }

    /// Every e-mail to `to`, oldest first, once there are at least `n` (waits up to 10 s).
    pub async fn emails_to_at_least(&self, to: &str, n: usize) -> Vec<String> {
        let dirs: Vec<PathBuf> = match smtp_sink() {
            Some((_, maildir)) => vec![maildir.join("new"), maildir.join("cur")],
            None => vec![self.data_dir.join("outbox")],
        };
        let header = format!("To: {to}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let mut found: Vec<(std::time::SystemTime, String)> = Vec::new();
            for dir in &dirs {
                let Ok(entries) = std::fs::read_dir(dir) else { continue };
                for e in entries.flatten() {
                    let name = e.file_name();
                    if name.to_string_lossy().starts_with('.') {
                        continue;
                    }
                    if let Ok(text) = std::fs::read_to_string(e.path())
                        && text.lines().any(|l| l.eq_ignore_ascii_case(&header))
                    {
                        let t = e.metadata().and_then(|m| m.modified()).unwrap_or(std::time::SystemTime::UNIX_EPOCH);
                        found.push((t, text));
                    }
                }
            }
            if found.len() >= n {
                found.sort_by_key(|(t, _)| *t);
                return found.into_iter().map(|(_, t)| t).collect();
            }
            assert!(std::time::Instant::now() < deadline, "no e-mail to {to} within 10 s ({} found)", found.len());
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Create an account directly (verified), returning its id.
    pub async fn create_user(
        &self,
        email: &str,
        role: careport_domain::Role,
        staff_role: Option<careport_policy::StaffRole>,
        department: Option<&str>,
    ) -> uuid::Uuid {
        self.services
            .identity
            .create_account(careport_actors::accounts::NewAccount {
                email: careport_domain::Email::parse(email).expect("email"),
                password: PASSWORD.to_owned(),
                full_name: Some(format!("Test {email}")),
                role,
                staff_role,
                department: department.map(str::to_owned),
                preferred_language: None,
                email_verified: true,
                link_record: false,
            })
            .await
            .expect("create user")
    }

    /// POST JSON.
    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &serde_json::Value) -> reqwest::Response {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    /// A request with a bearer token and an optional JSON body: the status and the JSON answer
    /// (`null` when there is none).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let url = self.url(path);
        let mut req = match method {
            "GET" => self.client.get(url),
            "POST" => self.client.post(url),
            "PATCH" => self.client.patch(url),
            "PUT" => self.client.put(url),
            "DELETE" => self.client.delete(url),
            m => panic!("method {m}"),
        };
        req = req.bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// The access token of a login with [`PASSWORD`].
    pub async fn token(&self, email: &str) -> String {
        self.login(email).await["access_token"].as_str().expect("token").to_owned()
    }

    /// GET with a bearer token.
    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.expect("request")
    }

    /// Log in with [`PASSWORD`]; panics unless 200. Returns the token pair as JSON.
    pub async fn login(&self, email: &str) -> serde_json::Value {
        let res = self
            .post_json("/api/v1/auth/login", None, &serde_json::json!({"email": email, "password": PASSWORD}))
            .await;
        assert_eq!(res.status(), 200, "login {email}");
        res.json().await.expect("json")
    }

    /// The key of the app's audit chain (derived from its master key).
    pub fn chain_key(&self) -> careport_store::audit::ChainKey {
        use secrecy::ExposeSecret;
        let master = self.settings.secrets.master_key.as_ref().expect("master key");
        careport_store::audit::ChainKey::from_master_key(master.expose_secret())
    }

    /// The app's token signing key ring (key id as configured).
    pub fn key_ring(&self) -> careport_policy::KeyRing {
        use secrecy::ExposeSecret;
        let key = self.settings.secrets.token_key.as_ref().expect("token key");
        let private = <careport_policy::PrivateKey as std::str::FromStr>::from_str(key.expose_secret()).expect("key");
        careport_policy::KeyRing::new(
            self.settings.auth.tokens.key_id,
            careport_policy::KeyPair::from(&private),
            Vec::new(),
        )
    }

    /// Embed through the app's own embedding provider.
    pub async fn services_embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, careport_ml::EmbedError> {
        self.services.embeddings.embed(texts).await
    }

    /// Stop the app and start it again on the same store and data dir, with `self.settings`
    /// (change them between the two to restart with other settings). Tokens stay valid.
    pub async fn restart(&mut self) {
        self.stop().await;
        let app = Application::build_with(self.settings.clone(), Vec::new()).await.expect("rebuild app");
        self.port = app.port();
        self.address = format!("http://127.0.0.1:{}", self.port);
        self.stop = app.stop_handle();
        self.services = app.services().clone();
        self.task = Some(actix_web::rt::spawn(app.run_until_stopped()));
    }

    /// Stop the app as SIGTERM would, and wait until it has shut down.
    pub async fn stop(&mut self) {
        self.stop.stop();
        if let Some(task) = self.task.take() {
            task.await.expect("app task").expect("app shut down cleanly");
        }
    }
}

/// Spawn an app on a fresh store.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}, Vec::new()).await
}

/// Spawn an app on a fresh store, after `adjust` has changed its settings.
pub async fn spawn_app_with(
    adjust: impl FnOnce(&mut Settings),
    handlers: Vec<std::sync::Arc<dyn JobHandler>>,
) -> TestApp {
    init_logs();
    let test_db = TestDb::new().await;
    let mut settings = test_settings(&test_db);
    adjust(&mut settings);
    let app = Application::build_with(settings.clone(), handlers).await.expect("build app");
    let port = app.port();
    let stop = app.stop_handle();
    let services = app.services().clone();
    let task = actix_web::rt::spawn(app.run_until_stopped());
    let db = test_db.connect().await;
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client"),
        db,
        data_dir: settings.data_dir.clone(),
        settings,
        services,
        stop,
        task: Some(task),
        test_db,
    }
}

/// A second node of `app`'s cluster: the same store, keys and Redis prefix, its own data dir
/// (`<app's data dir>/<name>`); `adjust` changes its settings further.
pub async fn spawn_node_beside(app: &TestApp, name: &str, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let (db_url, master, token_key, prefix, data_dir) = (
        app.settings.database.url.clone(),
        app.settings.secrets.master_key.clone(),
        app.settings.secrets.token_key.clone(),
        app.settings.redis.prefix.clone(),
        app.data_dir.join(name),
    );
    spawn_app_with(
        move |s| {
            s.database.url = db_url;
            s.secrets.master_key = master;
            s.secrets.token_key = token_key;
            s.redis.prefix = prefix;
            s.data_dir = data_dir;
            adjust(s);
        },
        Vec::new(),
    )
    .await
}

/// The installed MiniLM model: `CAREPORT_TEST_MODEL_DIR`, or `data/models/all-MiniLM-L6-v2` in
/// the checkout (`scripts/install-model.sh` puts it there; `.ci/run` sets the variable).
pub fn model_dir() -> PathBuf {
    let dir = std::env::var("CAREPORT_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models/all-MiniLM-L6-v2"));
    assert!(
        dir.join("model.safetensors").is_file(),
        "the MiniLM model is not installed at {}: run `bash scripts/install-model.sh` (or set CAREPORT_TEST_MODEL_DIR)",
        dir.display()
    );
    dir
}
