//! The plugin contract's boundary, generated: whatever a module answers — any pointer, any
//! length, any bytes — and whatever JSON the host sends, a call is a JSON value or a clear
//! `PluginError`, never a panic and never a read outside the module's memory or past the
//! output limit.

use careport_plugins::manifest::sha256_hex;
use careport_plugins::registry::HostConfig;
use careport_plugins::{PluginError, Registry};
use proptest::prelude::*;
use serde_json::{Value, json};

/// A contract-v1 module whose call answers the packed `(ptr << 32) | len` given, over a memory
/// holding `bytes` at offset 4096 (and, when `echo`, the input itself).
fn module(bytes: &[u8], answer: Option<u64>) -> String {
    let data: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
    let body = match answer {
        Some(packed) => format!("(i64.const {})", packed as i64),
        None => {
            "(i64.or (i64.shl (i64.extend_i32_u (local.get $in)) (i64.const 32)) (i64.extend_i32_u (local.get $inl)))"
                .to_owned()
        }
    };
    format!(
        r#"(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))
  (data (i32.const 4096) "{data}")
  (func (export "careport_contract") (result i32) (i32.const 1))
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

fn call(bytes: &[u8], answer: Option<u64>, input: &Value) -> Result<Value, PluginError> {
    let r = Registry::new(HostConfig::default()).expect("registry");
    let wasm = module(bytes, answer);
    let manifest = format!(
        "name = \"gen\"\nversion = \"1.0.0\"\nkind = \"ocr-postprocess\"\ncontract = 1\nentry = \"gen.wasm\"\nsha256 = \"{}\"\n",
        sha256_hex(wasm.as_bytes())
    );
    r.install(&manifest, wasm.as_bytes()).expect("install");
    r.call("gen", input)
}

/// JSON values of any shape, a few levels deep (integers only: a float's shortest text need not
/// parse back to the same bits without serde_json's `float_roundtrip`).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    // Each case compiles a module: few cases, each a different boundary.
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_pointer_length_and_bytes_a_module_answers_are_a_value_or_a_clear_error(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ptr in prop_oneof![Just(4096u32), 0u32..70_000, any::<u32>()],
        len in prop_oneof![0u32..80, 65_000u32..70_000, any::<u32>()],
    ) {
        let packed = (u64::from(ptr) << 32) | u64::from(len);
        match call(&bytes, Some(packed), &json!({"text": "x"})) {
            Ok(v) => {
                // Only an answer inside the module's one page can have been read.
                prop_assert!(u64::from(ptr) + u64::from(len) <= 65_536, "read outside memory: {ptr}+{len} gave {v}");
            }
            Err(PluginError::Output(_)) => {}
            Err(other) => prop_assert!(false, "an unclear refusal: {other:?}"),
        }
    }

    #[test]
    fn any_json_input_reaches_the_module_whole_and_comes_back_equal(input in json_value()) {
        prop_assert_eq!(call(b"", None, &input).expect("echo"), input);
    }
}
