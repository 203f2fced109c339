//! The S3 backend: objects as keys `{prefix}<32 hex id>` in one bucket, through `object_store`'s
//! S3 client (any S3-compatible server: AWS, MinIO, Ceph; moto in tests).
//!
//! A write is a multipart upload in 8 MiB parts with at most two parts in flight (bounded
//! memory however large the document); the object appears only when the upload is completed,
//! so an interrupted write is never visible. An abandoned upload's parts are not listed and are
//! removed by the bucket's lifecycle rule (`AbortIncompleteMultipartUpload`), not by
//! [`super::Objects::sweep`].

use std::time::{Duration, SystemTime};

use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path as KeyPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::{ObjectStream, S3Config, object_name, parse_object_name};

/// The size of one uploaded part. S3 wants at least 5 MiB for all parts but the last.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts uploading at once per writer: with the part being filled, about 24 MiB at most.
const PARTS_IN_FLIGHT: usize = 2;

/// How long [`S3Objects::open`] waits for the bucket to answer: the client retries for minutes,
/// and a wrong endpoint should stop startup with a clear error long before that.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// An S3 bucket (cheap to clone: the client is shared).
#[derive(Clone)]
pub struct S3Objects {
    /// Visible to the module's tests, which put stray keys next to the objects.
    pub(super) store: AmazonS3,
    bucket: String,
    /// Empty or ending in `/`.
    prefix: String,
}

// By hand: only what identifies the bucket, nothing of the client's credentials.
impl std::fmt::Debug for S3Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Objects").field("bucket", &self.bucket).field("prefix", &self.prefix).finish()
    }
}

/// An object being written as a multipart upload.
pub(super) struct S3Writer {
    upload: WriteMultipart,
}

/// An `object_store` error as an I/O error of the matching kind (the vault maps NotFound to 404).
fn io_error(e: object_store::Error) -> std::io::Error {
    use std::io::ErrorKind;
    let kind = match &e {
        object_store::Error::NotFound { .. } => ErrorKind::NotFound,
        object_store::Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
            ErrorKind::PermissionDenied
        }
        object_store::Error::InvalidPath { .. } => ErrorKind::InvalidInput,
        _ => ErrorKind::Other,
    };
    std::io::Error::new(kind, e)
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, message)
}

impl S3Objects {
    /// Build the client and check that the bucket answers a one-key listing.
    pub(super) async fn open(cfg: &S3Config) -> std::io::Result<Self> {
        let bucket = cfg.bucket.clone();
        // `list` treats its prefix as a folder, so a prefix must be one (or nothing) for
        // `list` to see exactly the keys `key_of` makes.
        if !cfg.prefix.is_empty() {
            let folder = cfg.prefix.strip_suffix('/').unwrap_or_default();
            if folder.is_empty() || !KeyPath::parse(folder).is_ok_and(|p| p.as_ref() == folder) {
                return Err(invalid(format!(
                    "storage.s3.prefix {:?} must be empty or `/`-separated names ending in `/`",
                    cfg.prefix
                )));
            }
        }

        // Unset settings come from the AWS_* environment; set ones win over it.
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            .with_allow_http(cfg.allow_http);
        if let Some(endpoint) = &cfg.endpoint {
            // Custom servers rarely have a DNS name per bucket: address `{endpoint}/{bucket}`.
            builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
        }
        if let Some(key_id) = &cfg.access_key_id {
            builder = builder.with_access_key_id(key_id);
        }
        if let Some(secret) = &cfg.secret_access_key {
            builder = builder.with_secret_access_key(secret.expose_secret());
        }
        let where_ = match &cfg.endpoint {
            Some(endpoint) => format!("S3 bucket {bucket:?} at {}", crate::redact_url(endpoint)),
            None => format!("S3 bucket {bucket:?} in {}", cfg.region),
        };
        // The builder's errors name settings (a missing key, a bad URL), never their values.
        let store = builder.build().map_err(|e| invalid(format!("{where_}: {e}")))?;

        let probe = store.list_paginated(
            (!cfg.prefix.is_empty()).then_some(cfg.prefix.as_str()),
            PaginatedListOptions { max_keys: Some(1), ..Default::default() },
        );
        match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                let e = io_error(e);
                return Err(std::io::Error::new(e.kind(), format!("{where_} is not usable: {e}")));
            }
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("{where_} did not answer within {} s", PROBE_TIMEOUT.as_secs()),
                ));
            }
        }
        Ok(Self { store, bucket, prefix: cfg.prefix.clone() })
    }

    /// The bucket's name (for logs and health).
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn key_of(&self, id: Uuid) -> KeyPath {
        // The prefix was checked to be `/`-separated valid names; the id is hex.
        KeyPath::from(format!("{}{}", self.prefix, object_name(id)))
    }

    pub(super) async fn writer(&self, id: Uuid) -> std::io::Result<S3Writer> {
        let upload = self.store.put_multipart(&self.key_of(id)).await.map_err(io_error)?;
        Ok(S3Writer { upload: WriteMultipart::new_with_chunk_size(upload, PART_SIZE) })
    }

    pub(super) async fn read_from(&self, id: Uuid, offset: u64) -> std::io::Result<ObjectStream> {
        let key = self.key_of(id);
        let options = GetOptions { range: (offset > 0).then_some(GetRange::Offset(offset)), ..Default::default() };
        match self.store.get_opts(&key, options).await {
            Ok(got) => Ok(got.into_stream().map_err(io_error).boxed()),
            Err(e @ object_store::Error::NotFound { .. }) => Err(io_error(e)),
            Err(e) => {
                // S3 refuses a range starting at the end (416); the local backend gives an
                // empty stream there. Only on that failure path is the size worth a request.
                let len = match self.store.head(&key).await {
                    Ok(meta) => meta.size,
                    Err(_) => return Err(io_error(e)),
                };
                if offset == len {
                    Ok(futures_util::stream::empty().boxed())
                } else if offset > len {
                    Err(invalid(format!("offset {offset} is past the end of object {id} ({len} bytes)")))
                } else {
                    Err(io_error(e))
                }
            }
        }
    }

    pub(super) async fn delete(&self, id: Uuid) -> std::io::Result<bool> {
        // S3 deletes a missing key without complaint; a head first tells the janitor the truth.
        let key = self.key_of(id);
        match self.store.head(&key).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(io_error(e)),
        }
        self.store.delete(&key).await.map_err(io_error)?;
        Ok(true)
    }

    pub(super) async fn list(&self) -> std::io::Result<Vec<(Uuid, SystemTime)>> {
        let prefix = self.prefix.strip_suffix('/').map(KeyPath::from);
        let mut listing = self.store.list(prefix.as_ref());
        let mut found = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(io_error)?;
            // Keys under deeper folders, or not named like an object, are not ours.
            let Some(name) = meta.location.as_ref().strip_prefix(self.prefix.as_str()) else { continue };
            if let Some(id) = parse_object_name(name) {
                found.push((id, SystemTime::from(meta.last_modified)));
            }
        }
        found.sort_by_key(|(id, _)| *id);
        Ok(found)
    }
}

impl S3Writer {
    pub(super) async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        // Back pressure: wait while two parts are uploading, so a fast client cannot fill memory.
        self.upload.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(io_error)?;
        self.upload.write(bytes);
        Ok(())
    }

    pub(super) async fn write_owned(&mut self, bytes: Vec<u8>) -> std::io::Result<()> {
        self.upload.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(io_error)?;
        self.upload.put(bytes::Bytes::from(bytes));
        Ok(())
    }

    pub(super) async fn commit(self) -> std::io::Result<()> {
        // Uploads the last part, waits for all of them, then completes: only now is it visible.
        self.upload.finish().await.map_err(io_error)?;
        Ok(())
    }

    pub(super) async fn abort(self) -> std::io::Result<()> {
        self.upload.abort().await.map_err(io_error)
    }
}
