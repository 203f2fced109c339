//! OCR through the API, on both store backends: real Tesseract on real scans (the fixtures of
//! `careport_ml`, made by `scripts/make-ocr-fixtures.py`), progress over a real WebSocket
//! client, cancelling, a job resumed after its worker died, a rotated page, wrong languages,
//! bad files, someone else's text, a plugin that traps, the queue's limit, and reading on
//! upload.

use std::time::Duration;

use careport_actors::ocr::OCR_JOB;
use careport_store::NewJob;
use careport_tests::TestApp;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::records::Chart;

const SCAN: &[u8] = include_bytes!("../../actors/ml/tests/fixtures/scan.png");
const ROTATED: &[u8] = include_bytes!("../../actors/ml/tests/fixtures/scan-rot180.png");
const TIFF: &[u8] = include_bytes!("../../actors/ml/tests/fixtures/scan-2p.tif");
const TEXT_PDF: &[u8] = include_bytes!("../../actors/ml/tests/fixtures/text-layer.pdf");
const SCANNED_PDF: &[u8] = include_bytes!("../../actors/ml/tests/fixtures/scanned.pdf");
const MIXED_PDF: &[u8] = include_bytes!("../../actors/ml/tests/fixtures/mixed.pdf");
const ENCRYPTED_PDF: &[u8] = include_bytes!("../../actors/ml/tests/fixtures/encrypted.pdf");
const TRUNCATED_PDF: &[u8] = include_bytes!("../../actors/ml/tests/fixtures/truncated.pdf");

/// A chart on an app that runs OCR jobs, after `adjust`.
async fn ocr_chart(adjust: impl FnOnce(&mut careport::settings::Settings)) -> Chart {
    crate::records::chart_with(|s| {
        s.ocr.enabled = true;
        adjust(s);
    })
    .await
}

/// Give `record` a stored text (the RBAC table reads it), as a finished job would.
pub async fn give_text(app: &TestApp, record: Uuid) {
    let row = careport_store::vault::live_record(app.services.store_handle(), record)
        .await
        .expect("record")
        .expect("live record");
    let text = careport_actors::ocr::StoredText {
        text: "Haemoglobin 13.5 g/dL".into(),
        mean_confidence: 91.0,
        language: "en".into(),
        pages: vec![careport_actors::ocr::StoredPage {
            page: 1,
            text: "Haemoglobin 13.5 g/dL".into(),
            confidence: 91.0,
            source: "ocr".into(),
            engine: "tesseract".into(),
            rotation: 0,
        }],
        annotations: Vec::new(),
        plugins: Vec::new(),
        job_id: Uuid::nil(),
        finished_at: 0,
    };
    let json = serde_json::to_string(&text).expect("json");
    app.services.vault.store_ocr_text(&row, &json).await.expect("store text");
}

/// A queued OCR job of `record` that no worker will take (it has no queue row).
pub async fn queued_job(app: &TestApp, record: Uuid) -> Uuid {
    let id = Uuid::now_v7();
    careport_store::ocr::insert(app.services.store_handle(), id, record, 0, None, "en").await.expect("job");
    id
}

/// Upload `content` into the chart as the doctor; the record's id (and the upload's answer).
async fn upload(c: &Chart, name: &str, content: &[u8]) -> (String, Value) {
    let fields = [("record_type", "laboratory-results"), ("title", "Scanned letter"), ("date", "2026-03-01")];
    let (s, v) = c.upload(&c.doctor, c.patient_id, &fields, name, content).await;
    assert_eq!(s, 201, "upload {name}: {v}");
    (v["id"].as_str().expect("id").to_owned(), v)
}

/// Ask for a record's text; the job id.
async fn request(c: &Chart, record: &str, token: &str, body: Value) -> String {
    let (s, v) = c.send("POST", &format!("/api/v1/records/{record}/ocr"), token, Some(body)).await;
    assert_eq!(s, 202, "ocr: {v}");
    v["job_id"].as_str().expect("job id").to_owned()
}

/// Poll a job until it has ended (60 s at most); its last state.
async fn finished(c: &Chart, job: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (s, v) = c.send("GET", &format!("/api/v1/ocr/jobs/{job}"), &c.doctor, None).await;
        assert_eq!(s, 200, "{v}");
        if ["done", "failed", "cancelled"].contains(&v["status"].as_str().unwrap_or_default()) {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "job did not end within 60 s: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text(c: &Chart, record: &str, token: &str) -> (u16, Value) {
    c.send("GET", &format!("/api/v1/records/{record}/text"), token, None).await
}

/// The job's WebSocket: every message until the server closes (or 60 s pass).
async fn events(c: &Chart, job: &str, token: &str) -> Vec<Value> {
    socket_events(c, &format!("/api/v1/ocr/jobs/{job}/events"), token).await
}

/// A job-events WebSocket at `path`: every message until the server closes (or 60 s pass).
pub(crate) async fn socket_events(c: &Chart, path: &str, token: &str) -> Vec<Value> {
    let url = c.app.url(path).replace("http://", "ws://");
    let (res, mut socket) = awc::Client::new().ws(url).bearer_auth(token).connect().await.expect("websocket");
    assert_eq!(res.status().as_u16(), 101);
    let mut got = Vec::new();
    let deadline = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            frame = socket.next() => match frame {
                Some(Ok(awc::ws::Frame::Text(t))) => got.push(serde_json::from_slice(&t).expect("json event")),
                Some(Ok(awc::ws::Frame::Ping(p))) => socket.send(awc::ws::Message::Pong(p)).await.expect("pong"),
                Some(Ok(awc::ws::Frame::Close(_))) | None | Some(Err(_)) => return got,
                Some(Ok(_)) => {}
            },
            _ = &mut deadline => panic!("the socket stayed open 60 s: {got:?}"),
        }
    }
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap_or_default()).collect()
}

#[actix_web::test]
async fn a_scanned_page_is_read_with_progress_over_a_websocket_and_the_patient_reads_the_text() {
    let c = ocr_chart(|_| {}).await;
    let (record, uploaded) = upload(&c, "scan.png", SCAN).await;
    assert!(uploaded.get("ocr_job_id").is_none(), "this type is not read on upload here: {uploaded}");
    let job = request(&c, &record, &c.doctor, json!({"language": "en"})).await;
    let got = events(&c, &job, &c.patient).await;
    let k = kinds(&got);
    assert_eq!(k.first(), Some(&"state"), "{got:?}");
    assert_eq!(k.last(), Some(&"done"), "{got:?}");
    let pages: Vec<&Value> = got.iter().filter(|e| e["type"] == "progress" && e["stage"] == "ocr").collect();
    assert_eq!(pages.len(), 1, "one page read: {got:?}");
    assert_eq!(pages[0]["pages_total"], 1);
    assert!(pages[0]["confidence"].as_f64().unwrap_or(0.0) > 60.0, "{got:?}");

    let state = finished(&c, &job).await;
    assert_eq!(state["status"], "done");
    assert_eq!(state["pages_done"], 1);
    // The patient reads their own record's text; it came from the engine, page by page.
    let (s, t) = text(&c, &record, &c.patient).await;
    assert_eq!(s, 200, "{t}");
    assert!(t["text"].as_str().unwrap_or_default().contains("Haemoglobin"), "{t}");
    assert_eq!(t["pages"][0]["source"], "ocr");
    assert_eq!(t["pages"][0]["engine"], "tesseract");
    let mean = t["mean_confidence"].as_f64().expect("confidence");
    assert!(mean > 60.0 && mean <= 100.0, "{t}");
    // Sealed in the store: the words are not there in clear.
    let sealed = careport_store::vault::ocr_text(&c.app.db, record.parse().expect("uuid")).await.expect("row");
    assert!(!sealed.expect("sealed").contains("Haemoglobin"));
    // Every read is audited.
    let (s, trail) = c.send("GET", "/api/v1/admin/audit?action=record.text_read", &c.admin, None).await;
    assert_eq!(s, 200);
    assert_eq!(trail["items"].as_array().map(Vec::len), Some(1), "{trail}");
    // A late watcher gets the state, then the end.
    let late = events(&c, &job, &c.doctor).await;
    assert_eq!(kinds(&late), vec!["state", "done"], "{late:?}");
}

#[actix_web::test]
async fn documents_are_read_page_by_page_from_text_layers_and_scans() {
    let c = ocr_chart(|_| {}).await;
    for (name, content, sources, word) in [
        ("scan-2p.tif", TIFF, vec!["ocr", "ocr"], "Potassium"),
        ("text-layer.pdf", TEXT_PDF, vec!["text-layer", "text-layer"], "Amoxicillin"),
        ("scanned.pdf", SCANNED_PDF, vec!["ocr", "ocr"], "Sodium"),
        ("mixed.pdf", MIXED_PDF, vec!["text-layer", "ocr"], "Discharge"),
    ] {
        let (record, _) = upload(&c, name, content).await;
        let job = request(&c, &record, &c.doctor, json!({})).await;
        let state = finished(&c, &job).await;
        assert_eq!(state["status"], "done", "{name}: {state}");
        assert_eq!(state["pages_total"], sources.len(), "{name}");
        let (s, t) = text(&c, &record, &c.doctor).await;
        assert_eq!(s, 200, "{name}: {t}");
        let got: Vec<&str> =
            t["pages"].as_array().expect("pages").iter().map(|p| p["source"].as_str().unwrap_or("")).collect();
        assert_eq!(got, sources, "{name}");
        assert!(t["text"].as_str().unwrap_or_default().contains(word), "{name}: {t}");
        // A text layer is the text itself: full confidence, no engine.
        for p in t["pages"].as_array().expect("pages") {
            if p["source"] == "text-layer" {
                assert_eq!(p["confidence"], 100.0, "{name}");
                assert_eq!(p["engine"], "text-layer", "{name}");
            }
        }
    }
}

#[actix_web::test]
async fn a_page_scanned_upside_down_is_turned_and_read() {
    let c = ocr_chart(|_| {}).await;
    let (record, _) = upload(&c, "rotated.png", ROTATED).await;
    let job = request(&c, &record, &c.doctor, json!({"language": "en"})).await;
    assert_eq!(finished(&c, &job).await["status"], "done");
    let (_, t) = text(&c, &record, &c.doctor).await;
    assert_eq!(t["pages"][0]["rotation"], 180, "{t}");
    assert!(t["text"].as_str().unwrap_or_default().contains("Haemoglobin"), "{t}");
}

#[actix_web::test]
async fn languages_unsupported_files_and_other_peoples_records_are_refused_with_nothing_queued() {
    let c = ocr_chart(|_| {}).await;
    let (record, _) = upload(&c, "scan.png", SCAN).await;
    let path = format!("/api/v1/records/{record}/ocr");
    let (s, v) = c.send("POST", &path, &c.doctor, Some(json!({"language": "de"}))).await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_value")), "{v}");
    let (s, v) = c.send("POST", &path, &c.doctor, Some(json!({"lang": "en"}))).await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_json")), "{v}");
    // Another patient, and a nurse of another department, are not told the record exists.
    for token in [&c.other_patient, &c.other_nurse] {
        let (s, _) = c.send("POST", &path, token, Some(json!({}))).await;
        assert_eq!(s, 404);
    }
    let counts = careport_store::ocr::counts(&c.app.db).await.expect("counts");
    assert!(counts.is_empty(), "nothing queued: {counts:?}");
    // A plain-text record is not something OCR reads.
    let fields = [("record_type", "laboratory-results"), ("title", "Typed note")];
    let (s, v) = c.upload(&c.doctor, c.patient_id, &fields, "note.txt", b"Haemoglobin 13.5 g/dL\n").await;
    assert_eq!(s, 201, "{v}");
    let note = v["id"].as_str().expect("id");
    let (s, v) = c.send("POST", &format!("/api/v1/records/{note}/ocr"), &c.doctor, Some(json!({}))).await;
    assert_eq!((s, v["code"].as_str()), (422, Some("ocr_unsupported")), "{v}");

    // The text, the job and its events are the record's: 404 to someone who may not read it.
    let job = request(&c, &record, &c.patient, json!({})).await;
    assert_eq!(finished(&c, &job).await["status"], "done");
    for token in [&c.other_patient, &c.other_nurse, &c.admin] {
        let (s, v) = text(&c, &record, token).await;
        assert_eq!(s, 404, "{v}");
        assert_eq!(v["code"], "not_found", "no hint that a text exists: {v}");
        let (s, _) = c.send("GET", &format!("/api/v1/ocr/jobs/{job}"), token, None).await;
        assert_eq!(s, 404);
        let (s, _) = c.send("DELETE", &format!("/api/v1/ocr/jobs/{job}"), token, None).await;
        assert_eq!(s, 404);
        let res = c.app.get_as(&format!("/api/v1/ocr/jobs/{job}/events"), token).await;
        assert_eq!(res.status(), 404);
    }
}

#[actix_web::test]
async fn bad_files_fail_their_job_with_a_clear_code_and_leave_nothing_behind() {
    let c = ocr_chart(|_| {}).await;
    for (name, content, code) in
        [("encrypted.pdf", ENCRYPTED_PDF, "ocr_encrypted"), ("truncated.pdf", TRUNCATED_PDF, "ocr_malformed")]
    {
        let (record, _) = upload(&c, name, content).await;
        let job = request(&c, &record, &c.doctor, json!({})).await;
        let state = finished(&c, &job).await;
        assert_eq!(state["status"], "failed", "{name}: {state}");
        assert_eq!(state["error"]["code"], code, "{name}: {state}");
        let (s, v) = text(&c, &record, &c.doctor).await;
        assert_eq!((s, v["code"].as_str()), (404, Some("text_not_ready")), "{name}");
        let pages = careport_store::ocr::pages(&c.app.db, job.parse().expect("uuid")).await.expect("pages");
        assert!(pages.is_empty(), "{name}: no page kept");
    }
}

#[actix_web::test]
async fn a_job_is_cancelled_while_queued_and_while_running() {
    // Rasterised at 600 dpi on one worker, each page takes long enough to cancel between them.
    let c = ocr_chart(|s| {
        s.ocr.workers = 1;
        s.ocr.dpi = 600;
    })
    .await;
    let (record, _) = upload(&c, "scanned.pdf", SCANNED_PDF).await;
    let job = request(&c, &record, &c.doctor, json!({})).await;
    let url = c.app.url(&format!("/api/v1/ocr/jobs/{job}/events")).replace("http://", "ws://");
    let (_, mut socket) = awc::Client::new().ws(url).bearer_auth(&c.doctor).connect().await.expect("websocket");
    let mut seen = Vec::new();
    // Cancel once the first page is in.
    loop {
        let Some(Ok(awc::ws::Frame::Text(t))) = socket.next().await else { panic!("socket ended: {seen:?}") };
        let v: Value = serde_json::from_slice(&t).expect("json");
        seen.push(v.clone());
        if v["type"] == "progress" && v["stage"] == "ocr" {
            break;
        }
    }
    let (s, v) = c.send("DELETE", &format!("/api/v1/ocr/jobs/{job}"), &c.doctor, None).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("cancelled")), "{v}");
    loop {
        match socket.next().await {
            Some(Ok(awc::ws::Frame::Text(t))) => {
                let v: Value = serde_json::from_slice(&t).expect("json");
                seen.push(v.clone());
                if v["type"] == "cancelled" {
                    break;
                }
                assert_ne!(v["type"], "done", "{seen:?}");
            }
            other => panic!("no cancelled event: {other:?} after {seen:?}"),
        }
    }
    let state = finished(&c, &job).await;
    assert_eq!(state["status"], "cancelled");
    assert!(state["pages_done"].as_i64().unwrap_or(0) < 2, "{state}");
    // Give the worker time to finish the page it was on: it must not write the text.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (s, _) = text(&c, &record, &c.doctor).await;
    assert_eq!(s, 404, "a cancelled job leaves no text");
    let (s, v) = c.send("DELETE", &format!("/api/v1/ocr/jobs/{job}"), &c.doctor, None).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("job_finished")));

    // Queued (no worker on a node that does not run OCR): cancelled at once.
    let idle = ocr_chart(|s| s.ocr.enabled = false).await;
    let (record, _) = upload(&idle, "scan.png", SCAN).await;
    let job = request(&idle, &record, &idle.patient, json!({})).await;
    let (s, v) = idle.send("DELETE", &format!("/api/v1/ocr/jobs/{job}"), &idle.patient, None).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("cancelled")), "{v}");
    let late = events(&idle, &job, &idle.patient).await;
    assert_eq!(kinds(&late), vec!["state", "cancelled"], "{late:?}");
    // Asking again starts a new job; asking once more cancels that one (the latest wins).
    let first = request(&idle, &record, &idle.patient, json!({"language": "en"})).await;
    let second = request(&idle, &record, &idle.patient, json!({"language": "fr"})).await;
    let (_, v) = idle.send("GET", &format!("/api/v1/ocr/jobs/{first}"), &idle.patient, None).await;
    assert_eq!(v["status"], "cancelled");
    let (_, v) = idle.send("GET", &format!("/api/v1/ocr/jobs/{second}"), &idle.patient, None).await;
    assert_eq!((v["status"].as_str(), v["language"].as_str()), (Some("queued"), Some("fr")));
}

#[actix_web::test]
async fn a_job_whose_worker_died_is_resumed_without_losing_the_pages_it_kept() {
    let c = ocr_chart(|s| s.ocr.enabled = false).await;
    let (record, _) = upload(&c, "scanned.pdf", SCANNED_PDF).await;
    let record_id: Uuid = record.parse().expect("uuid");
    // What a node that died after its first page leaves: the job running under its lease, and
    // that page kept (sealed with the file's key). Its text is marked, to see it is not read again.
    let db = c.app.services.store_handle().clone();
    let dead = careport_store::JobQueue::new(
        db.clone(),
        "dead-node",
        careport_store::JobConfig { lease_secs: 1, ..c.app.settings.jobs.clone() },
    );
    let id = Uuid::now_v7();
    let queued = dead.enqueue(NewJob::new(OCR_JOB, json!({"ocr_job": id}))).await.expect("enqueue");
    careport_store::ocr::insert(&db, id, record_id, queued.0, None, "en").await.expect("job");
    assert_eq!(dead.claim(OCR_JOB, 1).await.expect("claim").len(), 1);
    assert!(careport_store::ocr::start(&db, id, 2, 0).await.expect("start"));
    let row = careport_store::vault::live_record(&db, record_id).await.expect("row").expect("live");
    let file = c.app.services.vault.open_as_care_team(&row).await.expect("key");
    let kept = careport_store::ocr::OcrPageRow {
        page: 1,
        source: "ocr".into(),
        confidence: 77.0,
        rotation: 0,
        engine: "tesseract".into(),
        chars: 22,
        sealed_text: file.seal_text("KEPT BEFORE THE CRASH"),
    };
    assert!(careport_store::ocr::add_page(&db, id, 1, &kept).await.expect("page"));

    // A node that runs OCR starts on the same store: the lease expires, the job is re-queued
    // and finished, reading only the second page.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(dead.reclaim_expired().await.expect("reclaim"), 1);
    let mut settings = c.app.settings.clone();
    settings.ocr.enabled = true;
    let node = careport::Application::build_with(settings, Vec::new()).await.expect("second node");
    let task = actix_web::rt::spawn(node.run_until_stopped());
    let state = finished(&c, &id.to_string()).await;
    assert_eq!(state["status"], "done", "{state}");
    let (_, t) = text(&c, &record, &c.doctor).await;
    assert_eq!(t["pages"][0]["text"], "KEPT BEFORE THE CRASH", "{t}");
    assert!(t["pages"][1]["text"].as_str().unwrap_or_default().contains("Sodium"), "{t}");
    task.abort();
}

#[actix_web::test]
async fn a_plugin_that_traps_leaves_the_text_intact_and_is_named_on_the_result() {
    let c = ocr_chart(|_| {}).await;
    let trap = r#"(module
  (memory (export "memory") 1)
  (func (export "careport_contract") (result i32) (i32.const 1))
  (func (export "careport_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "careport_call") (param i32 i32 i32 i32) (result i64) unreachable))"#;
    let manifest = format!(
        "name = \"trap\"\nversion = \"1.0.0\"\nkind = \"ocr-postprocess\"\ncontract = 1\nentry = \"trap.wasm\"\nsha256 = \"{}\"\n",
        careport_plugins::manifest::sha256_hex(trap.as_bytes())
    );
    let body = json!({"manifest": manifest, "module_base64": data_encoding::BASE64.encode(trap.as_bytes())});
    let (s, v) = c.send("POST", "/api/v1/admin/plugins", &c.admin, Some(body)).await;
    assert_eq!(s, 201, "{v}");
    let (record, _) = upload(&c, "scan.png", SCAN).await;
    let job = request(&c, &record, &c.doctor, json!({})).await;
    assert_eq!(finished(&c, &job).await["status"], "done");
    let (_, t) = text(&c, &record, &c.doctor).await;
    assert!(t["text"].as_str().unwrap_or_default().contains("Haemoglobin"), "{t}");
    assert_eq!(t["plugins"], json!([{"name": "trap", "status": "trapped"}]), "{t}");
}

#[actix_web::test]
async fn a_full_queue_answers_503_with_retry_after_and_uploads_are_read_when_configured() {
    let c = ocr_chart(|s| {
        s.ocr.enabled = false;
        s.ocr.max_queued = 1;
    })
    .await;
    let (a, _) = upload(&c, "a.png", SCAN).await;
    let (b, _) = upload(&c, "b.png", SCAN).await;
    let first = request(&c, &a, &c.doctor, json!({})).await;
    let res = c
        .app
        .client
        .post(c.app.url(&format!("/api/v1/records/{b}/ocr")))
        .bearer_auth(&c.doctor)
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("30"));
    let v: Value = res.json().await.expect("json");
    assert_eq!(v["code"], "ocr_overloaded");
    // A job whose node died on its last attempt (the queue dead-letters it; nobody is left to
    // mark the OCR job) holds no place in the queue and counts as failed, not as running.
    static DEAD: careport_store::sql::Sql = careport_store::sql::Sql::new(
        "UPDATE jobs SET state = 'dead', lease_owner = NULL, lease_until = NULL WHERE id = (SELECT queue_job FROM ocr_jobs WHERE id = $1)",
    );
    let first: uuid::Uuid = first.parse().expect("job id");
    assert_eq!(careport_store::exec!(c.app.db.writer(), &DEAD, first).expect("dead-letter"), 1);
    let (s, v) = c.send("POST", &format!("/api/v1/records/{b}/ocr"), &c.doctor, Some(json!({}))).await;
    assert_eq!(s, 202, "the dead job's place is free: {v}");
    let (_, stats) = c.send("GET", "/api/v1/admin/ocr/stats", &c.admin, None).await;
    assert_eq!((stats["jobs"]["failed"].as_i64(), stats["jobs"]["queued"].as_i64()), (Some(1), Some(1)), "{stats}");

    // Read on upload: the upload's answer names the job, which the uploader follows.
    let auto = ocr_chart(|s| s.ocr.auto_record_types = vec!["laboratory-results".into()]).await;
    let (record, uploaded) = upload(&auto, "scan.png", SCAN).await;
    let job = uploaded["ocr_job_id"].as_str().expect("a job for the upload").to_owned();
    assert_eq!(finished(&auto, &job).await["status"], "done");
    let (s, t) = text(&auto, &record, &auto.patient).await;
    assert_eq!(s, 200, "{t}");
    // The administrators' statistics count it.
    let (s, stats) = auto.send("GET", "/api/v1/admin/ocr/stats", &auto.admin, None).await;
    assert_eq!(s, 200, "{stats}");
    assert_eq!(stats["jobs"]["done"], 1, "{stats}");
    assert!(stats["node"]["workers"]["cpu_workers"].as_u64().unwrap_or(0) >= 1, "{stats}");
    // `/readyz` names OCR and why the GPU worker is off; `/metrics` counts the page.
    let ready: Value = auto.app.get("/readyz").await.json().await.expect("json");
    assert_eq!(ready["components"]["ocr"]["status"], "ok", "{ready}");
    assert_eq!(ready["components"]["ocr.gpu"]["status"], "disabled", "{ready}");
    let metrics = auto.app.get("/metrics").await.text().await.expect("text");
    assert!(metrics.contains("careport_ocr_pages_total{engine=\"tesseract\"} 1"), "{metrics}");
}
