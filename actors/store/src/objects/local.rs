//! The local-directory backend: objects as files under one private directory.
//!
//! A write goes to `tmp/<random>` and becomes `objects/<id[0..2]>/<id>` only when committed: the
//! file is synced, renamed into place and its directory synced, so a crash leaves either nothing
//! or a temporary file, never half an object under a real name. [`super::Objects::sweep`]
//! removes temporary files older than a given age (the janitor's job). Files are 0600, directories 0700.
//!
//! File system calls run on tokio's blocking pool (`tokio::fs` or `spawn_blocking`), never on the
//! async workers.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use uuid::Uuid;

use super::{ObjectStream, object_name, parse_object_name};

/// Reads stream in pieces of this size: large enough for few blocking-pool trips, small enough
/// that many concurrent downloads stay cheap.
const READ_CHUNK: usize = 1024 * 1024;

/// The local object directory.
#[derive(Debug, Clone)]
pub struct LocalObjects {
    root: PathBuf,
}

/// An object being written to a temporary file.
pub(super) struct LocalWriter {
    /// Written on the blocking pool; shared with a background sync.
    file: std::sync::Arc<std::fs::File>,
    tmp: PathBuf,
    dest_dir: PathBuf,
    dest: PathBuf,
    /// Bytes written since the last background sync started.
    unsynced: u64,
    /// The background sync in flight, if any.
    syncing: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Run blocking file system work off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(std::io::Error::other)?
}

impl LocalObjects {
    /// Open (and create, private) `root` with its `tmp` and `objects` folders.
    pub(super) async fn open(root: PathBuf) -> std::io::Result<Self> {
        let dirs = root.clone();
        blocking(move || {
            crate::create_private_dir(&dirs.join("tmp"))?;
            crate::create_private_dir(&dirs.join("objects"))
        })
        .await?;
        Ok(Self { root })
    }

    /// Where this backend keeps its files.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir_of(&self, name: &str) -> PathBuf {
        self.root.join("objects").join(&name[..2])
    }

    fn path_of(&self, id: Uuid) -> PathBuf {
        let name = object_name(id);
        self.dir_of(&name).join(name)
    }

    pub(super) async fn writer(&self, id: Uuid) -> std::io::Result<LocalWriter> {
        // A random temporary name, not the id: two writers of one id never share a file.
        let tmp = self.root.join("tmp").join(object_name(Uuid::new_v4()));
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        options.mode(0o600);
        let file = std::sync::Arc::new(options.open(&tmp).await?.into_std().await);
        let name = object_name(id);
        let dest_dir = self.dir_of(&name);
        Ok(LocalWriter { file, tmp, dest: dest_dir.join(name), dest_dir, unsynced: 0, syncing: None })
    }

    pub(super) async fn read_from(&self, id: Uuid, offset: u64) -> std::io::Result<ObjectStream> {
        let path = self.path_of(id);
        let file = blocking(move || {
            use std::io::Seek;
            let mut file = std::fs::File::open(path)?;
            let len = file.metadata()?.len();
            if offset > len {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("offset {offset} is past the end of object {id} ({len} bytes)"),
                ));
            }
            file.seek(std::io::SeekFrom::Start(offset))?;
            Ok(file)
        })
        .await?;
        // Plain reads on the blocking pool, straight into each chunk's own buffer: tokio's File
        // would read into its buffer and copy from there.
        let chunks = futures_util::stream::try_unfold(file, |file| async move {
            let (file, buf) = blocking(move || {
                use std::io::Read;
                let mut buf = Vec::with_capacity(READ_CHUNK);
                (&file).take(READ_CHUNK as u64).read_to_end(&mut buf)?;
                Ok((file, buf))
            })
            .await?;
            if buf.is_empty() {
                return Ok(None);
            }
            Ok(Some((bytes::Bytes::from(buf), file)))
        });
        Ok(chunks.boxed())
    }

    pub(super) async fn delete(&self, id: Uuid) -> std::io::Result<bool> {
        // No directory sync: a deletion a crash undoes is found again by the janitor's next pass.
        match tokio::fs::remove_file(self.path_of(id)).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn list(&self) -> std::io::Result<Vec<(Uuid, SystemTime)>> {
        let objects = self.root.join("objects");
        blocking(move || {
            let mut found = Vec::new();
            for shard in std::fs::read_dir(objects)? {
                let shard = shard?;
                if !shard.file_type()?.is_dir() {
                    continue;
                }
                let shard_name = shard.file_name();
                for entry in std::fs::read_dir(shard.path())? {
                    let entry = entry?;
                    let Some(id) = entry.file_name().to_str().and_then(parse_object_name) else { continue };
                    // Only where `path_of` would look: a file in the wrong shard is not an object.
                    if shard_name.to_str() != Some(&object_name(id)[..2]) {
                        continue;
                    }
                    let meta = match entry.metadata() {
                        Ok(meta) => meta,
                        // Deleted since read_dir saw it.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    };
                    if meta.is_file() {
                        found.push((id, meta.modified()?));
                    }
                }
            }
            found.sort_by_key(|(id, _)| *id);
            Ok(found)
        })
        .await
    }

    pub(super) async fn sweep(&self, age: Duration) -> std::io::Result<usize> {
        let tmp = self.root.join("tmp");
        blocking(move || {
            let mut removed = 0;
            let cutoff = SystemTime::now().checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH);
            for entry in std::fs::read_dir(tmp)? {
                let entry = entry?;
                let modified = match entry.metadata().and_then(|m| m.modified()) {
                    Ok(modified) => modified,
                    // Committed or aborted since read_dir saw it.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                if modified <= cutoff {
                    match std::fs::remove_file(entry.path()) {
                        Ok(()) => removed += 1,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok(removed)
        })
        .await
    }
}

/// Written bytes after which a writer starts syncing them in the background, so that the
/// commit's final sync finds little left to write (the disk works while data still arrives).
const SYNC_EVERY: u64 = 32 << 20;

impl LocalWriter {
    pub(super) async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write_owned(bytes.to_vec()).await
    }

    /// Append `bytes` without copying them again: they move to the blocking pool's write.
    pub(super) async fn write_owned(&mut self, bytes: Vec<u8>) -> std::io::Result<()> {
        let n = bytes.len() as u64;
        let file = self.file.clone();
        blocking(move || {
            use std::io::Write;
            (&*file).write_all(&bytes)
        })
        .await?;
        self.unsynced += n;
        if self.unsynced >= SYNC_EVERY {
            self.unsynced = 0;
            // At most one sync in flight: wait for the previous one first.
            if let Some(previous) = self.syncing.take() {
                previous.await.map_err(std::io::Error::other)??;
            }
            let file = self.file.clone();
            self.syncing = Some(tokio::task::spawn_blocking(move || file.sync_data()));
        }
        Ok(())
    }

    pub(super) async fn commit(mut self) -> std::io::Result<()> {
        if let Some(previous) = self.syncing.take() {
            previous.await.map_err(std::io::Error::other)??;
        }
        let file = self.file.clone();
        blocking(move || file.sync_all()).await?;
        drop(self.file);
        let Self { tmp, dest_dir, dest, .. } = self;
        blocking(move || {
            let new_shard = !dest_dir.exists();
            crate::create_private_dir(&dest_dir)?;
            if new_shard {
                // A new shard directory's own entry must survive a crash too.
                if let Some(objects) = dest_dir.parent() {
                    std::fs::File::open(objects)?.sync_all()?;
                }
            }
            std::fs::rename(&tmp, &dest)?;
            // The rename itself must survive a crash: sync the directory that holds it.
            std::fs::File::open(&dest_dir)?.sync_all()
        })
        .await
    }

    pub(super) async fn abort(self) -> std::io::Result<()> {
        // Unlinking an open file is fine on Unix; a write still in flight lands in no name.
        drop(self.file);
        tokio::fs::remove_file(&self.tmp).await
    }
}
