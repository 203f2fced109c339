//! Building and running the application: the same `Application` in production and in tests.
//!
//! `build` checks the secrets, connects and migrates the store, connects Redis, re-queues job
//! leases left by a dead process, starts the actors and binds the listener (port 0 allowed).
//! `run_until_stopped` serves until SIGTERM/SIGINT (or a test's trigger), then: readiness turns
//! 503 (and the node says it is draining), it keeps serving `http.drain_ms` so that a load
//! balancer takes it out, listeners close, in-flight requests get `http.shutdown_timeout_secs` to finish, the
//! actors stop taking work, this node's job leases are handed back, the store is closed.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use careport_actors::{IdentityDeps, JobHandler, Services};
use careport_store::{Bus, Db, JobQueue, Redis};
use secrecy::ExposeSecret;
use tokio::sync::watch;
use tracing_actix_web::TracingLogger;

use crate::http::{self, error, health::ShutdownFlag, middleware};
use crate::metrics::Metrics;
use crate::secrets::Secrets;
use crate::settings::Settings;

pub struct Application {
    port: u16,
    server: Server,
    services: Services,
    shutdown_flag: ShutdownFlag,
    grace: Duration,
    drain: Duration,
    trigger: watch::Sender<bool>,
}

/// Stops a running [`Application`] gracefully, as SIGTERM would (used by tests).
#[derive(Clone)]
pub struct StopHandle(watch::Sender<bool>);

impl StopHandle {
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

impl Application {
    /// Build the application with the built-in job handlers.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, Vec::new()).await
    }

    /// Build the application with extra job handlers.
    pub async fn build_with(settings: Settings, handlers: Vec<Arc<dyn JobHandler>>) -> anyhow::Result<Self> {
        let (services, db, redis) = start_services(&settings, Some(handlers)).await?;
        services.check_embedding_spaces().await.context("Failed to check stored embeddings")?;
        let metrics = Metrics::new()?;
        let shutdown_flag = ShutdownFlag::default();

        let listener = TcpListener::bind((settings.http.host.as_str(), settings.http.port))
            .with_context(|| format!("Failed to listen on {}:{}", settings.http.host, settings.http.port))?;
        let port = listener.local_addr()?.port();

        let http = settings.http.clone();
        let limits = middleware::RequestLimits {
            timeout: Duration::from_secs(http.request_timeout_secs.max(1)),
            upload_timeout: Duration::from_secs(settings.vault.upload_timeout_secs.max(1)),
        };
        let app_services = web::Data::new(services.clone());
        let app_redis = web::Data::new(redis);
        let app_metrics = web::Data::new(metrics);
        let app_flag = web::Data::new(shutdown_flag.clone());
        let app_limits = web::Data::new(limits);
        let app_client = web::Data::new(http::authn::ClientConfig { trust_forwarded_for: http.trust_forwarded_for });
        let app_ui = web::Data::new(
            http::ui::Ui::new(&settings.clinic.time_zone).context("Failed to load the web UI's templates")?,
        );
        let body_limit = http.body_limit_bytes;
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(middleware::observe))
                .wrap(TracingLogger::<middleware::CareportRootSpan>::new())
                .app_data(app_services.clone())
                .app_data(app_redis.clone())
                .app_data(app_metrics.clone())
                .app_data(app_flag.clone())
                .app_data(app_limits.clone())
                .app_data(app_client.clone())
                .app_data(app_ui.clone())
                .app_data(web::JsonConfig::default().limit(body_limit).error_handler(error::json_error))
                .app_data(web::PayloadConfig::new(body_limit))
                .app_data(web::QueryConfig::default().error_handler(error::query_error))
                .app_data(web::PathConfig::default().error_handler(error::path_error))
                .configure(http::routes)
                .default_service(web::to(error::route_not_found))
        })
        .listen(listener)?
        .disable_signals()
        .shutdown_timeout(http.shutdown_timeout_secs)
        .client_request_timeout(Duration::from_secs(http.client_timeout_secs))
        .keep_alive(Duration::from_secs(http.keep_alive_secs));
        if http.workers > 0 {
            server = server.workers(http.workers);
        }
        let server = server.run();
        let (trigger, _) = watch::channel(false);
        tracing::info!(port, backend = db.backend().as_str(), node = services.cluster.node(), "careport is listening");
        Ok(Self {
            port,
            server,
            services,
            shutdown_flag,
            grace: Duration::from_secs(http.shutdown_timeout_secs),
            drain: Duration::from_millis(http.drain_ms),
            trigger,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The actors, for tests that talk to them directly.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// A handle that stops the server gracefully.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.trigger.clone())
    }

    /// Serve until SIGTERM, SIGINT or the stop handle, then shut down gracefully.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self { server, services, shutdown_flag, grace, drain, trigger, .. } = self;
        let handle = server.handle();
        let mut stop = trigger.subscribe();
        let serving = actix_web::rt::spawn(server);
        tokio::select! {
            reason = signal() => tracing::info!(reason, "shutting down"),
            _ = stop.wait_for(|s| *s) => tracing::info!("shutting down (requested)"),
        }
        shutdown_flag.set();
        services.cluster.drain().await;
        // Keep serving while the load balancer notices `/readyz` turned 503 and takes this node
        // out: closing the listener first would refuse the requests already on their way.
        if !drain.is_zero() {
            tracing::info!(drain_ms = drain.as_millis() as u64, "draining: readiness is 503, still serving");
            tokio::time::sleep(drain).await;
        }
        // One deadline for both: HTTP stops accepting and drains its requests while the job
        // runner stops claiming and drains its jobs; then this node's leases go back.
        let http = async {
            handle.stop(true).await;
            match serving.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "HTTP server stopped with an error"),
                Err(e) => tracing::error!(error = %e, "HTTP server task failed"),
            }
        };
        tokio::join!(http, services.shutdown(grace));
        services.cluster.leave();
        services.close_store().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Wait for SIGTERM or SIGINT.
async fn signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

/// Start the store, the bus, the plugin host, the vault and every actor: the [`Services`] that
/// the HTTP server and the operator's CLI commands both go through. `handlers`: the job
/// handlers this process runs (the server's, with the reminder handler added); `None` for a
/// CLI command, which runs no jobs (what it queues, a serving node runs).
pub async fn start_services(
    settings: &Settings,
    handlers: Option<Vec<Arc<dyn JobHandler>>>,
) -> anyhow::Result<(Services, Db, Option<Redis>)> {
    let mut handlers = handlers;
    careport_store::create_private_dir(&settings.data_dir)
        .with_context(|| format!("Failed to create the data dir {}", settings.data_dir.display()))?;
    // Refuse to start without the keys before touching anything else.
    let secrets = Secrets::load(settings, settings.database.backend())?;
    let policies = load_policies(settings)?;
    let mailer = Arc::new(
        careport_actors::mail::Mailer::new(&settings.mail, settings.data_dir.join("outbox"))
            .context("Invalid [mail] settings")?,
    );

    let db = Db::connect(&settings.database, &settings.data_dir).await?;
    db.migrate().await?;
    let redis = Redis::connect(&settings.redis).await?;
    let bus = Bus::new(redis.clone());
    let queue = JobQueue::new(db.clone(), node_name(settings), settings.jobs.clone());
    // Jobs leased by a process that died are due again.
    let reclaimed = queue.reclaim_expired().await.context("Failed to re-queue expired job leases")?;
    if reclaimed > 0 {
        tracing::info!(reclaimed, "re-queued jobs left by a stopped process");
    }
    let embeddings = crate::ml::embeddings(settings).await?;
    let clinic_tz = careport_actors::clinic::time_zone(&settings.clinic.time_zone)?;
    let plugins =
        careport_actors::plugins::Plugins::start(&settings.plugins, &settings.data_dir, db.clone(), bus.clone())
            .await
            .context("Failed to start the plugin host")?;
    if let Some(handlers) = handlers.as_mut() {
        handlers.push(Arc::new(careport_actors::clinic::ReminderHandler::new(
            db.clone(),
            mailer.clone(),
            clinic_tz,
            settings.public_url.clone(),
        )));
    }
    let objects = careport_store::objects::Objects::open(&settings.storage, &settings.data_dir)
        .await
        .context("Failed to open the vault's object storage ([storage])")?;
    let master = careport_vault::MasterKey::from_text(secrets.master_key.expose_secret())
        .map_err(|_| anyhow::anyhow!("the master key is not a Fernet key"))?;
    let vault = careport_actors::vault::Vault::new(db.clone(), objects, master, settings.vault.clone());
    tracing::info!(transport = mailer.describe(), policies = ?policies.files(), storage = vault.backend(), "identity service configured");
    let identity = IdentityDeps {
        redis: redis.clone(),
        mailer,
        policies,
        config: settings.auth.clone(),
        token_key: secrets.token_key,
        master_key: secrets.master_key,
        public_url: settings.public_url.clone(),
    };
    let run_jobs = handlers.is_some();
    let knowledge = careport_actors::knowledge::Knowledge::new(
        db.clone(),
        bus.clone(),
        embeddings.clone(),
        settings.knowledge.clone(),
        settings.ml.local.clone(),
        settings.data_dir.clone(),
        crate::ml::chunk_tokenizer(settings),
    );
    let services = Services::start(
        db.clone(),
        bus,
        queue,
        embeddings,
        handlers.unwrap_or_default(),
        identity,
        careport_actors::FeatureDeps {
            clinic: settings.clinic.clone(),
            plugins,
            vault,
            ocr: settings.ocr.clone(),
            knowledge,
            chat: crate::ml::chat(settings)?,
            run_jobs,
            version: VERSION.to_owned(),
            heartbeat: Duration::from_millis(settings.cluster.heartbeat_ms),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("Failed to start the identity service: {e:?}"))?;
    Ok((services, db, redis))
}

/// This build's version, as nodes report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// This node's name: `cluster.node_name`, or host, pid and a random suffix (pids are reused).
/// `careport serve` fixes it once (see [`fix_node_name`]) so that its log lines, leases and
/// heartbeats agree.
pub fn node_name(settings: &Settings) -> String {
    if !settings.cluster.node_name.trim().is_empty() {
        return settings.cluster.node_name.trim().to_owned();
    }
    generated_node_name()
}

/// Settle the node's name before logging starts: a generated one is written into the settings.
pub fn fix_node_name(settings: &mut Settings) -> String {
    let name = node_name(settings);
    settings.cluster.node_name = name.clone();
    name
}

fn generated_node_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "node".to_owned());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &suffix[..8])
}

/// The policies shipped with careport, compiled in for installs without a `policies/` folder.
const SHIPPED_POLICIES: &[(&str, &str)] = &[
    ("admin.datalog", include_str!("../../policies/admin.datalog")),
    ("billing.datalog", include_str!("../../policies/billing.datalog")),
    ("chat.datalog", include_str!("../../policies/chat.datalog")),
    ("clinic.datalog", include_str!("../../policies/clinic.datalog")),
    ("documents.datalog", include_str!("../../policies/documents.datalog")),
    ("knowledge.datalog", include_str!("../../policies/knowledge.datalog")),
    ("patients.datalog", include_str!("../../policies/patients.datalog")),
    ("reference.datalog", include_str!("../../policies/reference.datalog")),
    ("reports.datalog", include_str!("../../policies/reports.datalog")),
    ("sharing.datalog", include_str!("../../policies/sharing.datalog")),
    ("users.datalog", include_str!("../../policies/users.datalog")),
    ("workflow.datalog", include_str!("../../policies/workflow.datalog")),
];

/// Parse the policies once: from `auth.policy_dir`, else `./policies` when present, else the
/// compiled-in copies. A syntax error stops the boot, naming the file and line.
pub fn load_policies(settings: &Settings) -> anyhow::Result<careport_policy::Policies> {
    let dir = match &settings.auth.policy_dir {
        Some(d) => Some(d.clone()),
        None => Some(std::path::PathBuf::from("policies")).filter(|d| d.is_dir()),
    };
    let policies = match dir {
        Some(dir) => careport_policy::Policies::load_dir(&dir)
            .map_err(|e| anyhow::anyhow!("Failed to load the policies from {}: {e}", dir.display()))?,
        None => careport_policy::Policies::from_sources(
            SHIPPED_POLICIES.iter().map(|(n, s)| ((*n).to_owned(), (*s).to_owned())).collect(),
        )
        .map_err(|e| anyhow::anyhow!("Failed to load the built-in policies: {e}"))?,
    };
    // The run limits are applied by the identity service, which owns `[auth.policy]`.
    Ok(policies)
}

/// Connect and migrate only (`careport migrate`).
pub async fn migrate(settings: &Settings) -> anyhow::Result<Db> {
    careport_store::create_private_dir(&settings.data_dir)
        .with_context(|| format!("Failed to create the data dir {}", settings.data_dir.display()))?;
    let db = Db::connect(&settings.database, &settings.data_dir).await?;
    db.migrate().await?;
    Ok(db)
}

#[cfg(test)]
mod shipped_policies {
    /// Every file of `policies/` is compiled in: an install without the folder (a binary run
    /// from anywhere else) must decide exactly as the checkout does. `chat.datalog` was once
    /// missing, and every chat page answered 403 outside the checkout.
    #[test]
    fn every_policy_file_is_compiled_in() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("policies/")
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| n.ends_with(".datalog"))
            .collect();
        on_disk.sort();
        let mut shipped: Vec<String> = super::SHIPPED_POLICIES.iter().map(|(n, _)| (*n).to_owned()).collect();
        shipped.sort();
        assert_eq!(shipped, on_disk);
        for (name, text) in super::SHIPPED_POLICIES {
            let file = std::fs::read_to_string(dir.join(name)).expect("policy file");
            assert_eq!(*text, file, "{name}");
        }
    }
}
