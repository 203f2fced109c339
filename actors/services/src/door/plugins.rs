//! Plugin administration (administrators): the list with statistics, upload, enable, disable,
//! reload, and a trial call. Every change and call is audited (a call without its input, which
//! may hold patient data); a refused version leaves the serving one in place.

use careport_domain::{Code, Error};
use careport_plugins::manifest::Manifest;
use serde::Serialize;
use serde_json::Value;

use crate::Services;
use crate::access::{ManagePlugins, Pass};
use crate::audit::{EventExt, outcome};
use crate::plugins::{PluginError, PluginStats};

/// The plugin operations.
pub struct Plugins<'a>(pub(crate) &'a Services);

/// The installed plugins, and the directories that failed to load with why.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    pub items: Vec<PluginStats>,
    pub failed: Vec<FailedDir>,
}

/// A plugin directory that did not load.
#[derive(Debug, Clone, Serialize)]
pub struct FailedDir {
    pub dir: String,
    pub error: String,
}

/// A plugin change that plugins can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Enable,
    Disable,
    Reload,
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Change::Enable => "enable",
            Change::Disable => "disable",
            Change::Reload => "reload",
        }
    }
}

fn refused(e: PluginError) -> Error {
    match e {
        PluginError::NotFound(_) => Error::new(Code::NotFound),
        other => Error::with_message(Code::PluginRefused, other.to_string()),
    }
}

impl Plugins<'_> {
    /// The installed plugins with their statistics.
    pub fn list(&self, _: Pass<ManagePlugins>) -> Installed {
        let failed = self.0.plugins.failed().into_iter().map(|(dir, error)| FailedDir { dir, error }).collect();
        Installed { items: self.0.plugins.list(), failed }
    }

    /// Upload a plugin or a new version: validated and compiled first, then swapped in
    /// atomically (422 `plugin_refused` with the reason otherwise).
    pub async fn upload(
        &self,
        pass: Pass<ManagePlugins>,
        manifest: String,
        module: Vec<u8>,
    ) -> Result<Manifest, Error> {
        let result = self.0.plugins.upload(manifest, module).await;
        let (o, detail) = match &result {
            Ok(m) => (outcome::SUCCESS, format!("{} {}", m.name, m.version)),
            Err(e) => (outcome::FAILURE, e.to_string()),
        };
        self.0
            .audit
            .one(pass.caller().ctx.event("admin.plugin_upload", o).resource("plugins", "*").detail(detail))
            .await?;
        result.map_err(refused)
    }

    /// Enable, disable or reload a plugin; answers it as it now is.
    pub async fn change(
        &self,
        pass: Pass<ManagePlugins>,
        name: &str,
        change: Change,
    ) -> Result<Option<PluginStats>, Error> {
        let result = match change {
            Change::Enable | Change::Disable => {
                match self.0.plugins.set_enabled(name, change == Change::Enable).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(PluginError::NotFound(name.to_owned())),
                    Err(e) => Err(e),
                }
            }
            Change::Reload => self.0.plugins.reload(name).await.map(|_| ()),
        };
        if !matches!(result, Err(PluginError::NotFound(_))) {
            let o = if result.is_ok() { outcome::SUCCESS } else { outcome::FAILURE };
            self.0
                .audit
                .one(pass.caller().ctx.event(&format!("admin.plugin_{}", change.as_str()), o).resource("plugins", name))
                .await?;
        }
        result.map_err(refused)?;
        Ok(self.0.plugins.list().into_iter().find(|p| p.name == name))
    }

    /// Call a plugin with a JSON input and answer its output.
    pub async fn call(&self, pass: Pass<ManagePlugins>, name: &str, input: Value) -> Result<Value, Error> {
        let result = self.0.plugins.call(name, input).await;
        if !matches!(result, Err(PluginError::NotFound(_))) {
            let o = if result.is_ok() { outcome::SUCCESS } else { outcome::FAILURE };
            self.0.audit.one(pass.caller().ctx.event("admin.plugin_call", o).resource("plugins", name)).await?;
        }
        result.map_err(refused)
    }
}
