//! TrOCR on text-line crops, for the GPU OCR worker.
//!
//! # What this module owns
//! Everything between "here are the crops of some text lines" and "here is each line's text with
//! the model's confidence": loading an operator's TrOCR checkpoint ([`TrOcr::load`]), a tiny
//! randomly initialised model for tests and CPU shape checks ([`TrOcr::tiny_random`]), the
//! image preprocessing (bilinear resize, normalisation), batching, greedy decoding and
//! detokenisation ([`TrOcr::read_lines`]), and the choice of device ([`device_for_gpu`],
//! [`availability`]). Finding the lines on a page is not done here: Tesseract's layout analysis
//! in the OCR layer finds them and hands over their crops as [`LineImage`]s.
//!
//! # Lines, not pages
//! TrOCR was trained on single text lines: its encoder squeezes whatever it is given into one
//! square (384×384 for the Microsoft checkpoints) and its decoder writes one line of text. A whole
//! page squeezed that way is unreadable and comes back as a short hallucinated line, so callers
//! must pass one crop per line; [`TrOcr::read_lines`] does not try to detect pages.
//!
//! # The model
//! The encoder is candle's ViT ([`candle_transformers::models::trocr::TrOCREncoder`], configured
//! by [`candle_transformers::models::vit::Config`]). The decoder is implemented here, following
//! Hugging Face's `TrOCRForCausalLM`, because candle 0.11's `trocr` decoder leaves out parts of
//! the architecture that the published checkpoints carry: the biases of the attention
//! projections and of `fc1`/`fc2`, and `layernorm_embedding`. It reads the same tensor names and
//! computes the same function as candle's decoder where the two agree (a unit test checks this),
//! keeps each layer's self-attention keys and values between steps, and computes the
//! cross-attention keys and values of a batch once rather than at every step. Weights are used
//! in `f32` on every device.
//!
//! # Preprocessing
//! As TrOCR's image processor does: each crop is stretched to the encoder's
//! `image_size` × `image_size` (the aspect ratio is not kept) with a bilinear filter that widens
//! when shrinking, like PIL's, rounded to 8-bit levels, scaled to 0–1 and normalised with mean
//! and standard deviation 0.5 per channel, channels first. Up to `batch` crops go through the
//! encoder together.
//!
//! # Decoding and confidence
//! Greedy: each line starts from the decoder start token (the top-level
//! `decoder_start_token_id` of `config.json`, else the decoder section's) and takes the most
//! probable token at every step, until it produces the end-of-sequence token or reaches the
//! maximum length: the top-level `max_length` of `config.json`, counted as Hugging Face counts it
//! (start token included), or [`DEFAULT_MAX_LENGTH`]; never more than the decoder's position
//! table allows. The decoder section's own `max_length` (usually the library default, 20) is
//! ignored, as are beam search and n-gram settings. Lines of a batch decode together, and a line
//! that has ended stops counting; tokens are turned into text by the tokenizer, special tokens
//! left out. A line's
//! [`LineText::confidence`] is the geometric mean of the softmax probabilities of the tokens the
//! model chose for it, the end-of-sequence token included, × 100: it comes from the model only,
//! never from the length of the text.
//!
//! # Devices
//! The GPU worker asks [`availability`] for a device and a weights directory: with the `cuda`
//! feature it opens CUDA device 0 ([`device_for_gpu`]); without it, or without a usable device
//! or a complete weights directory, it gets the reason as text (shown on `/readyz`). [`TrOcr`]
//! itself runs on any [`Device`]; the tests use the CPU.
//!
//! # The weights directory
//! An operator provides one directory holding the three files of a Hugging Face
//! `VisionEncoderDecoderModel` TrOCR checkpoint with a ViT encoder (`microsoft/trocr-base-*`,
//! `microsoft/trocr-large-*` or a fine-tune of them):
//! - `config.json`: the model's config, with its `encoder` (ViT) and `decoder` (TrOCR) sections;
//!   optionally a top-level `max_length`;
//! - `model.safetensors`: the weights, with Hugging Face's tensor names (a checkpoint published
//!   only as `pytorch_model.bin` must be converted first);
//! - `tokenizer.json`: the fast tokenizer (`AutoTokenizer.from_pretrained(...)
//!   .save_pretrained(dir)` writes it for the RoBERTa tokenizer of the Microsoft checkpoints).
//!
//! The TrOCR "small" checkpoints use a DeiT encoder, which candle does not provide; they are
//! refused with an explanation.
//!
//! Nothing in this module logs or puts into an error the text it reads or the pixels it is given.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder, VarMap};
use candle_transformers::models::trocr::TrOCREncoder;
use candle_transformers::models::vit;
use serde::Deserialize;
use tokenizers::Tokenizer;

/// The files a weights directory must hold.
pub const REQUIRED_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

/// The maximum length (start token included) when `config.json` has no top-level `max_length`.
pub const DEFAULT_MAX_LENGTH: usize = 64;

/// The per-channel mean and standard deviation of TrOCR's image processor (all three channels).
const PIXEL_MEAN: f32 = 0.5;
const PIXEL_STD: f32 = 0.5;

/// The epsilon of the decoder's layer norms (PyTorch's default, which TrOCR uses).
const DECODER_LAYER_NORM_EPS: f64 = 1e-5;

/// One text line cut out of a page: row-major RGB, 8 bits a channel, `width * height * 3` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineImage {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

/// A line's text and the model's confidence in it.
#[derive(Debug, Clone, PartialEq)]
pub struct LineText {
    pub text: String,
    /// 0–100: the geometric mean of the chosen tokens' softmax probabilities (end-of-sequence
    /// token included) × 100.
    pub confidence: f32,
}

/// What can go wrong loading or running TrOCR. No message carries recognised text or pixels.
#[derive(Debug, thiserror::Error)]
pub enum TrOcrError {
    #[error("TrOCR weights directory {} does not exist or is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("TrOCR weights directory {} is missing {}", .dir.display(), .files.join(", "))]
    MissingFiles { dir: PathBuf, files: Vec<&'static str> },
    #[error("{file} could not be read: {reason}")]
    Unreadable { file: &'static str, reason: String },
    #[error("config.json is not a usable TrOCR config: {0}")]
    Config(String),
    #[error("unsupported TrOCR checkpoint: {0}")]
    Unsupported(String),
    #[error("model.safetensors does not match config.json: {0}")]
    Weights(String),
    #[error("line {index} is not a usable crop: {reason}")]
    InvalidLine { index: usize, reason: String },
    #[error("TrOCR inference failed: {0}")]
    Inference(String),
    #[error("the model's tokens could not be turned into text")]
    Detokenize,
    #[error("only a model built in memory (tiny_random) can save its weights")]
    NotInMemory,
}

fn inference(e: candle_core::Error) -> TrOcrError {
    TrOcrError::Inference(e.to_string())
}

fn weights(e: candle_core::Error) -> TrOcrError {
    TrOcrError::Weights(e.to_string())
}

/// CUDA device 0, or why it cannot be had.
#[cfg(feature = "cuda")]
pub fn device_for_gpu() -> Result<Device, String> {
    Device::new_cuda(0).map_err(|e| format!("no usable CUDA device: {e}"))
}

/// CUDA device 0, or why it cannot be had.
#[cfg(not(feature = "cuda"))]
pub fn device_for_gpu() -> Result<Device, String> {
    Err("built without the `cuda` feature".to_string())
}

/// Whether `dir` is a directory holding every file of [`REQUIRED_FILES`].
pub fn check_weights_dir(dir: &Path) -> Result<(), TrOcrError> {
    if !dir.is_dir() {
        return Err(TrOcrError::NotADirectory(dir.to_path_buf()));
    }
    let files: Vec<&'static str> = REQUIRED_FILES.into_iter().filter(|f| !dir.join(f).is_file()).collect();
    if files.is_empty() { Ok(()) } else { Err(TrOcrError::MissingFiles { dir: dir.to_path_buf(), files }) }
}

/// The GPU worker's device and weights directory, or every reason it has to stay off (no `cuda`
/// feature, no usable CUDA device, no weights directory configured, a directory missing a
/// file), joined with "; ", for `/readyz`.
pub fn availability(weights_dir: Option<&Path>) -> Result<(Device, PathBuf), String> {
    let device = device_for_gpu();
    let weights = match weights_dir {
        None => Err("no TrOCR weights directory configured".to_string()),
        Some(dir) => check_weights_dir(dir).map(|()| dir.to_path_buf()).map_err(|e| e.to_string()),
    };
    match (device, weights) {
        (Ok(device), Ok(dir)) => Ok((device, dir)),
        (device, weights) => Err([device.err(), weights.err()].into_iter().flatten().collect::<Vec<_>>().join("; ")),
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

fn default_true() -> bool {
    true
}
fn default_max_position_embeddings() -> usize {
    512
}
fn default_pad_token_id() -> u32 {
    1
}
fn default_eos_token_id() -> u32 {
    2
}
fn default_decoder_start_token_id() -> u32 {
    2
}

/// The `decoder` section of `config.json` (Hugging Face's `TrOCRConfig`; defaults are theirs).
#[derive(Debug, Clone, Deserialize)]
struct DecoderConfig {
    vocab_size: usize,
    d_model: usize,
    #[serde(default)]
    cross_attention_hidden_size: Option<usize>,
    decoder_layers: usize,
    decoder_attention_heads: usize,
    decoder_ffn_dim: usize,
    #[serde(default)]
    activation_function: candle_nn::Activation,
    #[serde(default = "default_max_position_embeddings")]
    max_position_embeddings: usize,
    #[serde(default)]
    scale_embedding: bool,
    #[serde(default = "default_true")]
    use_learned_position_embeddings: bool,
    #[serde(default = "default_true")]
    layernorm_embedding: bool,
    #[serde(default = "default_true")]
    tie_word_embeddings: bool,
    #[serde(default = "default_pad_token_id")]
    pad_token_id: u32,
    #[serde(default = "default_eos_token_id")]
    eos_token_id: u32,
    #[serde(default = "default_decoder_start_token_id")]
    decoder_start_token_id: u32,
}

/// The top level of `config.json` (Hugging Face's `VisionEncoderDecoderConfig`).
#[derive(Debug, Clone, Deserialize)]
struct RawConfig {
    encoder: serde_json::Value,
    decoder: DecoderConfig,
    #[serde(default)]
    max_length: Option<usize>,
    #[serde(default)]
    decoder_start_token_id: Option<u32>,
    #[serde(default)]
    eos_token_id: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
struct EncoderKind {
    #[serde(default)]
    model_type: Option<String>,
}

/// A checked configuration: what the model is built from, real weights or tiny.
#[derive(Debug, Clone)]
struct ModelConfig {
    encoder: vit::Config,
    decoder: DecoderConfig,
    /// Width and height of the square the encoder reads.
    image_size: usize,
    decoder_start_token_id: u32,
    eos_token_id: u32,
    /// The most tokens a line may produce (end-of-sequence token included).
    max_new_tokens: usize,
    /// The Hugging Face `max_length` this came from (start token included).
    max_length: usize,
}

impl ModelConfig {
    fn parse(json: &str) -> Result<Self, TrOcrError> {
        let raw: RawConfig = serde_json::from_str(json).map_err(|e| TrOcrError::Config(e.to_string()))?;
        let kind: EncoderKind =
            serde_json::from_value(raw.encoder.clone()).map_err(|e| TrOcrError::Config(format!("encoder: {e}")))?;
        if let Some(kind) = kind.model_type.as_deref()
            && kind != "vit"
        {
            return Err(TrOcrError::Unsupported(format!(
                "encoder model_type `{kind}` (the TrOCR small checkpoints use DeiT); use a ViT-based TrOCR (base or large)"
            )));
        }
        let encoder: vit::Config =
            serde_json::from_value(raw.encoder).map_err(|e| TrOcrError::Config(format!("encoder: {e}")))?;
        let decoder = raw.decoder;
        let config_error = |what: String| Err(TrOcrError::Config(what));
        if encoder.num_channels != 3 {
            return Err(TrOcrError::Unsupported(format!(
                "the encoder reads {} channels; line crops are RGB",
                encoder.num_channels
            )));
        }
        if encoder.patch_size == 0 || encoder.image_size < encoder.patch_size {
            return config_error(format!(
                "encoder image_size {} and patch_size {} do not fit",
                encoder.image_size, encoder.patch_size
            ));
        }
        if encoder.num_attention_heads == 0 || !encoder.hidden_size.is_multiple_of(encoder.num_attention_heads) {
            return config_error(format!(
                "encoder hidden_size {} is not divisible by num_attention_heads {}",
                encoder.hidden_size, encoder.num_attention_heads
            ));
        }
        if decoder.decoder_attention_heads == 0 || !decoder.d_model.is_multiple_of(decoder.decoder_attention_heads) {
            return config_error(format!(
                "decoder d_model {} is not divisible by decoder_attention_heads {}",
                decoder.d_model, decoder.decoder_attention_heads
            ));
        }
        if decoder.d_model < 4 || decoder.vocab_size == 0 || decoder.max_position_embeddings == 0 {
            return config_error("decoder d_model, vocab_size or max_position_embeddings is too small".to_string());
        }
        match decoder.cross_attention_hidden_size {
            Some(size) if size != encoder.hidden_size => {
                return config_error(format!(
                    "decoder cross_attention_hidden_size {size} differs from the encoder's hidden_size {}",
                    encoder.hidden_size
                ));
            }
            None if decoder.d_model != encoder.hidden_size => {
                return Err(TrOcrError::Unsupported(
                    "encoder and decoder widths differ without cross_attention_hidden_size (enc_to_dec_proj)"
                        .to_string(),
                ));
            }
            _ => {}
        }
        let decoder_start_token_id = raw.decoder_start_token_id.unwrap_or(decoder.decoder_start_token_id);
        let eos_token_id = raw.eos_token_id.unwrap_or(decoder.eos_token_id);
        for (name, id) in [("decoder_start_token_id", decoder_start_token_id), ("eos_token_id", eos_token_id)] {
            if id as usize >= decoder.vocab_size {
                return config_error(format!("{name} {id} is outside the vocabulary ({})", decoder.vocab_size));
            }
        }
        let max_length = raw.max_length.unwrap_or(DEFAULT_MAX_LENGTH);
        // The start token counts towards `max_length`; every token but the last is fed back at
        // the next position, so positions 0..max_new_tokens must exist.
        let max_new_tokens = max_length.saturating_sub(1).clamp(1, decoder.max_position_embeddings);
        Ok(Self {
            image_size: encoder.image_size,
            encoder,
            decoder,
            decoder_start_token_id,
            eos_token_id,
            max_new_tokens,
            max_length,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The decoder (Hugging Face's TrOCRForCausalLM, one token a step)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    heads: usize,
    head_dim: usize,
    scaling: f64,
}

impl Attention {
    fn load(vb: VarBuilder, embed_dim: usize, kv_dim: usize, heads: usize) -> candle_core::Result<Self> {
        let head_dim = embed_dim / heads;
        Ok(Self {
            q_proj: candle_nn::linear(embed_dim, embed_dim, vb.pp("q_proj"))?,
            k_proj: candle_nn::linear(kv_dim, embed_dim, vb.pp("k_proj"))?,
            v_proj: candle_nn::linear(kv_dim, embed_dim, vb.pp("v_proj"))?,
            out_proj: candle_nn::linear(embed_dim, embed_dim, vb.pp("out_proj"))?,
            heads,
            head_dim,
            scaling: (head_dim as f64).powf(-0.5),
        })
    }

    /// `(batch, len, heads * head_dim)` → `(batch, heads, len, head_dim)`.
    fn split_heads(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, len, _) = xs.dims3()?;
        xs.reshape((batch, len, self.heads, self.head_dim))?.transpose(1, 2)?.contiguous()
    }

    fn query(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.split_heads(&(xs.apply(&self.q_proj)? * self.scaling)?)
    }

    fn keys_values(&self, xs: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        Ok((self.split_heads(&xs.apply(&self.k_proj)?)?, self.split_heads(&xs.apply(&self.v_proj)?)?))
    }

    /// Attention of `query` (already scaled) over all of `keys`/`values`, through `out_proj`.
    fn attend(&self, query: &Tensor, keys: &Tensor, values: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, _, len, _) = query.dims4()?;
        let weights = query.matmul(&keys.t()?)?;
        let probs = candle_nn::ops::softmax_last_dim(&weights)?;
        probs.matmul(values)?.transpose(1, 2)?.reshape((batch, len, self.heads * self.head_dim))?.apply(&self.out_proj)
    }
}

#[derive(Debug, Clone)]
struct DecoderLayer {
    self_attn: Attention,
    self_attn_layer_norm: LayerNorm,
    encoder_attn: Attention,
    encoder_attn_layer_norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    final_layer_norm: LayerNorm,
    activation: candle_nn::Activation,
}

/// One layer's state while a batch decodes.
struct LayerCache {
    /// Self-attention keys and values of the tokens fed so far, `(batch, heads, len, head_dim)`.
    self_kv: Option<(Tensor, Tensor)>,
    /// Cross-attention keys and values of the encoder output, computed once a batch.
    cross_k: Tensor,
    cross_v: Tensor,
}

impl DecoderLayer {
    fn load(vb: VarBuilder, cfg: &DecoderConfig, cross_dim: usize) -> candle_core::Result<Self> {
        let d = cfg.d_model;
        let heads = cfg.decoder_attention_heads;
        let norm = |name: &str| candle_nn::layer_norm(d, DECODER_LAYER_NORM_EPS, vb.pp(name));
        Ok(Self {
            self_attn: Attention::load(vb.pp("self_attn"), d, d, heads)?,
            self_attn_layer_norm: norm("self_attn_layer_norm")?,
            encoder_attn: Attention::load(vb.pp("encoder_attn"), d, cross_dim, heads)?,
            encoder_attn_layer_norm: norm("encoder_attn_layer_norm")?,
            fc1: candle_nn::linear(d, cfg.decoder_ffn_dim, vb.pp("fc1"))?,
            fc2: candle_nn::linear(cfg.decoder_ffn_dim, d, vb.pp("fc2"))?,
            final_layer_norm: norm("final_layer_norm")?,
            activation: cfg.activation_function,
        })
    }

    fn cache(&self, encoder_out: &Tensor) -> candle_core::Result<LayerCache> {
        let (cross_k, cross_v) = self.encoder_attn.keys_values(encoder_out)?;
        Ok(LayerCache { self_kv: None, cross_k, cross_v })
    }

    /// One step for `(batch, 1, d_model)` (post-layer-norm, as in TrOCR).
    fn step(&self, xs: &Tensor, cache: &mut LayerCache) -> candle_core::Result<Tensor> {
        let query = self.self_attn.query(xs)?;
        let (k, v) = self.self_attn.keys_values(xs)?;
        let (k, v) = match cache.self_kv.take() {
            None => (k, v),
            Some((past_k, past_v)) => (Tensor::cat(&[&past_k, &k], 2)?, Tensor::cat(&[&past_v, &v], 2)?),
        };
        let attended = self.self_attn.attend(&query, &k, &v)?;
        cache.self_kv = Some((k, v));
        let xs = (attended + xs)?.apply(&self.self_attn_layer_norm)?;

        let query = self.encoder_attn.query(&xs)?;
        let attended = self.encoder_attn.attend(&query, &cache.cross_k, &cache.cross_v)?;
        let xs = (attended + xs)?.apply(&self.encoder_attn_layer_norm)?;

        let ffn = xs.apply(&self.fc1)?.apply(&self.activation)?.apply(&self.fc2)?;
        (ffn + xs)?.apply(&self.final_layer_norm)
    }
}

#[derive(Debug, Clone)]
struct Decoder {
    embed_tokens: Embedding,
    embed_scale: f64,
    /// The position table, `(rows, d_model)`; position `p` is row `p + position_offset`.
    positions: Tensor,
    position_offset: usize,
    layernorm_embedding: Option<LayerNorm>,
    layers: Vec<DecoderLayer>,
    output_projection: Linear,
}

/// Hugging Face's (fairseq's) sinusoidal table: `rows × dim`, sines then cosines, row
/// `padding_idx` zero.
fn sinusoidal_positions(rows: usize, dim: usize, padding_idx: usize, device: &Device) -> candle_core::Result<Tensor> {
    let half = dim / 2;
    let step = (10000f64).ln() / (half.saturating_sub(1).max(1)) as f64;
    let mut table = vec![0f32; rows * dim];
    for pos in 0..rows {
        if pos == padding_idx {
            continue;
        }
        for i in 0..half {
            let angle = pos as f64 * (-(i as f64) * step).exp();
            table[pos * dim + i] = angle.sin() as f32;
            table[pos * dim + half + i] = angle.cos() as f32;
        }
    }
    Tensor::from_vec(table, (rows, dim), device)
}

impl Decoder {
    fn load(vb: VarBuilder, cfg: &DecoderConfig, cross_dim: usize) -> candle_core::Result<Self> {
        let d = cfg.d_model;
        let vb_d = vb.pp("decoder").pp("model").pp("decoder");
        let embed_tokens = candle_nn::embedding(cfg.vocab_size, d, vb_d.pp("embed_tokens"))?;
        let (positions, position_offset) = if cfg.use_learned_position_embeddings {
            (vb_d.pp("embed_positions").get((cfg.max_position_embeddings + 2, d), "weight")?, 2)
        } else {
            let pad = cfg.pad_token_id as usize;
            (sinusoidal_positions(cfg.max_position_embeddings + pad + 1, d, pad, vb.device())?, pad + 1)
        };
        let layernorm_embedding = if cfg.layernorm_embedding {
            Some(candle_nn::layer_norm(d, DECODER_LAYER_NORM_EPS, vb_d.pp("layernorm_embedding"))?)
        } else {
            None
        };
        let layers = (0..cfg.decoder_layers)
            .map(|i| DecoderLayer::load(vb_d.pp("layers").pp(i), cfg, cross_dim))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let output_projection = if cfg.tie_word_embeddings {
            Linear::new(embed_tokens.embeddings().clone(), None)
        } else {
            Linear::new(vb.pp("decoder").pp("output_projection").get((cfg.vocab_size, d), "weight")?, None)
        };
        Ok(Self {
            embed_tokens,
            embed_scale: if cfg.scale_embedding { (d as f64).sqrt() } else { 1.0 },
            positions,
            position_offset,
            layernorm_embedding,
            layers,
            output_projection,
        })
    }

    fn start(&self, encoder_out: &Tensor) -> candle_core::Result<Vec<LayerCache>> {
        self.layers.iter().map(|layer| layer.cache(encoder_out)).collect()
    }

    /// Feeds `tokens` (`(batch, 1)`, u32) at `position`; the next-token logits, `(batch, vocab)`.
    fn step(&self, tokens: &Tensor, position: usize, caches: &mut [LayerCache]) -> candle_core::Result<Tensor> {
        let embedded = (self.embed_tokens.forward(tokens)? * self.embed_scale)?;
        let position = self.positions.narrow(0, position + self.position_offset, 1)?;
        let mut xs = embedded.broadcast_add(&position)?;
        if let Some(norm) = &self.layernorm_embedding {
            xs = xs.apply(norm)?;
        }
        for (layer, cache) in self.layers.iter().zip(caches.iter_mut()) {
            xs = layer.step(&xs, cache)?;
        }
        xs.apply(&self.output_projection)?.squeeze(1)
    }
}

// ---------------------------------------------------------------------------------------------
// Preprocessing
// ---------------------------------------------------------------------------------------------

/// For each output pixel along one axis, the first input pixel and the weights of the input
/// pixels from there: a triangle (bilinear) filter, widened when shrinking so that every input
/// pixel counts (as PIL's bilinear resize does, which TrOCR's image processor uses).
fn resample_coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale;
    (0..out_size)
        .map(|i| {
            let center = (i as f64 + 0.5) * scale;
            let first = (center - support + 0.5).floor().max(0.0) as usize;
            let end = ((center + support + 0.5).floor() as usize).clamp(first + 1, in_size);
            let first = first.min(end - 1);
            let raw: Vec<f64> = (first..end)
                .map(|j| {
                    let x = ((j as f64 - center + 0.5) / filter_scale).abs();
                    if x < 1.0 { 1.0 - x } else { 0.0 }
                })
                .collect();
            // Taps of weight zero at either end change nothing: drop them.
            let (Some(lo), Some(hi)) = (raw.iter().position(|w| *w > 0.0), raw.iter().rposition(|w| *w > 0.0)) else {
                return ((center as usize).min(in_size - 1), vec![1.0]);
            };
            let total: f64 = raw[lo..=hi].iter().sum();
            (first + lo, raw[lo..=hi].iter().map(|w| (w / total) as f32).collect())
        })
        .collect()
}

/// `line` resized to `size × size`: row-major RGB values rounded to 0–255 like the 8-bit image
/// the reference processor produces, as `f32`.
fn resize_rgb(line: &LineImage, size: usize) -> Vec<f32> {
    let (in_w, in_h) = (line.width as usize, line.height as usize);
    let columns = resample_coefficients(in_w, size);
    let rows = resample_coefficients(in_h, size);
    // Horizontal pass: in_h × size.
    let mut wide = vec![0f32; in_h * size * 3];
    for y in 0..in_h {
        let row = &line.rgb[y * in_w * 3..(y + 1) * in_w * 3];
        for (x, (first, weights)) in columns.iter().enumerate() {
            let mut acc = [0f32; 3];
            for (k, w) in weights.iter().enumerate() {
                let p = (first + k) * 3;
                for (a, v) in acc.iter_mut().zip(&row[p..p + 3]) {
                    *a += w * f32::from(*v);
                }
            }
            wide[(y * size + x) * 3..(y * size + x) * 3 + 3].copy_from_slice(&acc);
        }
    }
    // Vertical pass: size × size.
    let mut out = vec![0f32; size * size * 3];
    for (y, (first, weights)) in rows.iter().enumerate() {
        for x in 0..size {
            let mut acc = [0f32; 3];
            for (k, w) in weights.iter().enumerate() {
                let p = ((first + k) * size + x) * 3;
                for (a, v) in acc.iter_mut().zip(&wide[p..p + 3]) {
                    *a += w * v;
                }
            }
            for (o, a) in out[(y * size + x) * 3..(y * size + x) * 3 + 3].iter_mut().zip(acc) {
                *o = a.round().clamp(0.0, 255.0);
            }
        }
    }
    out
}

fn check_line(index: usize, line: &LineImage) -> Result<(), TrOcrError> {
    let invalid = |reason: String| Err(TrOcrError::InvalidLine { index, reason });
    if line.width == 0 || line.height == 0 {
        return invalid(format!("{}×{} has no pixels", line.width, line.height));
    }
    let expected = (line.width as usize).checked_mul(line.height as usize).and_then(|n| n.checked_mul(3));
    if expected != Some(line.rgb.len()) {
        return invalid(format!(
            "{}×{} RGB needs {} bytes, got {}",
            line.width,
            line.height,
            expected.map_or_else(|| "too many".to_string(), |n| n.to_string()),
            line.rgb.len()
        ));
    }
    Ok(())
}

/// The encoder's input for `lines`: `(n, 3, size, size)`, normalised with mean and std 0.5.
fn pixel_values(lines: &[LineImage], size: usize, device: &Device) -> candle_core::Result<Tensor> {
    let plane = size * size;
    let mut data = vec![0f32; lines.len() * 3 * plane];
    for (n, line) in lines.iter().enumerate() {
        let resized = resize_rgb(line, size);
        let image = &mut data[n * 3 * plane..(n + 1) * 3 * plane];
        for (i, pixel) in resized.chunks_exact(3).enumerate() {
            for (c, value) in pixel.iter().enumerate() {
                image[c * plane + i] = (value / 255.0 - PIXEL_MEAN) / PIXEL_STD;
            }
        }
    }
    Tensor::from_vec(data, (lines.len(), 3, size, size), device)
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// A loaded TrOCR model: encoder, decoder, tokenizer and generation settings, on one device.
///
/// `Send + Sync`; [`TrOcr::read_lines`] takes `&self` and keeps its decoding state per call.
pub struct TrOcr {
    encoder: TrOCREncoder,
    decoder: Decoder,
    tokenizer: Tokenizer,
    device: Device,
    config: ModelConfig,
    /// The weights of a model built in memory ([`TrOcr::tiny_random`]), for [`TrOcr::save_weights`].
    in_memory: Option<HashMap<String, Tensor>>,
}

const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<TrOcr>();
};

impl fmt::Debug for TrOcr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrOcr")
            .field("device", &self.device)
            .field("image_size", &self.config.image_size)
            .field("vocab_size", &self.config.decoder.vocab_size)
            .field("max_length", &self.config.max_length)
            .field("in_memory", &self.in_memory.is_some())
            .finish_non_exhaustive()
    }
}

impl TrOcr {
    /// Loads the checkpoint in `dir` (see the module docs for its files) onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<TrOcr, TrOcrError> {
        check_weights_dir(dir)?;
        let unreadable = |file: &'static str, reason: String| TrOcrError::Unreadable { file, reason };
        let json =
            std::fs::read_to_string(dir.join("config.json")).map_err(|e| unreadable("config.json", e.to_string()))?;
        let config = ModelConfig::parse(&json)?;
        let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| unreadable("tokenizer.json", e.to_string()))?;
        let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), device)
            .map_err(|e| unreadable("model.safetensors", e.to_string()))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
        let model = Self::build(config, vb, tokenizer, device, None)?;
        tracing::info!(dir = %dir.display(), device = ?device, image_size = model.config.image_size, "TrOCR loaded");
        Ok(model)
    }

    /// A tiny TrOCR with random weights (see [`TINY_CONFIG`]) and a word-level tokenizer over
    /// [`TINY_WORDS`], for tests and shape checks. It goes through the same configuration,
    /// weight lookup and preprocessing as [`TrOcr::load`].
    ///
    /// The weights depend only on `seed`: candle's CPU random generator cannot be seeded, so the
    /// tensors' names and shapes are found with a `VarMap` and their values drawn with a
    /// SplitMix64 generator (uniform, variance-preserving for matrices; layer norms near 1 and 0).
    pub fn tiny_random(seed: u64, device: &Device) -> Result<TrOcr, TrOcrError> {
        Self::random(ModelConfig::parse(TINY_CONFIG)?, tiny_tokenizer()?, seed, device)
    }

    /// A model of `config`'s geometry with weights drawn from `seed` (see [`TrOcr::tiny_random`]).
    fn random(config: ModelConfig, tokenizer: Tokenizer, seed: u64, device: &Device) -> Result<TrOcr, TrOcrError> {
        let varmap = VarMap::new();
        {
            let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
            let cross_dim = config.encoder.hidden_size;
            TrOCREncoder::new(&config.encoder, vb.clone()).map_err(weights)?;
            Decoder::load(vb, &config.decoder, cross_dim).map_err(weights)?;
        }
        let mut shapes: Vec<(String, Vec<usize>)> = varmap
            .data()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(name, var)| (name.clone(), var.dims().to_vec()))
            .collect();
        shapes.sort();
        let mut rng = SplitMix64(seed);
        let mut tensors = HashMap::with_capacity(shapes.len());
        for (name, dims) in shapes {
            let values = tiny_values(&name, &dims, &mut rng);
            let tensor = Tensor::from_vec(values, dims.as_slice(), device).map_err(weights)?;
            tensors.insert(name, tensor);
        }
        let vb = VarBuilder::from_tensors(tensors.clone(), DType::F32, device);
        Self::build(config, vb, tokenizer, device, Some(tensors))
    }

    fn build(
        config: ModelConfig,
        vb: VarBuilder,
        tokenizer: Tokenizer,
        device: &Device,
        in_memory: Option<HashMap<String, Tensor>>,
    ) -> Result<TrOcr, TrOcrError> {
        let encoder = TrOCREncoder::new(&config.encoder, vb.clone()).map_err(weights)?;
        let decoder = Decoder::load(vb, &config.decoder, config.encoder.hidden_size).map_err(weights)?;
        Ok(TrOcr { encoder, decoder, tokenizer, device: device.clone(), config, in_memory })
    }

    /// Reads each crop in `lines`, up to `batch` crops through the model at once (0 counts as 1).
    /// One result per crop, in order; nothing for nothing.
    pub fn read_lines(&self, lines: &[LineImage], batch: usize) -> Result<Vec<LineText>, TrOcrError> {
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        for (index, line) in lines.iter().enumerate() {
            check_line(index, line)?;
        }
        let started = Instant::now();
        let batch = batch.max(1);
        let mut out = Vec::with_capacity(lines.len());
        for chunk in lines.chunks(batch) {
            out.extend(self.read_batch(chunk)?);
        }
        tracing::debug!(
            lines = lines.len(),
            batch,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "TrOCR read lines"
        );
        Ok(out)
    }

    fn read_batch(&self, lines: &[LineImage]) -> Result<Vec<LineText>, TrOcrError> {
        let n = lines.len();
        let pixels = pixel_values(lines, self.config.image_size, &self.device).map_err(inference)?;
        let encoded = self.encoder.forward(&pixels).map_err(inference)?;
        let mut caches = self.decoder.start(&encoded).map_err(inference)?;
        let mut greedy = Greedy::new(n, self.config.decoder_start_token_id, self.config.eos_token_id);
        for position in 0..self.config.max_new_tokens {
            let input = Tensor::from_vec(greedy.next.clone(), (n, 1), &self.device).map_err(inference)?;
            let logits = self.decoder.step(&input, position, &mut caches).map_err(inference)?;
            let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1).map_err(inference)?;
            let best = log_probs.argmax_keepdim(D::Minus1).map_err(inference)?;
            let best_log_prob = log_probs.gather(&best, D::Minus1).map_err(inference)?;
            let best: Vec<u32> = best.flatten_all().and_then(|t| t.to_vec1()).map_err(inference)?;
            let best_log_prob: Vec<f32> = best_log_prob.flatten_all().and_then(|t| t.to_vec1()).map_err(inference)?;
            if greedy.record(&best, &best_log_prob) {
                break;
            }
        }
        greedy
            .finish()
            .into_iter()
            .map(|(ids, confidence)| {
                let text = self.tokenizer.decode(&ids, true).map_err(|_| TrOcrError::Detokenize)?;
                Ok(LineText { text: text.trim().to_string(), confidence })
            })
            .collect()
    }

    /// The side of the square the encoder reads (every crop is resized to it).
    pub fn image_size(&self) -> usize {
        self.config.image_size
    }

    /// The maximum length in Hugging Face's sense (start token included).
    pub fn max_length(&self) -> usize {
        self.config.max_length
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The tokenizer (for a tiny model, the one built from [`TINY_WORDS`]).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Writes the weights of a model built in memory ([`TrOcr::tiny_random`]) to `path` as
    /// safetensors, with Hugging Face's tensor names; a loaded model has no copy to write.
    pub fn save_weights(&self, path: &Path) -> Result<(), TrOcrError> {
        let tensors = self.in_memory.as_ref().ok_or(TrOcrError::NotInMemory)?;
        candle_core::safetensors::save(tensors, path).map_err(inference)
    }
}

/// Greedy decoding of a batch: each line's tokens so far, the log-probability of its choices,
/// and whether it has ended.
struct Greedy {
    eos: u32,
    /// The token each line feeds at the next step.
    next: Vec<u32>,
    tokens: Vec<Vec<u32>>,
    log_prob_sum: Vec<f64>,
    chosen: Vec<usize>,
    done: Vec<bool>,
}

impl Greedy {
    fn new(lines: usize, start: u32, eos: u32) -> Self {
        Self {
            eos,
            next: vec![start; lines],
            tokens: vec![Vec::new(); lines],
            log_prob_sum: vec![0.0; lines],
            chosen: vec![0; lines],
            done: vec![false; lines],
        }
    }

    /// Records one step's choice and its log-probability for each line (ignored for lines that
    /// have ended); whether every line has now ended.
    fn record(&mut self, best: &[u32], best_log_prob: &[f32]) -> bool {
        for (i, (&token, &log_prob)) in best.iter().zip(best_log_prob).enumerate() {
            if self.done[i] {
                continue;
            }
            self.log_prob_sum[i] += f64::from(log_prob);
            self.chosen[i] += 1;
            if token == self.eos {
                self.done[i] = true;
            } else {
                self.tokens[i].push(token);
            }
            self.next[i] = token;
        }
        self.done.iter().all(|d| *d)
    }

    /// Each line's tokens (end-of-sequence token left out) and confidence: the geometric mean of
    /// its choices' probabilities × 100.
    fn finish(self) -> Vec<(Vec<u32>, f32)> {
        self.tokens
            .into_iter()
            .zip(self.log_prob_sum.into_iter().zip(self.chosen))
            .map(|(ids, (sum, chosen))| {
                let confidence =
                    if chosen == 0 { 0.0 } else { ((sum / chosen as f64).exp() * 100.0).clamp(0.0, 100.0) };
                (ids, confidence as f32)
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The tiny model
// ---------------------------------------------------------------------------------------------

/// The tiny model's `config.json`, with Hugging Face's key names: a 64×64 image in 16×16 patches,
/// width 32, two heads, two encoder and two decoder layers, a 64-token vocabulary, learned
/// positions, `layernorm_embedding`, an untied output projection, `max_length` 24.
pub const TINY_CONFIG: &str = r#"{
  "architectures": ["VisionEncoderDecoderModel"],
  "model_type": "vision-encoder-decoder",
  "is_encoder_decoder": true,
  "tie_word_embeddings": false,
  "decoder_start_token_id": 2,
  "eos_token_id": 2,
  "pad_token_id": 1,
  "max_length": 24,
  "encoder": {
    "model_type": "vit",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "layer_norm_eps": 1e-12,
    "image_size": 64,
    "patch_size": 16,
    "num_channels": 3,
    "qkv_bias": false
  },
  "decoder": {
    "model_type": "trocr",
    "vocab_size": 64,
    "d_model": 32,
    "cross_attention_hidden_size": 32,
    "decoder_layers": 2,
    "decoder_attention_heads": 2,
    "decoder_ffn_dim": 64,
    "activation_function": "gelu",
    "max_position_embeddings": 64,
    "dropout": 0.1,
    "attention_dropout": 0.0,
    "activation_dropout": 0.0,
    "init_std": 0.02,
    "decoder_layerdrop": 0.0,
    "use_cache": false,
    "scale_embedding": true,
    "use_learned_position_embeddings": true,
    "layernorm_embedding": true,
    "tie_word_embeddings": false,
    "bos_token_id": 0,
    "pad_token_id": 1,
    "eos_token_id": 2,
    "decoder_start_token_id": 2
  }
}"#;

/// The tiny tokenizer's special tokens, ids 0–3 (RoBERTa's order).
pub const TINY_SPECIAL_TOKENS: [&str; 4] = ["<s>", "<pad>", "</s>", "<unk>"];

/// The tiny tokenizer's words, ids 4–63.
pub const TINY_WORDS: [&str; 60] = [
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
    "patient",
    "blood",
    "pressure",
    "heart",
    "rate",
    "pulse",
    "temperature",
    "mg",
    "ml",
    "daily",
    "twice",
    "once",
    "tablet",
    "dose",
    "take",
    "with",
    "food",
    "morning",
    "night",
    "pain",
    "chest",
    "left",
    "right",
    "arm",
    "leg",
    "normal",
    "stable",
    "clear",
    "no",
    "yes",
    "fever",
    "cough",
    "allergy",
    "history",
    "review",
    "follow",
    "up",
    "weeks",
    "days",
    "test",
    "result",
    "negative",
    "positive",
    "scan",
    "note",
    "plan",
    "signed",
    "dr",
    "ward",
    "bed",
];

/// A word-level tokenizer over [`TINY_SPECIAL_TOKENS`] then [`TINY_WORDS`], split on whitespace.
fn tiny_tokenizer() -> Result<Tokenizer, TrOcrError> {
    use tokenizers::AddedToken;
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;

    let build_error = |e: tokenizers::Error| TrOcrError::Unreadable { file: "tokenizer.json", reason: e.to_string() };
    let vocab =
        TINY_SPECIAL_TOKENS.iter().chain(TINY_WORDS.iter()).enumerate().map(|(id, w)| ((*w).to_string(), id as u32));
    let model =
        WordLevel::builder().vocab(vocab.collect()).unk_token("<unk>".to_string()).build().map_err(build_error)?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(WhitespaceSplit));
    tokenizer
        .add_special_tokens(TINY_SPECIAL_TOKENS.iter().map(|t| AddedToken::from(*t, true)))
        .map_err(build_error)?;
    Ok(tokenizer)
}

/// Sebastiano Vigna's SplitMix64: small, and the same sequence for a seed on every build.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn symmetric(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Values for the tiny model's tensor `name` of shape `dims`.
fn tiny_values(name: &str, dims: &[usize], rng: &mut SplitMix64) -> Vec<f32> {
    let count: usize = dims.iter().product();
    if name.contains("norm") {
        let centre = if name.ends_with("weight") { 1.0 } else { 0.0 };
        return (0..count).map(|_| centre + 0.1 * rng.symmetric()).collect();
    }
    let bound = if dims.len() < 2 {
        0.1
    } else {
        // Uniform with variance 1 / fan_in keeps activations around unit scale.
        let fan_in = (count / dims[0].max(1)).max(1);
        (3.0 / fan_in as f32).sqrt()
    };
    (0..count).map(|_| bound * rng.symmetric()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(width: u32, height: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> LineImage {
        let mut rgb = Vec::with_capacity((width * height * 3) as usize);
        for y in 0..height {
            for x in 0..width {
                rgb.extend_from_slice(&f(x, y));
            }
        }
        LineImage { width, height, rgb }
    }

    #[test]
    fn resize_keeps_a_flat_image_flat_and_spreads_one_pixel() {
        let flat = line(37, 5, |_, _| [10, 200, 77]);
        let out = resize_rgb(&flat, 16);
        assert!(out.chunks_exact(3).all(|p| p == [10.0, 200.0, 77.0]), "{out:?}");
        let dot = line(1, 1, |_, _| [1, 2, 3]);
        let out = resize_rgb(&dot, 8);
        assert!(out.chunks_exact(3).all(|p| p == [1.0, 2.0, 3.0]));
    }

    #[test]
    fn resize_interpolates_like_pil_bilinear() {
        // PIL: Image.fromarray([[0, 255]]).resize((4, 1), BILINEAR) → 0, 64, 191, 255.
        let coefficients = resample_coefficients(2, 4);
        let row = [0.0f32, 255.0];
        let values: Vec<f32> =
            coefficients.iter().map(|(first, w)| w.iter().enumerate().map(|(k, w)| w * row[first + k]).sum()).collect();
        assert_eq!(values, vec![0.0, 63.75, 191.25, 255.0]);
        // Shrinking averages: 4 → 2 with the widened triangle.
        let coefficients = resample_coefficients(4, 2);
        assert_eq!(coefficients[0].0, 0);
        assert!((coefficients[0].1.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        // Same size: each output pixel is its input pixel.
        assert_eq!(resample_coefficients(5, 5), (0..5).map(|i| (i, vec![1.0])).collect::<Vec<_>>());
    }

    #[test]
    fn tiny_tokenizer_matches_the_tiny_vocabulary() {
        let config = ModelConfig::parse(TINY_CONFIG).expect("tiny config");
        let tokenizer = tiny_tokenizer().expect("tokenizer");
        assert_eq!(tokenizer.get_vocab_size(true), config.decoder.vocab_size);
        assert_eq!(tokenizer.token_to_id("</s>"), Some(config.eos_token_id));
        let ids = tokenizer.encode("blood pressure normal", false).expect("encode").get_ids().to_vec();
        assert_eq!(tokenizer.decode(&ids, true).expect("decode"), "blood pressure normal");
        assert_eq!(tokenizer.decode(&[0, 15, 2], true).expect("decode"), TINY_WORDS[11]);
    }

    #[test]
    fn configs_that_cannot_work_are_refused_with_a_reason() {
        let mut json: serde_json::Value = serde_json::from_str(TINY_CONFIG).expect("json");
        json["encoder"]["model_type"] = "deit".into();
        let err = ModelConfig::parse(&json.to_string()).expect_err("deit");
        assert!(err.to_string().contains("DeiT"), "{err}");

        let mut json: serde_json::Value = serde_json::from_str(TINY_CONFIG).expect("json");
        json["decoder"]["cross_attention_hidden_size"] = 48.into();
        assert!(matches!(ModelConfig::parse(&json.to_string()), Err(TrOcrError::Config(_))));

        let mut json: serde_json::Value = serde_json::from_str(TINY_CONFIG).expect("json");
        json["encoder"].as_object_mut().expect("object").remove("qkv_bias");
        let err = ModelConfig::parse(&json.to_string()).expect_err("missing key");
        assert!(err.to_string().contains("qkv_bias"), "{err}");
    }

    #[test]
    fn max_length_counts_the_start_token_and_fits_the_position_table() {
        let mut json: serde_json::Value = serde_json::from_str(TINY_CONFIG).expect("json");
        assert_eq!(ModelConfig::parse(&json.to_string()).expect("config").max_new_tokens, 23);
        json.as_object_mut().expect("object").remove("max_length");
        assert_eq!(ModelConfig::parse(&json.to_string()).expect("config").max_new_tokens, 63);
        json["max_length"] = 1000.into();
        assert_eq!(ModelConfig::parse(&json.to_string()).expect("config").max_new_tokens, 64);
    }

    #[test]
    fn greedy_stops_each_line_at_its_end_of_sequence_token() {
        let mut greedy = Greedy::new(2, 2, 2);
        assert!(!greedy.record(&[5, 2], &[-0.1, -0.2]));
        assert_eq!(greedy.next, vec![5, 2]);
        // Line 1 has ended: its later choices do not count.
        assert!(greedy.record(&[2, 7], &[-0.3, -9.0]));
        let finished = greedy.finish();
        assert_eq!(finished[0].0, vec![5]);
        assert!((finished[0].1 - ((-0.2f64).exp() * 100.0) as f32).abs() < 1e-4);
        assert_eq!(finished[1].0, Vec::<u32>::new());
        assert!((finished[1].1 - ((-0.2f64).exp() * 100.0) as f32).abs() < 1e-4);
    }

    /// A model whose output is the same whatever it reads, and is the end-of-sequence token:
    /// every line ends at once, empty, with the model's (high) confidence in that.
    #[test]
    fn a_model_sure_the_line_is_over_reads_empty_lines_confidently() {
        let device = Device::Cpu;
        let tiny = TrOcr::tiny_random(5, &device).expect("tiny");
        let mut tensors = tiny.in_memory.clone().expect("in memory");
        let last = "decoder.model.decoder.layers.1.final_layer_norm";
        let d_model = 32;
        tensors.insert(format!("{last}.weight"), Tensor::zeros(d_model, DType::F32, &device).expect("zeros"));
        tensors.insert(format!("{last}.bias"), Tensor::ones(d_model, DType::F32, &device).expect("ones"));
        let mut projection = vec![0f32; 64 * d_model];
        projection[2 * d_model..3 * d_model].fill(1.0);
        tensors.insert(
            "decoder.output_projection.weight".to_string(),
            Tensor::from_vec(projection, (64, d_model), &device).expect("projection"),
        );
        let config = ModelConfig::parse(TINY_CONFIG).expect("config");
        let vb = VarBuilder::from_tensors(tensors.clone(), DType::F32, &device);
        let model =
            TrOcr::build(config, vb, tiny_tokenizer().expect("tokenizer"), &device, Some(tensors)).expect("model");
        let crops = [line(40, 10, |x, _| [x as u8, 0, 0]), line(3, 3, |_, _| [9, 9, 9])];
        let results = model.read_lines(&crops, 2).expect("read");
        for result in results {
            assert_eq!(result.text, "");
            // logit 32 for the end token, 0 for the 63 others.
            let expected = 100.0 / (1.0 + 63.0 * (-32f64).exp());
            assert!((f64::from(result.confidence) - expected).abs() < 1e-3, "{}", result.confidence);
        }
    }

    /// With the parts candle's decoder leaves out neutralised (zero biases, no
    /// `layernorm_embedding`), this decoder must compute what candle's does from the same tensors.
    #[test]
    fn decoder_agrees_with_candles_where_they_overlap() {
        use candle_transformers::models::trocr::{TrOCRConfig, TrOCRModel};

        let device = Device::Cpu;
        let tiny = TrOcr::tiny_random(3, &device).expect("tiny");
        let mut tensors = tiny.in_memory.clone().expect("in memory");
        for (name, tensor) in tensors.iter_mut() {
            if name.starts_with("decoder.model.decoder.layers.") && name.ends_with(".bias") && !name.contains("norm") {
                *tensor = tensor.zeros_like().expect("zeros");
            }
        }
        let mut json: serde_json::Value = serde_json::from_str(TINY_CONFIG).expect("json");
        json["decoder"]["layernorm_embedding"] = false.into();
        let config = ModelConfig::parse(&json.to_string()).expect("config");
        let candle_decoder: TrOCRConfig = serde_json::from_value(json["decoder"].clone()).expect("candle config");

        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let ours = Decoder::load(vb.clone(), &config.decoder, 32).expect("our decoder");
        let mut theirs = TrOCRModel::new(&config.encoder, &candle_decoder, vb).expect("candle model");

        let crops =
            [line(90, 20, |x, y| [(x * 3) as u8, (y * 9) as u8, 128]), line(30, 30, |x, _| [0, 0, (x * 8) as u8])];
        let pixels = pixel_values(&crops, config.image_size, &device).expect("pixels");
        let encoded = tiny.encoder.forward(&pixels).expect("encoder");
        let theirs_encoded = theirs.encoder().forward(&pixels).expect("candle encoder");
        let diff = (&encoded - &theirs_encoded).and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>()).expect("diff");
        assert!(diff < 1e-5, "encoders differ by {diff}");

        let mut caches = ours.start(&encoded).expect("caches");
        let mut next = vec![2u32; 2];
        for position in 0..6 {
            let input = Tensor::from_vec(next.clone(), (2, 1), &device).expect("input");
            let ours_logits = ours.step(&input, position, &mut caches).expect("ours");
            let theirs_logits = theirs.decode(&input, &encoded, position).expect("theirs").squeeze(1).expect("squeeze");
            let diff =
                (&ours_logits - &theirs_logits).and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>()).expect("diff");
            assert!(diff < 1e-4, "step {position}: logits differ by {diff}");
            next = ours_logits.argmax(D::Minus1).and_then(|t| t.to_vec1()).expect("argmax");
        }
    }
}
