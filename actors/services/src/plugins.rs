//! The node's plugins as the rest of careport sees them: loaded from the plugins directory at
//! start, called off the async threads, uploaded, enabled, disabled and reloaded by
//! administrators. The sandbox and the registry are in `careport-plugins`.
//!
//! An upload is validated and compiled before anything changes; its files are written into a
//! fresh directory and swapped into place only once the new version is serving, so a restart
//! always finds the version that was serving. A disabled plugin keeps a `disabled` marker file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use careport_plugins::Registry;
use careport_plugins::registry::HostConfig;
pub use careport_plugins::{Manifest, PluginError, PluginStats};
use serde::Deserialize;

/// `[plugins]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// Where plugins live, one directory each; unset: `<data_dir>/plugins`.
    pub dir: Option<PathBuf>,
    /// No plugin's call may run longer than this.
    pub max_time_ms: u64,
    /// No plugin may use more linear memory than this.
    pub max_memory_mib: u64,
    /// Capabilities granted to plugins, by plugin name (`{ "redact-phi" = ["clock"] }`).
    #[serde(default)]
    pub grants: HashMap<String, Vec<String>>,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self { dir: None, max_time_ms: 1000, max_memory_mib: 256, grants: HashMap::new() }
    }
}

const DISABLED_MARK: &str = "disabled";

/// The node's plugins.
#[derive(Clone)]
pub struct Plugins {
    registry: Arc<Registry>,
    dir: PathBuf,
    /// Directories that failed to load at start or at their last reload, with the reason.
    failed: Arc<RwLock<BTreeMap<String, String>>>,
}

fn blocking_error(e: tokio::task::JoinError) -> PluginError {
    PluginError::Module(format!("the plugin task failed: {e}"))
}

impl Plugins {
    /// Create the directory if needed and load every plugin in it. A plugin that fails to load
    /// is reported (`/readyz`, the admin list), never a reason to stop the node.
    pub fn start(cfg: &PluginsConfig, data_dir: &Path) -> anyhow::Result<Self> {
        let dir = cfg.dir.clone().unwrap_or_else(|| data_dir.join("plugins"));
        careport_store::create_private_dir(&dir)?;
        let registry = Registry::new(HostConfig {
            max_time: std::time::Duration::from_millis(cfg.max_time_ms.max(1)),
            max_memory: usize::try_from(cfg.max_memory_mib).unwrap_or(usize::MAX).saturating_mul(1 << 20),
            grants: cfg.grants.clone(),
        })
        .map_err(|e| anyhow::anyhow!("plugin engine: {e}"))?;
        let plugins = Self { registry: Arc::new(registry), dir, failed: Arc::default() };
        let mut names: Vec<PathBuf> = std::fs::read_dir(&plugins.dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
            .collect();
        names.sort();
        for path in names {
            plugins.load(&path);
        }
        Ok(plugins)
    }

    fn load(&self, path: &Path) -> Option<Manifest> {
        let key = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut failed = self.failed.write().unwrap_or_else(|p| p.into_inner());
        match self.registry.install_dir(path) {
            Ok(m) => {
                failed.remove(&key);
                if path.join(DISABLED_MARK).exists() {
                    self.registry.set_enabled(&m.name, false);
                }
                Some(m)
            }
            Err(e) => {
                tracing::error!(plugin_dir = %key, error = %e, "plugin not loaded");
                failed.insert(key, e.to_string());
                None
            }
        }
    }

    /// Call a plugin by name with a JSON input, on the blocking pool.
    pub async fn call(&self, name: &str, input: serde_json::Value) -> Result<serde_json::Value, PluginError> {
        let registry = self.registry.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || registry.call(&name, &input)).await.map_err(blocking_error)?
    }

    /// Validate, install and persist an uploaded plugin; the old version serves until the new one
    /// has compiled, and keeps serving if it does not.
    pub async fn upload(&self, manifest_text: String, module: Vec<u8>) -> Result<Manifest, PluginError> {
        let manifest = Manifest::parse(&manifest_text)?;
        let staging = self.dir.join(format!(".upload-{}-{}", manifest.name, uuid::Uuid::new_v4().simple()));
        let write = |dir: &Path| -> std::io::Result<()> {
            careport_store::create_private_dir(dir)?;
            std::fs::write(dir.join("plugin.toml"), &manifest_text)?;
            std::fs::write(dir.join(&manifest.entry), &module)?;
            Ok(())
        };
        write(&staging).map_err(|e| PluginError::Manifest(format!("cannot store the plugin: {e}")))?;
        let registry = self.registry.clone();
        let staged = staging.clone();
        let installed =
            tokio::task::spawn_blocking(move || registry.install_dir(&staged)).await.map_err(blocking_error)?;
        if let Err(e) = installed {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        // Serving now: put its files where a restart will find them.
        let target = self.dir.join(&manifest.name);
        let retired = self.dir.join(format!(".retired-{}-{}", manifest.name, uuid::Uuid::new_v4().simple()));
        let swap = (|| -> std::io::Result<()> {
            if target.exists() {
                std::fs::rename(&target, &retired)?;
            }
            std::fs::rename(&staging, &target)?;
            Ok(())
        })();
        let _ = std::fs::remove_dir_all(&retired);
        swap.map_err(|e| PluginError::Manifest(format!("installed, but could not store the plugin: {e}")))?;
        self.failed.write().unwrap_or_else(|p| p.into_inner()).remove(&manifest.name);
        Ok(manifest)
    }

    /// Load a plugin's directory again (after its files were replaced by the operator).
    pub async fn reload(&self, name: &str) -> Result<Manifest, PluginError> {
        let path = self.dir.join(name);
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid || !path.is_dir() {
            return Err(PluginError::NotFound(name.to_owned()));
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let key = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            this.load(&path).ok_or_else(|| {
                PluginError::Manifest(
                    this.failed.read().map(|f| f.get(&key).cloned()).ok().flatten().unwrap_or_default(),
                )
            })
        })
        .await
        .map_err(blocking_error)?
    }

    /// Enable or disable a plugin (remembered across restarts); false if there is none.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> bool {
        if !self.registry.set_enabled(name, enabled) {
            return false;
        }
        let mark = self.dir.join(name).join(DISABLED_MARK);
        let _ = if enabled { std::fs::remove_file(mark) } else { std::fs::write(mark, b"") };
        true
    }

    /// Every installed plugin with its statistics.
    pub fn list(&self) -> Vec<PluginStats> {
        self.registry.list()
    }

    /// Plugin directories that failed to load, with the reason.
    pub fn failed(&self) -> BTreeMap<String, String> {
        self.failed.read().map(|f| f.clone()).unwrap_or_default()
    }
}
