//! The plugins of one node by name. Installing validates and compiles first, then swaps the new
//! version in under a short write lock: calls in flight keep the `Arc` of the version they
//! started on and finish there; a version that fails validation never replaces the one serving.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use wasmtime::Engine;

use crate::PluginError;
use crate::manifest::Manifest;
use crate::sandbox::{Caps, Plugin};

/// How many recent call durations each plugin keeps for its p99.
const RECENT: usize = 1024;

/// A plugin's statistics and switch, kept across its versions.
#[derive(Default)]
struct Stats {
    disabled: AtomicBool,
    calls: AtomicU64,
    errors: AtomicU64,
    recent: Mutex<Vec<Duration>>,
}

struct Entry {
    plugin: Arc<Plugin>,
    stats: Arc<Stats>,
}

/// A plugin as the admin API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginStats {
    pub name: String,
    pub version: String,
    pub kind: String,
    pub contract: u32,
    pub enabled: bool,
    pub calls: u64,
    pub errors: u64,
    /// p99 of the last 1,024 calls, in microseconds.
    pub p99_us: Option<u64>,
}

/// The host's caps and the operator's grants, by plugin name.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub max_time: Duration,
    pub max_memory: usize,
    /// Capabilities the operator grants, by plugin name.
    pub grants: HashMap<String, Vec<String>>,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self { max_time: Duration::from_secs(1), max_memory: 256 << 20, grants: HashMap::new() }
    }
}

/// The node's plugins.
pub struct Registry {
    engine: Engine,
    config: HostConfig,
    plugins: RwLock<HashMap<String, Arc<Entry>>>,
}

impl Registry {
    pub fn new(config: HostConfig) -> Result<Self, PluginError> {
        Ok(Self { engine: crate::sandbox::engine()?, config, plugins: RwLock::new(HashMap::new()) })
    }

    fn caps(&self, name: &str) -> Caps {
        Caps {
            max_time: self.config.max_time,
            max_memory: self.config.max_memory,
            granted: self.config.grants.get(name).cloned().unwrap_or_default(),
        }
    }

    /// Validate, compile and install a plugin (replacing an installed version atomically).
    /// Returns its manifest. On any error the installed version, if any, keeps serving.
    pub fn install(&self, manifest_text: &str, module: &[u8]) -> Result<Manifest, PluginError> {
        let manifest = Manifest::parse(manifest_text)?;
        let caps = self.caps(&manifest.name);
        let plugin = Plugin::compile(&self.engine, manifest.clone(), module, &caps)?;
        let mut plugins = self.plugins.write().unwrap_or_else(|p| p.into_inner());
        // A new version keeps the plugin's statistics and its enabled or disabled state.
        let stats = plugins.get(&manifest.name).map(|e| e.stats.clone()).unwrap_or_default();
        plugins.insert(manifest.name.clone(), Arc::new(Entry { plugin, stats }));
        drop(plugins);
        tracing::info!(plugin = %manifest.name, version = %manifest.version, kind = %manifest.kind, "plugin installed");
        Ok(manifest)
    }

    /// Install the plugin in `dir` (`plugin.toml` and its entry module).
    pub fn install_dir(&self, dir: &Path) -> Result<Manifest, PluginError> {
        let text = std::fs::read_to_string(dir.join("plugin.toml"))
            .map_err(|e| PluginError::Manifest(format!("cannot read {}/plugin.toml: {e}", dir.display())))?;
        let manifest = Manifest::parse(&text)?;
        let module = std::fs::read(dir.join(&manifest.entry))
            .map_err(|e| PluginError::Manifest(format!("cannot read {}: {e}", manifest.entry)))?;
        self.install(&text, &module)
    }

    /// Enable or disable a plugin; false if there is none of that name.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> bool {
        let plugins = self.plugins.read().unwrap_or_else(|p| p.into_inner());
        plugins.get(name).map(|e| e.stats.disabled.store(!enabled, Ordering::SeqCst)).is_some()
    }

    /// Call `name` with a JSON input; the output is the plugin's JSON document. Blocking.
    pub fn call(&self, name: &str, input: &serde_json::Value) -> Result<serde_json::Value, PluginError> {
        let entry = {
            let plugins = self.plugins.read().unwrap_or_else(|p| p.into_inner());
            plugins.get(name).cloned().ok_or_else(|| PluginError::NotFound(name.to_owned()))?
        };
        let stats = &entry.stats;
        if stats.disabled.load(Ordering::SeqCst) {
            return Err(PluginError::Disabled(name.to_owned()));
        }
        let started = Instant::now();
        let bytes = serde_json::to_vec(input).map_err(|e| PluginError::Input(e.to_string()))?;
        let result = entry
            .plugin
            .call(&self.engine, &entry.plugin.manifest.kind, &bytes)
            .and_then(|out| serde_json::from_slice(&out).map_err(|e| PluginError::Output(format!("not JSON: {e}"))));
        stats.calls.fetch_add(1, Ordering::Relaxed);
        if result.is_err() {
            stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        let mut recent = stats.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT {
            recent.remove(0);
        }
        recent.push(started.elapsed());
        result
    }

    /// Every plugin with its statistics, by name.
    pub fn list(&self) -> Vec<PluginStats> {
        let plugins = self.plugins.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<PluginStats> = plugins
            .values()
            .map(|e| {
                let m = &e.plugin.manifest;
                let mut recent = e.stats.recent.lock().unwrap_or_else(|p| p.into_inner()).clone();
                recent.sort_unstable();
                let p99 = (!recent.is_empty())
                    .then(|| recent[(recent.len() * 99).div_ceil(100).saturating_sub(1)].as_micros() as u64);
                PluginStats {
                    name: m.name.clone(),
                    version: m.version.clone(),
                    kind: m.kind.clone(),
                    contract: m.contract,
                    enabled: !e.stats.disabled.load(Ordering::SeqCst),
                    calls: e.stats.calls.load(Ordering::Relaxed),
                    errors: e.stats.errors.load(Ordering::Relaxed),
                    p99_us: p99,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}
