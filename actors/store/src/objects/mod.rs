//! Sealed file objects (the encrypted document vault's bytes): the `[storage]` settings and one
//! async [`Objects`] API over two backends, a local directory ([`local`], the embedded default)
//! and an S3 bucket ([`s3`]).
//!
//! Objects are named only by ids that careport makes ([`Uuid`]s), never by anything a user sent:
//! `objects/<first 2 hex>/<32 hex>` on disk, `{prefix}<32 hex>` in a bucket. An object is written
//! through an [`ObjectWriter`] and becomes visible under its id only on
//! [`ObjectWriter::commit`], so a crash, an abort or a dropped writer never leaves half an
//! object under a real name. What an interrupted write does leave behind (a temporary file, an
//! incomplete multipart upload) is swept: by [`Objects::sweep`] on disk, by the bucket's
//! lifecycle rule on S3. [`Objects::list`] gives the janitor every committed object with its
//! last-modified time to compare with the store's records.
//!
//! The bytes are already sealed when they get here; this module neither encrypts nor checks them.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use uuid::Uuid;

pub mod local;
pub mod s3;

pub use local::LocalObjects;
pub use s3::S3Objects;

/// The `[storage]` settings section: where the vault's objects live.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `"local"` (the default) or `"s3"`.
    pub backend: StorageBackend,
    /// The local directory; unset means `<data_dir>/vault`. Ignored for S3.
    pub dir: Option<PathBuf>,
    /// The bucket, required when `backend = "s3"`.
    pub s3: Option<S3Config>,
}

/// Which backend holds the objects.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// A directory on this machine (one node, or a shared file system).
    #[default]
    Local,
    /// An S3 (or S3-compatible) bucket, shared by every node.
    S3,
}

/// The `[storage.s3]` settings. Credentials left unset come from the usual `AWS_*` environment
/// (and the instance/container credential providers); the settings here win over it.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket's name.
    pub bucket: String,
    /// A custom endpoint (MinIO, Ceph, a test server): requests then use path-style addressing.
    pub endpoint: Option<String>,
    /// The region requests are signed for; `us-east-1` by default.
    #[serde(default = "default_region")]
    pub region: String,
    /// The access key id; unset: `AWS_ACCESS_KEY_ID` or the instance's role.
    pub access_key_id: Option<String>,
    /// The secret key; unset: `AWS_SECRET_ACCESS_KEY` or the instance's role.
    pub secret_access_key: Option<secrecy::SecretString>,
    /// Allow a plain-HTTP endpoint (tests, a bucket on the same host); false by default.
    #[serde(default)]
    pub allow_http: bool,
    /// Prepended to every object's key; empty or ending in `/`. `vault/` by default.
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

fn default_prefix() -> String {
    "vault/".to_owned()
}

// By hand: the settings are logged and shown by `config show`, and the secret must never be.
impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint.as_deref().map(crate::redact_url))
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "***"))
            .field("allow_http", &self.allow_http)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// The vault's object storage, on whichever backend is configured. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Objects {
    /// A local directory.
    Local(LocalObjects),
    /// An S3 bucket.
    S3(S3Objects),
}

/// The bytes of one object, from some offset on, in chunks.
pub type ObjectStream = futures_util::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>;

/// An object being written: nothing is visible under its id until [`ObjectWriter::commit`].
///
/// Dropping it without committing leaves what a crash would (a temporary file, an incomplete
/// multipart upload), which the sweep cleans later; call [`ObjectWriter::abort`] to clean now.
pub struct ObjectWriter {
    inner: WriterInner,
}

enum WriterInner {
    Local(local::LocalWriter),
    S3(s3::S3Writer),
}

impl Objects {
    /// Open the configured backend: create the local directory (private), or build the S3
    /// client and check that the bucket answers (the error names the bucket, never credentials).
    pub async fn open(cfg: &StorageConfig, data_dir: &Path) -> std::io::Result<Self> {
        match cfg.backend {
            StorageBackend::Local => {
                let dir = cfg.dir.clone().unwrap_or_else(|| data_dir.join("vault"));
                Ok(Self::Local(LocalObjects::open(dir).await?))
            }
            StorageBackend::S3 => {
                let s3 = cfg.s3.as_ref().ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "storage.backend = \"s3\" needs a [storage.s3] section with at least `bucket`",
                    )
                })?;
                Ok(Self::S3(S3Objects::open(s3).await?))
            }
        }
    }

    /// `"local"` or `"s3"` (for logs, health and metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Local(_) => "local",
            Self::S3(_) => "s3",
        }
    }

    /// Start writing the object `id`; it becomes visible only when committed. Committing an id
    /// that already exists replaces it (ids are fresh random ids, so that is never expected).
    pub async fn writer(&self, id: Uuid) -> std::io::Result<ObjectWriter> {
        let inner = match self {
            Self::Local(objects) => WriterInner::Local(objects.writer(id).await?),
            Self::S3(objects) => WriterInner::S3(objects.writer(id).await?),
        };
        Ok(ObjectWriter { inner })
    }

    /// Stream the object `id` from byte `offset` on (a resumed or ranged download).
    ///
    /// Errors: [`std::io::ErrorKind::NotFound`] if there is no such object,
    /// [`std::io::ErrorKind::InvalidInput`] if `offset` is past its end. An offset equal to the
    /// length gives an empty stream.
    pub async fn read_from(&self, id: Uuid, offset: u64) -> std::io::Result<ObjectStream> {
        match self {
            Self::Local(objects) => objects.read_from(id, offset).await,
            Self::S3(objects) => objects.read_from(id, offset).await,
        }
    }

    /// Remove the object `id`; false if there was none.
    pub async fn delete(&self, id: Uuid) -> std::io::Result<bool> {
        match self {
            Self::Local(objects) => objects.delete(id).await,
            Self::S3(objects) => objects.delete(id).await,
        }
    }

    /// Every committed object with its last-modified time, sorted by id (for the janitor's
    /// comparison with the store's records). Anything not named like an object is skipped.
    pub async fn list(&self) -> std::io::Result<Vec<(Uuid, SystemTime)>> {
        match self {
            Self::Local(objects) => objects.list().await,
            Self::S3(objects) => objects.list().await,
        }
    }

    /// Remove what interrupted writes left that is older than `age`; returns how many.
    ///
    /// Local: temporary files (a crash, a `kill -9`, a dropped writer). S3: always `Ok(0)`:
    /// abandoned multipart uploads are invisible to [`Self::list`] and are removed by the
    /// bucket's lifecycle rule (`AbortIncompleteMultipartUpload`, e.g. after 1 day), which the
    /// deployment guide asks for.
    pub async fn sweep(&self, age: Duration) -> std::io::Result<usize> {
        match self {
            Self::Local(objects) => objects.sweep(age).await,
            Self::S3(_) => Ok(0),
        }
    }
}

impl ObjectWriter {
    /// Append bytes (the vault writes ~1 MiB pieces). Memory stays bounded: on S3 this waits
    /// while two parts are already uploading.
    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match &mut self.inner {
            WriterInner::Local(w) => w.write(bytes).await,
            WriterInner::S3(w) => w.write(bytes).await,
        }
    }

    /// Append bytes the caller no longer needs: no copy on the local backend (they move to the
    /// write), none on S3 (they become part of a part as they are).
    pub async fn write_owned(&mut self, bytes: Vec<u8>) -> std::io::Result<()> {
        match &mut self.inner {
            WriterInner::Local(w) => w.write_owned(bytes).await,
            WriterInner::S3(w) => w.write_owned(bytes).await,
        }
    }

    /// Make the object durable and visible under the id given to [`Objects::writer`].
    pub async fn commit(self) -> std::io::Result<()> {
        match self.inner {
            WriterInner::Local(w) => w.commit().await,
            WriterInner::S3(w) => w.commit().await,
        }
    }

    /// Give up: remove what was written (best effort; the sweep or lifecycle rule catches the
    /// rest).
    pub async fn abort(self) -> std::io::Result<()> {
        match self.inner {
            WriterInner::Local(w) => w.abort().await,
            WriterInner::S3(w) => w.abort().await,
        }
    }
}

/// `id` as an object name: 32 lowercase hex digits.
fn object_name(id: Uuid) -> String {
    id.simple().to_string()
}

/// The id an object name stands for, only if the name is exactly what [`object_name`] makes
/// (so a stray `README` or an upper-case copy is never taken for an object).
fn parse_object_name(name: &str) -> Option<Uuid> {
    let id = Uuid::try_parse(name).ok()?;
    (object_name(id) == name).then_some(id)
}

#[cfg(test)]
mod tests {
    use futures_util::TryStreamExt;
    use object_store::ObjectStoreExt as _;
    use object_store::path::Path as KeyPath;

    use super::*;

    /// A little over 3 MiB, not a multiple of any chunk size, with no repeating pattern at
    /// chunk boundaries (a misplaced offset shows).
    fn sample() -> Vec<u8> {
        (0..3 * 1024 * 1024 + 12_345u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
    }

    async fn read_all(objects: &Objects, id: Uuid, offset: u64) -> std::io::Result<Vec<u8>> {
        let chunks: Vec<bytes::Bytes> = objects.read_from(id, offset).await?.try_collect().await?;
        Ok(chunks.concat())
    }

    async fn listed(objects: &Objects) -> Vec<Uuid> {
        objects.list().await.expect("list").into_iter().map(|(id, _)| id).collect()
    }

    /// What every backend must do; `objects` must start empty.
    async fn exercise(objects: &Objects) {
        assert!(objects.list().await.expect("list").is_empty(), "starts empty");
        let data = sample();
        let id = Uuid::new_v4();

        let mut writer = objects.writer(id).await.expect("writer");
        for piece in data.chunks(1024 * 1024) {
            writer.write(piece).await.expect("write");
        }
        assert!(listed(objects).await.is_empty(), "nothing listed before commit");
        let missing = read_all(objects, id, 0).await.expect_err("nothing readable before commit");
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound, "{missing}");
        writer.commit().await.expect("commit");

        let list = objects.list().await.expect("list");
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0].0, id);
        let age = SystemTime::now().duration_since(list[0].1).unwrap_or(Duration::ZERO);
        assert!(age < Duration::from_secs(300), "last modified is recent: {age:?} ago");

        assert!(read_all(objects, id, 0).await.expect("read") == data, "read_from(0) gives the bytes");
        let offset = 1024 * 1024 + 7;
        assert!(
            read_all(objects, id, offset).await.expect("read tail") == data[offset as usize..],
            "read_from(offset) gives the tail"
        );
        let len = data.len() as u64;
        assert!(read_all(objects, id, len).await.expect("read at end").is_empty(), "offset = length: empty");
        let past = read_all(objects, id, len + 1).await.expect_err("offset past the end");
        assert_eq!(past.kind(), std::io::ErrorKind::InvalidInput, "{past}");

        // An empty object is an object too.
        let empty = Uuid::new_v4();
        objects.writer(empty).await.expect("writer").commit().await.expect("commit empty");
        assert!(read_all(objects, empty, 0).await.expect("read empty").is_empty());
        assert!(objects.delete(empty).await.expect("delete empty"));

        assert!(objects.delete(id).await.expect("delete"), "deleted");
        assert!(!objects.delete(id).await.expect("delete again"), "second delete finds nothing");
        let gone = read_all(objects, id, 0).await.expect_err("read deleted");
        assert_eq!(gone.kind(), std::io::ErrorKind::NotFound, "{gone}");
        let never = read_all(objects, Uuid::new_v4(), 0).await.expect_err("read missing");
        assert_eq!(never.kind(), std::io::ErrorKind::NotFound, "{never}");

        let aborted = Uuid::new_v4();
        let mut writer = objects.writer(aborted).await.expect("writer");
        writer.write(&data[..1024]).await.expect("write");
        writer.abort().await.expect("abort");
        assert!(listed(objects).await.is_empty(), "an aborted write leaves nothing listed");
        let aborted = read_all(objects, aborted, 0).await.expect_err("read aborted");
        assert_eq!(aborted.kind(), std::io::ErrorKind::NotFound, "{aborted}");
    }

    #[tokio::test]
    async fn local_backend() {
        let dir = tempfile::tempdir().expect("tempdir");
        let objects = Objects::open(&StorageConfig::default(), dir.path()).await.expect("open");
        assert_eq!(objects.kind(), "local");
        let root = dir.path().join("vault");
        exercise(&objects).await;
        let tmp_count = || std::fs::read_dir(root.join("tmp")).expect("tmp").count();
        assert_eq!(tmp_count(), 0, "commits and aborts leave no temporaries");

        // Names: only ids, sharded by their first two hex digits; files private.
        let id = Uuid::new_v4();
        let mut writer = objects.writer(id).await.expect("writer");
        writer.write(b"sealed").await.expect("write");
        writer.commit().await.expect("commit");
        let name = id.simple().to_string();
        let path = root.join("objects").join(&name[..2]).join(&name);
        assert_eq!(std::fs::read(&path).expect("object file"), b"sealed");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().expect("shard")), 0o700);
            assert_eq!(mode(&root), 0o700);
        }
        // Strays are not objects.
        std::fs::write(root.join("objects").join(&name[..2]).join("README"), b"x").expect("stray");
        std::fs::write(root.join("objects").join(&name[..2]).join(name.to_uppercase()), b"x").expect("stray");
        assert_eq!(listed(&objects).await, vec![id]);
        assert!(objects.delete(id).await.expect("delete"));

        // A writer that never commits (the process died): only a temporary, swept when old.
        let mut crashed = objects.writer(Uuid::new_v4()).await.expect("writer");
        crashed.write(b"half").await.expect("write");
        std::mem::forget(crashed);
        assert!(listed(&objects).await.is_empty(), "a dead write is not an object");
        assert_eq!(tmp_count(), 1);
        assert_eq!(objects.sweep(Duration::from_secs(3600)).await.expect("sweep"), 0, "young temporaries stay");
        assert_eq!(tmp_count(), 1);
        assert_eq!(objects.sweep(Duration::ZERO).await.expect("sweep"), 1);
        assert_eq!(tmp_count(), 0);
    }

    #[tokio::test]
    async fn local_backend_uses_the_configured_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = StorageConfig { dir: Some(dir.path().join("elsewhere")), ..StorageConfig::default() };
        let objects = Objects::open(&cfg, &dir.path().join("data")).await.expect("open");
        assert!(dir.path().join("elsewhere/objects").is_dir());
        assert!(!dir.path().join("data").exists());
        assert_eq!(objects.sweep(Duration::ZERO).await.expect("sweep"), 0);
    }

    /// The S3 settings for the test server, if `CAREPORT_TEST_S3_ENDPOINT` names one.
    fn test_s3(bucket: Option<&str>, prefix: &str) -> Option<S3Config> {
        let endpoint = std::env::var("CAREPORT_TEST_S3_ENDPOINT").ok()?;
        let bucket = match bucket {
            Some(bucket) => bucket.to_owned(),
            None => std::env::var("CAREPORT_TEST_S3_BUCKET").unwrap_or_else(|_| "careport-test".to_owned()),
        };
        Some(S3Config {
            bucket,
            endpoint: Some(endpoint),
            region: default_region(),
            access_key_id: Some("testing".to_owned()),
            secret_access_key: Some("testing-secret".into()),
            allow_http: true,
            prefix: prefix.to_owned(),
        })
    }

    /// Create the test bucket if missing: moto (like MinIO in its default mode) accepts an
    /// unsigned `PUT /{bucket}`, and answers 200 or 409 when it exists.
    async fn create_bucket(s3: &S3Config) {
        let endpoint = s3.endpoint.as_deref().expect("endpoint");
        let url = format!("{}/{}", endpoint.trim_end_matches('/'), s3.bucket);
        let response = reqwest::Client::new().put(&url).send().await.expect("create bucket");
        let status = response.status();
        assert!(status.is_success() || status == reqwest::StatusCode::CONFLICT, "PUT {url}: {status}");
    }

    #[tokio::test]
    async fn s3_backend() {
        // A fresh prefix per run: the bucket may hold earlier runs' (or other tests') keys.
        let prefix = format!("test-{}/vault/", Uuid::new_v4().simple());
        let Some(s3) = test_s3(None, &prefix) else {
            eprintln!(
                "s3_backend skipped: set CAREPORT_TEST_S3_ENDPOINT (e.g. http://127.0.0.1:9000, bash .ci/start-s3.sh)"
            );
            return;
        };
        create_bucket(&s3).await;
        let cfg = StorageConfig { backend: StorageBackend::S3, dir: None, s3: Some(s3) };
        let objects = Objects::open(&cfg, Path::new("/nonexistent")).await.expect("open");
        assert_eq!(objects.kind(), "s3");
        exercise(&objects).await;
        assert_eq!(objects.sweep(Duration::ZERO).await.expect("sweep"), 0);

        // Keys: exactly `{prefix}<32 hex>`; other keys under the prefix are not objects.
        let Objects::S3(inner) = &objects else { panic!("an S3 backend") };
        let id = Uuid::new_v4();
        objects.writer(id).await.expect("writer").commit().await.expect("commit");
        let key = format!("{prefix}{}", id.simple());
        inner.store.head(&KeyPath::from(key.as_str())).await.expect("the key is {prefix}<hex>");
        for stray in ["README", "deeper/0123456789abcdef0123456789abcdef"] {
            let stray = KeyPath::from(format!("{prefix}{stray}"));
            inner.store.put(&stray, bytes::Bytes::from_static(b"x").into()).await.expect("stray");
        }
        assert_eq!(listed(&objects).await, vec![id]);
    }

    #[tokio::test]
    async fn s3_open_names_a_missing_bucket_and_never_the_secret() {
        let bucket = format!("careport-missing-{}", Uuid::new_v4().simple());
        let Some(s3) = test_s3(Some(&bucket), "vault/") else {
            eprintln!("s3_open_names_a_missing_bucket_and_never_the_secret skipped: set CAREPORT_TEST_S3_ENDPOINT");
            return;
        };
        let cfg = StorageConfig { backend: StorageBackend::S3, dir: None, s3: Some(s3) };
        let e = Objects::open(&cfg, Path::new("/nonexistent")).await.expect_err("a missing bucket");
        let message = e.to_string();
        assert!(message.contains(&bucket), "{message}");
        assert!(!message.contains("testing-secret"), "{message}");
    }

    #[tokio::test]
    async fn s3_settings_check_the_prefix_and_need_a_section() {
        let cfg = StorageConfig { backend: StorageBackend::S3, dir: None, s3: None };
        let e = Objects::open(&cfg, Path::new("/nonexistent")).await.expect_err("no [storage.s3]");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
        // Refused before any request, so no server is needed.
        for prefix in ["vault", "/", "a//", "/vault/", "a/../"] {
            let s3 = S3Config {
                bucket: "b".to_owned(),
                endpoint: Some("http://127.0.0.1:9".to_owned()),
                region: default_region(),
                access_key_id: Some("k".to_owned()),
                secret_access_key: Some("s".into()),
                allow_http: true,
                prefix: prefix.to_owned(),
            };
            let cfg = StorageConfig { backend: StorageBackend::S3, dir: None, s3: Some(s3) };
            let e = Objects::open(&cfg, Path::new("/nonexistent")).await.expect_err(prefix);
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{prefix:?}: {e}");
        }
    }

    #[test]
    fn settings_parse_with_defaults_and_debug_hides_the_secret() {
        let cfg: StorageConfig = serde_json::from_value(serde_json::json!({})).expect("empty section");
        assert_eq!(cfg.backend, StorageBackend::Local);
        assert!(cfg.dir.is_none() && cfg.s3.is_none());

        let cfg: StorageConfig = serde_json::from_value(serde_json::json!({
            "backend": "s3",
            "s3": { "bucket": "records", "secret_access_key": "hunter2-secret" },
        }))
        .expect("s3 section");
        assert_eq!(cfg.backend, StorageBackend::S3);
        let s3 = cfg.s3.as_ref().expect("s3");
        assert_eq!((s3.bucket.as_str(), s3.region.as_str(), s3.prefix.as_str()), ("records", "us-east-1", "vault/"));
        assert!(!s3.allow_http && s3.endpoint.is_none() && s3.access_key_id.is_none());
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("records") && shown.contains("***"), "{shown}");

        for bad in [
            serde_json::json!({ "backend": "gcs" }),
            serde_json::json!({ "bucket": "records" }),
            serde_json::json!({ "backend": "s3", "s3": { "bucket": "b", "secret": "x" } }),
        ] {
            assert!(serde_json::from_value::<StorageConfig>(bad.clone()).is_err(), "{bad}");
        }
    }
}
