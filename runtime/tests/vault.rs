//! The vault as operators run it, with the real binary: `kill -9` in the middle of uploads
//! leaves no record and the janitor clears what it left; `keys rotate-master` re-wraps the keys
//! and every file still opens; `records import` brings in a file of the Python portal.
//!
//! On SQLite with the local directory by default; on PostgreSQL when `CAREPORT_TEST_PG_URL` is
//! set (a schema of its own) and on S3 when `CAREPORT_TEST_S3_ENDPOINT` is set, as `.ci/run`
//! does in its second pass.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use careport_domain::Role;
use careport_policy::{Claims, KeyPair, KeyRing, PrivateKey, StaffRole};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_careport");

/// One deployment: its data dir, store, storage and keys, shared by every process started on it.
struct Deployment {
    dir: tempfile::TempDir,
    master_key: String,
    token_key: String,
    vars: Vec<(String, String)>,
    pg_schema: Option<(String, String)>,
}

impl Deployment {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut vars: Vec<(String, String)> = Vec::new();
        let mut pg_schema = None;
        if let Some(admin) = std::env::var("CAREPORT_TEST_PG_URL").ok().filter(|s| !s.is_empty()) {
            use sqlx::Connection;
            let schema = format!("v_{}", Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to CAREPORT_TEST_PG_URL");
            let _ = sqlx::query("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public").execute(&mut conn).await;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&mut conn)
                .await
                .expect("schema");
            let sep = if admin.contains('?') { '&' } else { '?' };
            vars.push((
                "CAREPORT__DATABASE__URL".into(),
                format!("{admin}{sep}options=-c%20search_path%3D{schema}%2Cpublic"),
            ));
            pg_schema = Some((admin, schema));
        }
        if let Some(endpoint) = std::env::var("CAREPORT_TEST_S3_ENDPOINT").ok().filter(|s| !s.is_empty()) {
            let bucket = std::env::var("CAREPORT_TEST_S3_BUCKET").unwrap_or_else(|_| "careport-test".into());
            for (k, v) in [
                ("BACKEND", "s3".to_owned()),
                ("S3__BUCKET", bucket),
                ("S3__ENDPOINT", endpoint),
                ("S3__ALLOW_HTTP", "true".into()),
                ("S3__ACCESS_KEY_ID", "testing".into()),
                ("S3__SECRET_ACCESS_KEY", "testing".into()),
                ("S3__PREFIX", format!("p-{}/", Uuid::new_v4().simple())),
            ] {
                vars.push((format!("CAREPORT__STORAGE__{k}"), v));
            }
        }
        Self {
            dir,
            master_key: careport::secrets::generate_master_key(),
            token_key: careport::secrets::generate_token_key(),
            vars,
            pg_schema,
        }
    }

    fn s3(&self) -> bool {
        self.vars.iter().any(|(k, v)| k == "CAREPORT__STORAGE__BACKEND" && v == "s3")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The binary with a clean environment and this deployment's settings.
    fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars() {
            if k.starts_with("CAREPORT") || k == "RUST_LOG" || k.starts_with("AWS_") {
                cmd.env_remove(k);
            }
        }
        cmd.current_dir(self.dir.path())
            .env("CAREPORT_ENV", "test")
            .env("CAREPORT__DATA_DIR", self.data_dir())
            .env("CAREPORT__LOG__LEVEL", "warn")
            .env("CAREPORT__SECRETS__MASTER_KEY", &self.master_key)
            .env("CAREPORT__SECRETS__TOKEN_KEY", &self.token_key);
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd
    }

    /// Start `careport serve` and wait until it is ready.
    async fn start(&self, extra: &[(&str, &str)]) -> Node {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let mut cmd = self.command();
        cmd.arg("serve").env("CAREPORT__HTTP__PORT", port.to_string()).stdout(Stdio::null()).stderr(Stdio::inherit());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn careport serve");
        let node = Node { child, url: format!("http://127.0.0.1:{port}"), client: reqwest::Client::new() };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = node.client.get(format!("{}/readyz", node.url)).send().await
                && r.status() == 200
            {
                return node;
            }
            assert!(Instant::now() < deadline, "careport serve did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A token of this deployment's key for `user`.
    fn token(&self, user: Uuid, role: Role, staff: Option<StaffRole>, dept: Option<&str>) -> String {
        let settings = careport::Settings::load_for("test", None, false).expect("settings");
        let private: PrivateKey = self.token_key.parse().expect("token key");
        let ring = KeyRing::new(settings.auth.tokens.key_id, KeyPair::from(&private), Vec::new());
        ring.mint(&Claims {
            user,
            role,
            staff_role: staff,
            department: dept.map(str::to_owned),
            session: Uuid::now_v7(),
            expires_at: SystemTime::now() + Duration::from_secs(600),
            mfa_pending: false,
        })
        .expect("mint")
    }

    /// A doctor in oncology, made with `careport user create`; returns the id and a token.
    fn doctor(&self) -> (Uuid, String) {
        let mut child = self
            .command()
            .args([
                "user",
                "create",
                "--email",
                &format!("doc-{}@example.org", &Uuid::new_v4().simple().to_string()[..8]),
            ])
            .args(["--role", "clinician", "--staff-role", "doctor", "--department", "oncology"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        writeln!(child.stdin.take().expect("stdin"), "violet-otter-harbour-42").expect("password");
        let out = child.wait_with_output().expect("user create");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let id: Uuid = String::from_utf8_lossy(&out.stdout).trim().parse().expect("id");
        (id, self.token(id, Role::Clinician, Some(StaffRole::Doctor), Some("oncology")))
    }

    /// The sealed objects in storage, and the temporaries of the local directory.
    async fn objects(&self) -> (usize, usize) {
        let settings = {
            let mut s = careport::Settings::load_for("test", None, false).expect("settings");
            if self.s3() {
                let get = |k: &str| {
                    self.vars.iter().find(|(n, _)| n == &format!("CAREPORT__STORAGE__S3__{k}")).map(|(_, v)| v.clone())
                };
                s.storage = careport_store::objects::StorageConfig {
                    backend: careport_store::objects::StorageBackend::S3,
                    dir: None,
                    s3: Some(careport_store::objects::S3Config {
                        bucket: get("BUCKET").expect("bucket"),
                        endpoint: get("ENDPOINT"),
                        region: "us-east-1".into(),
                        access_key_id: Some("testing".into()),
                        secret_access_key: Some("testing".to_owned().into()),
                        allow_http: true,
                        prefix: get("PREFIX").expect("prefix"),
                    }),
                };
            }
            s
        };
        let objects =
            careport_store::objects::Objects::open(&settings.storage, &self.data_dir()).await.expect("objects");
        let listed = objects.list().await.expect("list").len();
        let tmp = std::fs::read_dir(self.data_dir().join("vault").join("tmp")).map(|d| d.count()).unwrap_or(0);
        (listed, tmp)
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let Some((admin, schema)) = self.pg_schema.take() else { return };
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

struct Node {
    child: Child,
    url: String,
    client: reqwest::Client,
}

impl Node {
    /// `kill -9`: no shutdown, no cleanup.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("wait");
    }

    async fn new_patient(&self, token: &str) -> Uuid {
        let res = self
            .client
            .post(format!("{}/api/v1/patients", self.url))
            .bearer_auth(token)
            .json(&serde_json::json!({"full_name": "Vault Test", "department": "oncology"}))
            .send()
            .await
            .expect("create patient");
        assert_eq!(res.status(), 201);
        let v: serde_json::Value = res.json().await.expect("json");
        v["id"].as_str().expect("id").parse().expect("uuid")
    }

    async fn upload(&self, token: &str, patient: Uuid, content: Vec<u8>) -> String {
        let res = self
            .client
            .post(format!("{}/api/v1/patients/{patient}/records?record_type=laboratory-results&title=Result", self.url))
            .bearer_auth(token)
            .header("content-type", "application/pdf")
            .body(content)
            .send()
            .await
            .expect("upload");
        assert_eq!(res.status(), 201);
        let v: serde_json::Value = res.json().await.expect("json");
        v["id"].as_str().expect("id").to_owned()
    }

    async fn download(&self, token: &str, record: &str) -> (u16, Vec<u8>) {
        let res = self
            .client
            .get(format!("{}/api/v1/records/{record}/content", self.url))
            .bearer_auth(token)
            .send()
            .await
            .expect("download");
        (res.status().as_u16(), res.bytes().await.map(|b| b.to_vec()).unwrap_or_default())
    }

    async fn list(&self, token: &str, patient: Uuid) -> Vec<serde_json::Value> {
        let res = self
            .client
            .get(format!("{}/api/v1/patients/{patient}/records", self.url))
            .bearer_auth(token)
            .send()
            .await
            .expect("list");
        assert_eq!(res.status(), 200);
        let v: serde_json::Value = res.json().await.expect("json");
        v["items"].as_array().expect("items").clone()
    }
}

fn pdf(len: usize, seed: u8) -> Vec<u8> {
    let mut v = b"%PDF-1.7\n".to_vec();
    v.extend((0..len - 9).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    v
}

#[tokio::test]
async fn a_kill_during_uploads_leaves_no_record_and_the_janitor_removes_what_it_left() {
    let d = Deployment::new().await;
    let (_, doctor) = d.doctor();
    let node = d.start(&[]).await;
    let patient = node.new_patient(&doctor).await;
    let kept = pdf(3 << 20, 1);
    let record = node.upload(&doctor, patient, kept.clone()).await;

    // Two uploads of 8 MiB each, cut off after 3 MiB, while the server is sealing them.
    let addr = node.url.trim_start_matches("http://").to_owned();
    let mut streams = Vec::new();
    for seed in [2u8, 3] {
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        let head = format!(
            "POST /api/v1/patients/{patient}/records?record_type=laboratory-results&title=Half HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {doctor}\r\nContent-Type: application/pdf\r\nContent-Length: {}\r\n\r\n",
            8u64 << 20
        );
        s.write_all(head.as_bytes()).expect("head");
        s.write_all(&pdf(3 << 20, seed)).expect("body");
        streams.push(s);
    }
    if !d.s3() {
        // The local backend writes to a temporary as it seals: wait until the writes show.
        let deadline = Instant::now() + Duration::from_secs(20);
        while d.objects().await.1 < 2 {
            assert!(Instant::now() < deadline, "the uploads in progress never reached the disk");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    } else {
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    node.kill();
    drop(streams);
    let (objects, temporaries) = d.objects().await;
    assert_eq!(objects, 1, "only the committed upload has an object");
    if !d.s3() {
        assert_eq!(temporaries, 2, "the killed uploads left temporaries behind");
    }

    // Restarted with no grace period, the janitor clears them at once; nothing half-done shows.
    let node = d.start(&[("CAREPORT__VAULT__ORPHAN_GRACE_SECS", "0")]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while d.objects().await != (1, 0) {
        assert!(Instant::now() < deadline, "the janitor did not clear the leftovers: {:?}", d.objects().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listed = node.list(&doctor, patient).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], record.as_str());
    assert_eq!(node.download(&doctor, &record).await, (200, kept));
    node.kill();
}

#[tokio::test]
async fn rotating_the_master_key_rewraps_the_keys_and_every_file_still_opens() {
    let mut d = Deployment::new().await;
    let (_, doctor) = d.doctor();
    let node = d.start(&[]).await;
    let patient = node.new_patient(&doctor).await;
    let content = pdf(40_000, 9);
    let record = node.upload(&doctor, patient, content.clone()).await;
    node.kill();

    let new_key = careport::secrets::generate_master_key();
    let key_file = d.dir.path().join("new-master.key");
    std::fs::write(&key_file, format!("CAREPORT__SECRETS__MASTER_KEY={new_key}\n")).expect("key file");
    let out = d.command().args(["keys", "rotate-master", "--new-key-file"]).arg(&key_file).output().expect("rotate");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("re-wrapped") && !stdout.contains(&new_key) && !stdout.contains(&d.master_key), "{stdout}");
    // Nothing is rotated twice from the wrong key: the old key no longer opens the store.
    let again = d.command().args(["keys", "rotate-master", "--new-key-file"]).arg(&key_file).output().expect("again");
    assert!(!again.status.success(), "the current key is the new one now");
    let verify_old = d.command().args(["audit", "verify"]).output().expect("verify");
    assert!(!verify_old.status.success(), "the old master key opens nothing");

    d.master_key = new_key;
    let verify = d.command().args(["audit", "verify"]).output().expect("verify");
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("intact"));
    let node = d.start(&[]).await;
    assert_eq!(node.download(&doctor, &record).await, (200, content));
    node.kill();
}

#[tokio::test]
async fn a_file_of_the_python_portal_is_imported_as_a_sealed_record() {
    let d = Deployment::new().await;
    let (_, doctor) = d.doctor();
    let node = d.start(&[]).await;
    let patient = node.new_patient(&doctor).await;
    let legacy_key = fernet::Fernet::generate_key();
    let content = b"%PDF-1.4\nDischarge summary from the old portal".to_vec();
    let token = fernet::Fernet::new(&legacy_key).expect("key").encrypt(&content);
    let file = d.dir.path().join("summary.pdf.enc");
    std::fs::write(&file, &token).expect("file");
    let key_file = d.dir.path().join("legacy.key");
    std::fs::write(&key_file, &legacy_key).expect("key");

    let import = |key: &PathBuf| {
        let mut cmd = d.command();
        cmd.args(["records", "import", "--patient", &patient.to_string(), "--type", "discharge-summaries"])
            .args(["--title", "Discharge summary (imported)", "--date", "2024-02-03", "--key-file"])
            .arg(key)
            .arg(&file);
        cmd.output().expect("import")
    };
    let wrong = d.dir.path().join("wrong.key");
    std::fs::write(&wrong, fernet::Fernet::generate_key()).expect("key");
    let refused = import(&wrong);
    assert!(!refused.status.success());
    assert!(!String::from_utf8_lossy(&refused.stderr).contains(&legacy_key));

    let out = import(&key_file);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let record = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(node.download(&doctor, &record).await, (200, content));
    let listed = node.list(&doctor, patient).await;
    assert_eq!(listed[0]["file_name"], "summary.pdf");
    assert_eq!(listed[0]["record_type"], "discharge-summaries");
    node.kill();
}

/// The same import from a file that Python's own `cryptography` sealed, as the portal did
/// (`tests/fixtures/python-portal/make.py` made it), not one the Rust `fernet` crate wrote.
#[tokio::test]
async fn a_file_sealed_by_python_cryptography_is_imported_byte_identical() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/python-portal");
    let content = std::fs::read(fixtures.join("summary.pdf")).expect("plaintext");
    let d = Deployment::new().await;
    let (_, doctor) = d.doctor();
    let node = d.start(&[]).await;
    let patient = node.new_patient(&doctor).await;
    let mut cmd = d.command();
    cmd.args(["records", "import", "--patient", &patient.to_string(), "--type", "discharge-summaries"])
        .args(["--title", "Discharge summary (Python portal)", "--key-file"])
        .arg(fixtures.join("legacy.key"))
        .arg(fixtures.join("summary.pdf.enc"));
    let out = cmd.output().expect("import");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let record = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(node.download(&doctor, &record).await, (200, content));
    assert_eq!(node.list(&doctor, patient).await[0]["file_name"], "summary.pdf");
    node.kill();
}
