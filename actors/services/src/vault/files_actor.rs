//! The `FilesActor`: the vault's janitor. At start and every `vault.janitor_interval_secs` it
//! removes what interrupted uploads left behind — temporaries, and objects that no file row
//! names — once older than `vault.orphan_grace_secs`. Transfers themselves stream in the
//! request handlers through [`Vault`]; only this housekeeping needs a supervised owner.

use std::time::Duration;

use actix::prelude::*;

use super::Vault;
use crate::{ActorStatus, Ping};

pub struct FilesActor {
    vault: Vault,
    last: Option<String>,
}

impl FilesActor {
    pub fn new(vault: Vault) -> Self {
        Self { vault, last: None }
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        let vault = self.vault.clone();
        ctx.spawn(async move { vault.sweep().await }.into_actor(self).map(|r, act, _| {
            act.last = Some(match r {
                Ok((temporaries, orphans)) => {
                    if temporaries + orphans > 0 {
                        tracing::info!(temporaries, orphans, "vault janitor removed leftovers of interrupted uploads");
                    }
                    format!("last sweep removed {temporaries} temporaries and {orphans} orphans")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "vault janitor pass failed; it retries at the next interval");
                    format!("last sweep failed: {}", e.code())
                }
            });
        }));
    }
}

impl Actor for FilesActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.sweep(ctx);
        let every = Duration::from_secs(self.vault.config().janitor_interval_secs.max(1));
        ctx.run_interval(every, |act, ctx| act.sweep(ctx));
    }
}

impl Supervised for FilesActor {}

impl Handler<Ping> for FilesActor {
    type Result = MessageResult<Ping>;
    fn handle(&mut self, _: Ping, _: &mut Self::Context) -> Self::Result {
        let detail = format!("{} storage; {}", self.vault.backend(), self.last.as_deref().unwrap_or("no sweep yet"));
        MessageResult(ActorStatus { ok: true, detail })
    }
}
