//! The sandbox and the registry with small WAT plugins: the contract, the three attacks (endless
//! loop, memory bomb, trap) each stopped within its limit while other calls are served, refused
//! modules with clear errors, capabilities, and hot reload under concurrent calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use careport_plugins::manifest::sha256_hex;
use careport_plugins::registry::HostConfig;
use careport_plugins::{PluginError, Registry};
use serde_json::json;

/// A contract-v1 module whose `careport_call` runs `body` (params `$op $opl $in $inl`).
fn module(contract: i32, imports: &str, body: &str) -> String {
    format!(
        r#"(module
  {imports}
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (data (i32.const 16) "{{\"version\":\"one\"}}")
  (func (export "careport_contract") (result i32) (i32.const {contract}))
  (func (export "careport_alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $len)))
    (block $ok
      (br_if $ok (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
      (drop (memory.grow (i32.add (i32.div_u (global.get $heap) (i32.const 65536)) (i32.const 1)))))
    (local.get $p))
  (func (export "careport_call") (param $op i32) (param $opl i32) (param $in i32) (param $inl i32) (result i64)
    {body}))"#
    )
}

const ECHO: &str =
    "(i64.or (i64.shl (i64.extend_i32_u (local.get $in)) (i64.const 32)) (i64.extend_i32_u (local.get $inl)))";
const LOOP: &str = "(loop $l (br $l)) (i64.const 0)";
const BOMB: &str = "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) (i64.const 0)";
const TRAP: &str = "unreachable";

fn manifest(name: &str, version: &str, wasm: &[u8], extra: &str) -> String {
    format!(
        "name = \"{name}\"\nversion = \"{version}\"\nkind = \"ocr-postprocess\"\ncontract = 1\nentry = \"{name}.wasm\"\nsha256 = \"{}\"\n{extra}",
        sha256_hex(wasm)
    )
}

fn registry() -> Registry {
    Registry::new(HostConfig::default()).expect("registry")
}

fn install(r: &Registry, name: &str, body: &str, extra: &str) -> Result<(), PluginError> {
    let wasm = module(1, "", body);
    r.install(&manifest(name, "1.0.0", wasm.as_bytes(), extra), wasm.as_bytes()).map(|_| ())
}

#[test]
fn a_plugin_receives_its_input_and_returns_json() {
    let r = registry();
    install(&r, "echo", ECHO, "").expect("install");
    let input = json!({"text": "Patient seen on 2026-11-26", "pages": [], "language": "en"});
    assert_eq!(r.call("echo", &input).expect("call"), input);
    let stats = r.list();
    assert_eq!((stats[0].calls, stats[0].errors), (1, 0));
    assert!(stats[0].p99_us.is_some());
    assert_eq!(r.call("nobody", &input), Err(PluginError::NotFound("nobody".into())));
}

#[test]
fn an_endless_loop_is_stopped_at_its_time_limit_while_other_calls_are_served() {
    let r = Arc::new(registry());
    install(&r, "spin", LOOP, "[limits]\ntime_ms = 50\n").expect("install");
    install(&r, "echo", ECHO, "").expect("install");
    let spinner = {
        let r = r.clone();
        std::thread::spawn(move || r.call("spin", &json!({})))
    };
    // Meanwhile the other plugin answers, many times.
    let mut served = 0;
    let until = Instant::now() + Duration::from_millis(40);
    while Instant::now() < until {
        assert_eq!(r.call("echo", &json!({"n": served})).expect("echo"), json!({"n": served}));
        served += 1;
    }
    // An endless loop that returns at all was stopped; that it was stopped by its own limit (not
    // by anything else) is what the error says. How fast is the benchmarks' business.
    let result = spinner.join().expect("join");
    assert!(matches!(result, Err(PluginError::TimeLimit { limit_ms: 50, .. })), "{result:?}");
    assert!(served > 0);
    assert_eq!(r.list().iter().find(|s| s.name == "spin").map(|s| s.errors), Some(1));
}

#[test]
fn a_memory_bomb_is_stopped_at_its_memory_limit() {
    let r = registry();
    install(&r, "bomb", BOMB, "[limits]\nmemory_mib = 8\n").expect("install");
    assert_eq!(r.call("bomb", &json!({})), Err(PluginError::MemoryLimit { limit_mib: 8 }));
    // The next call gets a fresh instance and fails the same way: nothing leaked between calls.
    assert_eq!(r.call("bomb", &json!({})), Err(PluginError::MemoryLimit { limit_mib: 8 }));
}

#[test]
fn a_trap_fails_only_that_call() {
    let r = registry();
    install(&r, "crash", TRAP, "").expect("install");
    install(&r, "echo", ECHO, "").expect("install");
    let err = r.call("crash", &json!({})).expect_err("trap");
    assert!(matches!(&err, PluginError::Trapped(m) if m.contains("unreachable")), "{err}");
    assert_eq!(r.call("echo", &json!(1)).expect("echo"), json!(1));
}

#[test]
fn malformed_modules_wrong_contracts_and_bad_manifests_are_refused_with_clear_errors() {
    let r = registry();
    let junk = b"this is not WebAssembly";
    let err = r.install(&manifest("junk", "1", junk, ""), junk).expect_err("junk");
    assert!(matches!(err, PluginError::Module(_)), "{err}");

    // A manifest for a contract the host does not speak.
    let wasm = module(1, "", ECHO);
    let m = manifest("future", "1", wasm.as_bytes(), "").replace("contract = 1", "contract = 2");
    let err = r.install(&m, wasm.as_bytes()).expect_err("contract 2");
    assert_eq!(err, PluginError::Contract { found: 2, supported: vec![1] });
    assert!(err.to_string().contains("supports [1]"), "{err}");
    // A module that says another contract than its manifest.
    let wasm = module(2, "", ECHO);
    let err = r.install(&manifest("liar", "1", wasm.as_bytes(), ""), wasm.as_bytes()).expect_err("liar");
    assert_eq!(err, PluginError::Contract { found: 2, supported: vec![1] });

    // The checksum must match; exports must be there; imports must be provided.
    let wasm = module(1, "", ECHO);
    let m = manifest("sum", "1", b"other bytes", "");
    assert!(matches!(r.install(&m, wasm.as_bytes()), Err(PluginError::Manifest(e)) if e.contains("SHA-256")));
    let bare = "(module (memory (export \"memory\") 1))";
    let err = r.install(&manifest("bare", "1", bare.as_bytes(), ""), bare.as_bytes()).expect_err("bare");
    assert!(err.to_string().contains("careport_contract"), "{err}");
    let wasi =
        module(1, "(import \"wasi_snapshot_preview1\" \"fd_write\" (func (param i32 i32 i32 i32) (result i32)))", ECHO);
    let err = r.install(&manifest("wasi", "1", wasi.as_bytes(), ""), wasi.as_bytes()).expect_err("wasi");
    assert!(err.to_string().contains("does not provide"), "{err}");
    for (bad, why) in
        [("name = \"Bad Name\"", "name"), ("kind = \"telepathy\"", "kind"), ("entry = \"../escape.wasm\"", "entry")]
    {
        let key = bad.split(" = ").next().expect("key");
        let text: String = manifest("ok", "1", wasm.as_bytes(), "")
            .lines()
            .map(|l| if l.starts_with(&format!("{key} =")) { bad.to_owned() } else { l.to_owned() })
            .collect::<Vec<_>>()
            .join("\n");
        let err = r.install(&text, wasm.as_bytes()).expect_err(why);
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
    let err = install(&r, "greedy", ECHO, "[limits]\ntime_ms = 60000\n").expect_err("over the cap");
    assert!(err.to_string().contains("caps"), "{err}");
    assert!(r.list().is_empty(), "nothing refused was installed");
}

#[test]
fn capabilities_need_the_operators_grant() {
    let clock = module(
        1,
        "(import \"careport\" \"now_ms\" (func $now (result i64)))",
        "(drop (call $now)) (i64.or (i64.shl (i64.extend_i32_u (local.get $in)) (i64.const 32)) (i64.extend_i32_u (local.get $inl)))",
    );
    let m = manifest("timer", "1", clock.as_bytes(), "capabilities = [\"clock\"]\n");
    let err = registry().install(&m, clock.as_bytes()).expect_err("not granted");
    assert!(err.to_string().contains("not granted"), "{err}");
    let mut config = HostConfig::default();
    config.grants.insert("timer".into(), vec!["clock".into()]);
    let r = Registry::new(config).expect("registry");
    r.install(&m, clock.as_bytes()).expect("granted");
    assert_eq!(r.call("timer", &json!([1, 2])).expect("call"), json!([1, 2]));
    // Without the capability in its manifest, the same module cannot even be linked.
    let m = manifest("timer", "1", clock.as_bytes(), "");
    assert!(r.install(&m, clock.as_bytes()).is_err());
}

#[test]
fn hot_reload_under_concurrent_calls_fails_no_call_and_keeps_a_good_version_against_a_broken_one() {
    let r = Arc::new(registry());
    // Version one answers its data segment; version two echoes.
    let v1 = module(1, "", "(i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 17))");
    let v2 = module(1, "", ECHO);
    r.install(&manifest("swap", "1", v1.as_bytes(), ""), v1.as_bytes()).expect("v1");
    assert_eq!(r.call("swap", &json!({"x": 1})).expect("v1"), json!({"version": "one"}));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (r, stop, ok, failed) = (r.clone(), stop.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match r.call("swap", &json!({"x": 1})) {
                        Ok(v) if v == json!({"version": "one"}) || v == json!({"x": 1}) => {
                            ok.fetch_add(1, Ordering::SeqCst)
                        }
                        _ => failed.fetch_add(1, Ordering::SeqCst),
                    };
                }
            })
        })
        .collect();
    for i in 0..20 {
        let (text, wasm) = if i % 2 == 0 { ("2", &v2) } else { ("1", &v1) };
        r.install(&manifest("swap", text, wasm.as_bytes(), ""), wasm.as_bytes()).expect("swap");
        // A broken version is refused; the serving one carries on.
        let junk = b"\0asm broken";
        assert!(r.install(&manifest("swap", "9", junk, ""), junk).is_err());
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::SeqCst);
    for c in callers {
        c.join().expect("join");
    }
    assert_eq!(failed.load(Ordering::SeqCst), 0, "no call failed during the swaps");
    assert!(ok.load(Ordering::SeqCst) > 20);
    assert_eq!(r.list()[0].version, "1", "the last good version serves");
}
