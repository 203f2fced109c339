//! The sealed stream: a header, then length-prefixed Fernet frames.
//!
//! ```text
//! header: "CPV1" | file id (16 bytes) | frame size (u32, big-endian)
//! frame:  token length (u32, big-endian) | Fernet token (raw bytes, not base64)
//! inside each token: file id (16) | frame index (u64, big-endian) | last (1 byte: 0 or 1) | data
//! ```
//!
//! Every frame holds `frame size` bytes of the file but the last, which holds the rest (1 to
//! `frame size` bytes; none only for an empty file). Opening checks, frame by frame, the token's authentication (Fernet's HMAC), the file
//! id, the index and that nothing follows the last frame; at the end, that the last frame came.

use zeroize::Zeroizing;

use crate::keys::Key;
use crate::{VaultError, token};

const MAGIC: &[u8; 4] = b"CPV1";
const HEADER: usize = 4 + 16 + 4;
const BINDING: usize = 16 + 8 + 1;
/// The default frame size: 1 MiB of plaintext per frame.
pub const DEFAULT_FRAME: usize = 1 << 20;
/// Largest accepted frame size: bounds what one frame can make the opener buffer.
pub const MAX_FRAME: usize = 16 << 20;

/// The length of the raw Fernet token that seals `data_len` bytes of a frame: version (1),
/// timestamp (8), IV (16), the AES-CBC ciphertext of binding and data padded to a whole block
/// (PKCS#7 always adds 1 to 16 bytes), HMAC (32).
pub const fn token_len(data_len: usize) -> usize {
    1 + 8 + 16 + ((BINDING + data_len) / 16 + 1) * 16 + 32
}

/// Where frame `index` starts in a sealed stream of `frame_size` frames. Every frame but the
/// last is full, so a range of the plaintext maps to a range of the sealed object: a download
/// of bytes from the middle of a file reads only the frames that hold them.
pub const fn frame_offset(frame_size: usize, index: u64) -> u64 {
    HEADER as u64 + index * (4 + token_len(frame_size)) as u64
}

/// The size of the sealed stream of `size` bytes of plaintext.
pub const fn sealed_len(frame_size: usize, size: u64) -> u64 {
    let full = if size == 0 { 0 } else { (size - 1) / frame_size as u64 };
    let last = size - full * frame_size as u64;
    frame_offset(frame_size, full) + 4 + token_len(last as usize) as u64
}

/// The stream's header: what [`Sealer`] writes first, for writing frames with [`seal_frames`].
pub fn header(file_id: [u8; 16], frame_size: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&file_id);
    out.extend_from_slice(&(frame_size.clamp(1, MAX_FRAME) as u32).to_be_bytes());
}

/// Seal `data` as frames `index`, `index + 1`, …: full frames, and with `last`, a final frame
/// with the rest (1 to `frame_size` bytes) marked as the last. Without `last`, `data` must be a
/// whole number of frames. Frames are independent, so parts of a file can be sealed side by
/// side and their output joined in order after a [`header`].
pub fn seal_frames(
    key: &Key,
    file_id: [u8; 16],
    frame_size: usize,
    index: u64,
    data: &[u8],
    last: bool,
    out: &mut Vec<u8>,
) {
    let frame_size = frame_size.clamp(1, MAX_FRAME);
    let mut sealer =
        Sealer { key: Zeroizing::new(*key.bytes()), file_id, frame_size, pending: Vec::new(), index, started: true };
    let mut chunks = data.chunks(frame_size).peekable();
    while let Some(chunk) = chunks.next() {
        let final_frame = last && chunks.peek().is_none();
        sealer.frame(chunk, final_frame, out);
    }
    if last && data.is_empty() {
        sealer.frame(&[], true, out);
    }
}

/// Seals a file's content as it arrives.
pub struct Sealer {
    key: Zeroizing<[u8; 32]>,
    file_id: [u8; 16],
    frame_size: usize,
    pending: Vec<u8>,
    index: u64,
    started: bool,
}

impl Sealer {
    /// `frame_size` is clamped to 1 byte ..= [`MAX_FRAME`].
    pub fn new(key: &Key, file_id: [u8; 16], frame_size: usize) -> Self {
        let frame_size = frame_size.clamp(1, MAX_FRAME);
        Self { key: Zeroizing::new(*key.bytes()), file_id, frame_size, pending: Vec::new(), index: 0, started: false }
    }

    fn header(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            out.extend_from_slice(MAGIC);
            out.extend_from_slice(&self.file_id);
            out.extend_from_slice(&(self.frame_size as u32).to_be_bytes());
            self.started = true;
        }
    }

    fn frame(&mut self, data: &[u8], last: bool, out: &mut Vec<u8>) {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        let (file_id, index) = (self.file_id, self.index);
        token::seal_with(&self.key, out, |plain| {
            plain.extend_from_slice(&file_id);
            plain.extend_from_slice(&index.to_be_bytes());
            plain.push(u8::from(last));
            plain.extend_from_slice(data);
        });
        let len = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&len.to_be_bytes());
        self.index += 1;
    }

    /// Take `data`; append the sealed bytes that are complete to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        self.header(out);
        while !data.is_empty() {
            // A full frame goes out once more data proves it is not the last.
            if self.pending.len() == self.frame_size {
                let full = std::mem::take(&mut self.pending);
                self.frame(&full, false, out);
                self.pending = full;
                self.pending.clear();
            }
            // A whole frame straight from the input, when more input follows it.
            if self.pending.is_empty() && data.len() > self.frame_size {
                let (whole, rest) = data.split_at(self.frame_size);
                self.frame(whole, false, out);
                data = rest;
                continue;
            }
            let take = (self.frame_size - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
    }

    /// Seal what is left as the last frame.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        self.header(out);
        let rest = std::mem::take(&mut self.pending);
        self.frame(&rest, true, out);
    }
}

/// Opens a sealed stream as it arrives, refusing anything out of place.
pub struct Opener {
    key: Zeroizing<[u8; 32]>,
    /// One frame's plaintext, reused. Not zeroed on drop: the same plaintext is in the output
    /// and the socket's buffers anyway; the key is what `Zeroizing` guards.
    plain: Vec<u8>,
    file_id: [u8; 16],
    frame_size: usize,
    buffer: Vec<u8>,
    index: u64,
    header_read: bool,
    done: bool,
}

impl Opener {
    pub fn new(key: &Key, file_id: [u8; 16]) -> Self {
        Self {
            key: Zeroizing::new(*key.bytes()),
            plain: Vec::new(),
            file_id,
            frame_size: 0,
            buffer: Vec::new(),
            index: 0,
            header_read: false,
            done: false,
        }
    }

    /// An opener for the frames from `index` on, read from [`frame_offset`] (no header): a
    /// ranged download starts at the frame that holds its first byte.
    pub fn resume(key: &Key, file_id: [u8; 16], frame_size: usize, index: u64) -> Self {
        Self {
            key: Zeroizing::new(*key.bytes()),
            plain: Vec::new(),
            file_id,
            frame_size: frame_size.clamp(1, MAX_FRAME),
            buffer: Vec::new(),
            index,
            header_read: true,
            done: false,
        }
    }

    /// The largest token a frame of `frame_size` can make.
    fn max_token(&self) -> usize {
        token_len(self.frame_size)
    }

    /// Whether the last frame has been opened.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Take sealed bytes; append the content of every complete frame to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), VaultError> {
        // Whole frames are opened where they lie in the input; only a partial one is kept.
        if self.buffer.is_empty() {
            let used = self.open_frames(bytes, out)?;
            self.buffer.extend_from_slice(&bytes[used..]);
            return Ok(());
        }
        self.buffer.extend_from_slice(bytes);
        let buffer = std::mem::take(&mut self.buffer);
        let opened = self.open_frames(&buffer, out);
        self.buffer = buffer;
        self.buffer.drain(..opened?);
        Ok(())
    }

    /// Open the header (first) and every whole frame at the start of `input`; returns how many
    /// bytes were used.
    fn open_frames(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, VaultError> {
        let mut at = 0;
        if !self.header_read {
            if input.len() < HEADER {
                return Ok(0);
            }
            if &input[..4] != MAGIC || input[4..20] != self.file_id {
                return Err(VaultError::Format);
            }
            let size = u32::from_be_bytes([input[20], input[21], input[22], input[23]]) as usize;
            if size == 0 || size > MAX_FRAME {
                return Err(VaultError::Format);
            }
            self.frame_size = size;
            self.header_read = true;
            at = HEADER;
        }
        loop {
            let rest = &input[at..];
            if rest.len() < 4 {
                break;
            }
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if len > self.max_token() {
                return Err(VaultError::Integrity(self.index));
            }
            if rest.len() < 4 + len {
                break;
            }
            if self.done {
                // Anything after the last frame was appended.
                return Err(VaultError::Integrity(self.index));
            }
            if !token::open_into(&self.key, &rest[4..4 + len], &mut self.plain) {
                return Err(VaultError::Integrity(self.index));
            }
            let plain = &self.plain;
            if plain.len() < BINDING
                || plain[..16] != self.file_id
                || plain[16..24] != self.index.to_be_bytes()
                || plain[24] > 1
            {
                return Err(VaultError::Integrity(self.index));
            }
            let last = plain[24] == 1;
            let data = &plain[BINDING..];
            if (!last && data.len() != self.frame_size) || data.len() > self.frame_size {
                return Err(VaultError::Integrity(self.index));
            }
            out.extend_from_slice(data);
            self.index += 1;
            self.done = last;
            at += 4 + len;
        }
        Ok(at)
    }

    /// Check that the stream ended with its last frame and nothing after it.
    pub fn finish(self) -> Result<(), VaultError> {
        if !self.header_read {
            return Err(VaultError::Truncated);
        }
        if !self.buffer.is_empty() {
            return Err(if self.done { VaultError::Integrity(self.index) } else { VaultError::Truncated });
        }
        if !self.done {
            return Err(VaultError::Truncated);
        }
        Ok(())
    }
}

/// Checks the frames of a sealed stream, from [`frame_offset`] of a given index, without
/// opening them: each token's length and HMAC (Fernet's own), then its binding — the file id,
/// the index and the last flag, read from the first two decrypted blocks only. A download runs
/// it over the frames it will send before it sends a byte, so a changed, reordered or spliced
/// file is refused with no plaintext out. The [`Opener`] checks all of it again as it opens.
pub struct Checker {
    key: Zeroizing<[u8; 32]>,
    file_id: [u8; 16],
    /// The last frame was checked: nothing may follow it.
    done: bool,
    frame_size: usize,
    buffer: Vec<u8>,
    index: u64,
}

impl Checker {
    pub fn new(key: &Key, file_id: [u8; 16], frame_size: usize, index: u64) -> Self {
        Self {
            key: Zeroizing::new(*key.bytes()),
            file_id,
            done: false,
            frame_size: frame_size.clamp(1, MAX_FRAME),
            buffer: Vec::new(),
            index,
        }
    }

    /// Take sealed bytes; check every complete frame (where it lies in the input; only a
    /// partial frame is kept).
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), VaultError> {
        if self.buffer.is_empty() {
            let used = self.check_frames(bytes)?;
            self.buffer.extend_from_slice(&bytes[used..]);
            return Ok(());
        }
        self.buffer.extend_from_slice(bytes);
        let buffer = std::mem::take(&mut self.buffer);
        let checked = self.check_frames(&buffer);
        self.buffer = buffer;
        self.buffer.drain(..checked?);
        Ok(())
    }

    fn check_frames(&mut self, input: &[u8]) -> Result<usize, VaultError> {
        let mut at = 0;
        loop {
            let rest = &input[at..];
            if rest.len() < 4 {
                break;
            }
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if len > token_len(self.frame_size) || len < token_len(0) {
                return Err(VaultError::Integrity(self.index));
            }
            if rest.len() < 4 + len {
                break;
            }
            let token = &rest[4..4 + len];
            if self.done || !token::verify(&self.key[..16], token) {
                return Err(VaultError::Integrity(self.index));
            }
            let head = token::open_head(&self.key, token).ok_or(VaultError::Integrity(self.index))?;
            if head[..16] != self.file_id || head[16..24] != self.index.to_be_bytes() || head[24] > 1 {
                return Err(VaultError::Integrity(self.index));
            }
            self.done = head[24] == 1;
            self.index += 1;
            at += 4 + len;
        }
        Ok(at)
    }

    /// Frames checked so far (the index of the next).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Check that no partial frame was left over.
    pub fn finish(self) -> Result<(), VaultError> {
        if self.buffer.is_empty() { Ok(()) } else { Err(VaultError::Truncated) }
    }
}

/// Open a whole file written by the portal careport replaces: one Fernet token of the whole
/// content, under a known key (text form). The caller then seals it as a careport file.
pub fn open_legacy(key_text: &str, token: &str) -> Result<Vec<u8>, VaultError> {
    let key = Key::from_text(key_text)?;
    key.fernet().decrypt(token.trim()).map_err(|_| VaultError::Integrity(0))
}
