//! careport's actors: the supervised actix actors that own state and long-running work, and
//! the [`Services`] struct that holds their addresses for the HTTP layer.
//!
//! # Layout
//! - [`jobs`]: the `JobRunner`, which claims jobs from the durable queue for the registered
//!   [`JobHandler`]s, keeps their leases alive, retries, and hands leases back at shutdown.
//! - [`door`]: the service operations — every read and change of the clinic's data, each
//!   deciding, storing, invalidating, publishing and auditing in one call. Every adapter (HTTP,
//!   CLI, chat tools) goes through it.
//! - [`identity`]: accounts, sessions, MFA, throttling, revocation (the `AuthActor` keeps
//!   revocations current on every node) and tokens.
//! - [`access`]: access decisions — the policies, the store facts they need, list scopes, signed
//!   links — and the `Pass` that proves a decision.
//! - [`audit`]: the `AuditActor`, which appends to the hash-chained audit trail, and the `Audit`
//!   writer every operation writes through.
//! - [`accounts`]: the rules for creating accounts, shared by every path.
//! - [`cluster`]: this node's heartbeat and the other nodes it hears (`careport cluster status`).
//! - [`clinic`]: the clinic directory and scheduling rules (free slots, booking, reminders).
//! - [`mail`]: e-mail through SMTP or the outbox folder.
//! - [`knowledge`]: the knowledge base's vector spaces, embedded index and embedding jobs.
//! - [`chat`]: the assistant's settings, events, safety rules, grounded answers, prompt, and the
//!   `SuggestActor` (its operations are in [`door::chat`]).
//! - [`ocr`]: OCR of medical records: the `OcrSupervisor`, its CPU and GPU workers, the jobs.
//! - [`plugins`]: the node's WebAssembly plugins (loading, calls, uploads, reloads).
//! - [`vault`]: the document vault — sealed streaming uploads and downloads, the keys that wrap
//!   each file's data key, grants, crypto-shredding, and the `FilesActor` janitor.
//! - [`handle`]: an actor address that counts its unanswered messages, for `/metrics`.
//!
//! Actors run on the actix System's arbiter (one thread); blocking work is sent to Tokio's
//! blocking pool or a `SyncArbiter`, never run inside a handler.

pub mod access;
pub mod accounts;
pub mod audit;
pub mod chat;
pub mod clinic;
pub mod cluster;
pub mod door;
pub mod handle;
pub mod identity;
pub mod imaging;
pub mod jobs;
pub mod knowledge;
pub mod mail;
pub mod ocr;
pub mod plugins;
pub mod plugins_actor;
pub mod vault;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::{Supervisor, prelude::*};
use careport_ml::Embeddings;
use careport_store::embeddings::{self as stored, Space};
use careport_store::{Bus, Db, JobQueue, Redis};

pub use access::{Access, Pass};
pub use audit::{Audit, AuditActor};
pub use handle::Handle;
pub use identity::actor::AuthActor;
pub use identity::{AuthConfig, Caller, ClientInfo, Identity};
pub use jobs::{JobError, JobHandler, JobRunner};

/// Answered by every actor: proves its mailbox is being served.
#[derive(Message)]
#[rtype(result = "ActorStatus")]
pub struct Ping;

/// What an actor says of itself when pinged.
#[derive(Debug, Clone)]
pub struct ActorStatus {
    pub ok: bool,
    pub detail: String,
}

/// The address of every actor and service, shared with the HTTP layer as `web::Data<Services>`.
///
/// The store handle is not public: adapters reach the data through the operations of
/// [`door`] (`services.patients()`, `services.records()`, ...).
#[derive(Clone)]
pub struct Services {
    pub(crate) db: Db,
    /// Redis, when configured (cache, revocations, the bus); checked by `/readyz`.
    pub(crate) redis: Option<Redis>,
    pub bus: Bus,
    pub queue: JobQueue,
    pub jobs: Handle<JobRunner>,
    /// The embedding provider (local MiniLM, external, or off) and its state.
    pub embeddings: Arc<Embeddings>,
    /// Stored embeddings made by another model than the configured one (checked at start).
    pub stale_embeddings: Arc<RwLock<Vec<Space>>>,
    /// Accounts, sessions, MFA and tokens.
    pub identity: Identity,
    pub auth_actor: Handle<AuthActor>,
    /// Access decisions.
    pub access: Access,
    /// The audit writer, and the actor behind it.
    pub audit: Audit,
    pub audit_actor: Handle<AuditActor>,
    /// Scheduling rules of the clinic directory.
    pub clinic: clinic::Clinic,
    /// Hot reads without patient data (reference data, clinicians), in Redis when configured.
    pub cache: careport_store::Cache,
    /// WebAssembly plugins.
    pub plugins: plugins::Plugins,
    pub plugin_actor: Handle<plugins_actor::PluginActor>,
    /// The document vault and its janitor.
    pub vault: vault::Vault,
    pub files: Handle<vault::FilesActor>,
    /// OCR: asking, reading, and (on a node that runs jobs) the supervisor of the workers.
    pub ocr: ocr::Ocr,
    pub ocr_supervisor: Option<Handle<ocr::OcrSupervisor>>,
    ocr_pool: Option<ocr::pool::OcrPool>,
    pub knowledge: knowledge::Knowledge,
    /// The assistant's state on this node (the model, limits, actions awaiting confirmation).
    pub chat: chat::Chat,
    /// Picks suggested questions.
    pub suggest: Handle<chat::SuggestActor>,
    /// This node among the others: its heartbeat and what it hears of them.
    pub cluster: cluster::Cluster,
}

/// How long a cached entry lives at most (invalidation on write makes it fresh before that).
pub const CACHE_TTL_SECS: u64 = 60;

/// What the identity service needs beyond the store.
pub struct IdentityDeps {
    pub redis: Option<Redis>,
    pub mailer: Arc<mail::Mailer>,
    pub policies: careport_policy::Policies,
    pub config: AuthConfig,
    pub token_key: secrecy::SecretString,
    pub master_key: secrecy::SecretString,
    pub public_url: String,
}

/// What the clinic directory, the plugin host, the vault and OCR need.
pub struct FeatureDeps {
    pub clinic: clinic::ClinicConfig,
    pub plugins: plugins::Plugins,
    pub vault: vault::Vault,
    pub ocr: ocr::OcrConfig,
    /// The knowledge base's service (made by the runtime, which knows the model's tokenizer).
    pub knowledge: knowledge::Knowledge,
    /// The assistant (made by the runtime, which knows `[llm]` and `[chat]`).
    pub chat: chat::Chat,
    /// Whether this process runs jobs (a server) or only queues them (a CLI command): the OCR
    /// workers start only where jobs run.
    pub run_jobs: bool,
    /// This build's version and how often a serving node announces itself.
    pub version: String,
    pub heartbeat: Duration,
}

impl Services {
    /// Start every actor under a `Supervisor`. Must run inside an actix System.
    pub async fn start(
        db: Db,
        bus: Bus,
        queue: JobQueue,
        embeddings: Arc<Embeddings>,
        handlers: Vec<Arc<dyn JobHandler>>,
        identity: IdentityDeps,
        features: FeatureDeps,
    ) -> Result<Self, careport_domain::Error> {
        let FeatureDeps { clinic, plugins, vault, ocr: ocr_config, knowledge, chat, run_jobs, version, heartbeat } =
            features;
        let cluster = cluster::Cluster::new(db.clone(), bus.clone(), queue.clone(), &version, heartbeat);
        if run_jobs {
            // A serving node (a CLI command is not one).
            cluster.start();
        }
        let mut handlers = handlers;
        // The spaces first: a changed model is recorded before any job can run.
        let needs_reindex = knowledge.init(run_jobs).await?;
        knowledge.follow_spaces();
        if run_jobs {
            handlers.push(Arc::new(knowledge::KnowledgeHandler::new(knowledge.clone(), vault.clone())));
            handlers.push(Arc::new(imaging::job::PreviewHandler::new(db.clone(), vault.clone())));
        }
        let ocr = ocr::Ocr::new(db.clone(), bus.clone(), vault.clone(), plugins.clone(), ocr_config);
        let mut ocr_pool = None;
        let ocr_supervisor = if run_jobs && ocr.config().enabled {
            ocr.check_packs();
            let cfg = ocr.config();
            let pool = ocr::pool::OcrPool::start(cfg.cpu_workers(), cfg.trocr_dir.as_deref(), cfg.gpu_batch);
            ocr_pool = Some(pool.clone());
            let actor_ocr = ocr.clone();
            let addr = Supervisor::start(move |_| ocr::OcrSupervisor::new(actor_ocr.clone(), pool.clone()));
            handlers.push(Arc::new(ocr::OcrHandler::new(addr.clone(), cfg.concurrent_jobs)));
            Some(Handle::new("ocr", addr))
        } else {
            None
        };
        let actor_vault = vault.clone();
        let files = Handle::new("files", Supervisor::start(move |_| vault::FilesActor::new(actor_vault.clone())));
        let actor_plugins = plugins.clone();
        let plugin_actor =
            Handle::new("plugins", Supervisor::start(move |_| plugins_actor::PluginActor::new(actor_plugins.clone())));
        let cache = careport_store::Cache::new(identity.redis.clone(), CACHE_TTL_SECS);
        let redis = identity.redis.clone();
        let clinic = clinic::Clinic::new(db.clone(), queue.clone(), cache.clone(), redis.clone(), clinic)
            .map_err(careport_domain::Error::internal)?;
        let runner_queue = queue.clone();
        let jobs =
            Handle::new("jobs", Supervisor::start(move |_| JobRunner::new(runner_queue.clone(), handlers.clone())));
        let audit_db = db.clone();
        let master_text = secrecy::ExposeSecret::expose_secret(&identity.master_key);
        let master = careport_vault::MasterKey::from_text(master_text)
            .map_err(|_| careport_domain::Error::internal(anyhow::anyhow!("the master key is not a Fernet key")))?;
        let chain_key = vault::chain_key(&db, &master, master_text).await?;
        let writer = audit::Writer::new(audit_db, chain_key);
        let actor_writer = writer.clone();
        let audit_actor = Handle::new("audit", Supervisor::start(move |_| AuditActor::new(actor_writer.clone())));
        let audit = Audit::new(audit_actor.clone(), writer);
        let policies = identity.policies.with_limits(identity.config.policy);
        let auth = Identity::new(identity::AuthDeps {
            db: db.clone(),
            bus: bus.clone(),
            redis: identity.redis,
            audit: audit.clone(),
            mailer: identity.mailer,
            config: identity.config,
            token_key: identity.token_key,
            master_key: identity.master_key,
            public_url: identity.public_url,
        })
        .await?;
        // Before serving: every revocation whose tokens may still be alive.
        auth.load_recent_revocations().await?;
        let actor_auth = auth.clone();
        let auth_actor = Handle::new("auth", Supervisor::start(move |_| AuthActor::new(actor_auth.clone())));
        let access = Access::new(db.clone(), policies, audit.clone(), auth.clone());
        let suggest_knowledge = knowledge.clone();
        let suggest =
            Handle::new("suggest", Supervisor::start(move |_| chat::SuggestActor::new(suggest_knowledge.clone())));
        let services = Self {
            db,
            redis,
            bus,
            queue,
            jobs,
            embeddings,
            stale_embeddings: Arc::default(),
            identity: auth,
            auth_actor,
            access,
            audit,
            audit_actor,
            clinic,
            cache,
            plugins,
            plugin_actor,
            vault,
            files,
            ocr,
            ocr_supervisor,
            ocr_pool,
            knowledge,
            chat,
            suggest,
            cluster,
        };
        // The configured embedding model is not the active space's: re-embed everything (once,
        // whichever node starts first), answering from the old space meanwhile.
        if needs_reindex
            && let Some((model, _)) = services.knowledge.configured()
            && careport_store::knowledge::active_reindex(&services.db)
                .await
                .map_err(careport_domain::Error::store)?
                .is_empty()
        {
            tracing::warn!(model = %model, "the embedding model changed: the knowledge base is re-embedded by a job");
            door::knowledge::queue_reindex(&services, &model, None).await?;
        }
        Ok(services)
    }

    /// The store handle itself, for tests that arrange data and for the operator's CLI
    /// (migrations, key rotation). Adapters of the door (HTTP, chat tools) never use it;
    /// `.ci/check-architecture.sh` fails if `runtime/src/http` does.
    pub fn store_handle(&self) -> &Db {
        &self.db
    }

    /// The store's backend (`sqlite` or `postgres`), for `/readyz` and `/metrics`.
    pub fn store_backend(&self) -> &'static str {
        self.db.backend().as_str()
    }

    /// Whether the store answers within `timeout`.
    pub async fn ping_store(&self, timeout: Duration) -> anyhow::Result<()> {
        self.db.ping(timeout).await
    }

    /// The store's connections: (open, idle).
    pub fn store_pool_stats(&self) -> (u32, u32) {
        self.db.pool_stats()
    }

    /// Whether Redis answers within `timeout`; `None` when none is configured.
    pub async fn ping_redis(&self, timeout: Duration) -> Option<anyhow::Result<()>> {
        match &self.redis {
            Some(r) => Some(r.ping(timeout).await),
            None => None,
        }
    }

    /// This node's OCR pages waiting for a worker and workers busy; `None` where OCR jobs do
    /// not run.
    pub fn ocr_load(&self) -> Option<(usize, usize)> {
        self.ocr_pool.as_ref().map(|p| (p.queued(), p.busy()))
    }

    /// The GPU OCR worker: running (`Ok`), or why it is off; `None` where OCR jobs do not run.
    pub fn ocr_gpu(&self) -> Option<Result<(), String>> {
        self.ocr_pool.as_ref().map(|p| match p.gpu() {
            ocr::pool::GpuState::Running => Ok(()),
            ocr::pool::GpuState::Off(why) => Err(why.clone()),
        })
    }

    /// Close the store's connections (at shutdown).
    pub async fn close_store(&self) {
        self.db.close().await;
    }

    /// Find stored embeddings that the configured model cannot search (another model or
    /// dimension) and say so: they need re-embedding, never mixing into one space.
    pub async fn check_embedding_spaces(&self) -> Result<Vec<Space>, sqlx::Error> {
        let Some(model) = self.embeddings.model_id() else { return Ok(Vec::new()) };
        let stale = stored::stale(&self.db, model, self.embeddings.dimension()).await?;
        for space in &stale {
            tracing::warn!(
                count = space.count,
                stored_model = %space.model,
                stored_dim = space.dim,
                configured_model = model,
                "stored embeddings were made by another model and need re-embedding"
            );
        }
        *self.stale_embeddings.write().unwrap_or_else(|p| p.into_inner()) = stale.clone();
        Ok(stale)
    }

    /// Ask each actor whether it is serving, each bounded by `timeout`.
    pub async fn actor_health(&self, timeout: Duration) -> Vec<(&'static str, ActorStatus)> {
        let (jobs, auth, audit, plugins, files, suggest) = tokio::join!(
            self.jobs.ping(timeout),
            self.auth_actor.ping(timeout),
            self.audit_actor.ping(timeout),
            self.plugin_actor.ping(timeout),
            self.files.ping(timeout),
            self.suggest.ping(timeout)
        );
        let mut health = vec![
            (self.jobs.name(), jobs),
            (self.auth_actor.name(), auth),
            (self.audit_actor.name(), audit),
            (self.plugin_actor.name(), plugins),
            (self.files.name(), files),
            (self.suggest.name(), suggest),
        ];
        if let Some(ocr) = &self.ocr_supervisor {
            health.push((ocr.name(), ocr.ping(timeout).await));
        }
        health
    }

    /// Messages sent to each actor and not yet answered.
    pub fn mailbox_depths(&self) -> Vec<(&'static str, i64)> {
        vec![
            (self.jobs.name(), self.jobs.depth()),
            (self.auth_actor.name(), self.auth_actor.depth()),
            (self.audit_actor.name(), self.audit_actor.depth()),
            (self.plugin_actor.name(), self.plugin_actor.depth()),
            (self.files.name(), self.files.depth()),
            (self.suggest.name(), self.suggest.depth()),
        ]
        .into_iter()
        .chain(self.ocr_supervisor.as_ref().map(|o| (o.name(), o.depth())))
        .collect()
    }

    /// Stop taking work, let running jobs finish within `grace`, hand back this node's job
    /// leases, and stop the actors.
    pub async fn shutdown(&self, grace: Duration) {
        self.cluster.drain().await;
        match self.jobs.send(jobs::Drain { grace }).await {
            Ok(unfinished) if unfinished > 0 => {
                tracing::warn!(unfinished, "jobs still running at shutdown; their leases are handed back")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "job runner did not answer at shutdown"),
        }
        match self.queue.release_own().await {
            Ok(n) if n > 0 => tracing::info!(released = n, "job leases handed back"),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "could not hand back job leases; they will expire")
            }
        }
    }
}
