//! The `PluginActor`: keeps this node's plugins the same as the store's — it installs a change
//! announced on the bus at once, and compares with the store every `plugins.sync_interval_ms`
//! as a backstop for an event it missed.

use actix::prelude::*;

use crate::plugins::{CHANNEL, Plugins};
use crate::{ActorStatus, Ping};

pub struct PluginActor {
    plugins: Plugins,
}

impl PluginActor {
    pub fn new(plugins: Plugins) -> Self {
        Self { plugins }
    }
}

impl Actor for PluginActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let mut rx = self.plugins.bus().subscribe(CHANNEL);
        let plugins = self.plugins.clone();
        ctx.spawn(
            async move {
                loop {
                    match rx.recv().await {
                        // Any change: compare with the store (this node's own events included;
                        // a version already served is skipped).
                        Ok(_) => {
                            plugins.sync().await;
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            plugins.sync().await;
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    }
                }
            }
            .into_actor(self),
        );
        let interval = self.plugins.sync_interval();
        ctx.run_interval(interval, |act, ctx| {
            let plugins = act.plugins.clone();
            ctx.spawn(
                async move {
                    plugins.sync().await;
                }
                .into_actor(act),
            );
        });
    }
}

impl Supervised for PluginActor {}

impl Handler<Ping> for PluginActor {
    type Result = MessageResult<Ping>;
    fn handle(&mut self, _: Ping, _: &mut Self::Context) -> Self::Result {
        let loaded = self.plugins.list().len();
        let failed = self.plugins.failed().len();
        MessageResult(ActorStatus { ok: true, detail: format!("{loaded} plugin(s) loaded, {failed} failed") })
    }
}
