//! Who may read a record, grants (emergency access included), signed links, tampering and
//! crypto-shredding.

use serde_json::json;

use super::{chart, pdf};

fn in_hours(h: i64) -> String {
    jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(h)).expect("time").to_string()
}

#[actix_web::test]
async fn the_care_team_reads_others_need_a_grant_that_expires_and_can_be_revoked() {
    let c = chart().await;
    let content = pdf(5, 2500);
    let r = c.upload_pdf(&c.nurse, c.patient_id, "Obs chart", &content).await;
    let id = r["id"].as_str().expect("id").to_owned();
    // The patient, the assigned doctor and the department's nurse read it.
    for t in [&c.patient, &c.doctor, &c.nurse] {
        let (s, _, body) = c.content(&id, Some(t), None).await;
        assert_eq!((s, body.len()), (200, content.len()));
    }
    // Nobody else: not another doctor or nurse, not another patient, not an administrator.
    for t in [&c.other_doctor, &c.other_nurse, &c.other_patient, &c.admin] {
        assert_eq!(c.content(&id, Some(t), None).await.0, 404);
        assert_eq!(c.send("GET", &format!("/api/v1/records/{id}"), t, None).await.0, 404);
    }
    assert_eq!(c.content(&id, None, None).await.0, 401);

    // Emergency access: a grant to the on-call administrator needs a reason.
    let grants = format!("/api/v1/records/{id}/grants");
    let (s, v) =
        c.send("POST", &grants, &c.doctor, Some(json!({"user_id": c.admin_id, "expires_at": in_hours(4)}))).await;
    assert_eq!((s, v["code"].as_str()), (422, Some("reason_required")), "{v}");
    let (s, v) = c
        .send(
            "POST",
            &grants,
            &c.admin,
            Some(json!({"user_id": c.admin_id, "expires_at": in_hours(4), "reason": "On-call: patient unconscious in A&E"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let gid = v["id"].as_str().expect("grant id").to_owned();
    let (s, _, body) = c.content(&id, Some(&c.admin), None).await;
    assert_eq!((s, body), (200, content.clone()), "the admin reads through the grant's own wrap");
    assert_eq!(c.listed(&c.admin, "").await, vec![id.clone()]);

    // Bad grants change nothing.
    for body in [
        json!({"user_id": c.admin_id, "expires_at": in_hours(-1), "reason": "x"}),
        json!({"user_id": c.admin_id, "expires_at": in_hours(24 * 365), "reason": "x"}),
        json!({"user_id": uuid::Uuid::new_v4(), "expires_at": in_hours(1)}),
        json!({"user_id": c.admin_id, "expires_at": "tomorrow", "reason": "x"}),
    ] {
        let (s, v) = c.send("POST", &grants, &c.doctor, Some(body)).await;
        assert_eq!(s, 400, "{v}");
    }
    // Only those who may share: not the nurse, not a stranger (404: they do not see it).
    let body = json!({"user_id": c.admin_id, "expires_at": in_hours(1), "reason": "x"});
    assert_eq!(c.send("POST", &grants, &c.nurse, Some(body.clone())).await.0, 404);
    assert_eq!(c.send("POST", &grants, &c.other_doctor, Some(body)).await.0, 404);

    // Revoking deletes the wrap at once.
    let (s, _) = c.send("DELETE", &format!("{grants}/{gid}"), &c.patient, None).await;
    assert_eq!(s, 204);
    assert_eq!(c.content(&id, Some(&c.admin), None).await.0, 404);
    assert_eq!(c.count("record_grants").await, 0);
    assert_eq!(c.send("DELETE", &format!("{grants}/{gid}"), &c.patient, None).await.0, 404);

    // A grant to another doctor, which then expires: it no longer opens the file.
    let other_doctor_id = {
        let (s, v) = c.send("GET", "/api/v1/auth/me", &c.other_doctor, None).await;
        assert_eq!(s, 200, "{v}");
        v["id"].as_str().expect("id").to_owned()
    };
    let (s, v) = c
        .send(
            "POST",
            &grants,
            &c.patient,
            Some(json!({"user_id": other_doctor_id, "expires_at": in_hours(2), "reason": "second opinion"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(c.content(&id, Some(&c.other_doctor), None).await.0, 200);
    let (s, v) = c.send("GET", &grants, &c.doctor, None).await;
    assert_eq!((s, v["items"].as_array().map(Vec::len)), (200, Some(1)), "{v}");
    let past = careport_domain::time::now_ms() - 1000;
    let sql = "UPDATE record_grants SET expires_at = $1";
    match c.app.db.writer() {
        careport_store::db::Pool::Sqlite(p) => {
            sqlx::query(sqlx::AssertSqlSafe(sql.replace("$1", "?1"))).bind(past).execute(p).await.expect("expire");
        }
        careport_store::db::Pool::Postgres(p) => {
            sqlx::query(sql).bind(past).execute(p).await.expect("expire");
        }
    }
    assert_eq!(c.content(&id, Some(&c.other_doctor), None).await.0, 404, "an expired grant opens nothing");

    let actions = c.audit(&id).await;
    for want in ["record.grant", "record.grant_revoke", "document.read"] {
        assert!(actions.iter().any(|(a, _, _)| a == want), "{want} in {actions:?}");
    }
    assert!(actions.iter().any(|(a, o, _)| a == "document.read" && o == "denied"), "denials are audited");
}

#[actix_web::test]
async fn a_signed_link_reads_one_file_until_it_expires() {
    let c = chart().await;
    let content = pdf(11, 1800);
    let r = c.upload_pdf(&c.patient, c.patient_id, "Scan", &content).await;
    let id = r["id"].as_str().expect("id").to_owned();
    let other = c.upload_pdf(&c.patient, c.patient_id, "Other scan", &pdf(12, 900)).await;
    let links = format!("/api/v1/records/{id}/links");
    for bad in [json!({"expires_in": 0}), json!({"expires_in": 86_401}), json!({"expires_in": "soon"})] {
        let (s, v) = c.send("POST", &links, &c.patient, Some(bad)).await;
        assert_eq!(s, 400, "{v}");
    }
    // Only someone who reads it may link it: not the administrator without a grant.
    assert_eq!(c.send("POST", &links, &c.admin, Some(json!({"expires_in": 60}))).await.0, 404);
    // A narrowed token, even one allowed to read and share this record, makes no link: a link
    // would carry the full identity behind it, for longer.
    let narrowing =
        json!({"operations": ["read", "share"], "resources": [{"kind": "document", "id": id}], "expires_in": 60});
    let (s, v) = c.send("POST", "/api/v1/auth/tokens/attenuate", &c.patient, Some(narrowing)).await;
    assert_eq!(s, 200, "{v}");
    let narrowed = v["token"].as_str().expect("narrowed token").to_owned();
    let (s, v) = c.send("POST", &links, &narrowed, Some(json!({"expires_in": 60}))).await;
    assert_eq!((s, v["code"].as_str()), (403, Some("forbidden")), "{v}");
    let (s, v) = c.send("POST", &links, &c.patient, Some(json!({"expires_in": 3}))).await;
    assert_eq!(s, 201, "{v}");
    let url = v["url"].as_str().expect("url").to_owned();
    assert!(url.starts_with(&c.app.settings.public_url), "{url}");
    let token = url.split("link=").nth(1).expect("token").to_owned();
    let local = format!("{}/api/v1/records/{id}/content?link={token}", c.app.address);

    // No other credential needed.
    let res = c.app.client.get(&local).send().await.expect("link");
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.expect("body").to_vec(), content);
    // Valid for that one file only, and for reading only.
    let other_id = other["id"].as_str().expect("id");
    let res = c
        .app
        .client
        .get(c.app.url(&format!("/api/v1/records/{other_id}/content?link={token}")))
        .send()
        .await
        .expect("other");
    assert_eq!(res.status(), 404);
    let res = c
        .app
        .client
        .delete(c.app.url(&format!("/api/v1/records/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), 404);
    // A changed token is not a token; a plain access token does not work as a link.
    let mut forged = token.clone().into_bytes();
    let mid = forged.len() / 2;
    forged[mid] = if forged[mid] == b'A' { b'B' } else { b'A' };
    let res = c
        .app
        .client
        .get(format!("{}/api/v1/records/{id}/content?link={}", c.app.address, String::from_utf8_lossy(&forged)))
        .send()
        .await
        .expect("forged");
    assert_eq!(res.status(), 401);
    let res = c
        .app
        .client
        .get(format!("{}/api/v1/records/{id}/content?link={}", c.app.address, c.patient))
        .send()
        .await
        .expect("plain");
    assert_eq!(res.status(), 401);

    // After expiry: 401.
    tokio::time::sleep(std::time::Duration::from_millis(4200)).await;
    let res = c.app.client.get(&local).send().await.expect("expired");
    assert_eq!(res.status(), 401);
    let v: serde_json::Value = res.json().await.expect("json");
    assert_eq!(v["code"], "token_expired");

    let (s, v) = c.send("GET", "/api/v1/admin/audit?action=record.download&limit=50", &c.admin, None).await;
    assert_eq!(s, 200, "{v}");
    let refused: Vec<&str> =
        v["items"].as_array().expect("items").iter().filter_map(|e| e["detail"].as_str()).collect();
    assert!(refused.contains(&"signed link refused: token_expired"), "refused links are audited: {refused:?}");
    let actions = c.audit(&id).await;
    assert!(
        actions.iter().any(|(a, _, d)| a == "record.link_create" && d.starts_with("signed link until")),
        "{actions:?}"
    );
    assert!(
        actions.iter().any(|(a, o, d)| a == "record.download" && o == "success" && d.contains("by signed link")),
        "{actions:?}"
    );
}

#[actix_web::test]
async fn a_tampered_file_is_refused_with_its_code_and_no_plaintext() {
    let c = chart().await;
    // Twelve one-KiB frames: a whole-file check is split in two halves, checked side by side.
    let content = b"Potassium 4.1 mmol/L\nSodium 139 mmol/L\n".repeat(300);
    let (s, r) = c
        .upload(&c.doctor, c.patient_id, &[("record_type", "laboratory-results"), ("title", "U&E")], "ue.txt", &content)
        .await;
    assert_eq!(s, 201, "{r}");
    let id = r["id"].as_str().expect("id").to_owned();
    let file_id = c.file_of(&id).await;
    // At rest the object is ciphertext: none of the content is in it.
    let mut sealed = c.sealed(file_id).await;
    assert!(!sealed.windows(9).any(|w| w == b"Potassium"), "no plaintext at rest");
    // Change one byte in the tenth frame (the second half), in place.
    sealed[careport_vault::frames::frame_offset(1024, 9) as usize + 50] ^= 0x01;
    c.overwrite(file_id, &sealed).await;

    let (s, h, body) = c.content(&id, Some(&c.doctor), None).await;
    assert_eq!(s, 500);
    assert_eq!(h["content-type"], "application/json");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json error");
    assert_eq!(v["code"], "integrity_error");
    assert!(!String::from_utf8_lossy(&body).contains("Potassium"), "no plaintext sent");
    // A range in the intact first frame still opens; one that touches the changed frame does not.
    let (s, _, body) = c.content(&id, Some(&c.doctor), Some("bytes=0-99")).await;
    assert_eq!((s, body.as_slice()), (206, &content[..100]));
    assert_eq!(c.content(&id, Some(&c.doctor), Some("bytes=9300-9400")).await.0, 500);
    let (s, _, body) = c.content(&id, Some(&c.doctor), Some("bytes=1000-8000")).await;
    assert_eq!((s, body.as_slice()), (206, &content[1000..=8000]), "frames before the changed one still open");
    let actions = c.audit(&id).await;
    assert!(
        actions.iter().any(|(a, o, d)| a == "record.download" && o == "failure" && d == "integrity_error"),
        "{actions:?}"
    );
}

#[actix_web::test]
async fn erasing_a_patient_destroys_their_keys_and_their_files_can_no_longer_be_read() {
    let c = chart().await;
    let content = pdf(77, 4000);
    let r = c.upload_pdf(&c.doctor, c.patient_id, "Scan", &content).await;
    let id = r["id"].as_str().expect("id").to_owned();
    let (s, _) = c
        .send(
            "POST",
            &format!("/api/v1/records/{id}/grants"),
            &c.doctor,
            Some(json!({"user_id": c.admin_id, "expires_at": in_hours(2), "reason": "audit"})),
        )
        .await;
    assert_eq!(s, 201);
    // OCR text is sealed with the file's key: not in the store in clear, read with the file.
    let record =
        careport_store::vault::record(&c.app.db, id.parse().expect("uuid")).await.expect("row").expect("record");
    c.app.services.vault.store_ocr_text(&record, "Haemoglobin 13.5 g/dL").await.expect("ocr text");
    let sealed = careport_store::vault::ocr_text(&c.app.db, record.id).await.expect("row").expect("sealed");
    assert!(!sealed.contains("Haemoglobin"));
    let opened = c.app.services.vault.open_as_care_team(&record).await.expect("open");
    assert_eq!(opened.ocr_text(&record).await.expect("text").as_deref(), Some("Haemoglobin 13.5 g/dL"));

    let erase = format!("/api/v1/patients/{}/erase", c.patient_id);
    // Administrators only, and only once the record is deleted.
    assert_eq!(c.send("POST", &erase, &c.doctor, None).await.0, 404);
    let (s, v) = c.send("POST", &erase, &c.admin, None).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("patient_not_deleted")), "{v}");
    assert_eq!(c.send("DELETE", &format!("/api/v1/patients/{}", c.patient_id), &c.admin, None).await.0, 204);
    // A deleted patient's chart is closed: no record of it opens, by id or otherwise.
    assert_eq!(c.content(&id, Some(&c.doctor), None).await.0, 404);
    assert_eq!(c.send("GET", &format!("/api/v1/records/{id}"), &c.doctor, None).await.0, 404);
    let (s, v) = c.send("POST", &erase, &c.admin, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["files"].as_i64(), v["grants"].as_i64()), (Some(1), Some(1)));

    // The patient's key and every wrap are gone from the store.
    assert_eq!(c.count("record_grants").await, 0);
    let row = careport_store::vault::file(&c.app.db, c.file_of(&id).await).await;
    let file = row.expect("file row").expect("kept as a tombstone");
    assert!(file.wrapped_key.is_none());
    assert!(careport_store::vault::key(&c.app.db, c.patient_id).await.expect("key").is_none());
    // Even restored, with the care team intact, nothing opens it: 410 `erased`.
    assert_eq!(c.send("POST", &format!("/api/v1/patients/{}/restore", c.patient_id), &c.admin, None).await.0, 200);
    let (s, _, body) = c.content(&id, Some(&c.doctor), None).await;
    assert_eq!(s, 410, "{}", String::from_utf8_lossy(&body));
    let record =
        careport_store::vault::record(&c.app.db, id.parse().expect("uuid")).await.expect("row").expect("record");
    let err = c.app.services.vault.open_as_care_team(&record).await.expect_err("no key opens it");
    assert_eq!(err.code(), careport_domain::Code::Erased);
    assert_eq!(c.objects().await.0, 0, "the sealed objects are deleted too");
    assert!(c.audit(&c.patient_id.to_string()).await.iter().any(|(a, _, _)| a == "patient.erase"));
}

#[actix_web::test]
async fn frames_put_out_of_place_are_refused_before_any_byte_is_sent() {
    let c = chart().await;
    let content = pdf(21, 6000);
    let r = c.upload_pdf(&c.doctor, c.patient_id, "Scan", &content).await;
    let id = r["id"].as_str().expect("id").to_owned();
    let file_id = c.file_of(&id).await;
    let mut sealed = c.sealed(file_id).await;
    // Swap frames 2 and 3: each keeps a valid HMAC, so only their place gives them away.
    let [a, b, end] = [2, 3, 4].map(|i| careport_vault::frames::frame_offset(1024, i) as usize);
    let (second, third) = (sealed[a..b].to_vec(), sealed[b..end].to_vec());
    sealed.splice(a..end, third.into_iter().chain(second));
    c.overwrite(file_id, &sealed).await;

    // The check before the first byte reads each frame's binding too: refused, nothing sent.
    let (s, _, body) = c.content(&id, Some(&c.doctor), None).await;
    assert_eq!(s, 500);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json error");
    assert_eq!(v["code"], "integrity_error");
    // A range before the swapped frames still opens.
    let (s, _, body) = c.content(&id, Some(&c.doctor), Some("bytes=0-2047")).await;
    assert_eq!((s, body.as_slice()), (206, &content[..2048]));
    let actions = c.audit(&id).await;
    assert!(
        actions.iter().any(|(a, o, d)| a == "record.download" && o == "failure" && d == "integrity_error"),
        "{actions:?}"
    );
}

/// A link dies with its maker's sessions: after "log out everywhere" it opens nothing, whichever
/// way it is presented (`?link=` or as a bearer token), and a bearer link's download is audited
/// as one by signed link.
#[actix_web::test]
async fn a_link_stops_when_its_maker_logs_out_everywhere_however_it_is_presented() {
    let c = chart().await;
    let r = c.upload_pdf(&c.patient, c.patient_id, "Scan", &pdf(21, 1500)).await;
    let id = r["id"].as_str().expect("id").to_owned();
    let (s, v) =
        c.send("POST", &format!("/api/v1/records/{id}/links"), &c.patient, Some(json!({"expires_in": 600}))).await;
    assert_eq!(s, 201, "{v}");
    let link = v["url"].as_str().expect("url").split("link=").nth(1).expect("token").to_owned();
    let by_query = |link: String| {
        let url = c.app.url(&format!("/api/v1/records/{id}/content?link={link}"));
        let client = c.app.client.clone();
        async move { client.get(url).send().await.expect("download").status().as_u16() }
    };
    // Both ways work while the maker's sessions live; the bearer download says "by signed link".
    assert_eq!(by_query(link.clone()).await, 200);
    assert_eq!(c.content(&id, Some(&link), None).await.0, 200);
    let downloads: Vec<_> =
        c.audit(&id).await.into_iter().filter(|(a, o, _)| a == "record.download" && o == "success").collect();
    assert_eq!(downloads.len(), 2, "{downloads:?}");
    assert!(downloads.iter().all(|(_, _, d)| d.contains("by signed link")), "{downloads:?}");
    // The maker logs out everywhere (a lost phone): the link is refused both ways.
    let (s, v) = c.send("POST", "/api/v1/auth/logout", &c.patient, Some(json!({"all_sessions": true}))).await;
    assert_eq!(s, 204, "{v}");
    assert_eq!(by_query(link.clone()).await, 401);
    let (s, _, body) = c.content(&id, Some(&link), None).await;
    assert_eq!(s, 401, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("token_revoked"));
}

/// Strings a query answers, on either backend.
async fn strings(c: &super::Chart, sql: &str) -> Vec<String> {
    let q = sqlx::AssertSqlSafe(sql.to_owned());
    match c.app.db.writer() {
        careport_store::db::Pool::Sqlite(p) => sqlx::query_scalar(q).fetch_all(p).await.expect(sql),
        careport_store::db::Pool::Postgres(p) => sqlx::query_scalar(q).fetch_all(p).await.expect(sql),
    }
}

/// Every file under `dir`, with its bytes.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries {
            let path = e.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path, bytes));
            }
        }
    }
    out
}

/// No key is stored unwrapped anywhere: after uploads, a grant and a record's text, every user
/// key, system key and data key (unwrapped here with the master key, as the vault would) and the
/// root keys themselves appear in no encoding — raw, base64url, base64, hex — in any table's
/// rows (the SQLite file and its WAL byte for byte; every PostgreSQL table as text), in any
/// file under the data directory, or in any stored object.
#[actix_web::test]
async fn no_key_is_stored_unwrapped_anywhere() {
    use data_encoding::{BASE64, BASE64_NOPAD, BASE64URL, BASE64URL_NOPAD, HEXLOWER, HEXUPPER};
    use secrecy::ExposeSecret;
    let c = chart().await;
    let first = c.upload_pdf(&c.doctor, c.patient_id, "Scan", &pdf(41, 3000)).await;
    c.upload_pdf(&c.patient, c.patient_id, "Letter", &pdf(42, 1500)).await;
    c.upload_pdf(&c.admin, c.other_patient_id, "Other", &pdf(43, 1200)).await;
    let id = first["id"].as_str().expect("id").to_owned();
    let (s, v) = c
        .send(
            "POST",
            &format!("/api/v1/records/{id}/grants"),
            &c.doctor,
            Some(json!({"user_id": c.admin_id, "expires_at": in_hours(2), "reason": "second opinion"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    crate::ocr::give_text(&c.app, id.parse().expect("uuid")).await;
    assert_eq!(c.content(&id, Some(&c.admin), None).await.0, 200, "the grant opens it");

    // The keys, unwrapped the vault's way.
    let master_text = c.app.settings.secrets.master_key.as_ref().expect("master key").expose_secret().to_owned();
    let master = careport_vault::MasterKey::from_text(&master_text).expect("master key");
    let mut users = Vec::new();
    for wrapped in strings(&c, "SELECT wrapped FROM vault_keys").await {
        users.push(master.unwrap(&wrapped).expect("a user key the master key wrapped"));
    }
    let system: Vec<careport_vault::Key> = strings(&c, "SELECT wrapped FROM system_keys")
        .await
        .iter()
        .map(|w| master.unwrap(w).expect("a system key the master key wrapped"))
        .collect();
    assert!(users.len() >= 2, "the patients' keys at least: {}", users.len());
    let mut data = Vec::new();
    let wrapped_data = [
        strings(&c, "SELECT wrapped_key FROM vault_files WHERE wrapped_key IS NOT NULL").await,
        strings(&c, "SELECT wrapped_key FROM record_grants").await,
    ]
    .concat();
    assert!(wrapped_data.len() >= 4, "three files and a grant: {}", wrapped_data.len());
    for wrapped in &wrapped_data {
        let key = users.iter().find_map(|u| u.unwrap(wrapped).ok()).expect("a data key a user key wrapped");
        data.push(key);
    }
    let token_key = c.app.settings.secrets.token_key.as_ref().expect("token key").expose_secret().to_owned();
    let mut needles: Vec<(String, Vec<u8>)> = vec![
        ("the master key's text".into(), master_text.clone().into_bytes()),
        ("the token key's text".into(), token_key.clone().into_bytes()),
        ("the token key's hex".into(), token_key.trim_start_matches("ed25519-private/").as_bytes().to_vec()),
    ];
    let named = [("master", vec![master.0.raw()])]
        .into_iter()
        .chain([("user", users.iter().map(careport_vault::Key::raw).collect())])
        .chain([("system", system.iter().map(careport_vault::Key::raw).collect())])
        .chain([("data", data.iter().map(careport_vault::Key::raw).collect::<Vec<_>>())]);
    for (kind, keys) in named {
        for (i, raw) in keys.iter().enumerate() {
            needles.push((format!("{kind} key {i}, raw"), raw.to_vec()));
            for (enc, e) in [
                ("base64url", BASE64URL),
                ("base64url unpadded", BASE64URL_NOPAD),
                ("base64", BASE64),
                ("base64 unpadded", BASE64_NOPAD),
                ("hex", HEXLOWER),
                ("HEX", HEXUPPER),
            ] {
                needles.push((format!("{kind} key {i}, {enc}"), e.encode(raw).into_bytes()));
            }
        }
    }
    // One pass over a haystack: needles by their first eight bytes.
    let mut by_prefix: std::collections::HashMap<&[u8], Vec<usize>> = std::collections::HashMap::new();
    for (i, (_, n)) in needles.iter().enumerate() {
        assert!(n.len() >= 32, "{}", needles[i].0);
        by_prefix.entry(&n[..8]).or_default().push(i);
    }
    let found_in = |haystack: &[u8]| {
        haystack.windows(8).enumerate().find_map(|(at, w)| {
            by_prefix
                .get(w)?
                .iter()
                .find(|i| haystack[at..].starts_with(&needles[**i].1))
                .map(|i| needles[*i].0.clone())
        })
    };

    // The store: the SQLite files byte for byte (the temp dir holds them and the data dir), or
    // every PostgreSQL table as text.
    let mut places = 0;
    let root = match c.app.test_db.backend {
        careport_store::Backend::Sqlite => c.app.test_db.dir.path().to_owned(),
        careport_store::Backend::Postgres => c.app.data_dir.clone(),
    };
    for (path, bytes) in files_under(&root) {
        if let Some(what) = found_in(&bytes) {
            panic!("{what} is in {}", path.display());
        }
        places += 1;
    }
    if c.app.test_db.backend == careport_store::Backend::Postgres {
        let tables = strings(&c, "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()").await;
        assert!(tables.iter().any(|t| t == "vault_keys"), "{tables:?}");
        for table in tables {
            for row in strings(&c, &format!("SELECT t::text FROM {table} t")).await {
                if let Some(what) = found_in(row.as_bytes()) {
                    panic!("{what} is in a row of {table}");
                }
                places += 1;
            }
        }
    } else {
        let db = c.app.test_db.dir.path().join("careport.db");
        assert!(db.is_file() && std::fs::metadata(&db).expect("db").len() > 0, "the SQLite file was read");
    }
    // The stored objects, wherever the storage keeps them (S3 on the PostgreSQL run).
    let objects = c.storage().await.list().await.expect("list");
    assert_eq!(objects.len(), 3);
    for (object, _) in objects {
        if let Some(what) = found_in(&c.sealed(object).await) {
            panic!("{what} is in the stored object {object}");
        }
    }
    assert!(places >= 4, "the store and the three objects at least: {places}");
}
