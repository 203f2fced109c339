//! Plugins through the admin API and the `Plugins` service: upload, refusal that keeps the
//! serving version, enable/disable, reload from disk, persistence in the plugins directory,
//! `/readyz`, `/metrics` and the audit trail.

use careport_domain::Role;
use careport_tests::spawn_app;
use serde_json::{Value, json};
use uuid::Uuid;

/// A contract-v1 WAT plugin answering the JSON document `answer`.
fn plugin(answer: &str) -> String {
    let escaped = answer.replace('"', "\\\"");
    format!(
        r#"(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 16) "{escaped}")
  (func (export "careport_contract") (result i32) (i32.const 1))
  (func (export "careport_alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $len)))
    (local.get $p))
  (func (export "careport_call") (param i32 i32 i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const {len}))))"#,
        len = answer.len()
    )
}

fn manifest(name: &str, version: &str, module: &[u8]) -> String {
    format!(
        "name = \"{name}\"\nversion = \"{version}\"\nkind = \"ocr-postprocess\"\ncontract = 1\nentry = \"{name}.wasm\"\nsha256 = \"{}\"\n",
        careport_plugins::manifest::sha256_hex(module)
    )
}

fn upload_body(name: &str, version: &str, module: &str) -> Value {
    json!({
        "manifest": manifest(name, version, module.as_bytes()),
        "module_base64": data_encoding::BASE64.encode(module.as_bytes()),
    })
}

#[actix_web::test]
async fn an_administrator_uploads_disables_reloads_and_a_refused_version_leaves_the_old_one_serving() {
    let app = spawn_app().await;
    let email = format!("admin-{}@example.org", &Uuid::new_v4().simple().to_string()[..8]);
    app.create_user(&email, Role::Admin, None, None).await;
    let token = app.login(&email).await["access_token"].as_str().expect("token").to_owned();
    let v1 = plugin(r#"{"text":"v1","annotations":[]}"#);
    let res = app.post_json("/api/v1/admin/plugins", Some(&token), &upload_body("tagger", "1.0.0", &v1)).await;
    assert_eq!(res.status(), 201);
    let input = json!({"text": "x", "pages": [], "language": "en"});
    assert_eq!(app.services.plugins.call("tagger", input.clone()).await.expect("call")["text"], "v1");

    // A new version whose checksum does not match: 422 with the reason; v1 keeps serving.
    let v2 = plugin(r#"{"text":"v2","annotations":[]}"#);
    let mut bad = upload_body("tagger", "2.0.0", &v2);
    bad["manifest"] = json!(manifest("tagger", "2.0.0", b"something else"));
    let res = app.post_json("/api/v1/admin/plugins", Some(&token), &bad).await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["code"], "plugin_refused");
    assert!(body["message"].as_str().unwrap_or_default().contains("SHA-256"), "{body}");
    assert_eq!(app.services.plugins.call("tagger", input.clone()).await.expect("call")["text"], "v1");
    // A good one replaces it.
    let res = app.post_json("/api/v1/admin/plugins", Some(&token), &upload_body("tagger", "2.0.0", &v2)).await;
    assert_eq!(res.status(), 201);
    assert_eq!(app.services.plugins.call("tagger", input.clone()).await.expect("call")["text"], "v2");

    // Disable, enable.
    let res = app.post_json("/api/v1/admin/plugins/tagger/disable", Some(&token), &json!({})).await;
    assert_eq!(res.status(), 200);
    assert!(matches!(
        app.services.plugins.call("tagger", input.clone()).await,
        Err(careport_actors::plugins::PluginError::Disabled(_))
    ));
    let res = app.post_json("/api/v1/admin/plugins/tagger/enable", Some(&token), &json!({})).await;
    assert_eq!(res.status(), 200);

    // Files replaced on disk, then reloaded; a broken file on disk is refused by reload.
    let dir = app.data_dir.join("plugins/tagger");
    let v3 = plugin(r#"{"text":"v3","annotations":[]}"#);
    std::fs::write(dir.join("tagger.wasm"), &v3).expect("write");
    std::fs::write(dir.join("plugin.toml"), manifest("tagger", "3.0.0", v3.as_bytes())).expect("write");
    let res = app.post_json("/api/v1/admin/plugins/tagger/reload", Some(&token), &json!({})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.services.plugins.call("tagger", input.clone()).await.expect("call")["text"], "v3");
    std::fs::write(dir.join("tagger.wasm"), b"broken").expect("write");
    let res = app.post_json("/api/v1/admin/plugins/tagger/reload", Some(&token), &json!({})).await;
    assert_eq!(res.status(), 422);
    assert_eq!(
        app.services.plugins.call("tagger", input.clone()).await.expect("call")["text"],
        "v3",
        "old version serves"
    );
    let res = app.post_json("/api/v1/admin/plugins/nobody/reload", Some(&token), &json!({})).await;
    assert_eq!(res.status(), 404);

    // The list, readiness (degraded by the failed reload), metrics and the audit trail.
    let list: Value = app.get_as("/api/v1/admin/plugins", &token).await.json().await.expect("json");
    assert_eq!(list["items"][0]["version"], "3.0.0", "{list}");
    assert!(list["items"][0]["calls"].as_u64().unwrap_or(0) >= 4);
    assert_eq!(list["failed"][0]["dir"], "tagger");
    let ready: Value = app.get("/readyz").await.json().await.expect("json");
    assert_eq!(ready["components"]["plugins"]["status"], "degraded", "{ready}");
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(metrics.contains("careport_plugin_calls_total{plugin=\"tagger\"}"), "{metrics}");
    let trail: Value =
        app.get_as("/api/v1/admin/audit?action=admin.plugin_upload", &token).await.json().await.expect("json");
    assert_eq!(trail["items"].as_array().map(Vec::len), Some(3), "two uploads and one refusal: {trail}");

    // What was uploaded is in the plugins directory: a new host on it loads it.
    // (A host on a store of its own: only the directory counts.)
    let start = |db: careport_store::Db| {
        careport_actors::plugins::Plugins::start(&app.settings.plugins, &app.data_dir, db, careport_store::Bus::local())
    };
    let scratch = careport_tests::TestDb::new().await;
    let again = start(scratch.connect().await).await.expect("start");
    assert!(
        again.list().is_empty() && again.failed().contains_key("tagger"),
        "the broken file is refused at start too"
    );
    std::fs::write(dir.join("tagger.wasm"), &v3).expect("write");
    let scratch2 = careport_tests::TestDb::new().await;
    let again2 = start(scratch2.connect().await).await.expect("start");
    assert_eq!(again2.list()[0].version, "3.0.0");
}

/// Every example language pack translates every message key of the runtime (`careport::i18n`),
/// in every plural category of its locale, and nothing else; Arabic is right-to-left.
#[test]
fn every_language_pack_translates_every_message_key() {
    use careport_plugins::Registry;
    use careport_plugins::registry::HostConfig;
    let examples = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/examples");
    let r = Registry::new(HostConfig::default()).expect("registry");
    let english = careport::i18n::english();
    assert!(english.contains_key("error.not_found") && english.contains_key("nav.patients"));
    for locale in ["es", "fr", "ar", "zh", "hi"] {
        let name = format!("lang-{locale}");
        let m = r.install_dir(&examples.join(&name)).expect("the committed pack installs");
        assert_eq!(m.kind, "language-pack");
        let pack = r.call(&name, &json!({})).expect("catalogue");
        assert_eq!(pack["locale"], locale);
        assert_eq!(pack["direction"], if locale == "ar" { "rtl" } else { "ltr" });
        let categories: Vec<String> = pack["plural_categories"]
            .as_array()
            .expect("plural categories")
            .iter()
            .map(|c| c.as_str().expect("category").to_owned())
            .collect();
        assert!(categories.contains(&"other".to_owned()), "{locale}: CLDR always has `other`");
        let messages = pack["messages"].as_object().expect("messages");
        let have: Vec<String> = messages.keys().cloned().collect();
        let want = careport::i18n::required_keys(&categories);
        let missing: Vec<&String> = want.iter().filter(|k| !messages.contains_key(*k)).collect();
        let unknown: Vec<&String> = have.iter().filter(|k| !want.contains(k)).collect();
        assert!(missing.is_empty(), "{locale} lacks {missing:?}");
        assert!(unknown.is_empty(), "{locale} has keys the portal does not use: {unknown:?}");
        for (key, text) in messages {
            let text = text.as_str().expect("text");
            assert!(!text.trim().is_empty(), "{locale}: {key} is empty");
            let english_text =
                english.get(key).or_else(|| english.get(&format!("{}#other", careport::i18n::base_key(key))));
            if english_text.is_some_and(|e| e.contains("{count}"))
                && !key.ends_with("#zero")
                && !key.ends_with("#one")
                && !key.ends_with("#two")
            {
                assert!(text.contains("{count}"), "{locale}: {key} drops its {{count}}");
            }
        }
    }
}

/// A language pack uploaded by an administrator serves its locale at `/api/v1/i18n/{locale}`.
#[actix_web::test]
async fn an_uploaded_language_pack_serves_its_catalogue() {
    let app = spawn_app().await;
    let email = format!("admin-{}@example.org", &Uuid::new_v4().simple().to_string()[..8]);
    app.create_user(&email, Role::Admin, None, None).await;
    let token = app.login(&email).await["access_token"].as_str().expect("token").to_owned();
    let res = app.get("/api/v1/i18n/ar").await;
    assert_eq!(res.status(), 404, "no pack yet");
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/examples/lang-ar");
    let body = json!({
        "manifest": std::fs::read_to_string(dir.join("plugin.toml")).expect("manifest"),
        "module_base64": data_encoding::BASE64.encode(&std::fs::read(dir.join("lang_ar.wasm")).expect("module")),
    });
    let res = app.post_json("/api/v1/admin/plugins", Some(&token), &body).await;
    assert_eq!(res.status(), 201);
    let ar: Value = app.get("/api/v1/i18n/ar").await.json().await.expect("json");
    assert_eq!(ar["direction"], "rtl");
    assert_eq!(ar["messages"]["nav.patients"], "المرضى");
    assert_eq!(ar["fallback"], json!([]));
    let res = app.post_json("/api/v1/admin/plugins/lang-ar/call", Some(&token), &json!({})).await;
    assert_eq!(res.status(), 200);
    let direct: Value = res.json().await.expect("json");
    assert_eq!(direct["locale"], "ar");
    let en: Value = app.get("/api/v1/i18n/en").await.json().await.expect("json");
    assert_eq!(en["messages"]["error.not_found"], "The resource was not found.");
}

/// Two nodes on one store: an upload, a switch and a new version on one node reach the other.
#[actix_web::test]
async fn a_plugin_change_on_one_node_reaches_the_other() {
    let app = spawn_app().await;
    let other = careport_tests::spawn_node_beside(&app, "node2", |s| {
        // Without Redis (the SQLite pass) the nodes share no bus: the store poll carries it.
        s.plugins.sync_interval_ms = 200;
    })
    .await;
    let email = format!("admin-{}@example.org", &Uuid::new_v4().simple().to_string()[..8]);
    app.create_user(&email, Role::Admin, None, None).await;
    let token = app.login(&email).await["access_token"].as_str().expect("token").to_owned();
    let v1 = plugin(r#"{"text":"v1","annotations":[]}"#);
    let res = app.post_json("/api/v1/admin/plugins", Some(&token), &upload_body("shared", "1.0.0", &v1)).await;
    assert_eq!(res.status(), 201);
    let input = json!({"text": "x"});
    let wait_for = |expect: &'static str| {
        let other = &other;
        let input = input.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let got = other.services.plugins.call("shared", input.clone()).await;
                let text = got.as_ref().ok().and_then(|v| v["text"].as_str().map(str::to_owned));
                let state = match &got {
                    Err(careport_actors::plugins::PluginError::Disabled(_)) => "disabled".to_owned(),
                    _ => text.unwrap_or_default(),
                };
                if state == expect {
                    return;
                }
                assert!(std::time::Instant::now() < deadline, "node 2 never saw {expect} (has {got:?})");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    wait_for("v1").await;
    let res = app.post_json("/api/v1/admin/plugins/shared/disable", Some(&token), &json!({})).await;
    assert_eq!(res.status(), 200);
    wait_for("disabled").await;
    app.post_json("/api/v1/admin/plugins/shared/enable", Some(&token), &json!({})).await;
    let v2 = plugin(r#"{"text":"v2","annotations":[]}"#);
    let res = app.post_json("/api/v1/admin/plugins", Some(&token), &upload_body("shared", "2.0.0", &v2)).await;
    assert_eq!(res.status(), 201);
    wait_for("v2").await;
}

/// The plugins careport ships with: a fresh portal speaks the six languages (the packs enabled,
/// complete), the example OCR plugins wait disabled; at the next start an operator's own plugin
/// of a bundled name at a higher version stays theirs, and an older bundled version is upgraded
/// without being re-enabled.
#[actix_web::test]
async fn a_fresh_portal_has_the_bundled_plugins_and_an_operator_s_own_stay_theirs() {
    let mut app = careport_tests::spawn_app_with(|s| s.plugins.bundled = true, Vec::new()).await;
    let email = format!("admin-{}@example.org", &Uuid::new_v4().simple().to_string()[..8]);
    app.create_user(&email, Role::Admin, None, None).await;
    let token = app.login(&email).await["access_token"].as_str().expect("token").to_owned();
    for locale in ["es", "fr", "ar", "zh", "hi"] {
        let res = app.get(&format!("/api/v1/i18n/{locale}")).await;
        assert_eq!(res.status(), 200, "{locale}");
        let v: Value = res.json().await.expect("json");
        assert_eq!(v["fallback"], json!([]), "{locale}: the shipped pack translates every key");
    }
    let fresh = listed(&app, &token).await;
    assert_eq!(fresh.len(), 7, "{fresh:?}");
    assert_eq!(fresh["lang-es"], ("1.6.0".to_owned(), true));
    assert!(!fresh["redact-phi"].1, "the OCR examples wait disabled");
    assert!(!fresh["lab-values"].1);

    // The operator's own lang-fr, a higher version; lang-zh put back to an older version and
    // disabled.
    let dir = |d: &str| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/examples").join(d);
    let upload = |name: &str, module: &str, version: &str| {
        let manifest = std::fs::read_to_string(dir(name).join("plugin.toml"))
            .expect("manifest")
            .replace("version = \"1.6.0\"", &format!("version = \"{version}\""));
        json!({
            "manifest": manifest,
            "module_base64": data_encoding::BASE64.encode(&std::fs::read(dir(name).join(module)).expect("module")),
        })
    };
    let res = app.post_json("/api/v1/admin/plugins", Some(&token), &upload("lang-fr", "lang_fr.wasm", "9.0.0")).await;
    assert_eq!(res.status(), 201);
    let res = app.post_json("/api/v1/admin/plugins", Some(&token), &upload("lang-zh", "lang_zh.wasm", "1.0.0")).await;
    assert_eq!(res.status(), 201);
    let res = app.post_json("/api/v1/admin/plugins/lang-zh/disable", Some(&token), &json!({})).await;
    assert_eq!(res.status(), 200);

    app.restart().await;
    let token = app.login(&email).await["access_token"].as_str().expect("token").to_owned();
    let after = listed(&app, &token).await;
    assert_eq!(after["lang-fr"], ("9.0.0".to_owned(), true), "the operator's higher version stays");
    assert_eq!(after["lang-zh"], ("1.6.0".to_owned(), false), "upgraded, still disabled");
    assert!(!after["redact-phi"].1);
}

/// The installed plugins: name → (version, enabled).
async fn listed(app: &careport_tests::TestApp, token: &str) -> std::collections::BTreeMap<String, (String, bool)> {
    let v: Value = app.get_as("/api/v1/admin/plugins", token).await.json().await.expect("json");
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| {
            let name = p["name"].as_str().expect("name").to_owned();
            (name, (p["version"].as_str().expect("version").to_owned(), p["enabled"].as_bool().expect("enabled")))
        })
        .collect()
}

/// A language pack is run once per installed version, not on every catalogue request: neither a
/// known nor an unknown locale calls the packs again, and a new version is read afresh.
#[actix_web::test]
async fn catalogues_are_read_once_per_pack_version() {
    let app = careport_tests::spawn_app_with(|s| s.plugins.bundled = true, Vec::new()).await;
    let email = format!("admin-{}@example.org", &Uuid::new_v4().simple().to_string()[..8]);
    app.create_user(&email, Role::Admin, None, None).await;
    let token = app.login(&email).await["access_token"].as_str().expect("token").to_owned();
    for path in ["/api/v1/i18n/xx", "/api/v1/i18n/es", "/api/v1/i18n/yy", "/api/v1/i18n/es", "/api/v1/i18n/zz"] {
        let res = app.get(path).await;
        assert_eq!(res.status(), if path.ends_with("/es") { 200 } else { 404 }, "{path}");
    }
    let calls = |v: &Value, name: &str| {
        v["items"].as_array().expect("items").iter().find(|p| p["name"] == name).expect("listed")["calls"]
            .as_u64()
            .expect("calls")
    };
    let v: Value = app.get_as("/api/v1/admin/plugins", &token).await.json().await.expect("json");
    for pack in ["lang-es", "lang-fr", "lang-ar", "lang-zh", "lang-hi"] {
        assert_eq!(calls(&v, pack), 1, "{pack} runs once for five requests");
    }
    // A new version is read afresh, once.
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/examples/lang-es");
    let manifest = std::fs::read_to_string(dir.join("plugin.toml"))
        .expect("manifest")
        .replace("version = \"1.6.0\"", "version = \"1.7.0\"");
    let body = json!({
        "manifest": manifest,
        "module_base64": data_encoding::BASE64.encode(&std::fs::read(dir.join("lang_es.wasm")).expect("module")),
    });
    let res = app.post_json("/api/v1/admin/plugins", Some(&token), &body).await;
    assert_eq!(res.status(), 201);
    for _ in 0..3 {
        assert_eq!(app.get("/api/v1/i18n/es").await.status(), 200);
    }
    let v: Value = app.get_as("/api/v1/admin/plugins", &token).await.json().await.expect("json");
    // The count is the name's, across versions: one call for each.
    assert_eq!(calls(&v, "lang-es"), 2, "the new version, once");
}
