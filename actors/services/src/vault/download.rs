//! Reading a sealed file: checking the frames of a range before anything is sent
//! ([`Download::verify`]), then opening and streaming them ([`Download::stream`]) on a task of
//! their own, a batch ahead of the socket.

use bytes::Bytes;
use careport_domain::Error;
use careport_store::objects::ObjectStream;
use careport_store::vault::{self as stored, FileRow, RecordRow};
use careport_vault::frames::{Checker, frame_offset};
use careport_vault::{Key, Opener, VaultError};
use futures_util::{Stream, StreamExt};

use super::{BATCH, Vault, blocking, integrity, storage_err, store_err};

/// A file opened for reading: its row and data key. A clone holds its own copy of the key
/// (zeroed on drop), for work that both streams the file and seals beside it (OCR).
#[derive(Clone)]
pub struct Download {
    pub(super) vault: Vault,
    pub file: FileRow,
    pub(super) key: Key,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download").field("file", &self.file.id).finish_non_exhaustive()
    }
}

impl Download {
    pub fn size(&self) -> u64 {
        self.file.size.max(0) as u64
    }

    fn frame_size(&self) -> usize {
        (self.file.frame_size.max(1)) as usize
    }

    /// The record's OCR text, opened with this file's data key (`None` before OCR ran).
    pub async fn ocr_text(&self, record: &RecordRow) -> Result<Option<String>, Error> {
        let Some(sealed) = stored::ocr_text(&self.vault.inner.db, record.id).await.map_err(store_err)? else {
            return Ok(None);
        };
        let plain = self.key.open(&sealed).map_err(integrity)?;
        String::from_utf8(plain).map(Some).map_err(|_| integrity(VaultError::Integrity(0)))
    }

    /// `text` sealed with this file's data key (OCR pages and documents: read, shared and
    /// shredded with the file).
    pub fn seal_text(&self, text: &str) -> String {
        self.key.seal(text.as_bytes())
    }

    /// `data` sealed with this file's data key (an image's previews).
    pub fn seal_bytes(&self, data: &[u8]) -> String {
        self.key.seal(data)
    }

    /// Bytes sealed by [`Download::seal_bytes`].
    pub fn open_bytes(&self, sealed: &str) -> Result<Vec<u8>, Error> {
        self.key.open(sealed).map_err(integrity)
    }

    /// Text sealed by [`Download::seal_text`].
    pub fn open_text(&self, sealed: &str) -> Result<String, Error> {
        let plain = self.key.open(sealed).map_err(integrity)?;
        String::from_utf8(plain).map_err(|_| integrity(VaultError::Integrity(0)))
    }

    /// The whole plaintext, checked, in memory: for work that needs random access to a file
    /// (a PDF's cross-reference table is at its end). Refused above `limit` bytes, unread.
    pub async fn read_all(self, limit: u64) -> Result<Vec<u8>, Error> {
        let size = self.size();
        if size > limit {
            return Err(Error::new(careport_domain::Code::PayloadTooLarge));
        }
        if size == 0 {
            return Ok(Vec::new());
        }
        self.verify(0, size - 1).await?;
        let mut body = Box::pin(self.stream(0, size - 1, || {}).await?);
        let mut out = Vec::with_capacity(size as usize);
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk.map_err(|_| integrity(VaultError::Truncated))?);
        }
        Ok(out)
    }

    /// Check, without decrypting, that the frames holding bytes `start..=end` are intact, so
    /// that a tampered file is refused before any of it is sent.
    pub async fn verify(&self, start: u64, end: u64) -> Result<(), Error> {
        let frame = self.frame_size() as u64;
        let (first, last) = (start / frame, end / frame);
        // Frames are checked on their own, so a long range is split in two halves checked side
        // by side (two cores: the client is still waiting for its first byte).
        if last - first >= 8 {
            let mid = first + (last - first) / 2;
            let (a, b) = futures_util::join!(self.verify_frames(first, mid), self.verify_frames(mid + 1, last));
            return a.and(b);
        }
        self.verify_frames(first, last).await
    }

    /// Check frames `first..=last`.
    async fn verify_frames(&self, first: u64, last: u64) -> Result<(), Error> {
        let mut src = self
            .vault
            .inner
            .objects
            .read_from(self.file.id, frame_offset(self.frame_size(), first))
            .await
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound { integrity(VaultError::Truncated) } else { storage_err(e) }
            })?;
        let mut checker = Some(Checker::new(&self.key, *self.file.id.as_bytes(), self.frame_size(), first));
        // Only the frames of the range: those after it are not sent, so not checked either.
        let mut left = frame_offset(self.frame_size(), last + 1) - frame_offset(self.frame_size(), first);
        let mut batch = Vec::new();
        loop {
            let next = src.next().await.transpose().map_err(storage_err)?;
            let ended = next.is_none();
            if let Some(b) = next {
                let take = (b.len() as u64).min(left) as usize;
                batch.extend_from_slice(&b[..take]);
                left -= take as u64;
                if batch.len() < BATCH && left > 0 {
                    continue;
                }
            }
            let bytes = std::mem::take(&mut batch);
            let mut c = checker.take();
            let (c, checked) = blocking(move || {
                let r = c.as_mut().map(|c| c.push(&bytes)).unwrap_or(Ok(()));
                (c, r)
            })
            .await?;
            checked.map_err(integrity)?;
            checker = c;
            if checker.as_ref().is_some_and(|c| c.index() > last) {
                return Ok(());
            }
            if ended || left == 0 {
                return Err(integrity(VaultError::Truncated));
            }
        }
    }

    /// The plaintext bytes `start..=end`, streamed. A frame that fails to open here (it was
    /// changed after [`Download::verify`], or frames were reordered) ends the stream with an
    /// error, and `on_broken` is called once.
    pub async fn stream(
        self,
        start: u64,
        end: u64,
        on_broken: impl FnOnce() + Send + 'static,
    ) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + 'static, Error> {
        let frame = self.frame_size() as u64;
        let first = start / frame;
        let src = self
            .vault
            .inner
            .objects
            .read_from(self.file.id, frame_offset(self.frame_size(), first))
            .await
            .map_err(storage_err)?;
        let last = end / frame;
        let state = Reading {
            src,
            sealed_left: frame_offset(self.frame_size(), last + 1) - frame_offset(self.frame_size(), first),
            carry: Vec::new(),
            key: self.key.clone(),
            file_id: *self.file.id.as_bytes(),
            frame_size: self.frame_size(),
            index: first,
            queued: None,
            skip: (start - first * frame) as usize,
            remaining: end - start + 1,
            on_broken: Some(Box::new(on_broken)),
        };
        // Read and open on a task of their own, a batch ahead of the socket: the next frames are
        // decrypted while the last ones are being sent. Two batches wait at most; a client that
        // goes away drops the receiver, and the task stops at its next send.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
        tokio::spawn(async move {
            let mut reading = state;
            while let Some((item, next)) = reading.next().await {
                if tx.send(item).await.is_err() {
                    break;
                }
                reading = next;
            }
        });
        Ok(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }))
    }
}

/// The state of a download stream.
struct Reading {
    src: ObjectStream,
    /// Sealed bytes up to the end of the range's last frame: nothing after it is opened.
    sealed_left: u64,
    /// Sealed bytes read and not yet opened (less than two frames between batches).
    carry: Vec<u8>,
    key: Key,
    file_id: [u8; 16],
    frame_size: usize,
    /// The index of the first frame in `carry`.
    index: u64,
    skip: usize,
    remaining: u64,
    /// The second half of the last batch opened, sent next.
    queued: Option<Bytes>,
    on_broken: Option<Box<dyn FnOnce() + Send>>,
}

/// Open `sealed` (whole frames from `index`, the file's last one possibly partial or cut by
/// the range) with an opener of its own; returns the plaintext and whether the file's last
/// frame was among them.
fn open_frames(
    key: &Key,
    file_id: [u8; 16],
    frame_size: usize,
    index: u64,
    sealed: &[u8],
) -> Result<(Vec<u8>, bool), VaultError> {
    let mut out = Vec::with_capacity(sealed.len());
    if sealed.is_empty() {
        return Ok((out, false));
    }
    let mut opener = Opener::resume(key, file_id, frame_size, index);
    opener.push(sealed, &mut out)?;
    Ok((out, opener.is_done()))
}

impl Reading {
    fn broken(&mut self, why: String) -> std::io::Error {
        if let Some(f) = self.on_broken.take() {
            f();
        }
        std::io::Error::other(why)
    }

    /// Stop the stream with `e`.
    fn fail(mut self, e: std::io::Error) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        self.remaining = 0;
        Some((Err(e), self))
    }

    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        if let Some(queued) = self.queued.take() {
            return Some((Ok(queued), self));
        }
        if self.remaining == 0 {
            return None;
        }
        let frame_len = 4 + careport_vault::frames::token_len(self.frame_size);
        // Two frames at a time (or what is left), opened side by side: frames are independent.
        let mut ended = false;
        while self.carry.len() < 2 * frame_len && self.sealed_left > 0 {
            match self.src.next().await {
                Some(Ok(b)) => {
                    let take = (b.len() as u64).min(self.sealed_left) as usize;
                    self.carry.extend_from_slice(&b[..take]);
                    self.sealed_left -= take as u64;
                }
                Some(Err(e)) => return self.fail(e),
                None => {
                    ended = true;
                    break;
                }
            }
        }
        // Nothing more will be read: what the range needs must be in this batch.
        let ended = ended || self.sealed_left == 0;
        let whole = if ended { self.carry.len() } else { self.carry.len() / frame_len * frame_len };
        let rest = self.carry.split_off(whole);
        let batch = Bytes::from(std::mem::replace(&mut self.carry, rest));
        let half = whole / frame_len / 2 * frame_len;
        let (key_a, key_b) = (self.key.clone(), self.key.clone());
        let (id, size, index) = (self.file_id, self.frame_size, self.index);
        let second = index + (half / frame_len) as u64;
        let (a, b) = (batch.slice(..half), batch.slice(half..));
        let b_empty = b.is_empty();
        let (first_half, second_half) = futures_util::join!(
            tokio::task::spawn_blocking(move || open_frames(&key_a, id, size, index, &a)),
            tokio::task::spawn_blocking(move || open_frames(&key_b, id, size, second, &b))
        );
        let opened = match (first_half, second_half) {
            (Ok(a), Ok(b)) => a.and_then(|a| b.map(|b| (a, b))),
            (Err(e), _) | (_, Err(e)) => return self.fail(std::io::Error::other(format!("vault task failed: {e}"))),
        };
        let ((out, a_last), (out_b, _)) = match opened {
            Ok(v) => v,
            Err(e) => {
                let err = self.broken(format!("integrity check failed: {e}"));
                return self.fail(err);
            }
        };
        if a_last && !b_empty {
            let err = self.broken("frames follow the last frame".into());
            return self.fail(err);
        }
        self.index += (whole / frame_len) as u64;
        // Each half goes out as it is (no copy into one buffer): trim the range's edges.
        let halves = [out, out_b].map(|mut part| {
            let n = self.skip.min(part.len());
            part.drain(..n);
            self.skip -= n;
            part.truncate(self.remaining.min(part.len() as u64) as usize);
            self.remaining -= part.len() as u64;
            Bytes::from(part)
        });
        if ended && self.remaining > 0 {
            let err = self.broken("the sealed object ends early".into());
            return self.fail(err);
        }
        let [first, second] = halves;
        if !second.is_empty() {
            self.queued = Some(second);
        }
        Some((Ok(first), self))
    }
}
