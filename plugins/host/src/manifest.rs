//! `plugin.toml`: what a plugin says of itself, checked before its module is compiled.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::PluginError;

/// The contract versions this host speaks.
pub const SUPPORTED_CONTRACTS: &[u32] = &[1];

/// The kinds of plugin contract v1 defines. More kinds can follow without changing v1: a kind is
/// only the name of the operation the host calls through the one entry point.
pub const KINDS: &[&str] = &["ocr-postprocess", "language-pack"];

/// Capabilities a manifest may request; each must also be granted by the operator.
pub const CAPABILITIES: &[&str] = &["clock"];

/// A parsed and checked manifest.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Lower-case letters, digits and `-`; unique on a node.
    pub name: String,
    /// The plugin's own version (free text such as `1.2.0`).
    pub version: String,
    /// `ocr-postprocess` or `language-pack`.
    pub kind: String,
    /// The contract version the module implements.
    pub contract: u32,
    /// The module file, beside the manifest (a bare file name).
    pub entry: String,
    /// SHA-256 of the module file, hex.
    pub sha256: String,
    #[serde(default)]
    pub limits: Limits,
    /// Capabilities the plugin asks for (`clock`); none by default.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// Per-plugin limits, each within the host's caps.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Wall time of one call, in milliseconds.
    pub time_ms: u64,
    /// Linear memory, in MiB.
    pub memory_mib: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { time_ms: 100, memory_mib: 64 }
    }
}

impl Manifest {
    /// Parse `plugin.toml` and check every field but the checksum.
    pub fn parse(text: &str) -> Result<Self, PluginError> {
        let m: Manifest =
            toml::from_str(text).map_err(|e| PluginError::Manifest(format!("plugin.toml is not valid: {e}")))?;
        let bad = |why: String| Err(PluginError::Manifest(why));
        if m.name.is_empty()
            || m.name.len() > 64
            || !m.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return bad("name must be 1 to 64 lower-case letters, digits and hyphens".into());
        }
        if m.version.is_empty() || m.version.len() > 32 || m.version.chars().any(|c| c.is_control()) {
            return bad("version must be 1 to 32 characters".into());
        }
        if !SUPPORTED_CONTRACTS.contains(&m.contract) {
            return Err(PluginError::Contract { found: m.contract, supported: SUPPORTED_CONTRACTS.to_vec() });
        }
        if !KINDS.contains(&m.kind.as_str()) {
            return bad(format!("kind must be one of {}", KINDS.join(", ")));
        }
        if m.entry.is_empty()
            || m.entry.contains(['/', '\\'])
            || m.entry.starts_with('.')
            || !m.entry.ends_with(".wasm")
        {
            return bad("entry must be a file name ending in .wasm, beside plugin.toml".into());
        }
        if m.sha256.len() != 64 || !m.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            return bad("sha256 must be the 64 hex digits of the module's SHA-256".into());
        }
        if m.limits.time_ms == 0 || m.limits.memory_mib == 0 {
            return bad("limits must be greater than 0".into());
        }
        if let Some(c) = m.capabilities.iter().find(|c| !CAPABILITIES.contains(&c.as_str())) {
            return bad(format!("capability {c:?} is unknown (known: {})", CAPABILITIES.join(", ")));
        }
        Ok(m)
    }

    /// Check the module's bytes against `sha256`.
    pub fn verify(&self, module: &[u8]) -> Result<(), PluginError> {
        let digest: String = Sha256::digest(module).iter().map(|b| format!("{b:02x}")).collect();
        if digest != self.sha256.to_ascii_lowercase() {
            return Err(PluginError::Manifest(format!(
                "the module's SHA-256 is {digest}, the manifest says {}",
                self.sha256
            )));
        }
        Ok(())
    }
}

/// The SHA-256 of `bytes`, hex (what `sha256` in a manifest holds).
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
