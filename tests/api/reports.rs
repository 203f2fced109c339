//! Diagnosis reports and the workflow of studies (#18) over HTTP: a report drafted, refused an
//! edit once signed, amended with both versions readable, seen by the patient only once signed;
//! the PDF as a record; a study from ordered to reviewed, its log read back from the audit
//! trail; bad input refused with nothing changed.

use serde_json::{Value, json};

use crate::records::chart;

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

#[actix_web::test]
async fn a_report_is_drafted_signed_refused_an_edit_and_amended_with_both_versions_readable() {
    let c = chart().await;
    let p = c.patient_id;
    let reports = format!("/api/v1/patients/{p}/reports");
    let body = json!({"findings": "A 2.1 cm spiculated nodule in the right upper lobe.",
        "impression": "Suspicious for primary lung malignancy.", "recommendations": "PET-CT and biopsy.",
        "icd10": ["c34.11", "R91.1"]});

    // Bad input changes nothing: a malformed code, an empty field, another chart's record.
    let (s, v) =
        c.send("POST", &reports, &c.doctor, Some(json!({"findings": "x", "impression": "y", "icd10": ["34.1"]}))).await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_value")), "{v}");
    let (s, _) = c.send("POST", &reports, &c.doctor, Some(json!({"findings": " ", "impression": "y"}))).await;
    assert_eq!(s, 400);
    let other = c.upload_pdf(&c.other_patient, c.other_patient_id, "theirs", &crate::records::pdf(3, 900)).await;
    let (s, _) = c
        .send(
            "POST",
            &reports,
            &c.doctor,
            Some(json!({"findings": "x", "impression": "y", "record_ids": [other["id"]]})),
        )
        .await;
    assert_eq!(s, 400, "a report names records of its own chart only");
    // Only the patient's doctors write; a nurse, another doctor, an administrator and the patient do not.
    for who in [&c.nurse, &c.other_doctor, &c.patient] {
        let (s, _) = c.send("POST", &reports, who, Some(body.clone())).await;
        assert_eq!(s, 404, "not theirs to write");
    }
    let (s, _) = c.send("POST", &reports, &c.admin, Some(body.clone())).await;
    assert_eq!(s, 404, "administrators do not write reports");
    let (s, _) = c.send("GET", &format!("/api/v1/reports/{}", uuid::Uuid::now_v7()), &c.doctor, None).await;
    assert_eq!(s, 404);

    let (s, draft) = c.send("POST", &reports, &c.doctor, Some(body.clone())).await;
    assert_eq!(s, 201, "{draft}");
    assert_eq!((draft["state"].as_str(), draft["version"].as_i64()), (Some("draft"), Some(1)));
    assert_eq!(draft["icd10"], json!(["C34.11", "R91.1"]), "codes upper-cased");
    let v1 = id(&draft);
    let path = format!("/api/v1/reports/{v1}");

    // The patient sees no draft: not in the list, not by id.
    let (s, list) = c.send("GET", &reports, &c.patient, None).await;
    assert_eq!((s, list["items"].as_array().map(Vec::len)), (200, Some(0)), "{list}");
    let (s, _) = c.send("GET", &path, &c.patient, None).await;
    assert_eq!(s, 404);
    let (s, _) = c.send("GET", &path, &c.nurse, None).await;
    assert_eq!(s, 404, "nurses read signed reports only");

    // A draft changes; the text is sealed in the store.
    let (s, v) =
        c.send("PATCH", &path, &c.doctor, Some(json!({"impression": "Highly suspicious for malignancy."}))).await;
    assert_eq!((s, v["impression"].as_str()), (200, Some("Highly suspicious for malignancy.")), "{v}");
    static BODY: careport_store::sql::Sql =
        careport_store::sql::Sql::new("SELECT body FROM diagnosis_reports WHERE id = $1");
    let sealed: String =
        careport_store::scalar!(c.app.db.reader(), String, fetch_one, &BODY, v1.parse::<uuid::Uuid>().expect("uuid"))
            .expect("row");
    assert!(!sealed.contains("nodule") && !sealed.contains("C34"), "the store holds no clear text");

    // Signed: final, its digest in the trail; any edit is 409 report_final and changes nothing.
    let (s, signed) = c.send("POST", &format!("{path}/finalize"), &c.doctor, None).await;
    assert_eq!((s, signed["state"].as_str()), (200, Some("final")), "{signed}");
    let digest = signed["digest"].as_str().expect("digest").to_owned();
    assert_eq!(digest.len(), 64);
    let (s, v) = c.send("PATCH", &path, &c.doctor, Some(json!({"impression": "changed"}))).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("report_final")));
    let (s, v) = c.send("POST", &format!("{path}/finalize"), &c.doctor, None).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("report_final")));
    let (_, trail) =
        c.send("GET", &format!("/api/v1/admin/audit?patient={p}&action=report.finalize"), &c.admin, None).await;
    let detail = trail["items"][0]["detail"].as_str().expect("finalize event").to_owned();
    assert!(detail.contains(&digest), "the digest is in the trail: {detail}");

    // The patient and the department's nurse now read it.
    let (s, mine) = c.send("GET", &path, &c.patient, None).await;
    assert_eq!((s, mine["impression"].as_str()), (200, Some("Highly suspicious for malignancy.")), "{mine}");
    let (s, _) = c.send("GET", &path, &c.nurse, None).await;
    assert_eq!(s, 200);
    let (s, _) = c.send("GET", &path, &c.other_nurse, None).await;
    assert_eq!(s, 404, "another department's nurse does not");

    // Amended: a new draft version pointing to the signed one, which stays final until the
    // amendment is signed; then amended, and both versions readable.
    let amended = json!({"findings": "A 2.1 cm spiculated nodule; a second 4 mm nodule in the left lower lobe.",
        "impression": "Suspicious for malignancy; the second nodule is indeterminate.", "icd10": ["C34.11"]});
    let (s, v2) = c.send("POST", &format!("{path}/amend"), &c.doctor, Some(amended.clone())).await;
    assert_eq!(s, 201, "{v2}");
    assert_eq!(
        (v2["version"].as_i64(), v2["previous_id"].as_str(), v2["state"].as_str()),
        (Some(2), Some(v1.as_str()), Some("draft"))
    );
    let (s, v) = c.send("POST", &format!("{path}/amend"), &c.doctor, Some(amended.clone())).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("amendment_pending")), "one amendment at a time");
    let (_, list) = c.send("GET", &reports, &c.patient, None).await;
    assert_eq!(list["items"][0]["id"].as_str(), Some(v1.as_str()), "the patient still sees the signed version: {list}");
    let v2_path = format!("/api/v1/reports/{}", id(&v2));
    let (s, v) = c.send("POST", &format!("{v2_path}/finalize"), &c.doctor, None).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("final")), "{v}");
    let (_, old) = c.send("GET", &path, &c.patient, None).await;
    assert_eq!(old["state"].as_str(), Some("amended"), "{old}");
    assert_eq!(old["impression"].as_str(), Some("Highly suspicious for malignancy."), "the old text is unchanged");
    let (s, new) = c.send("GET", &v2_path, &c.patient, None).await;
    assert_eq!(s, 200);
    let versions: Vec<i64> =
        new["versions"].as_array().expect("versions").iter().filter_map(|v| v["version"].as_i64()).collect();
    assert_eq!(versions, vec![1, 2], "both versions readable: {new}");
    let (_, list) = c.send("GET", &reports, &c.patient, None).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "one report, its newest signed version: {list}");
    assert_eq!(list["items"][0]["version"].as_i64(), Some(2));
    let (s, v) = c.send("POST", &format!("{path}/amend"), &c.doctor, Some(amended)).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("report_not_final")), "an amended version is not amended again");

    // Exported: a PDF record of type imaging-reports, once.
    let (s, rec) = c.send("POST", &format!("{v2_path}/export"), &c.doctor, None).await;
    assert_eq!(s, 201, "{rec}");
    assert_eq!(rec["record_type"].as_str(), Some("imaging-reports"));
    let (s, again) = c.send("POST", &format!("{v2_path}/export"), &c.doctor, None).await;
    assert_eq!((s, again["id"].clone()), (201, rec["id"].clone()), "exported once");
    let res = c
        .app
        .client
        .get(c.app.url(&format!("/api/v1/records/{}/content", id(&rec))))
        .bearer_auth(&c.patient)
        .send()
        .await
        .expect("download");
    assert_eq!(res.status(), 200);
    let pdf = res.bytes().await.expect("bytes");
    assert!(pdf.starts_with(b"%PDF-"), "a PDF");
}

#[actix_web::test]
async fn with_a_second_reader_the_author_cannot_sign_and_another_doctor_of_the_team_can() {
    let c = crate::records::chart_with(|s| s.clinic.report_sign_off = "second_reader".into()).await;
    let p = c.patient_id;
    let (s, draft) = c
        .send(
            "POST",
            &format!("/api/v1/patients/{p}/reports"),
            &c.doctor,
            Some(json!({"findings": "f", "impression": "i"})),
        )
        .await;
    assert_eq!(s, 201);
    let finalize = format!("/api/v1/reports/{}/finalize", id(&draft));
    let (s, v) = c.send("POST", &finalize, &c.doctor, None).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("second_reader_required")));
    // The other doctor joins the care team, then signs.
    let (_, me) = c.send("GET", "/api/v1/auth/me", &c.other_doctor, None).await;
    let other_id = me["id"].as_str().expect("id").to_owned();
    let (s, v) = c
        .send(
            "POST",
            &format!("/api/v1/patients/{p}/assignments"),
            &c.admin,
            Some(json!({"clinician_id": other_id, "cancer_type_id": "uterine-leiomyosarcoma-ulms"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = c.send("POST", &finalize, &c.other_doctor, None).await;
    assert_eq!((s, v["state"].as_str(), v["signed_by"].as_str()), (200, Some("final"), Some(other_id.as_str())), "{v}");
}

#[actix_web::test]
async fn a_study_goes_from_ordered_to_reviewed_and_its_log_is_read_from_the_audit_trail() {
    let c = chart().await;
    let p = c.patient_id;
    let (s, v) = c
        .send(
            "POST",
            &format!("/api/v1/patients/{p}/orders"),
            &c.doctor,
            Some(json!({"kind": "spaceship", "description": "x"})),
        )
        .await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_value")));
    let (s, _) = c
        .send(
            "POST",
            &format!("/api/v1/patients/{p}/orders"),
            &c.patient,
            Some(json!({"kind": "ct", "description": "Chest CT"})),
        )
        .await;
    assert_eq!(s, 404, "patients do not order studies");
    let (s, order) = c
        .send(
            "POST",
            &format!("/api/v1/patients/{p}/orders"),
            &c.doctor,
            Some(json!({"kind": "ct", "description": "Chest CT with contrast"})),
        )
        .await;
    assert_eq!((s, order["state"].as_str()), (201, Some("ordered")), "{order}");
    let move_to = |to: &str, extra: Value| {
        let mut body = json!({"to": to});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        body
    };
    let path = format!("/api/v1/orders/{}/transition", id(&order));
    // No skipping, no going back.
    let (s, v) = c.send("POST", &path, &c.doctor, Some(move_to("acquired", json!({})))).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("transition_not_allowed")));
    let (s, _) = c.send("POST", &path, &c.admin, Some(move_to("scheduled", json!({})))).await;
    assert_eq!(s, 200, "the front desk schedules");
    let scan = c.upload_pdf(&c.doctor, p, "CT chest", &crate::records::pdf(5, 900)).await;
    let (s, v) = c.send("POST", &path, &c.nurse, Some(move_to("acquired", json!({"record_id": scan["id"]})))).await;
    assert_eq!((s, v["record_id"].clone()), (200, scan["id"].clone()), "{v}");
    let (s, v) = c.send("POST", &path, &c.doctor, Some(move_to("reported", json!({})))).await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_value")), "reported needs its signed report");
    let (_, report) = c
        .send(
            "POST",
            &format!("/api/v1/patients/{p}/reports"),
            &c.doctor,
            Some(json!({"findings": "f", "impression": "i"})),
        )
        .await;
    let (s, _) = c.send("POST", &path, &c.doctor, Some(move_to("reported", json!({"report_id": report["id"]})))).await;
    assert_eq!(s, 400, "a draft is not a report yet");
    c.send("POST", &format!("/api/v1/reports/{}/finalize", id(&report)), &c.doctor, None).await;
    let (s, _) = c.send("POST", &path, &c.doctor, Some(move_to("reported", json!({"report_id": report["id"]})))).await;
    assert_eq!(s, 200);
    let (s, v) = c.send("POST", &path, &c.doctor, Some(move_to("cancelled", json!({})))).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("transition_not_allowed")), "too late to cancel");
    let (s, done) = c.send("POST", &path, &c.doctor, Some(move_to("reviewed", json!({})))).await;
    assert_eq!((s, done["state"].as_str()), (200, Some("reviewed")));
    let (s, _) = c.send("POST", &path, &c.other_nurse, Some(move_to("cancelled", json!({})))).await;
    assert_eq!(s, 404, "another department's nurse cannot see it");

    // The log: five transitions, newest first, who and when — read from the audit trail.
    let (s, wf) = c.send("GET", &format!("/api/v1/patients/{p}/workflow"), &c.patient, None).await;
    assert_eq!(s, 200, "{wf}");
    let steps: Vec<(Option<&str>, &str)> = wf["log"]
        .as_array()
        .expect("log")
        .iter()
        .map(|t| (t["from"].as_str(), t["to"].as_str().expect("to")))
        .collect();
    assert_eq!(
        steps,
        vec![
            (Some("reported"), "reviewed"),
            (Some("acquired"), "reported"),
            (Some("scheduled"), "acquired"),
            (Some("ordered"), "scheduled"),
            (None, "ordered")
        ]
    );
    assert_eq!(wf["orders"][0]["state"].as_str(), Some("reviewed"));
    let (_, trail) = c
        .send("GET", &format!("/api/v1/admin/audit?patient={p}&action=workflow.transition&limit=50"), &c.admin, None)
        .await;
    assert_eq!(trail["items"].as_array().map(Vec::len), Some(5), "each step is one audit event");
    let (_, me) = c.send("GET", "/api/v1/auth/me", &c.nurse, None).await;
    let (s, by) =
        c.send("GET", &format!("/api/v1/admin/workflow?user={}", me["id"].as_str().expect("id")), &c.admin, None).await;
    assert_eq!((s, by["items"].as_array().map(Vec::len)), (200, Some(1)), "{by}");
    let (s, _) = c
        .send("GET", &format!("/api/v1/admin/workflow?user={}", me["id"].as_str().expect("id")), &c.doctor, None)
        .await;
    assert_eq!(s, 403);
}
