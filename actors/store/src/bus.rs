//! Cross-node events (session revocation, job progress, plugin reloads): publish on one node,
//! every subscriber on every node hears it — this node included.
//!
//! With Redis, events travel over Redis pub/sub: one task per process holds a dedicated
//! connection subscribed to `<prefix>bus:*` and fans messages out to local subscribers,
//! reconnecting with backoff when Redis goes away. Without Redis, events stay in process.
//!
//! Pub/sub is fire-and-forget: an event published while a node is disconnected does not reach
//! it. Anything that must not be missed (a revoked session) is also written to the store and
//! checked there; the event only makes it take effect at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::redis::Redis;

/// How many events a slow subscriber may fall behind before it misses some (it is told so).
const CHANNEL_CAPACITY: usize = 1024;

/// An event as subscribers receive it.
pub type Event = Arc<[u8]>;

/// The publish/subscribe helper. Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    channels: Mutex<HashMap<String, broadcast::Sender<Event>>>,
    redis: Option<Redis>,
    connected: AtomicBool,
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut l) = self.listener.lock()
            && let Some(h) = l.take()
        {
            h.abort();
        }
    }
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").field("redis", &self.inner.redis.is_some()).finish()
    }
}

impl Bus {
    /// An in-process bus.
    pub fn local() -> Self {
        Self::build(None)
    }

    /// A bus over Redis when one is given, in process otherwise. Must be called inside a
    /// Tokio runtime (it spawns the listener).
    pub fn new(redis: Option<Redis>) -> Self {
        let bus = Self::build(redis);
        if bus.inner.redis.is_some() {
            let weak = Arc::downgrade(&bus.inner);
            let handle = tokio::spawn(listen(weak));
            if let Ok(mut l) = bus.inner.listener.lock() {
                *l = Some(handle);
            }
        }
        bus
    }

    fn build(redis: Option<Redis>) -> Self {
        Self {
            inner: Arc::new(Inner {
                channels: Mutex::new(HashMap::new()),
                connected: AtomicBool::new(redis.is_none()),
                redis,
                listener: Mutex::new(None),
            }),
        }
    }

    /// Whether events reach other nodes: always true in process; with Redis, whether the
    /// subscription is up.
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Relaxed)
    }

    pub fn is_distributed(&self) -> bool {
        self.inner.redis.is_some()
    }

    /// Hear every event published on `channel` from now on, by any node.
    pub fn subscribe(&self, channel: &str) -> broadcast::Receiver<Event> {
        sender(&self.inner, channel).subscribe()
    }

    /// Publish an event. In process it reaches local subscribers; with Redis it goes to every
    /// node (this one hears it back through its own subscription).
    pub async fn publish(&self, channel: &str, payload: &[u8]) -> anyhow::Result<()> {
        match &self.inner.redis {
            None => {
                deliver(&self.inner, channel, payload);
                Ok(())
            }
            Some(redis) => {
                let mut conn = redis.conn().await?;
                let full = format!("{}bus:{channel}", redis.prefix());
                let _: i64 = redis::cmd("PUBLISH").arg(full).arg(payload).query_async(&mut *conn).await?;
                Ok(())
            }
        }
    }
}

fn sender(inner: &Inner, channel: &str) -> broadcast::Sender<Event> {
    let mut map = inner.channels.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(channel.to_owned()).or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0).clone()
}

fn deliver(inner: &Inner, channel: &str, payload: &[u8]) {
    let map = inner.channels.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(tx) = map.get(channel) {
        // No receiver is not an error: nobody on this node listens to that channel.
        let _ = tx.send(Arc::from(payload));
    }
}

/// Keep one Redis subscription up for as long as the bus lives, reconnecting with backoff.
async fn listen(weak: std::sync::Weak<Inner>) {
    let mut delay = Duration::from_millis(200);
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let Some(redis) = inner.redis.clone() else {
            return;
        };
        let pattern = format!("{}bus:*", redis.prefix());
        let strip = pattern.len() - 1;
        drop(inner);
        match redis.client().get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.psubscribe(&pattern).await {
                Ok(()) => {
                    delay = Duration::from_millis(200);
                    if let Some(inner) = weak.upgrade() {
                        inner.connected.store(true, Ordering::Relaxed);
                    }
                    tracing::info!("event bus subscribed to Redis");
                    let mut messages = pubsub.into_on_message();
                    while let Some(msg) = messages.next().await {
                        let Some(inner) = weak.upgrade() else { return };
                        let channel = msg.get_channel_name();
                        if channel.len() >= strip {
                            deliver(&inner, &channel[strip..], msg.get_payload_bytes());
                        }
                    }
                    tracing::warn!("event bus lost its Redis subscription; reconnecting");
                }
                Err(e) => tracing::warn!(error = %e, "event bus could not subscribe"),
            },
            Err(e) => tracing::warn!(error = %e, "event bus could not connect to Redis"),
        }
        if let Some(inner) = weak.upgrade() {
            inner.connected.store(false, Ordering::Relaxed);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_bus_delivers_to_every_subscriber_of_the_channel() {
        let bus = Bus::local();
        let mut a = bus.subscribe("revocations");
        let mut b = bus.subscribe("revocations");
        let mut other = bus.subscribe("jobs");
        bus.publish("revocations", b"session-1").await.expect("publish");
        assert_eq!(&*a.recv().await.expect("a"), b"session-1");
        assert_eq!(&*b.recv().await.expect("b"), b"session-1");
        assert!(other.try_recv().is_err());
    }
}
