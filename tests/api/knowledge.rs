//! The knowledge base through the API, on both store backends (the embedded in-process index on
//! SQLite, pgvector on PostgreSQL), with the real MiniLM model: ingest → search → delete, `k`
//! results under a filter that hides the nearest neighbours, who finds what (audience,
//! department, sensitivity, a patient's own records), bad uploads, the index after a restart,
//! a model change, and the filter's SQL and Rust readings against each other.

use std::collections::BTreeSet;
use std::time::Duration;

use careport_ml::ProviderKind;
use careport_store::knowledge::{self as stored, DocFilter, DocMeta};
use careport_tests::model_dir;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::records::{Chart, chart_with, multipart};

const TRUNCATED_PDF: &[u8] = include_bytes!("../../actors/ml/tests/fixtures/truncated.pdf");
const SCANNED_PDF: &[u8] = include_bytes!("../../actors/ml/tests/fixtures/scanned.pdf");
const TEXT_PDF: &[u8] = include_bytes!("../../actors/ml/tests/fixtures/text-layer.pdf");
const SCAN: &[u8] = include_bytes!("../../actors/ml/tests/fixtures/scan.png");

/// A chart on an app with the local MiniLM model.
pub(crate) async fn kb_chart() -> Chart {
    chart_with(|s| {
        s.ml.embedding_provider = ProviderKind::Local;
        s.ml.local.model_dir = Some(model_dir());
    })
    .await
}

/// Add a JSON document as `token`; `(status, answer)`.
async fn add(c: &Chart, token: &str, body: Value) -> (u16, Value) {
    c.send("POST", "/api/v1/knowledge/documents", token, Some(body)).await
}

/// Add a document as the administrator and wait for its job; its id.
async fn add_ready(c: &Chart, title: &str, text: &str, audience: &str, extra: Value) -> String {
    let mut body = json!({"title": title, "text": text, "audience": audience, "language": "en"});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        body[k] = v;
    }
    let (s, v) = add(c, &c.admin, body).await;
    assert_eq!(s, 201, "add {title}: {v}");
    let job = v["job_id"].as_str().expect("job id").to_owned();
    let done = finished(c, &job).await;
    assert_eq!(done["status"], "done", "{done}");
    v["id"].as_str().expect("id").to_owned()
}

/// Poll a job as the administrator until it has ended (60 s at most); its last state.
async fn finished(c: &Chart, job: &str) -> Value {
    finished_as(c, job, &c.admin).await
}

/// Poll a job as `token` until it has ended (60 s at most); its last state.
pub(crate) async fn finished_as(c: &Chart, job: &str, token: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (s, v) = c.send("GET", &format!("/api/v1/knowledge/jobs/{job}"), token, None).await;
        assert_eq!(s, 200, "{v}");
        if ["done", "failed", "cancelled"].contains(&v["status"].as_str().unwrap_or_default()) {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "job did not end within 60 s: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn search(c: &Chart, token: &str, body: Value) -> Value {
    let (s, v) = c.send("POST", "/api/v1/knowledge/search", token, Some(body)).await;
    assert_eq!(s, 200, "search: {v}");
    v
}

fn doc_ids(results: &Value) -> Vec<String> {
    results["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|h| h["document_id"].as_str().expect("present").to_owned())
        .collect()
}

const NAUSEA: &str = "# Living with chemotherapy\n\n## Nausea and vomiting\n\nMany people feel sick after chemotherapy. \
Take the anti-sickness tablets your team prescribed before you feel sick, eat small meals often, and sip cold drinks. \
Call the 24-hour line if you cannot keep fluids down for a day.\n\n## Hair loss\n\nHair often thins two to three weeks \
after the first treatment and grows back after it ends. A cold cap may reduce it.";
const FASTING: &str = "# Before your CT scan\n\nDo not eat for four hours before a contrast CT scan. You may drink water. \
Take your usual medicines unless told otherwise. Tell us if you have diabetes or kidney problems.";
const PROTOCOL: &str = "# Febrile neutropenia protocol\n\nFor a patient on chemotherapy with a temperature above 38 °C, \
give broad-spectrum intravenous antibiotics within one hour of arrival. Take blood cultures first.";

#[actix_web::test]
async fn a_document_is_ingested_found_with_its_heading_and_offsets_and_gone_when_deleted() {
    let c = kb_chart().await;
    let nausea = add_ready(&c, "Chemotherapy side effects", NAUSEA, "patient", json!({"cancer_type": "breast"})).await;
    add_ready(&c, "CT scan preparation", FASTING, "all", json!({})).await;

    let found = search(&c, &c.patient, json!({"query": "I feel sick after my chemo, what helps?", "k": 3})).await;
    assert_eq!(found["mode"], "hybrid", "{found}");
    assert_eq!(found["degraded"], false);
    assert_eq!(found["space"], "local/all-MiniLM-L6-v2");
    let top = &found["items"][0];
    assert_eq!(top["document_id"], nausea.as_str(), "{found}");
    assert_eq!(top["title"], "Chemotherapy side effects");
    assert!(top["heading"].as_str().expect("present").contains("Nausea and vomiting"), "{top}");
    let (start, end) =
        (top["start"].as_u64().expect("present") as usize, top["end"].as_u64().expect("present") as usize);
    let cited: String = NAUSEA.chars().skip(start).take(end - start).collect();
    assert_eq!(cited, top["text"].as_str().expect("present"), "the offsets cite the passage in the document's text");

    // Each arm alone, and the filters.
    for mode in ["vector", "text"] {
        let r = search(&c, &c.patient, json!({"query": "anti-sickness tablets", "mode": mode, "k": 1})).await;
        assert_eq!(r["mode"], mode);
        assert_eq!(doc_ids(&r), vec![nausea.clone()], "{mode}: {r}");
    }
    let r = search(&c, &c.patient, json!({"query": "anti-sickness tablets", "cancer_type": "lung"})).await;
    assert!(r["items"].as_array().expect("present").is_empty(), "a cancer-type filter excludes the breast guide: {r}");
    let r = search(&c, &c.patient, json!({"query": "anti-sickness tablets", "cancer_type": "breast", "k": 1})).await;
    assert_eq!(doc_ids(&r), vec![nausea.clone()]);

    // The search is audited without its words.
    let (_, audit) = c.send("GET", "/api/v1/admin/audit?action=knowledge.search&limit=200", &c.admin, None).await;
    let text = audit.to_string();
    assert!(text.contains("query sha256"), "{audit}");
    assert!(!text.contains("anti-sickness") && !text.contains("feel sick"), "no query text in the audit trail");

    // Deleted: gone from search, its chunks and vectors gone from the store.
    let (s, _) = c.send("DELETE", &format!("/api/v1/knowledge/documents/{nausea}"), &c.admin, None).await;
    assert_eq!(s, 204);
    let r = search(&c, &c.patient, json!({"query": "anti-sickness tablets nausea chemotherapy", "k": 5})).await;
    assert!(!doc_ids(&r).contains(&nausea), "{r}");
    let id: Uuid = nausea.parse().expect("present");
    assert!(stored::chunk_ids(&c.app.db, id).await.expect("present").is_empty());
    let (_, done) = stored::coverage(&c.app.db, "local/all-MiniLM-L6-v2").await.expect("present");
    let (total, _) = stored::coverage(&c.app.db, "local/all-MiniLM-L6-v2").await.expect("present");
    assert_eq!(done, total, "no vector outlives its chunk");
    let (s, _) = c.send("GET", &format!("/api/v1/knowledge/documents/{nausea}"), &c.admin, None).await;
    assert_eq!(s, 404);
}

#[actix_web::test]
async fn a_restrictive_filter_still_returns_k_results_when_the_nearest_are_hidden() {
    let c = kb_chart().await;
    // Twelve clinician-only passages about exactly the question, eight patient passages that are
    // further from it: a filter applied after the search would return almost nothing.
    for i in 0..12 {
        let text =
            format!("Nausea after chemotherapy, note {i}: antiemetic schedule, ondansetron dosing and nausea scores.");
        add_ready(&c, &format!("Antiemetic protocol {i}"), &text, "clinician", json!({})).await;
    }
    let mut visible = BTreeSet::new();
    for i in 0..8 {
        let text = format!("Patient leaflet {i}: eating well during treatment, small meals and fluids.");
        visible.insert(add_ready(&c, &format!("Eating well {i}"), &text, "patient", json!({})).await);
    }
    for mode in ["vector", "hybrid"] {
        let r = search(&c, &c.patient, json!({"query": "nausea after chemotherapy", "k": 8, "mode": mode})).await;
        let got: BTreeSet<String> = doc_ids(&r).into_iter().collect();
        assert_eq!(got.len(), 8, "{mode}: k visible results: {r}");
        assert!(got.is_subset(&visible), "{mode}: only what the patient may see: {r}");
    }
    // The clinicians see the protocols first.
    let r = search(&c, &c.doctor, json!({"query": "nausea after chemotherapy", "k": 3, "mode": "vector"})).await;
    assert!(
        r["items"]
            .as_array()
            .expect("present")
            .iter()
            .all(|h| h["title"].as_str().expect("present").starts_with("Antiemetic")),
        "{r}"
    );
}

/// The same for a filter the caller asks for: a cancer type (with its subtypes) whose passages
/// are all further from the question than a dozen of another type's. Exactly `k` come back, in
/// both modes that rank by vector, so the filter is inside the search and not applied to its
/// `k` nearest afterwards.
#[actix_web::test]
async fn a_cancer_type_filter_that_hides_the_nearest_still_returns_k_results() {
    let c = kb_chart().await;
    for i in 0..12 {
        let text = format!("Nausea after chemotherapy, lung note {i}: antiemetics, ondansetron and nausea scores.");
        add_ready(&c, &format!("Lung nausea {i}"), &text, "patient", json!({"cancer_type": "lung"})).await;
    }
    let mut breast = BTreeSet::new();
    for i in 0..8 {
        // Half of them under a subtype: the filter takes a type's subtree.
        let kind = if i % 2 == 0 { "breast" } else { "breast-invasive-ductal-carcinoma" };
        let text = format!("Breast clinic leaflet {i}: eating well during treatment, small meals and fluids.");
        breast.insert(
            add_ready(&c, &format!("Breast eating well {i}"), &text, "patient", json!({"cancer_type": kind})).await,
        );
    }
    // Unfiltered, the nearest are the lung passages: the filter below hides them.
    let r = search(&c, &c.patient, json!({"query": "nausea after chemotherapy", "k": 8, "mode": "vector"})).await;
    assert!(doc_ids(&r).iter().all(|d| !breast.contains(d)), "the nearest are all lung passages: {r}");
    for mode in ["vector", "hybrid"] {
        let body = json!({"query": "nausea after chemotherapy", "k": 8, "mode": mode, "cancer_type": "breast"});
        let r = search(&c, &c.patient, body).await;
        assert_eq!(r["mode"], mode, "{r}");
        assert_eq!(r["items"].as_array().map(Vec::len), Some(8), "{mode}: k results: {r}");
        let got: BTreeSet<String> = doc_ids(&r).into_iter().collect();
        assert_eq!(got, breast, "{mode}: exactly k results, every one of the breast type's: {r}");
    }
}

#[actix_web::test]
async fn a_patient_never_finds_clinician_only_other_departments_restricted_or_another_patients_text() {
    let c = kb_chart().await;
    let q = "fever on chemotherapy what to do";
    let open =
        add_ready(&c, "Fever card", "If you have a fever on chemotherapy call the 24-hour line.", "patient", json!({}))
            .await;
    let clinician = add_ready(&c, "Fever protocol", PROTOCOL, "clinician", json!({})).await;
    let surgery = add_ready(
        &c,
        "Surgery ward fever note",
        "Fever after surgery on chemotherapy: the surgical ward's own instructions.",
        "patient",
        json!({"sensitivity": "restricted", "department": "surgical-oncology"}),
    )
    .await;
    let oncology = add_ready(
        &c,
        "Oncology fever note",
        "Fever on chemotherapy in the oncology day unit: come straight to the unit.",
        "patient",
        json!({"sensitivity": "restricted", "department": "oncology"}),
    )
    .await;
    // Another patient's record, opted in by that patient (their own text).
    let other_record = other_patients_record(&c).await;
    crate::ocr::give_text(&c.app, other_record).await;
    let (s, v) = c.send("POST", &format!("/api/v1/records/{other_record}/knowledge"), &c.other_patient, None).await;
    assert_eq!(s, 201, "{v}");
    let private = v["id"].as_str().expect("present").to_owned();
    assert_eq!(finished_as(&c, v["job_id"].as_str().expect("present"), &c.other_patient).await["status"], "done");

    for mode in ["hybrid", "vector", "text"] {
        for query in [q, "Haemoglobin"] {
            let r = search(&c, &c.patient, json!({"query": query, "k": 20, "mode": mode})).await;
            let got: BTreeSet<String> = doc_ids(&r).into_iter().collect();
            for hidden in [&clinician, &surgery, &private] {
                assert!(!got.contains(hidden), "{mode} `{query}`: the patient found {hidden}: {r}");
            }
            if query == q && mode != "text" {
                assert!(got.contains(&open) && got.contains(&oncology), "{mode}: {r}");
            }
        }
    }
    // The other patient finds their own text (by meaning: a record's words are not put in the
    // clear full-text index); their doctor-less chart keeps it from the doctor.
    let r = search(&c, &c.other_patient, json!({"query": "Haemoglobin", "k": 5, "mode": "vector"})).await;
    assert_eq!(doc_ids(&r)[0], private, "{r}");
    assert_eq!(r["items"][0]["text"], "Haemoglobin 13.5 g/dL");
    let r = search(&c, &c.doctor, json!({"query": "Haemoglobin", "k": 5})).await;
    assert!(!doc_ids(&r).contains(&private), "{r}");

    // Reading one and the list agree with search.
    for hidden in [&clinician, &surgery, &private] {
        let (s, _) = c.send("GET", &format!("/api/v1/knowledge/documents/{hidden}"), &c.patient, None).await;
        assert_eq!(s, 404);
    }
    let (s, list) = c.send("GET", "/api/v1/knowledge/documents?limit=200", &c.patient, None).await;
    assert_eq!(s, 200);
    let listed: BTreeSet<String> = list["items"]
        .as_array()
        .expect("present")
        .iter()
        .map(|d| d["id"].as_str().expect("present").to_owned())
        .collect();
    assert_eq!(listed, BTreeSet::from([open.clone(), oncology.clone()]), "{list}");

    // A metadata change re-scopes at once.
    let (s, v) = c
        .send("PATCH", &format!("/api/v1/knowledge/documents/{open}"), &c.admin, Some(json!({"audience": "clinician"})))
        .await;
    assert_eq!(s, 200, "{v}");
    let r = search(&c, &c.patient, json!({"query": q, "k": 20})).await;
    assert!(!doc_ids(&r).contains(&open), "re-scoped at once: {r}");

    // A clinician may not add a patient document, nor one of another department.
    let body = json!({"title": "x", "text": "y", "audience": "patient", "language": "en"});
    assert_eq!(add(&c, &c.doctor, body).await.0, 403);
    let body = json!({"title": "x", "text": "y", "audience": "clinician", "language": "en", "department": "surgical-oncology"});
    assert_eq!(add(&c, &c.doctor, body).await.0, 403);
    let body =
        json!({"title": "Ward note", "text": "y", "audience": "clinician", "language": "en", "department": "oncology"});
    let (s, v) = add(&c, &c.doctor, body).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        add(&c, &c.patient, json!({"title": "x", "text": "y", "audience": "all", "language": "en"})).await.0,
        403
    );
    // Its job ends before the test does (the store is dropped after it).
    assert_eq!(finished_as(&c, v["job_id"].as_str().expect("job"), &c.doctor).await["status"], "done");
}

/// A record of the other patient's chart, uploaded by an administrator.
async fn other_patients_record(c: &Chart) -> Uuid {
    let fields = [("record_type", "laboratory-results"), ("title", "Blood count"), ("date", "2026-03-01")];
    let (s, v) = c.upload(&c.admin, c.other_patient_id, &fields, "count.pdf", &crate::records::pdf(7, 2048)).await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_str().expect("present").parse().expect("present")
}

#[actix_web::test]
async fn a_patients_record_is_found_by_those_who_may_read_it_and_not_once_deleted() {
    let c = kb_chart().await;
    let fields = [("record_type", "laboratory-results"), ("title", "Blood count"), ("date", "2026-03-01")];
    let (s, v) = c.upload(&c.doctor, c.patient_id, &fields, "count.pdf", &crate::records::pdf(3, 2048)).await;
    assert_eq!(s, 201, "{v}");
    let record: Uuid = v["id"].as_str().expect("present").parse().expect("present");
    let path = format!("/api/v1/records/{record}/knowledge");
    assert_eq!(c.send("POST", &path, &c.doctor, None).await.0, 404, "text_not_ready before OCR");
    crate::ocr::give_text(&c.app, record).await;
    assert_eq!(c.send("POST", &path, &c.other_doctor, None).await.0, 404, "an unassigned doctor may not");
    let (s, v) = c.send("POST", &path, &c.doctor, None).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(finished_as(&c, v["job_id"].as_str().expect("present"), &c.doctor).await["status"], "done");

    let q = json!({"query": "haemoglobin level", "k": 5});
    for (who, token, sees) in [
        ("patient", &c.patient, true),
        ("assigned doctor", &c.doctor, true),
        ("oncology nurse", &c.nurse, true),
        ("other doctor", &c.other_doctor, false),
        ("cardiology nurse", &c.other_nurse, false),
        ("other patient", &c.other_patient, false),
        ("administrator", &c.admin, false),
    ] {
        let r = search(&c, token, q.clone()).await;
        let found = r["items"].as_array().expect("present").iter().any(|h| h["record_id"] == record.to_string());
        assert_eq!(found, sees, "{who}: {r}");
    }
    // The patient's access log shows the read that a search made.
    let (_, log) = c.send("GET", "/api/v1/me/access-log?limit=200", &c.patient, None).await;
    assert!(log.to_string().contains("record.text_read"), "{log}");

    // Deleted: nobody finds it any more.
    let (s, _) = c.send("DELETE", &format!("/api/v1/records/{record}"), &c.admin, None).await;
    assert_eq!(s, 204);
    let r = search(&c, &c.patient, q.clone()).await;
    assert!(r["items"].as_array().expect("present").iter().all(|h| h["record_id"] != record.to_string()), "{r}");
}

#[actix_web::test]
async fn a_malformed_upload_is_refused_and_nothing_is_kept() {
    let c = kb_chart().await;
    let cases: [(&str, &[u8], u16, Option<&str>); 5] = [
        ("scan.png", SCAN, 415, Some("unsupported_media_type")),
        ("broken.pdf", TRUNCATED_PDF, 422, Some("knowledge_unreadable")),
        ("scanned.pdf", SCANNED_PDF, 422, Some("knowledge_unreadable")),
        ("empty.txt", b"   \n\n", 422, Some("knowledge_unreadable")),
        ("latin1.txt", b"caf\xe9 au lait", 422, Some("knowledge_unreadable")),
    ];
    for (name, content, status, code) in cases {
        let fields = [("title", "Bad"), ("audience", "all"), ("language", "en")];
        let (s, v) = upload(&c, &fields, name, content).await;
        assert_eq!(s, status, "{name}: {v}");
        if let Some(code) = code {
            assert_eq!(v["code"], code, "{name}: {v}");
        }
    }
    for body in [
        json!({"title": "x", "text": "y", "audience": "everyone", "language": "en"}),
        json!({"title": "x", "text": "y", "audience": "all", "language": "de"}),
        json!({"title": "x", "text": "y", "language": "en"}),
        json!({"title": "x", "text": "y", "audience": "all", "language": "en", "cancer_type": "no-such-type"}),
        json!({"title": "", "text": "y", "audience": "all", "language": "en"}),
        json!({"title": "x", "text": "y", "audience": "all", "language": "en", "owner": "me"}),
    ] {
        let (s, v) = add(&c, &c.admin, body.clone()).await;
        assert_eq!(s, 400, "{body}: {v}");
    }
    assert_eq!(stored::count_documents(&c.app.db).await.expect("present"), 0, "nothing kept");
    let (s, v) = c.send("GET", "/api/v1/admin/knowledge/stats", &c.admin, None).await;
    assert_eq!(s, 200);
    assert_eq!(v["documents"], 0, "{v}");
    assert!(v["jobs"].as_object().expect("present").is_empty(), "no job queued: {v}");

    // A PDF with a text layer and HTML (its script is not indexed) are read.
    let fields = [("title", "Letter"), ("audience", "all"), ("language", "en")];
    let (s, v) = upload(&c, &fields, "letter.pdf", TEXT_PDF).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(finished(&c, v["job_id"].as_str().expect("job")).await["status"], "done");
    let html = b"<html><head><title>t</title><script>var secretToken = 'zzzq';</script></head>\
        <body><h1>Mouth care</h1><p>Rinse with salt water four times a day.</p></body></html>";
    let fields = [("title", "Mouth care"), ("audience", "all"), ("language", "en")];
    let (s, v) = upload(&c, &fields, "mouth.html", html).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(finished(&c, v["job_id"].as_str().expect("present")).await["status"], "done");
    let r = search(&c, &c.patient, json!({"query": "secretToken zzzq", "mode": "text"})).await;
    assert!(r["items"].as_array().expect("present").is_empty(), "script content is not indexed: {r}");
    let r = search(&c, &c.patient, json!({"query": "salt water rinse", "mode": "text", "k": 1})).await;
    assert_eq!(r["items"][0]["heading"], "Mouth care", "{r}");
}

async fn upload(c: &Chart, fields: &[(&str, &str)], name: &str, content: &[u8]) -> (u16, Value) {
    let (ct, body) = multipart(fields, name, content);
    let res = c
        .app
        .client
        .post(c.app.url("/api/v1/knowledge/documents"))
        .bearer_auth(&c.admin)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .expect("upload");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[actix_web::test]
async fn the_index_is_back_after_a_restart_and_a_model_change_re_embeds_into_the_new_space() {
    let mut c = kb_chart().await;
    let nausea = add_ready(&c, "Chemotherapy side effects", NAUSEA, "patient", json!({})).await;
    c.app.restart().await;
    let r = search(&c, &c.patient, json!({"query": "I feel sick after chemo", "k": 1, "mode": "vector"})).await;
    assert_eq!(doc_ids(&r), vec![nausea.clone()], "found after a restart: {r}");

    // Embeddings turned off: documents still go in, for the text arm; vector search says why not.
    c.app.settings.ml.embedding_provider = ProviderKind::Off;
    c.app.restart().await;
    let later = add_ready(&c, "CT scan preparation", FASTING, "all", json!({})).await;
    let (s, v) =
        c.send("POST", "/api/v1/knowledge/search", &c.patient, Some(json!({"query": "scan", "mode": "vector"}))).await;
    assert_eq!(s, 503, "{v}");
    let r = search(&c, &c.patient, json!({"query": "contrast CT scan", "k": 1})).await;
    assert_eq!(r["mode"], "text");
    assert_eq!(r["degraded"], true);
    assert_eq!(doc_ids(&r), vec![later.clone()]);

    // The model back: the chunks without a vector are embedded by a reindex at start.
    c.app.settings.ml.embedding_provider = ProviderKind::Local;
    c.app.restart().await;
    wait_for_reindex(&c).await;
    let r = search(&c, &c.patient, json!({"query": "fasting before a scan", "k": 1, "mode": "vector"})).await;
    assert_eq!(doc_ids(&r), vec![later], "{r}");
    let (s, v) = c.send("POST", "/api/v1/knowledge/reindex", &c.admin, None).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(finished(&c, v["id"].as_str().expect("present")).await["status"], "done");
    let (_, stats) = c.send("GET", "/api/v1/admin/knowledge/stats", &c.admin, None).await;
    assert_eq!(stats["chunks"], stats["chunks_embedded"], "{stats}");

    // Another model: the chunks are re-embedded into its space by a job, searches answer from
    // the old space (its model kept for queries) until the new one is complete, then switch.
    let Some(e5) = e5_dir() else {
        careport_tests::skipping(
            "CAREPORT_TEST_E5_DIR",
            "the model change needs it: scripts/install-multilingual-model.sh",
        );
        return;
    };
    c.app.settings.ml.local.model_dir = Some(e5);
    c.app.settings.knowledge.models_dir = model_dir().parent().map(std::path::Path::to_path_buf);
    c.app.restart().await;
    let r = search(&c, &c.patient, json!({"query": "I feel sick after chemo", "k": 1, "mode": "vector"})).await;
    assert_eq!(doc_ids(&r), vec![nausea.clone()], "{r}");
    assert!(
        ["local/all-MiniLM-L6-v2", "local/multilingual-e5-small-q4"].contains(&r["space"].as_str().expect("space"))
    );
    wait_for_reindex(&c).await;
    let r =
        search(&c, &c.patient, json!({"query": "Me siento mal después de la quimioterapia", "k": 1, "mode": "vector"}))
            .await;
    assert_eq!(r["space"], "local/multilingual-e5-small-q4", "{r}");
    assert_eq!(doc_ids(&r), vec![nausea], "a Spanish question finds the English guide: {r}");
    let (_, stats) = c.send("GET", "/api/v1/admin/knowledge/stats", &c.admin, None).await;
    assert_eq!(stats["chunks"], stats["chunks_embedded"], "{stats}");
    let spaces = careport_store::embeddings::spaces(&c.app.db).await.expect("spaces");
    assert!(
        spaces.iter().all(|s| s.model != "local/all-MiniLM-L6-v2"),
        "the old space's vectors are dropped: {spaces:?}"
    );
}

/// The multilingual model, when installed (`CAREPORT_TEST_E5_DIR`; `.ci/run` sets it).
pub(crate) fn e5_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("CAREPORT_TEST_E5_DIR").map(std::path::PathBuf::from).filter(|d| d.is_dir())
}

/// Wait until no reindex is queued or running (60 s at most).
async fn wait_for_reindex(c: &Chart) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !stored::active_reindex(&c.app.db).await.expect("present").is_empty() {
        assert!(std::time::Instant::now() < deadline, "the reindex did not end within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn job_progress_streams_over_a_websocket_and_cancel_and_retry_answer_their_states() {
    let c = kb_chart().await;
    let long: String =
        (0..60).map(|i| format!("## Section {i}\n\nParagraph {i} about treatment and care.\n\n")).collect();
    let (s, v) =
        add(&c, &c.admin, json!({"title": "Long guide", "text": long, "audience": "all", "language": "en"})).await;
    assert_eq!(s, 201, "{v}");
    let job = v["job_id"].as_str().expect("present").to_owned();
    let events = events(&c, &job, &c.admin).await;
    assert_eq!(events[0]["type"], "state", "{events:?}");
    let last = events.last().expect("present");
    assert_eq!(last["type"], "done", "{events:?}");
    assert_eq!(last["chunks_done"], last["chunks_total"], "{last}");
    assert_eq!(c.send("DELETE", &format!("/api/v1/knowledge/jobs/{job}"), &c.admin, None).await.0, 409);
    assert_eq!(c.send("POST", &format!("/api/v1/knowledge/jobs/{job}/retry"), &c.admin, None).await.0, 409);
    // Nobody but those who may change the document follows its job.
    assert_eq!(c.send("GET", &format!("/api/v1/knowledge/jobs/{job}"), &c.patient, None).await.0, 404);
}

/// The job's WebSocket: every message until the server closes (or 60 s pass).
async fn events(c: &Chart, job: &str, token: &str) -> Vec<Value> {
    crate::ocr::socket_events(c, &format!("/api/v1/knowledge/jobs/{job}/events"), token).await
}

/// The filter's two readings — SQL for the store's queries, Rust for the embedded index — agree
/// on generated documents and callers' filters.
#[actix_web::test]
async fn the_filters_sql_and_rust_readings_agree() {
    let app = careport_tests::spawn_app().await;
    let db = &app.db;
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let audiences = ["patient", "clinician", "all"];
    let departments = [None, Some("oncology"), Some("surgical-oncology"), Some("cardiology")];
    let types = [None, Some("breast"), Some("lung")];
    let languages = ["en", "es", "ar"];
    let mut docs: Vec<(Uuid, DocMeta)> = Vec::new();
    for i in 0..60 {
        let meta = DocMeta {
            audience: audiences[next(3)].into(),
            sensitivity: ["normal", "restricted"][next(2)].into(),
            department: departments[next(4)].map(Into::into),
            cancer_type: types[next(3)].map(Into::into),
            language: languages[next(3)].into(),
            record_id: None,
        };
        let doc = stored::NewDocument {
            id: Uuid::now_v7(),
            title: format!("Doc {i}"),
            media_type: "text/plain".into(),
            cancer_type: meta.cancer_type.clone(),
            department: meta.department.clone(),
            audience: meta.audience.clone(),
            sensitivity: meta.sensitivity.clone(),
            language: meta.language.clone(),
            record_id: None,
            patient_id: None,
            body: Some("text".into()),
            chars: 4,
            sha256: String::new(),
            created_by: None,
        };
        stored::insert_document(db, &doc, Uuid::now_v7(), 0, "none").await.expect("insert");
        docs.push((doc.id, meta));
    }
    for _ in 0..200 {
        let f = DocFilter {
            all_documents: next(6) == 0,
            audiences: audiences.iter().filter(|_| next(2) == 0).map(|a| (*a).to_owned()).collect(),
            restricted_departments: departments
                .iter()
                .flatten()
                .filter(|_| next(3) == 0)
                .map(|d| (*d).to_owned())
                .collect(),
            restricted_without_department: next(2) == 0,
            records: Vec::new(),
            cancer_types: (next(3) == 0).then(|| vec![types[1 + next(2)].expect("present").to_owned()]),
            department: departments[next(4)].filter(|_| next(3) == 0).map(Into::into),
            language: (next(3) == 0).then(|| languages[next(3)].to_owned()),
        };
        let sql: BTreeSet<Uuid> = stored::list_documents(db, &f, &stored::ListFilter::default(), None, 200)
            .await
            .expect("list")
            .into_iter()
            .map(|d| d.id)
            .collect();
        let rust: BTreeSet<Uuid> = docs.iter().filter(|(_, m)| f.allows(m)).map(|(id, _)| *id).collect();
        assert_eq!(sql, rust, "{f:?}");
    }
}
