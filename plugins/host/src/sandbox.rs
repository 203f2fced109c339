//! One compiled plugin and its calls: a fresh `Store` per call with a wall-time deadline (epoch
//! interruption, ticked by the engine's thread), a memory cap, one instance, bounded tables and
//! stack. A call that traps, loops or exhausts its memory fails alone with its reason.
//!
//! # Contract v1 (core module, JSON across linear memory)
//! Exports: `memory`; `careport_contract() -> i32` (must be 1); `careport_alloc(len: i32) -> i32`
//! (room for `len` bytes the host writes into); `careport_call(op_ptr, op_len, in_ptr, in_len: i32)
//! -> i64`, whose result is `(out_ptr << 32) | out_len` of a UTF-8 JSON document in memory. The
//! operation is the plugin's kind; the input and output documents are in `plugins/README.md`.
//! Imports: none, unless the manifest requests a capability the operator granted
//! (`clock`: `careport.now_ms() -> i64`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{Engine, InstancePre, Linker, Module, ResourceLimiter, Store};

use crate::PluginError;
use crate::manifest::Manifest;

/// How often the engine's epoch advances: the granularity of call deadlines.
pub const TICK: Duration = Duration::from_millis(5);
/// The largest output document a call may return.
pub const MAX_OUTPUT: usize = 16 << 20;

/// What each call's store holds: its limits and what was refused.
pub struct CallState {
    memory_cap: usize,
    memory_refused: bool,
}

impl ResourceLimiter for CallState {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.memory_refused = true;
            // An error traps the call at once: a plugin cannot spin on a failing memory.grow.
            wasmtime::bail!("memory limit of {} MiB reached", self.memory_cap >> 20);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }

    fn memories(&self) -> usize {
        1
    }
}

/// A compiled plugin, ready to call. Cheap to share: calls in flight keep their own `Arc`.
pub struct Plugin {
    pub manifest: Manifest,
    pre: InstancePre<CallState>,
    time_limit: Duration,
    memory_cap: usize,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("name", &self.manifest.name).field("version", &self.manifest.version).finish()
    }
}

/// The host's caps and the operator's grants.
#[derive(Debug, Clone)]
pub struct Caps {
    /// No plugin's call may run longer than this.
    pub max_time: Duration,
    /// No plugin may have more linear memory than this, in bytes.
    pub max_memory: usize,
    /// Capabilities granted to this plugin by the operator.
    pub granted: Vec<String>,
}

impl Plugin {
    /// Check the module against the manifest and the contract, and compile it.
    pub fn compile(engine: &Engine, manifest: Manifest, module: &[u8], caps: &Caps) -> Result<Arc<Self>, PluginError> {
        manifest.verify(module)?;
        if let Some(c) = manifest.capabilities.iter().find(|c| !caps.granted.contains(c)) {
            return Err(PluginError::Manifest(format!(
                "the plugin asks for the capability {c:?}, which the operator has not granted it"
            )));
        }
        let time_limit = Duration::from_millis(manifest.limits.time_ms);
        let memory_cap = usize::try_from(manifest.limits.memory_mib).unwrap_or(usize::MAX).saturating_mul(1 << 20);
        if time_limit > caps.max_time || memory_cap > caps.max_memory {
            return Err(PluginError::Manifest(format!(
                "limits exceed the host's caps ({} ms, {} MiB)",
                caps.max_time.as_millis(),
                caps.max_memory >> 20
            )));
        }
        let compiled = Module::new(engine, module).map_err(|e| PluginError::Module(format!("{e:#}")))?;
        for export in ["memory", "careport_contract", "careport_alloc", "careport_call"] {
            if compiled.get_export(export).is_none() {
                return Err(PluginError::Module(format!("the module does not export `{export}` (contract v1)")));
            }
        }
        let mut linker: Linker<CallState> = Linker::new(engine);
        if manifest.capabilities.iter().any(|c| c == "clock") {
            linker
                .func_wrap("careport", "now_ms", || -> i64 {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as i64)
                        .unwrap_or(0)
                })
                .map_err(|e| PluginError::Module(format!("{e:#}")))?;
        }
        let pre = linker.instantiate_pre(&compiled).map_err(|e| {
            PluginError::Module(format!("the module imports what this host does not provide to it: {e:#}"))
        })?;
        let plugin = Self { manifest, pre, time_limit, memory_cap };
        // The contract version the module itself declares must match its manifest.
        let declared = plugin.contract_of_module(engine)?;
        if declared != plugin.manifest.contract {
            return Err(PluginError::Contract {
                found: declared,
                supported: crate::manifest::SUPPORTED_CONTRACTS.to_vec(),
            });
        }
        Ok(Arc::new(plugin))
    }

    fn store(&self, engine: &Engine) -> Store<CallState> {
        let mut store = Store::new(engine, CallState { memory_cap: self.memory_cap, memory_refused: false });
        store.limiter(|s| s as &mut dyn ResourceLimiter);
        let ticks = self.time_limit.as_micros().div_ceil(TICK.as_micros()).max(1) as u64 + 1;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        store
    }

    fn contract_of_module(&self, engine: &Engine) -> Result<u32, PluginError> {
        let mut store = self.store(engine);
        let instance = self.pre.instantiate(&mut store).map_err(|e| self.failure(&store, e, Instant::now()))?;
        let f = instance
            .get_typed_func::<(), i32>(&mut store, "careport_contract")
            .map_err(|e| PluginError::Module(format!("careport_contract: {e:#}")))?;
        let v = f.call(&mut store, ()).map_err(|e| self.failure(&store, e, Instant::now()))?;
        u32::try_from(v).map_err(|_| PluginError::Module(format!("careport_contract returned {v}")))
    }

    fn failure(&self, store: &Store<CallState>, e: wasmtime::Error, started: Instant) -> PluginError {
        if store.data().memory_refused {
            return PluginError::MemoryLimit { limit_mib: self.memory_cap >> 20 };
        }
        match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => PluginError::TimeLimit {
                limit_ms: self.time_limit.as_millis() as u64,
                ran_ms: started.elapsed().as_millis() as u64,
            },
            Some(trap) => PluginError::Trapped(trap.to_string()),
            None => PluginError::Trapped(format!("{e:#}")),
        }
    }

    /// Call the plugin's operation `op` with `input`: a fresh instance, bounded in time and
    /// memory. Blocking: run it off the async threads.
    pub fn call(&self, engine: &Engine, op: &str, input: &[u8]) -> Result<Vec<u8>, PluginError> {
        let started = Instant::now();
        let mut store = self.store(engine);
        let instance = self.pre.instantiate(&mut store).map_err(|e| self.failure(&store, e, started))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| PluginError::Module("the module does not export `memory`".into()))?;
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "careport_alloc")
            .map_err(|e| PluginError::Module(format!("careport_alloc: {e:#}")))?;
        let entry = instance
            .get_typed_func::<(i32, i32, i32, i32), i64>(&mut store, "careport_call")
            .map_err(|e| PluginError::Module(format!("careport_call: {e:#}")))?;
        let put = |store: &mut Store<CallState>, bytes: &[u8]| -> Result<i32, PluginError> {
            let len = i32::try_from(bytes.len()).map_err(|_| PluginError::Input("input too large".into()))?;
            let ptr = alloc.call(&mut *store, len).map_err(|e| self.failure(store, e, started))?;
            memory
                .write(&mut *store, ptr as u32 as usize, bytes)
                .map_err(|_| PluginError::Module(format!("careport_alloc({len}) returned memory out of bounds")))?;
            Ok(ptr)
        };
        let op_ptr = put(&mut store, op.as_bytes())?;
        let in_ptr = put(&mut store, input)?;
        let packed = entry
            .call(&mut store, (op_ptr, op.len() as i32, in_ptr, input.len() as i32))
            .map_err(|e| self.failure(&store, e, started))?;
        let (ptr, len) = ((packed as u64 >> 32) as usize, (packed as u64 & 0xffff_ffff) as usize);
        if len > MAX_OUTPUT {
            return Err(PluginError::Output(format!("the output is larger than {} MiB", MAX_OUTPUT >> 20)));
        }
        let mut out = vec![0u8; len];
        memory
            .read(&store, ptr, &mut out)
            .map_err(|_| PluginError::Output("the output lies outside the module's memory".into()))?;
        Ok(out)
    }
}

/// An engine configured for plugins, with its epoch ticker thread (stops with the process).
pub fn engine() -> Result<Engine, PluginError> {
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    config.max_wasm_stack(512 << 10);
    let engine = Engine::new(&config).map_err(|e| PluginError::Module(format!("wasmtime: {e:#}")))?;
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("plugin-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        })
        .map_err(|e| PluginError::Module(format!("could not start the epoch thread: {e}")))?;
    Ok(engine)
}
