//! Medical records and the vault over HTTP: uploads, lists, downloads and bad input
//! ([`transfer`]), the multipart parser under generated bodies ([`parsers`]); who may read, grants, signed links, tampering and erasure ([`access`]). The
//! chart fixture is here. On the PostgreSQL run the vault's objects are in S3 (moto), so each
//! test body runs on both store backends and both storage backends.

mod access;
mod parsers;
mod transfer;

use careport_domain::Role;
use careport_policy::StaffRole;
use careport_tests::{TestApp, spawn_app_with};

use crate::clinic::{token, unique};
use serde_json::{Value, json};
use uuid::Uuid;

/// A chart: a patient with an account in oncology, cared for by the oncology doctor; the
/// oncology nurse, a cardiology nurse, another doctor, another patient and an administrator.
pub(super) struct Chart {
    pub app: TestApp,
    pub patient_id: Uuid,
    pub patient: String,
    pub other_patient_id: Uuid,
    pub other_patient: String,
    pub doctor: String,
    pub other_doctor: String,
    pub nurse: String,
    pub other_nurse: String,
    pub admin_id: Uuid,
    pub admin: String,
}

/// One KiB frames, so that small files span many frames; a 1 MiB upload limit.
pub(super) async fn chart() -> Chart {
    chart_with(|_| {}).await
}

/// [`chart`], with other settings changed by `adjust` after its own.
pub(super) async fn chart_with(adjust: impl FnOnce(&mut careport::settings::Settings)) -> Chart {
    let app = spawn_app_with(
        |s| {
            s.vault.frame_kib = 1;
            s.vault.max_upload_mib = 1;
            adjust(s);
        },
        Vec::new(),
    )
    .await;
    let e: Vec<String> = ["pat", "pat2", "doc", "doc2", "nurse", "nurse2", "admin"].iter().map(|n| unique(n)).collect();
    let patient_id = app.create_user(&e[0], Role::Patient, None, None).await;
    let other_patient_id = app.create_user(&e[1], Role::Patient, None, None).await;
    let doctor_id = app.create_user(&e[2], Role::Clinician, Some(StaffRole::Doctor), Some("oncology")).await;
    app.create_user(&e[3], Role::Clinician, Some(StaffRole::Doctor), Some("oncology")).await;
    app.create_user(&e[4], Role::Clinician, Some(StaffRole::Nurse), Some("oncology")).await;
    app.create_user(&e[5], Role::Clinician, Some(StaffRole::Nurse), Some("cardiology")).await;
    let admin_id = app.create_user(&e[6], Role::Admin, None, None).await;
    let admin = token(&app, &e[6]).await;
    let c = Chart {
        patient_id,
        patient: token(&app, &e[0]).await,
        other_patient_id,
        other_patient: token(&app, &e[1]).await,
        doctor: token(&app, &e[2]).await,
        other_doctor: token(&app, &e[3]).await,
        nurse: token(&app, &e[4]).await,
        other_nurse: token(&app, &e[5]).await,
        admin_id,
        admin,
        app,
    };
    let (s, v) = c
        .send("PATCH", &format!("/api/v1/patients/{patient_id}"), &c.admin, Some(json!({"department": "oncology"})))
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = c
        .send(
            "POST",
            &format!("/api/v1/patients/{patient_id}/assignments"),
            &c.admin,
            Some(json!({"clinician_id": doctor_id, "cancer_type_id": "uterine-leiomyosarcoma-ulms"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    c
}

/// A multipart body: the text fields in order, then `file` with its name.
pub(super) fn multipart(fields: &[(&str, &str)], file_name: &str, content: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("----careport{}", Uuid::new_v4().simple());
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A PDF-looking file of `len` bytes whose content is unique to `seed`.
pub(super) fn pdf(seed: u64, len: usize) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n".to_vec();
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push((x & 0xff) as u8);
    }
    out.truncate(len);
    out
}

impl Chart {
    pub async fn send(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        crate::clinic::send(&self.app, method, path, token, body).await
    }

    /// The vault's object storage as the app has it configured.
    pub async fn storage(&self) -> careport_store::objects::Objects {
        careport_store::objects::Objects::open(&self.app.settings.storage, &self.app.data_dir).await.expect("objects")
    }

    /// A stored object's sealed bytes, whole.
    pub async fn sealed(&self, file_id: Uuid) -> Vec<u8> {
        let mut sealed = Vec::new();
        let mut stream = self.storage().await.read_from(file_id, 0).await.expect("read");
        while let Some(b) = futures_util::StreamExt::next(&mut stream).await {
            sealed.extend_from_slice(&b.expect("bytes"));
        }
        sealed
    }

    /// Put other sealed bytes in an object's place (what an attacker with the storage would do).
    pub async fn overwrite(&self, file_id: Uuid, sealed: &[u8]) {
        let mut w = self.storage().await.writer(file_id).await.expect("writer");
        w.write(sealed).await.expect("write");
        w.commit().await.expect("commit");
    }

    /// Upload by multipart as `token`; (status, body).
    pub async fn upload(
        &self,
        token: &str,
        patient: Uuid,
        fields: &[(&str, &str)],
        name: &str,
        content: &[u8],
    ) -> (u16, Value) {
        let (ct, body) = multipart(fields, name, content);
        let res = self
            .app
            .client
            .post(self.app.url(&format!("/api/v1/patients/{patient}/records")))
            .bearer_auth(token)
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .expect("upload");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Upload a PDF as a laboratory result; panics unless 201. Returns the record.
    pub async fn upload_pdf(&self, token: &str, patient: Uuid, title: &str, content: &[u8]) -> Value {
        let (s, v) = self
            .upload(
                token,
                patient,
                &[("record_type", "laboratory-results"), ("title", title), ("date", "2026-03-01")],
                "result.pdf",
                content,
            )
            .await;
        assert_eq!(s, 201, "{v}");
        v
    }

    /// GET a record's content; (status, headers, body bytes).
    pub async fn content(
        &self,
        record: &str,
        token: Option<&str>,
        range: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let mut req = self.app.client.get(self.app.url(&format!("/api/v1/records/{record}/content")));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(r) = range {
            req = req.header("range", r);
        }
        let res = req.send().await.expect("download");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        (status, headers, res.bytes().await.map(|b| b.to_vec()).unwrap_or_default())
    }

    /// The ids in the chart list as `token` sees it (all pages, two at a time).
    pub async fn listed(&self, token: &str, query: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/patients/{}/records?limit=2{query}", self.patient_id);
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (s, v) = self.send("GET", &path, token, None).await;
            assert_eq!(s, 200, "{v}");
            ids.extend(v["items"].as_array().expect("items").iter().map(|r| r["id"].as_str().expect("id").to_owned()));
            match v["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        ids
    }

    /// How many rows a table of the vault holds.
    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        match self.app.db.writer() {
            careport_store::db::Pool::Sqlite(p) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(p).await.expect("count")
            }
            careport_store::db::Pool::Postgres(p) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(p).await.expect("count")
            }
        }
    }

    /// The id of a record's sealed file (the API does not show it).
    pub async fn file_of(&self, record: &str) -> Uuid {
        let record: Uuid = record.parse().expect("record id");
        careport_store::vault::record(&self.app.db, record).await.expect("store").expect("record").file_id
    }

    /// Every stored object and temporary the vault has (local directory or S3 prefix).
    pub async fn objects(&self) -> (usize, usize) {
        let listed = self.storage().await.list().await.expect("list").len();
        let tmp = std::fs::read_dir(self.app.data_dir.join("vault").join("tmp")).map(|d| d.count()).unwrap_or(0);
        (listed, tmp)
    }

    /// The audit actions about `resource_id` in the chart's patient's trail, oldest first, with
    /// their outcome and detail.
    pub async fn audit(&self, resource_id: &str) -> Vec<(String, String, String)> {
        let path = format!("/api/v1/admin/audit?patient={}&limit=200", self.patient_id);
        let (s, v) = self.send("GET", &path, &self.admin, None).await;
        assert_eq!(s, 200, "{v}");
        let mut out: Vec<(String, String, String)> = v["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|e| e["resource_id"] == resource_id)
            .map(|e| {
                (
                    e["action"].as_str().unwrap_or_default().to_owned(),
                    e["outcome"].as_str().unwrap_or_default().to_owned(),
                    e["detail"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        out.reverse();
        out
    }
}
