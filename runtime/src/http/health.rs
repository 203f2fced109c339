//! `GET /healthz` (the process answers) and `GET /readyz` (it can serve: store, Redis, event
//! bus and every actor checked, each bounded by a short timeout).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use careport_actors::Services;
use careport_ml::ModelStatus;
use serde::Serialize;

use crate::metrics::Metrics;

/// Bound on each component's check, so one hung dependency cannot hang the probe.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
const REDIS_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Set when the process has begun shutting down: `/readyz` answers 503 so that load balancers
/// stop sending new requests while in-flight ones drain.
#[derive(Clone, Default)]
pub struct ShutdownFlag(pub Arc<AtomicBool>);

impl ShutdownFlag {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed)
    }
}

#[derive(Serialize, utoipa::ToSchema, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Degraded,
    Down,
    /// Turned off by the operator; does not affect readiness.
    Disabled,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Component {
    pub status: Status,
    pub detail: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ok`; `degraded` when an optional part is down; `down` (HTTP 503) when a required one is.
    pub status: Status,
    /// The node that answered (`cluster.node_name`), so that behind a load balancer one can tell.
    pub node: String,
    pub components: BTreeMap<String, Component>,
}

/// Liveness: the process is up and its HTTP workers answer.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process is alive", body = String)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ok")
}

/// Readiness: whether this node can serve requests now.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready (status ok or degraded)", body = Readiness),
        (status = 503, description = "A required component is down", body = Readiness)
    )
)]
pub async fn readyz(
    services: web::Data<Services>,
    shutdown: web::Data<ShutdownFlag>,
    metrics: web::Data<Metrics>,
) -> HttpResponse {
    let mut components = BTreeMap::new();
    let mut required_down = false;
    let mut optional_down = false;

    let (store, redis_check, actors) = futures_util::join!(
        services.ping_store(CHECK_TIMEOUT),
        // Optional, and a load balancer's check must stay quick while it is away.
        services.ping_redis(REDIS_CHECK_TIMEOUT),
        services.actor_health(CHECK_TIMEOUT),
    );

    let backend = services.store_backend();
    let mut put = |name: String, status: Status, detail: String, required: bool| {
        let up = matches!(status, Status::Ok | Status::Disabled);
        metrics.component_up.with_label_values(&[name.as_str()]).set(i64::from(up));
        if !up {
            if required {
                required_down = true;
            } else {
                optional_down = true;
            }
        }
        let status = if up || !required { status } else { Status::Down };
        components.insert(name, Component { status, detail });
    };
    let ok = |up: bool| if up { Status::Ok } else { Status::Down };

    match store {
        Ok(()) => put("store".into(), Status::Ok, backend.into(), true),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "readiness: store is down");
            put("store".into(), Status::Down, format!("{backend} unreachable"), true)
        }
    }
    if let Some(check) = redis_check {
        match check {
            Ok(()) => put("redis".into(), Status::Ok, "connected".into(), false),
            // Every use of Redis falls back (the cache to the store, throttles to this node's
            // counters, revocations to the store poll): the node serves on, degraded.
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "readiness: Redis is down");
                put("redis".into(), Status::Down, "unreachable: serving without it (degraded)".into(), false)
            }
        }
        let bus = services.bus.is_connected();
        let (status, detail) = if bus { (Status::Ok, "subscribed") } else { (Status::Degraded, "resubscribing") };
        put("bus".into(), status, detail.into(), false);
    }
    for (name, status) in actors {
        put(format!("actor.{name}"), ok(status.ok), status.detail, true);
    }
    // The model is optional for readiness: without it the portal still serves records and
    // appointments, and the features that need embeddings answer 503 themselves.
    match services.embeddings.status() {
        ModelStatus::Ready(detail) => put("model".into(), Status::Ok, detail, false),
        ModelStatus::Down(why) => put("model".into(), Status::Down, why, false),
        ModelStatus::Off => put("model".into(), Status::Disabled, "embedding_provider = off".into(), false),
    }
    let stale = services.stale_embeddings.read().map(|s| s.clone()).unwrap_or_default();
    if let (false, Some(model)) = (stale.is_empty(), services.embeddings.model_id()) {
        let spaces: Vec<String> =
            stale.iter().map(|s| format!("{} from {} ({} dimensions)", s.count, s.model, s.dim)).collect();
        let detail = format!("stored embeddings need re-embedding for {model}: {}", spaces.join("; "));
        put("embeddings".into(), Status::Degraded, detail, false);
    }
    // OCR is optional: a missing language pack refuses that language (503, named) and degrades
    // the node; the GPU worker being off only means the CPU workers read every page.
    let missing = services.ocr.missing_packs().await;
    if missing.is_empty() {
        put("ocr".into(), Status::Ok, "Tesseract with eng, spa, fra, ara, chi_sim, hin".into(), false);
    } else {
        put("ocr".into(), Status::Degraded, format!("language packs missing: {}", missing.join(", ")), false);
    }
    match services.ocr_gpu() {
        Some(Ok(())) => put("ocr.gpu".into(), Status::Ok, "TrOCR worker running".into(), false),
        Some(Err(why)) => put("ocr.gpu".into(), Status::Disabled, why, false),
        None => put("ocr.gpu".into(), Status::Disabled, "OCR jobs do not run on this node".into(), false),
    }
    // Plugins are optional: a plugin that failed to load degrades the node, never stops it.
    let failed = services.plugins.failed();
    let loaded = services.plugins.list();
    let enabled = loaded.iter().filter(|p| p.enabled).count();
    if failed.is_empty() {
        put("plugins".into(), Status::Ok, format!("{} loaded, {enabled} enabled", loaded.len()), false);
    } else {
        let names: Vec<&str> = failed.keys().map(String::as_str).collect();
        put(
            "plugins".into(),
            Status::Degraded,
            format!("{} loaded; failed: {}", loaded.len(), names.join(", ")),
            false,
        );
    }
    if shutdown.is_set() {
        put("lifecycle".into(), Status::Down, "shutting down".into(), true);
    }

    let status = if required_down {
        Status::Down
    } else if optional_down {
        Status::Degraded
    } else {
        Status::Ok
    };
    let body = Readiness { status, node: services.cluster.node().to_owned(), components };
    if status == Status::Down { HttpResponse::ServiceUnavailable().json(body) } else { HttpResponse::Ok().json(body) }
}

/// Prometheus metrics of this node.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", body = String)))]
pub async fn metrics(services: web::Data<Services>, metrics: web::Data<Metrics>) -> HttpResponse {
    for (actor, depth) in services.mailbox_depths() {
        metrics.mailbox_depth.with_label_values(&[actor]).set(depth);
    }
    match tokio::time::timeout(CHECK_TIMEOUT, services.queue.counts()).await {
        Ok(Ok(counts)) => {
            for state in ["queued", "running", "done", "dead"] {
                let n = counts.iter().find(|(s, _)| s == state).map_or(0, |(_, n)| *n);
                metrics.jobs.with_label_values(&[state]).set(n);
            }
        }
        // Keep the last known values; the store's state shows in `component_up`.
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics: could not count jobs"),
        Err(_) => tracing::warn!("metrics: counting jobs timed out"),
    }
    if let Some(stats) = services.embeddings.local_stats() {
        use std::sync::atomic::Ordering::Relaxed;
        metrics.embedding_queue.set(stats.queued.load(Relaxed) as i64);
        metrics.embedding_batches.set(stats.batches.load(Relaxed) as i64);
        metrics.embedding_texts.set(stats.texts.load(Relaxed) as i64);
    }
    for p in services.plugins.list() {
        let name = p.name.as_str();
        metrics.plugin_calls.with_label_values(&[name]).set(p.calls as i64);
        metrics.plugin_errors.with_label_values(&[name]).set(p.errors as i64);
        metrics.plugin_p99_us.with_label_values(&[name]).set(p.p99_us.unwrap_or(0) as i64);
    }
    if let Ok(Ok(counts)) = tokio::time::timeout(CHECK_TIMEOUT, services.text().counts()).await {
        for state in ["queued", "running", "done", "failed", "cancelled"] {
            let n = counts.iter().find(|(s, _)| s == state).map_or(0, |(_, n)| *n);
            metrics.ocr_jobs.with_label_values(&[state]).set(n);
        }
    }
    {
        use careport_actors::ocr::OcrCounters;
        let c = services.ocr.counters();
        for (engine, v) in [("text-layer", &c.pages_text_layer), ("tesseract", &c.pages_ocr), ("trocr", &c.pages_gpu)] {
            metrics.ocr_pages.with_label_values(&[engine]).set(OcrCounters::get(v) as i64);
        }
        metrics.ocr_page_micros.set(OcrCounters::get(&c.page_micros) as i64);
        if let Some((queued, busy)) = services.ocr_load() {
            metrics.ocr_pages_queued.set(queued as i64);
            metrics.ocr_workers_busy.set(busy as i64);
        }
    }
    {
        use std::sync::atomic::Ordering::Relaxed;
        let c = services.chat.counters();
        metrics.chat_answers.with_label_values(&["llm"]).set(c.answers_llm.load(Relaxed) as i64);
        metrics.chat_answers.with_label_values(&["grounded"]).set(c.answers_grounded.load(Relaxed) as i64);
        metrics.chat_tool_calls.with_label_values(&["all"]).set(c.tool_calls.load(Relaxed) as i64);
        metrics.chat_tool_calls.with_label_values(&["refused"]).set(c.tool_refusals.load(Relaxed) as i64);
        metrics.chat_emergencies.set(c.emergencies.load(Relaxed) as i64);
        metrics.chat_fallbacks.set(c.fallbacks.load(Relaxed) as i64);
        metrics.chat_sockets.set(services.chat.sockets_open() as i64);
    }
    {
        use std::sync::atomic::Ordering::Relaxed;
        let c = services.knowledge.counters();
        metrics.knowledge_searches.set(c.searches.load(Relaxed) as i64);
        metrics.knowledge_search_micros.set(c.search_micros.load(Relaxed) as i64);
        if let Some(index) = services.knowledge.index() {
            metrics.knowledge_index_vectors.set(index.len() as i64);
            metrics.knowledge_index_bytes.set(index.memory_bytes() as i64);
        }
        if let Ok(Ok(counts)) =
            tokio::time::timeout(CHECK_TIMEOUT, careport_actors::door::knowledge::job_counts(&services)).await
        {
            for state in ["queued", "running", "done", "failed", "cancelled"] {
                let n = counts.iter().find(|(s, _)| s == state).map_or(0, |(_, n)| *n);
                metrics.knowledge_jobs.with_label_values(&[state]).set(n);
            }
        }
    }
    {
        let cluster = &services.cluster;
        metrics.node_info.with_label_values(&[cluster.node(), cluster.version()]).set(1);
        metrics.node_uptime_seconds.set(cluster.uptime().as_secs() as i64);
        let (done, failed) = services.queue.tally();
        if let Ok(Ok(running)) = tokio::time::timeout(CHECK_TIMEOUT, services.queue.running_here()).await {
            metrics.node_jobs.with_label_values(&["running"]).set(running);
        }
        metrics.node_jobs.with_label_values(&["done"]).set(done as i64);
        metrics.node_jobs.with_label_values(&["failed"]).set(failed as i64);
    }
    let (open, idle) = services.store_pool_stats();
    metrics.db_connections.with_label_values(&["open"]).set(i64::from(open));
    metrics.db_connections.with_label_values(&["idle"]).set(i64::from(idle));
    match metrics.render() {
        Ok(text) => HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(text),
        Err(e) => {
            tracing::error!(error = %e, "metrics: could not render");
            HttpResponse::InternalServerError().finish()
        }
    }
}
