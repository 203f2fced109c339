//! The test harness: `spawn_app()` builds the same `Application` as production on port 0,
//! on a fresh store per test.
//!
//! Backends: every test gets a fresh SQLite file in a temp dir; when `CAREPORT_TEST_PG_URL` is
//! set it gets a fresh PostgreSQL schema instead (created over that admin URL, dropped
//! afterwards unless `CAREPORT_TEST_KEEP_DB` is set). `.ci/run` runs the suite once each way,
//! so one test body runs on both backends. With `CAREPORT_TEST_REDIS_URL` set, apps use Redis
//! (with a key prefix of their own). Logs are discarded unless `TEST_LOG` is set.

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

/// The admin URL of the test PostgreSQL server, when the suite runs on PostgreSQL.
pub fn pg_admin_url() -> Option<String> {
    std::env::var("CAREPORT_TEST_PG_URL").ok().filter(|s| !s.is_empty())
}

/// The test Redis, when the suite runs with Redis.
pub fn redis_url() -> Option<String> {
    std::env::var("CAREPORT_TEST_REDIS_URL").ok().filter(|s| !s.is_empty())
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

/// Settings for a test app on `db`: the `test` environment, port 0, the temp data dir.
pub fn test_settings(db: &TestDb) -> Settings {
    let mut s = Settings::load_for("test", None, false).expect("test settings");
    s.data_dir = db.dir.path().join("data");
    s.http.port = 0;
    s.http.workers = 1;
    s.database = db.config();
    if db.backend == Backend::Postgres {
        s.secrets.master_key = Some(careport::secrets::generate_master_key().into());
        s.secrets.token_key = Some(careport::secrets::generate_token_key().into());
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

    /// Embed through the app's own embedding provider.
    pub async fn services_embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, careport_ml::EmbedError> {
        self.services.embeddings.embed(texts).await
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
