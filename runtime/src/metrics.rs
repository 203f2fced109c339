//! Prometheus metrics of one process: HTTP requests and latency by route pattern, actor
//! mailbox depth, job queue depth by state, store connections. Each `Application` owns its
//! registry, so tests running several apps never mix their numbers.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_latency: HistogramVec,
    pub mailbox_depth: IntGaugeVec,
    pub jobs: IntGaugeVec,
    pub db_connections: IntGaugeVec,
    pub component_up: IntGaugeVec,
    /// Per-plugin totals and p99, copied from the plugin registry at each scrape.
    pub plugin_calls: IntGaugeVec,
    pub plugin_errors: IntGaugeVec,
    pub plugin_p99_us: IntGaugeVec,
    pub embedding_queue: IntGauge,
    pub embedding_batches: IntGauge,
    pub embedding_texts: IntGauge,
    /// OCR: jobs by state in the cluster; this node's pages by engine, the time spent on them,
    /// pages waiting for a worker and workers busy (copied at each scrape).
    pub ocr_jobs: IntGaugeVec,
    pub ocr_pages: IntGaugeVec,
    pub ocr_page_micros: IntGauge,
    pub ocr_pages_queued: IntGauge,
    pub ocr_workers_busy: IntGauge,
    /// Knowledge base: searches on this node and the time they took (the route's latency
    /// histogram is `http_request_duration_seconds{route="/api/v1/knowledge/search"}`), the
    /// in-process index's size, embedding jobs by state in the cluster.
    pub knowledge_searches: IntGauge,
    pub knowledge_search_micros: IntGauge,
    pub knowledge_index_vectors: IntGauge,
    pub knowledge_index_bytes: IntGauge,
    pub knowledge_jobs: IntGaugeVec,
    /// Chat on this node: answers by mode, emergencies answered, tool calls and refusals,
    /// answers the model failed, sockets open (copied at each scrape).
    pub chat_answers: IntGaugeVec,
    pub chat_emergencies: IntGauge,
    pub chat_tool_calls: IntGaugeVec,
    pub chat_fallbacks: IntGauge,
    pub chat_sockets: IntGauge,
    /// `careport_node_info{node, version} 1`: which node this is (set at each scrape), and its
    /// uptime and this node's job tally.
    pub node_info: IntGaugeVec,
    pub node_uptime_seconds: IntGauge,
    pub node_jobs: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> anyhow::Result<Self> {
        let registry = Registry::new_custom(Some("careport".into()), None)?;
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by method, route pattern and status"),
            &["method", "route", "status"],
        )?;
        let http_latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by method and route pattern")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["method", "route"],
        )?;
        let mailbox_depth = IntGaugeVec::new(
            Opts::new("actor_mailbox_depth", "Messages sent to an actor and not yet answered"),
            &["actor"],
        )?;
        let jobs = IntGaugeVec::new(Opts::new("jobs", "Jobs in the durable queue by state"), &["state"])?;
        let db_connections = IntGaugeVec::new(Opts::new("db_connections", "Store pool connections"), &["state"])?;
        let component_up = IntGaugeVec::new(
            Opts::new("component_up", "1 when a component answered its last readiness check"),
            &["component"],
        )?;
        let plugin_calls =
            IntGaugeVec::new(Opts::new("plugin_calls_total", "Calls to each plugin since start"), &["plugin"])?;
        let plugin_errors =
            IntGaugeVec::new(Opts::new("plugin_errors_total", "Failed calls to each plugin since start"), &["plugin"])?;
        let plugin_p99_us = IntGaugeVec::new(
            Opts::new("plugin_call_p99_microseconds", "p99 of each plugin's last 1,024 calls"),
            &["plugin"],
        )?;
        let embedding_queue = IntGauge::new("embedding_queue_depth", "Embedding requests waiting for the local model")?;
        // Running totals kept by the embedding thread, copied at each scrape.
        let embedding_batches = IntGauge::new("embedding_batches_total", "Batches run by the local model")?;
        let embedding_texts = IntGauge::new("embedding_texts_total", "Texts embedded by the local model")?;
        let ocr_jobs = IntGaugeVec::new(Opts::new("ocr_jobs", "OCR jobs by state (whole cluster)"), &["state"])?;
        let ocr_pages = IntGaugeVec::new(
            Opts::new(
                "ocr_pages_total",
                "Pages read by this node since start, by engine (text-layer, tesseract, trocr)",
            ),
            &["engine"],
        )?;
        let ocr_page_micros = IntGauge::new(
            "ocr_page_microseconds_total",
            "Time this node's workers spent reading pages (divide by ocr_pages_total for the mean latency)",
        )?;
        let ocr_pages_queued = IntGauge::new("ocr_pages_queued", "Pages waiting for an OCR worker on this node")?;
        let ocr_workers_busy = IntGauge::new("ocr_workers_busy", "OCR workers reading a page now on this node")?;
        let knowledge_searches = IntGauge::new("knowledge_searches_total", "Knowledge searches answered by this node")?;
        let knowledge_search_micros = IntGauge::new(
            "knowledge_search_microseconds_total",
            "Time this node spent answering knowledge searches (divide by knowledge_searches_total for the mean)",
        )?;
        let knowledge_index_vectors =
            IntGauge::new("knowledge_index_vectors", "Chunk vectors in this node's in-process index (embedded store)")?;
        let knowledge_index_bytes =
            IntGauge::new("knowledge_index_bytes", "Memory of this node's in-process knowledge index")?;
        let knowledge_jobs =
            IntGaugeVec::new(Opts::new("knowledge_jobs", "Embedding jobs by state (whole cluster)"), &["state"])?;
        registry.register(Box::new(knowledge_jobs.clone()))?;
        let chat_answers =
            IntGaugeVec::new(Opts::new("chat_answers_total", "Chat answers by this node, by mode"), &["mode"])?;
        let chat_tool_calls = IntGaugeVec::new(
            Opts::new("chat_tool_calls_total", "Chat tool calls on this node (all, and refused as the API refuses)"),
            &["outcome"],
        )?;
        let chat_emergencies =
            IntGauge::new("chat_emergencies_total", "Chat messages answered with the emergency message first")?;
        let chat_fallbacks = IntGauge::new(
            "chat_fallbacks_total",
            "Chat answers made from passages because the language model failed or redaction stopped the text",
        )?;
        let chat_sockets = IntGauge::new("chat_sockets", "Chat WebSockets open on this node")?;
        registry.register(Box::new(chat_answers.clone()))?;
        registry.register(Box::new(chat_tool_calls.clone()))?;
        for m in [&chat_emergencies, &chat_fallbacks, &chat_sockets] {
            registry.register(Box::new(m.clone()))?;
        }
        for m in [&knowledge_searches, &knowledge_search_micros, &knowledge_index_vectors, &knowledge_index_bytes] {
            registry.register(Box::new(m.clone()))?;
        }
        for m in [&ocr_jobs, &ocr_pages] {
            registry.register(Box::new(m.clone()))?;
        }
        for m in [&ocr_page_micros, &ocr_pages_queued, &ocr_workers_busy] {
            registry.register(Box::new(m.clone()))?;
        }
        let node_info =
            IntGaugeVec::new(Opts::new("node_info", "This node's name and version (always 1)"), &["node", "version"])?;
        let node_uptime_seconds = IntGauge::new("node_uptime_seconds", "Seconds since this node started")?;
        let node_jobs = IntGaugeVec::new(
            Opts::new(
                "node_jobs",
                "Jobs leased to this node now (running), completed and failed by it since it started",
            ),
            &["state"],
        )?;
        registry.register(Box::new(node_info.clone()))?;
        registry.register(Box::new(node_uptime_seconds.clone()))?;
        registry.register(Box::new(node_jobs.clone()))?;
        registry.register(Box::new(embedding_queue.clone()))?;
        registry.register(Box::new(embedding_batches.clone()))?;
        registry.register(Box::new(embedding_texts.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_latency.clone()))?;
        registry.register(Box::new(mailbox_depth.clone()))?;
        registry.register(Box::new(jobs.clone()))?;
        registry.register(Box::new(db_connections.clone()))?;
        registry.register(Box::new(component_up.clone()))?;
        registry.register(Box::new(plugin_calls.clone()))?;
        registry.register(Box::new(plugin_errors.clone()))?;
        registry.register(Box::new(plugin_p99_us.clone()))?;
        Ok(Self {
            registry,
            http_requests,
            http_latency,
            mailbox_depth,
            jobs,
            db_connections,
            component_up,
            plugin_calls,
            plugin_errors,
            plugin_p99_us,
            embedding_queue,
            embedding_batches,
            embedding_texts,
            ocr_jobs,
            ocr_pages,
            ocr_page_micros,
            ocr_pages_queued,
            ocr_workers_busy,
            knowledge_searches,
            knowledge_search_micros,
            knowledge_index_vectors,
            knowledge_index_bytes,
            knowledge_jobs,
            chat_answers,
            chat_emergencies,
            chat_tool_calls,
            chat_fallbacks,
            chat_sockets,
            node_info,
            node_uptime_seconds,
            node_jobs,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> anyhow::Result<String> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        Ok(String::from_utf8(buf)?)
    }
}
