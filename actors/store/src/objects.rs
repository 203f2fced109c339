//! Sealed file objects on the local disk (the embedded default; S3 comes with issue #5's rest).
//!
//! Objects are named by random ids that careport makes, never by anything a user sent. A write
//! goes to `tmp/<random>` and becomes `objects/<id[0..2]>/<id>` only when committed: it is
//! synced, renamed into place and its directory synced, so a crash leaves either nothing or a
//! temporary file, never half an object under a real name. [`LocalObjects::sweep`] removes
//! temporary files older than a given age (the janitor's job).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use uuid::Uuid;

/// The local object directory.
#[derive(Debug, Clone)]
pub struct LocalObjects {
    root: PathBuf,
}

/// An object being written; nothing is visible until [`PendingObject::commit`].
pub struct PendingObject {
    file: std::fs::File,
    tmp: PathBuf,
    root: PathBuf,
}

impl LocalObjects {
    /// Open (and create, private) `root` with its `tmp` and `objects` folders.
    pub fn open(root: &Path) -> std::io::Result<Self> {
        crate::create_private_dir(&root.join("tmp"))?;
        crate::create_private_dir(&root.join("objects"))?;
        Ok(Self { root: root.to_owned() })
    }

    fn path_of(&self, id: Uuid) -> PathBuf {
        let name = id.simple().to_string();
        self.root.join("objects").join(&name[..2]).join(name)
    }

    /// Start writing a new object.
    pub fn create(&self) -> std::io::Result<PendingObject> {
        let tmp = self.root.join("tmp").join(Uuid::new_v4().simple().to_string());
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(&tmp)?;
        Ok(PendingObject { file, tmp, root: self.root.clone() })
    }

    /// Read an object whole (small objects and tests; downloads stream with [`Self::open_read`]).
    pub fn read(&self, id: Uuid) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.path_of(id))
    }

    /// Open an object for streaming reads.
    pub fn open_read(&self, id: Uuid) -> std::io::Result<std::fs::File> {
        std::fs::File::open(self.path_of(id))
    }

    /// Remove an object; false if there was none.
    pub fn delete(&self, id: Uuid) -> std::io::Result<bool> {
        match std::fs::remove_file(self.path_of(id)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every committed object's id (for the janitor's comparison with the store's records).
    pub fn list(&self) -> std::io::Result<Vec<Uuid>> {
        let mut ids = Vec::new();
        for shard in std::fs::read_dir(self.root.join("objects"))? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(shard.path())? {
                if let Some(id) = entry?.file_name().to_str().and_then(|n| Uuid::try_parse(n).ok()) {
                    ids.push(id);
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Remove temporary files older than `age`: writes a crash (or a `kill -9`) interrupted.
    pub fn sweep(&self, age: Duration) -> std::io::Result<usize> {
        let mut removed = 0;
        let cutoff = SystemTime::now() - age;
        for entry in std::fs::read_dir(self.root.join("tmp"))? {
            let entry = entry?;
            if entry.metadata()?.modified()? <= cutoff {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

impl PendingObject {
    /// Append bytes.
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)
    }

    /// Make the object durable and visible under a new random id.
    pub fn commit(self) -> std::io::Result<Uuid> {
        self.file.sync_all()?;
        let id = Uuid::new_v4();
        let name = id.simple().to_string();
        let dir = self.root.join("objects").join(&name[..2]);
        crate::create_private_dir(&dir)?;
        std::fs::rename(&self.tmp, dir.join(&name))?;
        // The rename itself must survive a crash: sync the directory that holds it.
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(id)
    }

    /// Give up: remove the temporary file.
    pub fn abort(self) -> std::io::Result<()> {
        drop(self.file);
        std::fs::remove_file(&self.tmp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_is_visible_only_once_committed_and_crashed_writes_are_swept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let objects = LocalObjects::open(dir.path()).expect("open");
        let mut w = objects.create().expect("create");
        w.write(b"sealed bytes").expect("write");
        assert!(objects.list().expect("list").is_empty(), "nothing visible before commit");
        let id = w.commit().expect("commit");
        assert_eq!(objects.list().expect("list"), vec![id]);
        assert_eq!(objects.read(id).expect("read"), b"sealed bytes");

        // A write that never commits (the process died): only a temporary file, swept later.
        let mut crashed = objects.create().expect("create");
        crashed.write(b"half").expect("write");
        std::mem::forget(crashed);
        assert_eq!(objects.list().expect("list"), vec![id]);
        assert_eq!(objects.sweep(Duration::from_secs(3600)).expect("sweep"), 0, "young temporaries stay");
        assert_eq!(objects.sweep(Duration::ZERO).expect("sweep"), 1);

        let aborted = objects.create().expect("create");
        aborted.abort().expect("abort");
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).expect("tmp").count(), 0);
        assert!(objects.delete(id).expect("delete"));
        assert!(!objects.delete(id).expect("delete again"));
        assert!(objects.read(id).is_err());
    }
}
