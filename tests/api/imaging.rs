//! Medical images (#18) over HTTP: a DICOM file of the chart's patient kept with its metadata
//! and given previews by a job; one of another patient refused with nothing kept, unless an
//! administrator overrides (audited, with the fields that differed); compressed pixel data
//! answered as "no preview"; a picture with the kind its uploader gave; the chart's image list
//! and its filters, decided like the records' list.

use std::time::Duration;

use serde_json::{Value, json};

use crate::records::{Chart, chart, pdf};

/// Make `record` (of any type) an image with a ready preview, for the RBAC matrix: its row and
/// two sealed PNGs, as the preview job leaves them.
pub async fn give_preview(app: &careport_tests::TestApp, record: uuid::Uuid) {
    static INSERT: careport_store::sql::Sql = careport_store::sql::Sql::new(
        "INSERT INTO record_images (record_id, patient_id, kind, identity, preview, thumb, web, created_at, updated_at)
         VALUES ($1, $2, 'other', 'absent', 'ready', $3, $3, 0, 0) ON CONFLICT (record_id) DO NOTHING",
    );
    let row = careport_store::vault::live_record(app.services.store_handle(), record)
        .await
        .expect("record")
        .expect("live record");
    let file = app.services.vault.open_as_care_team(&row).await.expect("open");
    let grey = careport_actors::imaging::preview::Grey::new(2, 2, vec![0, 85, 170, 255]).expect("grey");
    let (thumb, _) = careport_actors::imaging::preview::previews(&grey);
    careport_store::exec!(app.db.writer(), &INSERT, record, row.patient_id, file.seal_bytes(&thumb)).expect("insert");
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../actors/services/tests/fixtures/dicom/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn upload_image(c: &Chart, token: &str, extra: &[(&str, &str)], name: &str) -> (u16, Value) {
    let mut fields = vec![("record_type", "medical-images"), ("title", "Imaging")];
    fields.extend_from_slice(extra);
    c.upload(token, c.patient_id, &fields, name, &fixture(name)).await
}

/// Poll a record until its preview is no longer pending (30 s at most); its image.
async fn previewed(c: &Chart, record: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (s, v) = c.send("GET", &format!("/api/v1/records/{record}"), &c.doctor, None).await;
        assert_eq!(s, 200, "{v}");
        if v["image"]["preview"]["status"] != "pending" {
            return v["image"].clone();
        }
        assert!(std::time::Instant::now() < deadline, "the preview was not made within 30 s: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GET a preview; (status, content type, bytes).
async fn preview(c: &Chart, record: &str, size: &str, token: &str) -> (u16, String, Vec<u8>) {
    let res = c
        .app
        .client
        .get(c.app.url(&format!("/api/v1/records/{record}/preview?size={size}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("preview");
    let status = res.status().as_u16();
    let ct = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    (status, ct, res.bytes().await.map(|b| b.to_vec()).unwrap_or_default())
}

/// A PNG's width and height, from its header.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let be = |i: usize| u32::from_be_bytes([png[i], png[i + 1], png[i + 2], png[i + 3]]);
    (be(16), be(20))
}

/// The chart becomes the fixtures' patient: MRN P-123, Jane Doe, born 1970-01-01.
async fn jane_doe(c: &Chart) {
    let body = json!({"mrn": "P-123", "full_name": "Jane Doe", "date_of_birth": "1970-01-01"});
    let (s, v) = c.send("PATCH", &format!("/api/v1/patients/{}", c.patient_id), &c.admin, Some(body)).await;
    assert_eq!(s, 200, "{v}");
}

#[actix_web::test]
async fn a_dicom_file_of_the_chart_s_patient_is_kept_with_its_metadata_and_previews() {
    let c = chart().await;
    jane_doe(&c).await;
    let (s, v) = upload_image(&c, &c.doctor, &[], "ct_window.dcm").await;
    assert_eq!(s, 201, "{v}");
    let image = &v["image"];
    assert_eq!(
        (image["kind"].as_str(), image["modality"].as_str(), image["body_part"].as_str()),
        (Some("ct"), Some("CT"), Some("CHEST")),
        "{v}"
    );
    assert_eq!((image["rows"].as_i64(), image["columns"].as_i64()), (Some(48), Some(64)));
    assert_eq!((image["identity"].as_str(), image["study_date"].as_str()), (Some("matched"), Some("2024-03-15")));
    assert_eq!(v["date"], "2024-03-15", "an image without a date of its own is dated by its study");
    assert!(image["study_uid"].as_str().is_some_and(|u| u.starts_with("1.2.")), "{v}");
    let record = v["id"].as_str().expect("id").to_owned();

    let image = previewed(&c, &record).await;
    assert_eq!(image["preview"]["status"], "ready", "{image}");
    let (s, ct, thumb) = preview(&c, &record, "thumb", &c.patient).await;
    assert_eq!((s, ct.as_str()), (200, "image/png"), "the patient sees their own image");
    let (w, h) = png_size(&thumb);
    assert!(w <= 256 && h <= 256 && w > 0 && h > 0, "{w}×{h}");
    let (s, _, web) = preview(&c, &record, "web", &c.nurse).await;
    assert_eq!(s, 200, "the department's nurse reads it");
    assert_eq!(png_size(&web), (64, 48), "never larger than the original");
    for who in [&c.other_doctor, &c.other_nurse, &c.other_patient, &c.admin] {
        let (s, _, _) = preview(&c, &record, "thumb", who).await;
        assert_eq!(s, 404, "not theirs to see");
    }
    let (s, _, _) = preview(&c, &record, "huge", &c.doctor).await;
    assert_eq!(s, 400);
    // The previews are sealed in the store.
    static THUMB: careport_store::sql::Sql =
        careport_store::sql::Sql::new("SELECT thumb FROM record_images WHERE record_id = $1");
    let sealed: String = careport_store::scalar!(
        c.app.db.reader(),
        String,
        fetch_one,
        &THUMB,
        record.parse::<uuid::Uuid>().expect("uuid")
    )
    .expect("row");
    assert!(!sealed.as_bytes().windows(4).any(|w| w == b"\x89PNG") && sealed.len() > thumb.len());
    let actions: Vec<String> = c.audit(&record).await.into_iter().map(|(a, _, _)| a).collect();
    assert_eq!(actions.iter().filter(|a| *a == "record.preview").count(), 2, "{actions:?}");

    // A record that is not an image has no preview.
    let lab = c.upload_pdf(&c.doctor, c.patient_id, "lab", &pdf(1, 2000)).await;
    let (s, _, body) = preview(&c, lab["id"].as_str().expect("id"), "thumb", &c.doctor).await;
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!((s, body["code"].as_str()), (404, Some("no_preview")));
}

#[actix_web::test]
async fn a_file_of_another_patient_is_refused_with_nothing_kept_unless_an_administrator_overrides() {
    let c = chart().await;
    jane_doe(&c).await;
    let before = (c.count("medical_records").await, c.count("record_images").await, c.count("jobs").await);
    let (s, v) = upload_image(&c, &c.doctor, &[], "cr_mono1.dcm").await;
    assert_eq!((s, v["code"].as_str()), (409, Some("patient_mismatch")), "{v}");
    let message = v["message"].as_str().expect("message");
    assert!(message.contains("patient_id") && message.contains("patient_name"), "{message}");
    assert!(!message.contains("Roe") && !message.contains("P-456"), "no value of the file is told: {message}");
    let after = (c.count("medical_records").await, c.count("record_images").await, c.count("jobs").await);
    assert_eq!(before, after, "nothing kept");
    assert_eq!(c.objects().await.0, 0, "no object left behind");

    // Overriding is the administrators' decision: a doctor asking is refused before the body.
    let (s, v) = upload_image(&c, &c.doctor, &[("override_identity", "true")], "cr_mono1.dcm").await;
    assert_eq!(s, 403, "{v}");
    let (s, v) = upload_image(&c, &c.admin, &[("override_identity", "true")], "cr_mono1.dcm").await;
    assert_eq!(s, 201, "{v}");
    assert_eq!((v["image"]["identity"].as_str(), v["image"]["kind"].as_str()), (Some("overridden"), Some("xray")));
    let record = v["id"].as_str().expect("id");
    let trail = c.audit(record).await;
    assert!(
        trail.iter().any(|(a, o, d)| a == "record.upload"
            && o == "success"
            && d.contains("identity overridden (patient_id, patient_name)")),
        "{trail:?}"
    );
    // A file that states no identifier (a de-identified export) is kept as such.
    let anonymous = careport_store::patients::PatientRow {
        mrn: String::new(),
        full_name: String::new(),
        date_of_birth: None,
        ..careport_store::patients::get(&c.app.db, c.patient_id).await.expect("store").expect("chart")
    };
    let dicom = careport::seed_charts::demo_dicom(&anonymous, "MR", "BRAIN", "1.2.840.10008.5.1.4.1.1.4", "20250101");
    let (s, v) = c
        .upload(&c.doctor, c.patient_id, &[("record_type", "medical-images"), ("title", "MR")], "mr.dcm", &dicom)
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["image"]["identity"], "absent", "{v}");
}

#[actix_web::test]
async fn compressed_pixels_have_no_preview_pictures_take_their_kind_and_the_list_filters() {
    let c = chart().await;
    jane_doe(&c).await;
    let (s, jpeg) = upload_image(&c, &c.doctor, &[], "jpeg_dx.dcm").await;
    assert_eq!(s, 201, "{jpeg}");
    assert_eq!(jpeg["image"]["preview"]["status"], "none", "{jpeg}");
    assert!(jpeg["image"]["preview"]["reason"].as_str().is_some_and(|r| r.contains("compressed")), "{jpeg}");
    let (s, _, body) = preview(&c, jpeg["id"].as_str().expect("id"), "thumb", &c.doctor).await;
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!((s, body["code"].as_str()), (404, Some("no_preview")), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("compressed")), "{body}");

    let (s, photo) = upload_image(&c, &c.doctor, &[("image_kind", "ultrasound")], "photo.jpg").await;
    assert_eq!(s, 201, "{photo}");
    assert_eq!(
        (photo["image"]["kind"].as_str(), photo["image"]["identity"].as_str()),
        (Some("ultrasound"), Some("absent"))
    );
    let image = previewed(&c, photo["id"].as_str().expect("id")).await;
    assert_eq!(image["preview"]["status"], "ready", "{image}");
    let (s, ct) = upload_image(&c, &c.doctor, &[], "ct_window.dcm").await;
    assert_eq!(s, 201, "{ct}");

    // Bad input changes nothing.
    let before = c.count("medical_records").await;
    let (s, v) = upload_image(&c, &c.doctor, &[("image_kind", "selfie")], "photo.jpg").await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_value")), "{v}");
    let (s, v) = c
        .upload(&c.doctor, c.patient_id, &[("record_type", "medical-images"), ("title", "x")], "r.pdf", &pdf(2, 900))
        .await;
    assert_eq!((s, v["code"].as_str()), (415, Some("unsupported_media_type")), "{v}");
    let (s, _) = c
        .upload(
            &c.doctor,
            c.patient_id,
            &[("record_type", "laboratory-results"), ("title", "x"), ("image_kind", "ct")],
            "r.pdf",
            &pdf(3, 900),
        )
        .await;
    assert_eq!(s, 400, "image fields belong to images");
    let mut bad = fixture("ct_window.dcm");
    bad.truncate(bad.len() - 100);
    let (s, v) =
        c.upload(&c.doctor, c.patient_id, &[("record_type", "medical-images"), ("title", "x")], "t.dcm", &bad).await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_value")), "a damaged DICOM file: {v}");
    assert_eq!(c.count("medical_records").await, before);

    // The list: every image, then by kind, by modality code and by date.
    c.upload_pdf(&c.doctor, c.patient_id, "not an image", &pdf(4, 900)).await;
    let images = format!("/api/v1/patients/{}/images", c.patient_id);
    let ids = |v: &Value| -> Vec<String> {
        v["items"].as_array().expect("items").iter().map(|r| r["id"].as_str().expect("id").to_owned()).collect()
    };
    let id = |v: &Value| v["id"].as_str().expect("id").to_owned();
    let (s, all) = c.send("GET", &images, &c.patient, None).await;
    assert_eq!(s, 200, "{all}");
    assert_eq!(ids(&all), vec![id(&ct), id(&photo), id(&jpeg)], "newest first, images only");
    assert!(all["items"].as_array().expect("items").iter().all(|r| r["image"]["kind"].is_string()));
    let (_, v) = c.send("GET", &format!("{images}?modality=ct"), &c.doctor, None).await;
    assert_eq!(ids(&v), vec![id(&ct)]);
    let (_, v) = c.send("GET", &format!("{images}?modality=dx"), &c.doctor, None).await;
    assert_eq!(ids(&v), vec![id(&jpeg)], "a DICOM code, any case");
    let (_, v) = c.send("GET", &format!("{images}?modality=xray"), &c.doctor, None).await;
    assert_eq!(ids(&v), vec![id(&jpeg)], "DX is an X-ray");
    let (_, v) = c.send("GET", &format!("{images}?from=2024-01-01&to=2024-12-31"), &c.doctor, None).await;
    assert_eq!(ids(&v), vec![id(&ct)]);
    let (s, v) = c.send("GET", &format!("{images}?modality=c%20t"), &c.doctor, None).await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_query")), "{v}");
    for who in [&c.other_doctor, &c.other_patient] {
        let (s, _) = c.send("GET", &images, who, None).await;
        assert_eq!(s, 404, "not theirs to know of");
    }
    // The chart's records list carries the image metadata too.
    let (_, v) = c.send("GET", &format!("/api/v1/patients/{}/records", c.patient_id), &c.doctor, None).await;
    let items = v["items"].as_array().expect("items");
    assert_eq!(items.iter().filter(|r| r["image"].is_object()).count(), 3, "{v}");
}
