//! careport's WebAssembly plugin host: integrators add behaviour (OCR post-processing, language
//! packs) without rebuilding careport, sandboxed by wasmtime.
//!
//! # Layout
//! - [`manifest`]: `plugin.toml`, checked (contract version, kind, limits, capabilities, checksum).
//! - [`sandbox`]: one compiled plugin and its bounded calls (contract v1: a core module, JSON
//!   across linear memory).
//! - [`registry`]: the plugins of a node by name, swapped in atomically, with call statistics.
//!
//! Nothing here depends on actix: the runtime's actor calls in from the blocking pool.

pub mod manifest;
pub mod registry;
pub mod sandbox;

pub use manifest::{Limits, Manifest};
pub use registry::{PluginStats, Registry};
pub use sandbox::{Caps, Plugin};

/// Why a plugin was refused or a call failed. Messages name the plugin's problem, never the
/// data it was given.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PluginError {
    #[error("{0}")]
    Manifest(String),
    #[error("contract version {found} is not supported; this host supports {supported:?}")]
    Contract { found: u32, supported: Vec<u32> },
    #[error("the module is not valid: {0}")]
    Module(String),
    #[error("no plugin named {0:?} is installed")]
    NotFound(String),
    #[error("the plugin {0:?} is disabled")]
    Disabled(String),
    #[error("the call ran past its time limit of {limit_ms} ms (stopped after {ran_ms} ms)")]
    TimeLimit { limit_ms: u64, ran_ms: u64 },
    #[error("the call reached its memory limit of {limit_mib} MiB")]
    MemoryLimit { limit_mib: usize },
    #[error("the plugin trapped: {0}")]
    Trapped(String),
    #[error("bad input: {0}")]
    Input(String),
    #[error("bad output: {0}")]
    Output(String),
}
