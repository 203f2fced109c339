//! Who is in the cluster, as this node hears it: every serving node announces itself on the bus
//! (`cluster.nodes`) every `heartbeat` — name, version, uptime, readiness, its jobs — and keeps
//! what it hears of the others. A node not heard for three heartbeats is gone from the list.
//!
//! Nothing here decides anything: the store and the job leases stay the truth of who does what.
//! This is what an operator reads (`careport cluster status`, `GET /api/v1/admin/cluster`), so
//! that "is node 3 up, and is it taking jobs?" has an answer without logging into each machine.
//! A process that does not serve (a CLI command) asks with [`probe`]: it publishes
//! `cluster.ping`, and every node answers at once instead of at its next heartbeat.
//!
//! Without Redis the bus is in process: the list holds this node alone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use careport_domain::time::now_ms;
use careport_store::{Bus, Db, JobQueue};
use serde::{Deserialize, Serialize};

/// Heartbeats travel here.
pub const CHANNEL: &str = "cluster.nodes";
/// A request that every node announce itself now.
pub const PING: &str = "cluster.ping";
/// How many missed heartbeats make a node gone.
const MISSED: u32 = 3;
/// Bound on the store check inside a heartbeat.
const STORE_CHECK: Duration = Duration::from_secs(1);

/// One node as it describes itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeReport {
    pub node: String,
    pub version: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    pub uptime_secs: u64,
    /// `ready`, `draining` (shutting down: the load balancer should take it out) or
    /// `store_down` (its store does not answer).
    pub state: String,
    /// Jobs leased to this node now; jobs it completed and attempts it failed since it started.
    pub jobs_running: i64,
    pub jobs_done: u64,
    pub jobs_failed: u64,
    /// How often it announces itself.
    pub heartbeat_ms: u64,
    /// When it sent this report (its clock).
    pub sent_at_ms: i64,
}

/// A node in the list: its last report and how long ago it came.
#[derive(Debug, Clone, Serialize)]
pub struct NodeSeen {
    #[serde(flatten)]
    pub report: NodeReport,
    /// This node itself.
    #[serde(rename = "self")]
    pub this: bool,
    pub last_heard_ms_ago: u64,
}

/// This node's membership: its heartbeat and what it hears. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    node: String,
    version: String,
    started_at_ms: i64,
    started: Instant,
    heartbeat: Duration,
    bus: Bus,
    db: Db,
    queue: JobQueue,
    draining: AtomicBool,
    /// Stopped: no more heartbeats (the process may live on, as in tests).
    left: AtomicBool,
    heard: Mutex<HashMap<String, (NodeReport, Instant)>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node", &self.inner.node).finish()
    }
}

impl Cluster {
    /// This node's membership, not yet announced ([`Cluster::start`] does).
    pub fn new(db: Db, bus: Bus, queue: JobQueue, version: &str, heartbeat: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                node: queue.node().to_owned(),
                version: version.to_owned(),
                started_at_ms: now_ms(),
                started: Instant::now(),
                heartbeat: heartbeat.max(Duration::from_millis(100)),
                bus,
                db,
                queue,
                draining: AtomicBool::new(false),
                left: AtomicBool::new(false),
                heard: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn node(&self) -> &str {
        &self.inner.node
    }

    pub fn version(&self) -> &str {
        &self.inner.version
    }

    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Listen to the others and announce this node every heartbeat (and when pinged), for as
    /// long as the process lives. Must run inside a Tokio runtime.
    pub fn start(&self) {
        let mut reports = self.inner.bus.subscribe(CHANNEL);
        let mut pings = self.inner.bus.subscribe(PING);
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let event = match reports.recv().await {
                    Ok(event) => event,
                    // Fell behind: the next heartbeats fill the list again.
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                };
                let Some(inner) = weak.upgrade() else { return };
                if let Ok(report) = serde_json::from_slice::<NodeReport>(&event) {
                    Self { inner }.record(report);
                }
            }
        });
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let Some(period) = weak.upgrade().map(|i| i.heartbeat) else { return };
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    ping = pings.recv() => {
                        if matches!(ping, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                            return;
                        }
                    }
                }
                let Some(inner) = weak.upgrade() else { return };
                if inner.left.load(Ordering::Relaxed) {
                    return;
                }
                Self { inner }.announce().await;
            }
        });
    }

    /// Publish this node's report now (best effort: a lost heartbeat is the next one's job).
    pub async fn announce(&self) {
        let report = self.report().await;
        let Ok(payload) = serde_json::to_vec(&report) else { return };
        if !self.inner.bus.is_distributed() {
            // In process the bus would deliver it too; recording it here keeps the list right
            // even before the listener task has run.
            self.record(report);
            return;
        }
        if let Err(e) = self.inner.bus.publish(CHANNEL, &payload).await {
            tracing::debug!(error = %format!("{e:#}"), "could not announce this node");
            self.record(report);
        }
    }

    fn record(&self, report: NodeReport) {
        self.inner
            .heard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(report.node.clone(), (report, Instant::now()));
    }

    /// This node shuts down: it says so at once, and in every heartbeat until it has gone.
    pub async fn drain(&self) {
        self.inner.draining.store(true, Ordering::Relaxed);
        self.announce().await;
    }

    /// This node has stopped serving: it announces itself no more, and the others forget it
    /// after three heartbeats.
    pub fn leave(&self) {
        self.inner.left.store(true, Ordering::Relaxed);
    }

    /// This node's report as of now.
    pub async fn report(&self) -> NodeReport {
        let i = &self.inner;
        let (store, running) =
            tokio::join!(i.db.ping(STORE_CHECK), tokio::time::timeout(STORE_CHECK, i.queue.running_here()));
        let state = if i.draining.load(Ordering::Relaxed) {
            "draining"
        } else if store.is_err() {
            "store_down"
        } else {
            "ready"
        };
        let (done, failed) = i.queue.tally();
        NodeReport {
            node: i.node.clone(),
            version: i.version.clone(),
            backend: i.db.backend().as_str().to_owned(),
            started_at_ms: i.started_at_ms,
            uptime_secs: i.started.elapsed().as_secs(),
            state: state.to_owned(),
            jobs_running: running.ok().and_then(Result::ok).unwrap_or(-1),
            jobs_done: done,
            jobs_failed: failed,
            heartbeat_ms: u64::try_from(i.heartbeat.as_millis()).unwrap_or(u64::MAX),
            sent_at_ms: now_ms(),
        }
    }

    /// The nodes heard within three of their heartbeats, this one first (its report fresh),
    /// the others by name.
    pub async fn nodes(&self) -> Vec<NodeSeen> {
        let me = self.report().await;
        let mut others: Vec<NodeSeen> = {
            let mut heard = self.inner.heard.lock().unwrap_or_else(|p| p.into_inner());
            heard.retain(|_, (r, at)| at.elapsed() < Duration::from_millis(r.heartbeat_ms.max(100)) * MISSED);
            heard
                .values()
                .filter(|(r, _)| r.node != me.node)
                .map(|(r, at)| NodeSeen { report: r.clone(), this: false, last_heard_ms_ago: millis(at.elapsed()) })
                .collect()
        };
        others.sort_by(|a, b| a.report.node.cmp(&b.report.node));
        let mut all = vec![NodeSeen { report: me, this: true, last_heard_ms_ago: 0 }];
        all.extend(others);
        all
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Ask every node on the bus to announce itself and collect the answers for `wait` (for a
/// process that is not a node, such as `careport cluster status`). Sorted by node name.
pub async fn probe(bus: &Bus, wait: Duration) -> anyhow::Result<Vec<NodeReport>> {
    let mut reports = bus.subscribe(CHANNEL);
    // The subscription must be up before asking, or the first answers pass unheard.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !bus.is_connected() {
        anyhow::ensure!(Instant::now() < deadline, "the event bus (Redis) is not reachable");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bus.publish(PING, b"{}").await?;
    let mut heard: HashMap<String, NodeReport> = HashMap::new();
    let until = tokio::time::Instant::now() + wait;
    while let Ok(Ok(event)) = tokio::time::timeout_at(until, reports.recv()).await {
        if let Ok(r) = serde_json::from_slice::<NodeReport>(&event) {
            heard.insert(r.node.clone(), r);
        }
    }
    let mut all: Vec<NodeReport> = heard.into_values().collect();
    all.sort_by(|a, b| a.node.cmp(&b.node));
    Ok(all)
}
