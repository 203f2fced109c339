//! Uploads (multipart and raw), the chart list, downloads with ranges, duplicates, and every
//! kind of bad input — which stores nothing.

use std::io::{Read, Write};

use super::{chart, multipart, pdf};

#[actix_web::test]
async fn an_upload_streams_in_and_out_whole_and_by_range() {
    let c = chart().await;
    // 5,000 bytes over one-KiB frames: five frames, the last partial.
    let content = pdf(1, 5000);
    let r = c.upload_pdf(&c.patient, c.patient_id, "Full blood count", &content).await;
    assert_eq!(r["media_type"], "application/pdf");
    assert_eq!(r["size"], 5000);
    assert_eq!(r["record_type"], "laboratory-results");
    assert_eq!(r["date"], "2026-03-01");
    assert_eq!(r["file_name"], "result.pdf");
    let id = r["id"].as_str().expect("id").to_owned();

    let (s, h, body) = c.content(&id, Some(&c.patient), None).await;
    assert_eq!(s, 200);
    assert_eq!(body, content, "the same bytes back");
    assert_eq!(h["content-type"], "application/pdf");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(h["content-length"], "5000");
    assert!(h["content-security-policy"].to_str().expect("csp").contains("sandbox"));
    assert!(h["content-disposition"].to_str().expect("cd").starts_with("inline; filename=\"result.pdf\""));

    // Ranges inside one frame, across frames, to the end, and from the end.
    for (range, from, to) in [
        ("bytes=10-20", 10, 20),
        ("bytes=1000-3100", 1000, 3100),
        ("bytes=4090-", 4090, 4999),
        ("bytes=-7", 4993, 4999),
        ("bytes=0-99999", 0, 4999),
    ] {
        let (s, h, body) = c.content(&id, Some(&c.doctor), Some(range)).await;
        assert_eq!(s, 206, "{range}");
        assert_eq!(body, &content[from..=to], "{range}");
        assert_eq!(h["content-range"], format!("bytes {from}-{to}/5000").as_str(), "{range}");
    }
    let (s, h, _) = c.content(&id, Some(&c.doctor), Some("bytes=5000-5001")).await;
    assert_eq!(s, 416);
    assert_eq!(h["content-range"], "bytes */5000");

    // The record's metadata; the raw upload (a text file, fields in the query string).
    let (s, v) = c.send("GET", &format!("/api/v1/records/{id}"), &c.nurse, None).await;
    assert_eq!((s, v["title"].as_str()), (200, Some("Full blood count")), "{v}");
    let text = "Haemoglobin 13.5 g/dL\nWBC 6.1\n".repeat(40);
    let res = c
        .app
        .client
        .post(c.app.url(&format!(
            "/api/v1/patients/{}/records?record_type=consultation-notes&title=Clinic%20letter&file_name=letter.txt",
            c.patient_id
        )))
        .bearer_auth(&c.doctor)
        .header("content-type", "application/octet-stream")
        .body(text.clone())
        .send()
        .await
        .expect("raw upload");
    assert_eq!(res.status(), 201);
    let raw: serde_json::Value = res.json().await.expect("json");
    assert_eq!(raw["media_type"], "text/plain");
    let (s, h, body) = c.content(raw["id"].as_str().expect("id"), Some(&c.patient), None).await;
    assert_eq!((s, body), (200, text.into_bytes()));
    assert!(h["content-disposition"].to_str().expect("cd").starts_with("attachment;"), "text is never inline");

    // Every transfer is in the audit trail, with the caller's address.
    let actions = c.audit(&id).await;
    for want in ["record.upload", "record.download", "record.view"] {
        assert!(actions.iter().any(|(a, o, _)| a == want && o == "success"), "{want} in {actions:?}");
    }
}

#[actix_web::test]
async fn the_list_filters_pages_newest_first_and_shows_only_what_may_be_opened() {
    let c = chart().await;
    let mut ids = Vec::new();
    for (i, (t, title, date)) in [
        ("laboratory-results", "Blood test March", "2026-03-01"),
        ("radiology-reports", "CT chest", "2026-04-10"),
        ("laboratory-results", "Blood test May", "2026-05-02"),
        ("pathology-reports", "Biopsy histology", "2026-05-20"),
        ("laboratory-results", "blood TEST june", "2026-06-01"),
    ]
    .into_iter()
    .enumerate()
    {
        let (s, v) = c
            .upload(
                &c.doctor,
                c.patient_id,
                &[("record_type", t), ("title", title), ("date", date)],
                "x.pdf",
                &pdf(100 + i as u64, 300),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        ids.push(v["id"].as_str().expect("id").to_owned());
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(c.listed(&c.patient, "").await, newest_first);
    assert_eq!(
        c.listed(&c.doctor, "&record_type=laboratory-results").await,
        vec![ids[4].clone(), ids[2].clone(), ids[0].clone()]
    );
    assert_eq!(
        c.listed(&c.doctor, "&from=2026-04-01&to=2026-05-20").await,
        vec![ids[3].clone(), ids[2].clone(), ids[1].clone()]
    );
    assert_eq!(c.listed(&c.doctor, "&q=blood%20test").await, vec![ids[4].clone(), ids[2].clone(), ids[0].clone()]);
    assert_eq!(c.listed(&c.doctor, "&q=50%25").await, Vec::<String>::new(), "wildcards match nothing special");
    let (s, v) = c.send("GET", &format!("/api/v1/patients/{}/records?from=May", c.patient_id), &c.doctor, None).await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_query")), "{v}");

    // A sensitive record: not for the department's nurses, in the list or by id.
    let (s, v) = c
        .upload(
            &c.doctor,
            c.patient_id,
            &[("record_type", "pathology-reports"), ("title", "Genetic test"), ("sensitive", "true")],
            "g.pdf",
            &pdf(9, 400),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let sensitive = v["id"].as_str().expect("id").to_owned();
    assert_eq!(c.listed(&c.nurse, "").await, newest_first, "the nurse's pages skip the sensitive record");
    assert!(c.listed(&c.doctor, "").await.contains(&sensitive));
    assert_eq!(c.content(&sensitive, Some(&c.nurse), None).await.0, 404);
    // An administrator sees no record without a grant; other callers not the chart at all.
    assert!(c.listed(&c.admin, "").await.is_empty());
    for t in [&c.other_nurse, &c.other_doctor, &c.other_patient] {
        let (s, _) = c.send("GET", &format!("/api/v1/patients/{}/records", c.patient_id), t, None).await;
        assert_eq!(s, 404);
    }
}

#[actix_web::test]
async fn the_same_content_is_stored_once_per_patient_and_never_shared_across_patients() {
    let c = chart().await;
    let content = pdf(42, 3000);
    let a = c.upload_pdf(&c.patient, c.patient_id, "Letter", &content).await;
    let b = c.upload_pdf(&c.doctor, c.patient_id, "Same letter again", &content).await;
    assert_ne!(a["id"], b["id"], "two records");
    assert_eq!(c.count("vault_files").await, 1, "one stored file for the patient");
    assert_eq!(c.objects().await.0, 1, "one object");
    // Another patient with the same bytes: a file and key of their own, and no hint of the first.
    let other = c.upload_pdf(&c.other_patient, c.other_patient_id, "Letter", &content).await;
    assert_eq!(c.count("vault_files").await, 2);
    assert_eq!(c.objects().await.0, 2);
    assert_eq!(other.as_object().map(|o| o.contains_key("duplicate")), Some(false));
    for r in [&a, &b] {
        let (s, _, body) = c.content(r["id"].as_str().expect("id"), Some(&c.patient), None).await;
        assert_eq!((s, body), (200, content.clone()));
    }
    let (s, _, body) = c.content(other["id"].as_str().expect("id"), Some(&c.other_patient), None).await;
    assert_eq!((s, body), (200, content.clone()));
    // Deleting one record leaves the other readable (the file is shared within the chart).
    let (s, _) = c.send("DELETE", &format!("/api/v1/records/{}", a["id"].as_str().expect("id")), &c.admin, None).await;
    assert_eq!(s, 204);
    assert_eq!(c.content(a["id"].as_str().expect("id"), Some(&c.patient), None).await.0, 404);
    assert_eq!(c.content(b["id"].as_str().expect("id"), Some(&c.patient), None).await.0, 200);
    assert!(
        c.audit(a["id"].as_str().expect("id")).await.iter().any(|(a, o, _)| a == "record.delete" && o == "success")
    );
}

#[actix_web::test]
async fn bad_uploads_get_their_code_and_store_nothing() {
    let c = chart().await;
    let fields = [("record_type", "laboratory-results"), ("title", "Result")];
    // Not on the allow list, whatever the name says.
    for (name, content) in [
        ("scan.pdf", b"<html><script>alert(1)</script></html>".to_vec()),
        ("photo.png", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00".to_vec()),
        ("image.svg", b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>".to_vec()),
        ("a.zip", b"PK\x03\x04\x14\x00\x00\x00".to_vec()),
    ] {
        let (s, v) = c.upload(&c.doctor, c.patient_id, &fields, name, &content).await;
        assert_eq!((s, v["code"].as_str()), (415, Some("unsupported_media_type")), "{name}: {v}");
    }
    // Bad metadata.
    for (f, code) in [
        (vec![("record_type", "no-such-type"), ("title", "x")], "invalid_value"),
        (vec![("record_type", "laboratory-results")], "invalid_value"),
        (vec![("record_type", "laboratory-results"), ("title", "x"), ("date", "2999-01-01")], "invalid_value"),
        (vec![("record_type", "laboratory-results"), ("title", "x"), ("date", "01/02/2026")], "invalid_value"),
        (vec![("record_type", "laboratory-results"), ("title", "x"), ("colour", "red")], "invalid_value"),
    ] {
        let (s, v) = c.upload(&c.doctor, c.patient_id, &f, "r.pdf", &pdf(1, 100)).await;
        assert_eq!((s, v["code"].as_str()), (400, Some(code)), "{f:?}: {v}");
    }
    let (s, v) = c.upload(&c.doctor, c.patient_id, &fields, "empty.pdf", b"").await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_value")), "{v}");

    // Over the limit (1 MiB here), sent in chunks with no length: refused once the limit is
    // passed, and nothing kept.
    let big = pdf(7, (1 << 20) + 4096);
    let (ct, body) = multipart(&fields, "big.pdf", &big);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body.chunks(64 << 10).map(|c| Ok(c.to_vec())).collect();
    let res = c
        .app
        .client
        .post(c.app.url(&format!("/api/v1/patients/{}/records", c.patient_id)))
        .bearer_auth(&c.doctor)
        .header("content-type", ct)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await;
    match res {
        Ok(r) => {
            let status = r.status().as_u16();
            let v: serde_json::Value = r.json().await.unwrap_or_default();
            assert_eq!((status, v["code"].as_str()), (413, Some("payload_too_large")), "{v}");
        }
        // The server may close the connection as it answers, before the client has sent all.
        Err(e) => panic!("the 413 answer was lost: {e}"),
    }

    // A declared length over the limit is refused before the body is read: the answer comes
    // while the client has sent only the head.
    let addr = c.app.address.trim_start_matches("http://").to_owned();
    let head = format!(
        "POST /api/v1/patients/{}/records?record_type=laboratory-results&title=x HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/pdf\r\nContent-Length: {}\r\n\r\n",
        c.patient_id,
        c.doctor,
        200u64 << 20
    );
    // Off the test's thread: the app's actors run on it.
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
        s.write_all(head.as_bytes()).expect("head");
        s.write_all(b"%PDF-1.7\n").expect("first bytes");
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).expect("an answer before the body");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .expect("thread");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    assert_eq!(c.count("medical_records").await, 0);
    assert_eq!(c.count("vault_files").await, 0);
    assert_eq!(c.objects().await, (0, 0), "no object and no temporary left");

    // Names are kept only as a sanitised label: a path never reaches the disk or a header.
    let (s, v) = c.upload(&c.doctor, c.patient_id, &fields, "../../etc/passwd;.pdf", &pdf(3, 200)).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["file_name"], "passwd.pdf");
    let (_, h, _) = c.content(v["id"].as_str().expect("id"), Some(&c.doctor), None).await;
    assert_eq!(h["content-disposition"], "inline; filename=\"passwd.pdf\"; filename*=UTF-8''passwd.pdf");
    // Refusals are audited with their code, without names or content.
    let (s, v) = c.send("GET", "/api/v1/admin/audit?action=record.upload&limit=50", &c.admin, None).await;
    assert_eq!(s, 200, "{v}");
    let failures: Vec<&str> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["outcome"] == "failure")
        .filter_map(|e| e["detail"].as_str())
        .collect();
    assert!(failures.contains(&"unsupported_media_type") && failures.contains(&"payload_too_large"), "{failures:?}");
}

/// An upload sent again with the same `Idempotency-Key` (its answer lost) answers the first
/// record and keeps nothing new; the key is the uploader's own and bound to its chart.
#[actix_web::test]
async fn an_upload_resent_with_its_idempotency_key_makes_one_record() {
    let c = chart().await;
    let send = |token: &str, patient: uuid::Uuid, key: Option<&str>, seed: u64| {
        let (ct, body) =
            multipart(&[("record_type", "laboratory-results"), ("title", "Bloods")], "r.pdf", &pdf(seed, 3000));
        let mut req = c
            .app
            .client
            .post(c.app.url(&format!("/api/v1/patients/{patient}/records")))
            .bearer_auth(token)
            .header("content-type", ct)
            .body(body);
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        async move {
            let res = req.send().await.expect("upload");
            let status = res.status().as_u16();
            let replayed = res.headers().get("idempotent-replayed").is_some();
            (status, replayed, res.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    let (s, replayed, first) = send(&c.doctor, c.patient_id, Some("scan-2026-03-01-a"), 1).await;
    assert_eq!((s, replayed), (201, false), "{first}");
    let records = c.count("medical_records").await;
    let objects = c.objects().await.0;
    // The same key again — even with other bytes, as a client resending after a timeout might
    // have re-encoded them — answers the first record.
    let (s, replayed, again) = send(&c.doctor, c.patient_id, Some("scan-2026-03-01-a"), 2).await;
    assert_eq!((s, replayed), (200, true), "{again}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!((c.count("medical_records").await, c.objects().await.0), (records, objects), "nothing new kept");
    let trail = c.audit(first["id"].as_str().expect("id")).await;
    assert!(trail.iter().any(|(a, _, d)| a == "record.upload" && d.contains("replayed")), "{trail:?}");
    // Another uploader's same key is theirs: a new record.
    let (s, _, theirs) = send(&c.nurse, c.patient_id, Some("scan-2026-03-01-a"), 3).await;
    assert_eq!(s, 201, "{theirs}");
    assert_ne!(theirs["id"], first["id"]);
    // The same key for another chart, a bad key: refused, nothing kept.
    let (s, _, v) = send(&c.doctor, c.other_patient_id, Some("scan-2026-03-01-a"), 4).await;
    assert_eq!((s, v["code"].as_str()), (404, Some("not_found")), "not the doctor's chart: {v}");
    let (s, _, v) = send(&c.admin, c.other_patient_id, Some("k1"), 5).await;
    assert_eq!(s, 201, "{v}");
    let (s, _, v) = send(&c.admin, c.patient_id, Some("k1"), 6).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("conflict")), "{v}");
    let (s, _, v) = send(&c.doctor, c.patient_id, Some(&"k".repeat(201)), 7).await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_value")), "{v}");
    assert_eq!(c.count("medical_records").await, records + 2);
}
