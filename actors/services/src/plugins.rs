//! The node's plugins as the rest of careport sees them: loaded from the plugins directory at
//! start, called off the async threads, uploaded, enabled, disabled and reloaded by
//! administrators. The sandbox and the registry are in `careport-plugins`.
//!
//! An upload is validated and compiled before anything changes; its files are written into a
//! fresh directory and swapped into place only once the new version is serving, so a restart
//! always finds the version that was serving. A disabled plugin keeps a `disabled` marker file.
//!
//! careport ships plugins of its own ([`BUNDLED`]: the language packs, enabled; the example OCR
//! plugins, disabled), installed at start where the portal lacks them or has an older version,
//! like an upload — so they are ordinary plugins an administrator lists, disables or replaces.
//!
//! Every change also goes to the store (`plugins` table) and is announced on the bus
//! (`plugins.changed`): every node installs the newer row, and the `PluginActor` polls the store
//! as a backstop for a missed event. At start the store's plugins win over the directory's;
//! a directory plugin the store does not have is added to it, so the cluster gets it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use careport_plugins::Registry;
use careport_plugins::registry::HostConfig;
pub use careport_plugins::{Manifest, PluginError, PluginStats};
use careport_store::{Bus, Db, plugins as stored};
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
    /// How often a node compares its plugins with the store's (a backstop for missed events).
    pub sync_interval_ms: u64,
    /// Install the plugins careport ships with ([`BUNDLED`]): the five language packs enabled,
    /// the example OCR plugins disabled.
    #[serde(default = "yes")]
    pub bundled: bool,
}

fn yes() -> bool {
    true
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            dir: None,
            max_time_ms: 1000,
            max_memory_mib: 256,
            grants: HashMap::new(),
            sync_interval_ms: 5000,
            bundled: true,
        }
    }
}

const DISABLED_MARK: &str = "disabled";

/// A plugin compiled into careport.
pub struct Bundled {
    pub manifest: &'static str,
    pub module: &'static [u8],
    /// Serving on a fresh portal; the others are there for an administrator to enable.
    pub enabled: bool,
}

macro_rules! bundled {
    ($dir:literal, $module:literal, $enabled:expr) => {
        Bundled {
            manifest: include_str!(concat!("../../../plugins/examples/", $dir, "/plugin.toml")),
            module: include_bytes!(concat!("../../../plugins/examples/", $dir, "/", $module)),
            enabled: $enabled,
        }
    };
}

/// What a fresh portal has: it speaks the six languages at once, and the example OCR
/// post-processors wait, disabled, for an administrator who wants them.
pub const BUNDLED: &[Bundled] = &[
    bundled!("lang-es", "lang_es.wasm", true),
    bundled!("lang-fr", "lang_fr.wasm", true),
    bundled!("lang-ar", "lang_ar.wasm", true),
    bundled!("lang-zh", "lang_zh.wasm", true),
    bundled!("lang-hi", "lang_hi.wasm", true),
    bundled!("redact-phi", "redact_phi.wasm", false),
    bundled!("lab-values", "lab_values.wasm", false),
];

/// A dotted version as numbers (`1.10.0` after `1.9.2`); what does not parse counts as 0.
fn version_key(v: &str) -> Vec<u64> {
    v.split(['.', '-', '+']).map(|p| p.parse().unwrap_or(0)).collect()
}
/// The bus channel of plugin changes; the payload is the plugin's name.
pub const CHANNEL: &str = "plugins.changed";

/// The node's plugins.
#[derive(Clone)]
pub struct Plugins {
    registry: Arc<Registry>,
    dir: PathBuf,
    /// Directories that failed to load at start or at their last reload, with the reason.
    failed: Arc<RwLock<BTreeMap<String, String>>>,
    db: Db,
    bus: Bus,
    /// The store's `updated_at` of the version this node serves, by name.
    served: Arc<RwLock<HashMap<String, i64>>>,
    sync_interval: std::time::Duration,
    /// Language packs' catalogues, read once per installed version (see [`Plugins::catalogue`]).
    catalogues: Arc<RwLock<HashMap<String, Catalogue>>>,
}

/// A language pack's catalogue as read from the version installed when it was read.
#[derive(Clone)]
struct Catalogue {
    /// The pack's version and the store's change time of it: any upload or reload differs.
    installed: (String, Option<i64>),
    pack: Arc<serde_json::Value>,
}

fn blocking_error(e: tokio::task::JoinError) -> PluginError {
    PluginError::Module(format!("the plugin task failed: {e}"))
}

impl Plugins {
    /// Create the directory if needed and load every plugin in it. A plugin that fails to load
    /// is reported (`/readyz`, the admin list), never a reason to stop the node.
    pub async fn start(cfg: &PluginsConfig, data_dir: &Path, db: Db, bus: Bus) -> anyhow::Result<Self> {
        let dir = cfg.dir.clone().unwrap_or_else(|| data_dir.join("plugins"));
        careport_store::create_private_dir(&dir)?;
        let registry = Registry::new(HostConfig {
            max_time: std::time::Duration::from_millis(cfg.max_time_ms.max(1)),
            max_memory: usize::try_from(cfg.max_memory_mib).unwrap_or(usize::MAX).saturating_mul(1 << 20),
            grants: cfg.grants.clone(),
        })
        .map_err(|e| anyhow::anyhow!("plugin engine: {e}"))?;
        let plugins = Self {
            registry: Arc::new(registry),
            dir,
            failed: Arc::default(),
            db,
            bus,
            served: Arc::default(),
            sync_interval: std::time::Duration::from_millis(cfg.sync_interval_ms.max(100)),
            catalogues: Arc::default(),
        };
        let mut names: Vec<PathBuf> = std::fs::read_dir(&plugins.dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
            .collect();
        names.sort();
        let mut from_dir = Vec::new();
        for path in names {
            if let Some(m) = plugins.load(&path) {
                from_dir.push((m, path));
            }
        }
        // The store's plugins win; the directory's that the store lacks join it.
        let in_store: Vec<String> = stored::versions(&plugins.db).await?.into_iter().map(|(n, _)| n).collect();
        for (m, path) in from_dir {
            if !in_store.contains(&m.name) {
                let text = std::fs::read_to_string(path.join("plugin.toml"))?;
                let module = std::fs::read(path.join(&m.entry))?;
                let enabled = !path.join(DISABLED_MARK).exists();
                let at = stored::put(&plugins.db, &m.name, &m.version, &text, &module, enabled).await?;
                plugins.served.write().unwrap_or_else(|p| p.into_inner()).insert(m.name.clone(), at);
            }
        }
        plugins.sync().await;
        if cfg.bundled {
            plugins.install_bundled().await;
        }
        Ok(plugins)
    }

    /// Install each bundled plugin the portal lacks, or has at a lower version (careport was
    /// upgraded). An operator's own plugin of the same name at the same or a higher version is
    /// left as it is, and a bundled plugin an administrator disabled stays disabled when it is
    /// upgraded. Like an upload, an install reaches every node through the store.
    async fn install_bundled(&self) {
        let serving = self.list();
        for b in BUNDLED {
            let Ok(m) = Manifest::parse(b.manifest) else {
                tracing::error!("a bundled plugin's manifest does not parse; it is left out");
                continue;
            };
            let current = serving.iter().find(|p| p.name == m.name);
            let enabled = match current {
                None => b.enabled,
                Some(p) if version_key(&p.version) < version_key(&m.version) => p.enabled,
                Some(_) => continue,
            };
            match self.upload(b.manifest.to_owned(), b.module.to_vec()).await {
                Ok(_) => {
                    if !enabled && let Err(e) = self.set_enabled(&m.name, false).await {
                        tracing::warn!(plugin = %m.name, error = %e, "a bundled plugin could not be left disabled");
                    }
                    tracing::info!(plugin = %m.name, version = %m.version, enabled, "bundled plugin installed");
                }
                Err(e) => tracing::error!(plugin = %m.name, error = %e, "a bundled plugin could not be installed"),
            }
        }
    }

    /// How often the `PluginActor` compares with the store.
    pub fn sync_interval(&self) -> std::time::Duration {
        self.sync_interval
    }

    /// The bus this node hears plugin changes on.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Install every stored plugin newer than the version this node serves. Returns how many
    /// changed; a store failure is logged and retried at the next sync.
    pub async fn sync(&self) -> usize {
        let versions = match stored::versions(&self.db).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the stored plugins");
                return 0;
            }
        };
        let mut changed = 0;
        for (name, at) in versions {
            let served = self.served.read().unwrap_or_else(|p| p.into_inner()).get(&name).copied();
            if served.is_some_and(|s| s >= at) {
                continue;
            }
            if self.install_stored(&name).await {
                changed += 1;
            }
        }
        changed
    }

    async fn install_stored(&self, name: &str) -> bool {
        let row = match stored::get(&self.db, name).await {
            Ok(Some(row)) => row,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(error = %e, plugin = name, "could not read a stored plugin");
                return false;
            }
        };
        let registry = self.registry.clone();
        let (text, module) = (row.manifest.clone(), row.module.clone());
        let installed = tokio::task::spawn_blocking(move || registry.install(&text, &module)).await;
        let mut failed = self.failed.write().unwrap_or_else(|p| p.into_inner());
        match installed {
            Ok(Ok(_)) => {
                failed.remove(name);
                self.registry.set_enabled(name, row.enabled);
                self.served.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_owned(), row.updated_at);
                true
            }
            Ok(Err(e)) => {
                tracing::error!(plugin = name, error = %e, "stored plugin not loaded");
                failed.insert(name.to_owned(), e.to_string());
                // Do not try this row again until it changes.
                self.served.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_owned(), row.updated_at);
                false
            }
            Err(e) => {
                tracing::error!(plugin = name, error = %e, "plugin install task failed");
                false
            }
        }
    }

    /// Record a change in the store and tell every node.
    async fn publish(&self, name: &str, at: i64) {
        self.served.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_owned(), at);
        if let Err(e) = self.bus.publish(CHANNEL, name.as_bytes()).await {
            tracing::warn!(error = %e, plugin = name, "could not announce a plugin change; nodes catch up at their next sync");
        }
    }

    async fn store_dir(&self, m: &Manifest, dir: &Path) -> Result<(), PluginError> {
        let text =
            std::fs::read_to_string(dir.join("plugin.toml")).map_err(|e| PluginError::Manifest(e.to_string()))?;
        let module = std::fs::read(dir.join(&m.entry)).map_err(|e| PluginError::Manifest(e.to_string()))?;
        let enabled = !dir.join(DISABLED_MARK).exists();
        let at = stored::put(&self.db, &m.name, &m.version, &text, &module, enabled)
            .await
            .map_err(|e| PluginError::Manifest(format!("installed here, but the store could not keep it: {e}")))?;
        self.publish(&m.name, at).await;
        Ok(())
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

    /// The catalogue (`{locale, name, direction, plural_categories, messages, …}`) of the enabled
    /// language pack for `locale`, if any. Each pack is called once per installed version and
    /// its answer kept, so that neither a known nor an unknown locale runs the packs again.
    pub async fn catalogue(&self, locale: &str) -> Option<Arc<serde_json::Value>> {
        let packs: Vec<PluginStats> =
            self.list().into_iter().filter(|p| p.kind == "language-pack" && p.enabled).collect();
        let mut found = None;
        for p in packs {
            let served = self.served.read().unwrap_or_else(|e| e.into_inner()).get(&p.name).copied();
            let installed = (p.version.clone(), served);
            let kept = self.catalogues.read().unwrap_or_else(|e| e.into_inner()).get(&p.name).cloned();
            let pack = match kept {
                Some(c) if c.installed == installed => c.pack,
                _ => match self.call(&p.name, serde_json::json!({})).await {
                    Ok(v) => {
                        let pack = Arc::new(v);
                        let c = Catalogue { installed, pack: Arc::clone(&pack) };
                        self.catalogues.write().unwrap_or_else(|e| e.into_inner()).insert(p.name.clone(), c);
                        pack
                    }
                    Err(e) => {
                        tracing::warn!(plugin = %p.name, error = %e, "a language pack did not answer");
                        continue;
                    }
                },
            };
            if found.is_none() && pack["locale"] == locale {
                found = Some(pack);
            }
        }
        found
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
        self.store_dir(&manifest, &target).await?;
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
        let dir = path.clone();
        let m = tokio::task::spawn_blocking(move || {
            let key = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            this.load(&dir).ok_or_else(|| {
                PluginError::Manifest(
                    this.failed.read().map(|f| f.get(&key).cloned()).ok().flatten().unwrap_or_default(),
                )
            })
        })
        .await
        .map_err(blocking_error)??;
        self.store_dir(&m, &path).await?;
        Ok(m)
    }

    /// Enable or disable a plugin on every node (remembered across restarts); false if there is
    /// none of that name.
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<bool, PluginError> {
        if !self.registry.set_enabled(name, enabled) {
            return Ok(false);
        }
        let mark = self.dir.join(name).join(DISABLED_MARK);
        let _ = if enabled { std::fs::remove_file(mark) } else { std::fs::write(mark, b"") };
        let at = stored::set_enabled(&self.db, name, enabled)
            .await
            .map_err(|e| PluginError::Manifest(format!("switched here, but the store could not keep it: {e}")))?;
        if let Some(at) = at {
            self.publish(name, at).await;
        }
        Ok(true)
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
