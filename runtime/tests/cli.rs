//! The `careport` binary as operators run it: keys, settings errors, accounts from standard
//! input, refusing to start without keys or a database, and a graceful stop on SIGTERM.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_careport");

/// A command with a clean environment: no `CAREPORT_*` from the caller, a temp data dir.
fn careport(dir: &tempfile::TempDir) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("CAREPORT") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir.path()).env("CAREPORT__DATA_DIR", dir.path().join("data")).env("CAREPORT__LOG__LEVEL", "warn");
    cmd
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn keys_generate_prints_a_usable_pair() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = careport(&dir).args(["keys", "generate"]).output().expect("run");
    assert!(out.status.success());
    let (stdout, _) = text(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let master = lines[0].strip_prefix("CAREPORT__SECRETS__MASTER_KEY=").expect("master line");
    let token = lines[1].strip_prefix("CAREPORT__SECRETS__TOKEN_KEY=").expect("token line");
    assert_eq!(master.len(), 44, "32 bytes in base64");
    assert!(token.starts_with("ed25519-private/") && token.len() == 16 + 64, "{token}");
    let again = careport(&dir).args(["keys", "generate"]).output().expect("run");
    assert_ne!(again.stdout, out.stdout, "fresh keys each time");
}

#[test]
fn config_show_prints_effective_settings_with_secrets_redacted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = careport(&dir)
        .args(["config", "show"])
        .env("CAREPORT__HTTP__PORT", "9191")
        .env("CAREPORT__SECRETS__MASTER_KEY", "zzz-secret-master-zzz")
        .env("CAREPORT__DATABASE__URL", "postgres://app:pw-zzz-secret@db:5432/careport")
        .output()
        .expect("run");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("port = 9191"), "{stdout}");
    assert!(stdout.contains("postgres://app:***@db:5432/careport"), "{stdout}");
    assert!(!stdout.contains("zzz-secret") && !stdout.contains("pw-zzz"), "{stdout}");
}

#[test]
fn a_malformed_environment_value_stops_serve_naming_the_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = careport(&dir).arg("serve").env("CAREPORT__HTTP__PORT", "eighty").output().expect("run");
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("http.port") && stderr.contains("CAREPORT__HTTP__PORT"), "{stderr}");
}

#[test]
fn a_malformed_file_value_stops_serve_naming_the_key_and_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("site.toml");
    std::fs::write(&file, "[jobs]\nlease_secs = -5\n").expect("write");
    let out = careport(&dir).arg("serve").arg("--config").arg(&file).output().expect("run");
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("jobs.lease_secs") && stderr.contains("site.toml"), "{stderr}");
}

#[test]
fn serve_on_postgres_refuses_to_start_without_keys_and_names_the_missing_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = careport(&dir)
        .arg("serve")
        .env("CAREPORT__DATABASE__URL", "postgres://careport@127.0.0.1:1/careport")
        .output()
        .expect("run");
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("CAREPORT__SECRETS__MASTER_KEY"), "{stderr}");
    assert!(!dir.path().join("data/secrets").exists(), "no key generated for a cluster");
}

#[test]
fn an_unreachable_database_is_a_clear_error_after_the_configured_retries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = careport(&dir).args(["keys", "generate"]).output().expect("keys");
    let mut cmd = careport(&dir);
    for line in String::from_utf8_lossy(&keys.stdout).lines() {
        let (k, v) = line.split_once('=').expect("NAME=value");
        cmd.env(k, v);
    }
    let started = Instant::now();
    let out = cmd
        .arg("serve")
        .env("CAREPORT__DATABASE__URL", "postgres://careport:hunter2-zzz@127.0.0.1:1/careport")
        .env("CAREPORT__DATABASE__CONNECT_RETRIES", "2")
        .output()
        .expect("run");
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("Could not connect to PostgreSQL") && stderr.contains("after 3 attempt"), "{stderr}");
    assert!(!stderr.contains("hunter2-zzz"), "the password leaked: {stderr}");
    assert!(started.elapsed() >= Duration::from_millis(1400), "retried with backoff (0.5 s + 1 s)");
}

#[test]
fn user_create_reads_the_password_from_standard_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let create = |email: &str, password: &str| {
        let mut child = careport(&dir)
            .args(["user", "create", "--email", email, "--role", "admin", "--name", "Ada"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        writeln!(child.stdin.take().expect("stdin"), "{password}").expect("write");
        child.wait_with_output().expect("wait")
    };
    let out = create("admin@example.org", "a long enough passphrase");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(uuid_like(stdout.trim()), "prints the new id: {stdout}");
    assert!(!stderr.contains("a long enough passphrase"));

    let dup = create("ADMIN@example.org", "another long passphrase");
    assert!(!dup.status.success());
    assert!(text(&dup).1.contains("already exists"), "{}", text(&dup).1);

    let short = create("second@example.org", "short");
    assert!(!short.status.success());
    assert!(text(&short).1.contains("at least 12"), "{}", text(&short).1);
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[test]
fn serve_answers_readyz_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = careport(&dir)
        .arg("serve")
        .env("CAREPORT__HTTP__PORT", "0")
        .env("CAREPORT__LOG__LEVEL", "info")
        .env("CAREPORT__LOG__FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let port = loop {
        let line = lines.next().expect("serve exited before listening").expect("line");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if v["fields"]["message"] == "careport is listening" {
            break v["fields"]["port"].as_u64().expect("port");
        }
    };
    let body = http_get(port as u16, "/readyz");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(dir.path().join("data/careport.db").exists(), "embedded store in the data dir");
    assert!(dir.path().join("data/secrets/master.key").exists(), "keys generated on first start");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("data")).expect("data dir").permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "the data dir is private");
    }

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("SIGTERM")), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("\"stopped\"")), "{rest:?}");
}

/// A minimal HTTP/1.1 GET over a raw socket (the binary's tests need no HTTP client).
fn http_get(port: u16, path: &str) -> String {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

fn model_dir() -> std::path::PathBuf {
    let dir = std::env::var("CAREPORT_TEST_MODEL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models/all-MiniLM-L6-v2"));
    assert!(dir.join("model.safetensors").is_file(), "install the model: bash scripts/install-model.sh");
    dir
}

#[test]
fn embed_prints_one_vector_per_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = careport(&dir)
        .args(["embed", "--json", "The patient reports chest pain."])
        .env("CAREPORT__ML__LOCAL__MODEL_DIR", model_dir())
        .output()
        .expect("run");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let v: Vec<f32> = serde_json::from_str(stdout.trim()).expect("one JSON array");
    assert_eq!(v.len(), 384);
    let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "{norm}");

    let file = dir.path().join("lines.txt");
    std::fs::write(&file, "first line\nsecond line\nthird line\n").expect("write");
    let out = careport(&dir)
        .args(["embed", "--file"])
        .arg(&file)
        .env("CAREPORT__ML__LOCAL__MODEL_DIR", model_dir())
        .output()
        .expect("run");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l.split(' ').count() == 384), "plain output: 384 numbers a line");
}

#[test]
fn embed_without_the_model_fails_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = careport(&dir).args(["embed", "some text"]).output().expect("run");
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stdout.is_empty());
    assert!(stderr.contains("does not exist") && stderr.contains("install-model"), "{stderr}");
}

#[test]
fn an_external_embedding_provider_without_a_model_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = careport(&dir)
        .args(["embed", "text"])
        .env("CAREPORT__ML__EMBEDDING_PROVIDER", "openai")
        .env("CAREPORT__LLM__BASE_URL", "http://127.0.0.1:9/v1")
        .output()
        .expect("run");
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("llm.embedding_model"), "{stderr}");
}

#[test]
fn audit_verify_passes_an_intact_trail_and_names_an_edited_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    for email in ["first@example.org", "second@example.org"] {
        let mut child = careport(&dir)
            .args(["user", "create", "--email", email, "--role", "admin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        writeln!(child.stdin.take().expect("stdin"), "violet-otter-harbour-42").expect("write");
        assert!(child.wait_with_output().expect("wait").status.success());
    }
    let ok = careport(&dir).args(["audit", "verify"]).output().expect("run");
    let (stdout, stderr) = text(&ok);
    assert!(ok.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("intact: 2 event(s)"), "{stdout}");

    // Edit the first event behind careport's back (the CLI's audit events name the user created).
    let db = dir.path().join("data/careport.db");
    let edit = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE audit_events SET detail='role=patient' WHERE seq=1\"); c.commit()",
        ])
        .arg(&db)
        .output()
        .expect("python3");
    assert!(edit.status.success(), "{}", String::from_utf8_lossy(&edit.stderr));
    let broken = careport(&dir).args(["audit", "verify"]).output().expect("run");
    let (stdout, _) = text(&broken);
    assert_eq!(broken.status.code(), Some(1));
    assert!(stdout.contains("BROKEN at event #1") && stdout.contains("altered"), "{stdout}");
}

/// A minimal HTTP/1.1 POST of a JSON body.
fn http_post_json(port: u16, path: &str, body: &str) -> String {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn seed_demo_fills_an_empty_store_once_and_prints_working_passwords() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = careport(&dir)
        .args(["seed-demo", "--admins", "1", "--clinicians", "5", "--patients", "12", "--patient-accounts", "2"])
        .output()
        .expect("run");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("5 clinicians, 12 patients (2 with accounts)"), "{stdout}");
    let creds: Vec<(String, String, String)> = stdout
        .lines()
        .filter(|l| l.contains("@demo.careport.example"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_owned(), f[1].to_owned(), f[2].to_owned())
        })
        .collect();
    assert_eq!(creds.len(), 1 + 5 + 2, "{stdout}");
    let mut passwords: Vec<&str> = creds.iter().map(|c| c.2.as_str()).collect();
    assert!(passwords.iter().all(|p| p.len() == 24), "{passwords:?}");
    passwords.sort_unstable();
    passwords.dedup();
    assert_eq!(passwords.len(), creds.len(), "every password is different");
    assert!(!stderr.contains(&creds[0].2), "passwords go to standard output only");

    let again = careport(&dir).args(["seed-demo"]).output().expect("run");
    assert!(!again.status.success());
    assert!(text(&again).1.contains("already holds demo data"), "{}", text(&again).1);

    // A printed password logs in; the seeded patient sees their linked record.
    let mut child = careport(&dir)
        .arg("serve")
        .env("CAREPORT__HTTP__PORT", "0")
        .env("CAREPORT__LOG__LEVEL", "info")
        .env("CAREPORT__LOG__FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let port = loop {
        let line = lines.next().expect("serve exited before listening").expect("line");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if v["fields"]["message"] == "careport is listening" {
            break v["fields"]["port"].as_u64().expect("port") as u16;
        }
    };
    let patient = creds.iter().find(|c| c.0 == "patient").expect("a patient");
    let login = http_post_json(
        port,
        "/api/v1/auth/login",
        &serde_json::json!({"email": patient.1, "password": patient.2}).to_string(),
    );
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    assert!(login.starts_with("HTTP/1.1 200"), "{login}");
    let audit = careport(&dir).args(["audit", "verify"]).output().expect("run");
    assert!(audit.status.success(), "{}", text(&audit).0);
}

#[test]
fn ocr_reads_images_and_pdfs_and_names_the_files_it_cannot_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../actors/ml/tests/fixtures");
    let page = format!("{fixtures}/lab-results.png");
    let out = careport(&dir).args(["ocr", "--json", &page]).output().expect("run");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let line: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert!(line["text"].as_str().is_some_and(|t| t.contains("Haemoglobin 13.5 g/dL")), "{line}");
    assert_eq!(line["pages"][0]["source"], "ocr");
    assert!(line["mean_confidence"].as_f64().is_some_and(|c| c > 70.0), "{line}");

    // A mixed PDF page by page, in the files' order; a file that is not a document is named
    // (not read as garbage) and the readable ones are still printed; an unknown language is
    // refused before any work.
    let mixed = format!("{fixtures}/mixed.pdf");
    let out = careport(&dir).args(["ocr", "--json", &mixed, &page]).output().expect("run");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0]["file"].as_str().is_some_and(|f| f.ends_with("mixed.pdf")));
    assert_eq!(lines[0]["pages"][0]["source"], "text-layer");
    assert_eq!(lines[0]["pages"][1]["source"], "ocr");
    let junk = dir.path().join("letter.pdf");
    std::fs::write(&junk, b"%PDF-1.7\n").expect("pdf");
    let out = careport(&dir).args(["ocr", &page]).arg(&junk).output().expect("run");
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stdout.contains("Haemoglobin"), "{stdout}");
    assert!(stderr.contains("letter.pdf"), "{stderr}");
    let out = careport(&dir).args(["ocr", "--lang", "de", &page]).output().expect("run");
    assert!(!out.status.success());
    assert!(text(&out).1.contains("--lang must be one of"), "{}", text(&out).1);
}
