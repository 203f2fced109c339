//! Per-call overhead of the plugin sandbox: a trivial plugin (fresh instance, deadline, memory
//! cap, JSON in and out), instantiation alone, and `redact-phi` over ten pages of OCR text.
//!
//!   cargo bench -p careport-plugins --bench calls

use std::path::PathBuf;

use careport_plugins::Registry;
use careport_plugins::manifest::sha256_hex;
use careport_plugins::registry::HostConfig;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

const TRIVIAL: &str = r#"(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (data (i32.const 16) "{}")
  (func (export "careport_contract") (result i32) (i32.const 1))
  (func (export "careport_alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $len)))
    (local.get $p))
  (func (export "careport_call") (param i32 i32 i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 2))))"#;

/// Ten pages of a realistic clinic letter (about 1,000 characters each, identifiers on each).
fn ten_pages() -> String {
    let page = "St Elsewhere Hospital - Oncology Clinic. Patient: Jane Doe, MRN: H-00482913, DOB: 12/03/1961. \
                Contact jane.doe@example.org or +44 20 7946 0958. Seen on 2026-11-20 for follow-up of uterine \
                leiomyosarcoma. CT chest, abdomen and pelvis shows no new lesions; the left adnexal mass is \
                stable at 3.2 cm. HbA1c 7.2 %, creatinine 88 umol/L, haemoglobin 11.8 g/dL. Plan: continue \
                surveillance imaging every three months, review in clinic on 2026-12-18, and contact the \
                specialist nurse on 020 7946 0100 with any new pelvic pain, bleeding or breathlessness. ";
    page.repeat(2 * 10)
}

fn bench(c: &mut Criterion) {
    let r = Registry::new(HostConfig::default()).expect("registry");
    let manifest = format!(
        "name = \"trivial\"\nversion = \"1\"\nkind = \"ocr-postprocess\"\ncontract = 1\nentry = \"t.wasm\"\nsha256 = \"{}\"\n",
        sha256_hex(TRIVIAL.as_bytes())
    );
    r.install(&manifest, TRIVIAL.as_bytes()).expect("install");
    let input = json!({"text": "x", "pages": [], "language": "en"});
    c.bench_function("trivial plugin call (fresh instance, JSON in and out)", |b| {
        b.iter(|| r.call("trivial", &input).expect("call"))
    });
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    r.install_dir(&examples.join("redact-phi")).expect("redact-phi");
    let pages = json!({"text": ten_pages(), "pages": [], "language": "en"});
    c.bench_function("redact-phi over ten pages of OCR text (11 KB)", |b| {
        b.iter(|| r.call("redact-phi", &pages).expect("call"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
