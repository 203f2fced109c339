//! MiniLM's BERT encoder, written for one job: sentence vectors on the CPU.
//!
//! It computes what candle-transformers' `BertModel` computes (post-norm BERT, absolute
//! positions, exact-erf GELU), in a shape that suits embedding batches of texts of different
//! lengths. Why not `BertModel` (measured, bench/README.md, #19):
//! - **No padding is ever computed.** A padded batch sends every text through every layer at
//!   the length of the batch's longest. Here the batch's tokens are packed end to end: the
//!   matrix products (nearly all the work) run over real tokens only, and attention runs text
//!   by text, so no mask is needed either — the vectors are the unpadded model's, exactly.
//! - **The exact GELU without a scalar `erff` per activation** (14 % of the time before): a
//!   rational approximation of erf (the one Eigen and XLA vectorise; error below 1e-6, checked
//!   against libm's `erf` by a test), in loops the compiler vectorises.
//! - **One product for Q, K and V** (their weights are concatenated at load), and no tensor
//!   operation between the products: bias, residual, layer norm, softmax and GELU are plain
//!   loops over slices, run inside `pulp`'s dispatch so that they compile for AVX2+FMA (a
//!   default x86-64 build may only assume SSE2), and split over the caller's rayon pool.
//!
//! The matrix products are candle's (`gemm`). Everything here is synchronous CPU work.

use std::collections::HashMap;

use anyhow::{Context as _, bail};
use candle_core::{CpuStorage, DType, Device, Storage, Tensor};
use rayon::prelude::*;

/// What the encoder needs from `config.json`; anything it does not implement is refused.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_position")]
    pub position_embedding_type: String,
}

fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}
fn default_position() -> String {
    "absolute".into()
}

/// The stack of transformer layers: packed token rows in, packed hidden states out.
pub struct Encoder {
    hidden: usize,
    heads: usize,
    layers: Vec<Layer>,
    arch: pulp::Arch,
}

/// BERT's embeddings from f32 tables: word + position + token type 0, then a layer norm.
pub struct Embeddings {
    hidden: usize,
    vocab: usize,
    max_positions: usize,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    norm: Norm,
}

/// A layer norm's scale and shift.
pub struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

/// `y = x Wᵀ + b`, with `Wᵀ` stored contiguous (`[in, out]`) for the product.
struct Linear {
    weight_t: Tensor,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

struct Layer {
    qkv: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

/// The weights by name, as `candle_core::safetensors::load` returns them.
pub type Weights = HashMap<String, Tensor>;

fn tensor<'a>(w: &'a Weights, name: &str) -> anyhow::Result<&'a Tensor> {
    w.get(name).or_else(|| w.get(&format!("bert.{name}"))).with_context(|| format!("weight `{name}` is missing"))
}

fn vector(w: &Weights, name: &str, len: usize) -> anyhow::Result<Vec<f32>> {
    let t = tensor(w, name)?.to_dtype(DType::F32)?;
    let v = t.flatten_all()?.to_vec1::<f32>()?;
    if v.len() != len {
        bail!("weight `{name}` has {} values, expected {len}", v.len());
    }
    Ok(v)
}

impl Norm {
    /// `{prefix}.weight` and `{prefix}.bias`, `hidden` wide.
    pub fn load(w: &Weights, prefix: &str, hidden: usize, eps: f64) -> anyhow::Result<Self> {
        Ok(Self {
            weight: vector(w, &format!("{prefix}.weight"), hidden)?,
            bias: vector(w, &format!("{prefix}.bias"), hidden)?,
            eps: eps as f32,
        })
    }

    /// Normalise each `hidden`-wide row of `x` in place.
    pub fn apply(&self, x: &mut [f32], arch: pulp::Arch) {
        add_and_norm(x, None, self, self.weight.len(), arch);
    }
}

impl Linear {
    /// The layers named by `prefixes`, stacked along their outputs (Q, K and V as one).
    fn load(w: &Weights, prefixes: &[&str], inputs: usize) -> anyhow::Result<Self> {
        let mut transposed = Vec::new();
        let mut bias = Vec::new();
        for p in prefixes {
            let t = tensor(w, &format!("{p}.weight"))?.to_dtype(DType::F32)?;
            let (_, cols) = t.dims2().with_context(|| format!("weight `{p}.weight` is not a matrix"))?;
            if cols != inputs {
                bail!("weight `{p}.weight` takes {cols} inputs, expected {inputs}");
            }
            bias.extend(vector(w, &format!("{p}.bias"), t.dim(0)?)?);
            transposed.push(t.t()?);
        }
        // One copy straight from the checkpoint's matrices into `[in, out]`: an intermediate
        // (stacked, then transposed) would be freed between live matrices and stay in the
        // allocator's heap for the process's life (6 MiB of the portal's idle RSS, measured).
        let weight_t = match transposed.as_slice() {
            [one] => one.contiguous()?,
            many => Tensor::cat(many, 1)?,
        };
        let outputs = weight_t.dim(1)?;
        Ok(Self { weight_t, bias, inputs, outputs })
    }

    /// `rows × inputs` in, `rows × outputs` out, bias added.
    fn forward(&self, input: Vec<f32>, rows: usize, arch: pulp::Arch) -> anyhow::Result<Vec<f32>> {
        let product = Tensor::from_vec(input, (rows, self.inputs), &Device::Cpu)?.matmul(&self.weight_t)?;
        let (storage, layout) = product.storage_and_layout();
        let Storage::Cpu(CpuStorage::F32(data)) = &*storage else {
            bail!("the product is not f32 on the CPU");
        };
        let data = &data[layout.start_offset()..][..rows * self.outputs];
        let mut out = vec![0f32; rows * self.outputs];
        let n = self.outputs;
        let bias = &self.bias;
        out.par_chunks_mut(n * 16)
            .zip(data.par_chunks(n * 16))
            .for_each(|(o, d)| arch.dispatch(AddBias { out: o, product: d, bias }));
        Ok(out)
    }
}

// The kernels. `pulp::Arch::dispatch` runs each in a function compiled for the widest vector
// instructions the CPU has (chosen at run time; a default x86-64 build may only assume SSE2).
// They are passed as structs, not closures: a closure's body was compiled on its own, outside
// that function, as SSE2 (seen in `perf`); everything a kernel calls is `#[inline(always)]` so
// that it is compiled there too.

/// A kernel for `pulp::Arch::dispatch`: a struct of its arguments calling `$body`.
macro_rules! kernel {
    ($name:ident $(<$lt:lifetime>)? ($($field:ident: $ty:ty),*) => $body:expr) => {
        struct $name$(<$lt>)? { $($field: $ty),* }
        impl$(<$lt>)? pulp::WithSimd for $name$(<$lt>)? {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: pulp::Simd>(self, _: S) {
                let Self { $($field),* } = self;
                $body
            }
        }
    };
}

kernel!(AddBias<'a>(out: &'a mut [f32], product: &'a [f32], bias: &'a [f32]) => add_bias(out, product, bias));
kernel!(NormRows<'a>(x: &'a mut [f32], residual: Option<&'a [f32]>, norm: &'a Norm, h: usize) => norm_rows(x, residual, norm, h));
kernel!(Attend<'a>(rows: &'a [f32], out: &'a mut [f32], len: usize, h: usize, heads: usize) => attend(rows, out, len, h, heads));
kernel!(Gelu<'a>(x: &'a mut [f32]) => gelu_in_place(x));

/// `out = product + bias`, row by row.
#[inline(always)]
fn add_bias(out: &mut [f32], product: &[f32], bias: &[f32]) {
    let n = bias.len();
    for (orow, prow) in out.chunks_exact_mut(n).zip(product.chunks_exact(n)) {
        for ((y, x), b) in orow.iter_mut().zip(prow).zip(bias) {
            *y = x + b;
        }
    }
}

impl Embeddings {
    /// `embeddings.*` of a BERT checkpoint.
    pub fn load(config: &Config, w: &Weights) -> anyhow::Result<Self> {
        check(config)?;
        let h = config.hidden_size;
        let word = vector(w, "embeddings.word_embeddings.weight", config.vocab_size * h)?;
        let position = vector(w, "embeddings.position_embeddings.weight", config.max_position_embeddings * h)?;
        let token_types = tensor(w, "embeddings.token_type_embeddings.weight")?.to_dtype(DType::F32)?;
        let token_type = token_types.get(0)?.to_vec1::<f32>()?;
        if token_type.len() != h {
            bail!("token type embeddings have width {}, expected {h}", token_type.len());
        }
        Ok(Self {
            hidden: h,
            vocab: config.vocab_size,
            max_positions: config.max_position_embeddings,
            word,
            position,
            token_type,
            norm: Norm::load(w, "embeddings.LayerNorm", h, config.layer_norm_eps)?,
        })
    }

    /// The packed rows of these texts of token ids (special tokens included, already cut to
    /// the position table), and each text's length.
    pub fn forward(&self, texts: &[&[u32]], arch: pulp::Arch) -> anyhow::Result<(Vec<f32>, Vec<usize>)> {
        let h = self.hidden;
        let lens: Vec<usize> = texts.iter().map(|t| t.len()).collect();
        if let Some(l) = lens.iter().find(|&&l| l == 0 || l > self.max_positions) {
            bail!("a text of {l} tokens (1 to {} are possible)", self.max_positions);
        }
        if let Some(id) = texts.iter().flat_map(|t| t.iter()).find(|&&id| id as usize >= self.vocab) {
            bail!("token id {id} is outside the vocabulary");
        }
        let mut x = vec![0f32; lens.iter().sum::<usize>() * h];
        let mut rows = x.chunks_exact_mut(h);
        for t in texts {
            for (p, &id) in t.iter().enumerate() {
                let word = &self.word[id as usize * h..][..h];
                let position = &self.position[p * h..][..h];
                let Some(row) = rows.next() else { bail!("rows miscounted") };
                for (((y, a), b), c) in row.iter_mut().zip(word).zip(position).zip(&self.token_type) {
                    *y = a + b + c;
                }
            }
        }
        self.norm.apply(&mut x, arch);
        Ok((x, lens))
    }
}

/// Refuse what the encoder does not implement.
fn check(config: &Config) -> anyhow::Result<()> {
    if config.hidden_act != "gelu" {
        bail!("hidden_act `{}` is not supported (only the exact `gelu`)", config.hidden_act);
    }
    if config.position_embedding_type != "absolute" {
        bail!("position_embedding_type `{}` is not supported", config.position_embedding_type);
    }
    let h = config.hidden_size;
    if h == 0 || h > MAX_HIDDEN {
        bail!("hidden_size {h} is not between 1 and {MAX_HIDDEN}");
    }
    if config.num_attention_heads == 0 || !h.is_multiple_of(config.num_attention_heads) {
        bail!("hidden_size {h} does not split into {} heads", config.num_attention_heads);
    }
    Ok(())
}

impl Encoder {
    /// The layers `{prefix}.{i}.*` (`encoder.layer` in a BERT checkpoint).
    pub fn load(config: &Config, w: &Weights, prefix: &str) -> anyhow::Result<Self> {
        check(config)?;
        let (h, eps) = (config.hidden_size, config.layer_norm_eps);
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let p = format!("{prefix}.{i}");
                let a = format!("{p}.attention");
                Ok(Layer {
                    qkv: Linear::load(
                        w,
                        &[&format!("{a}.self.query"), &format!("{a}.self.key"), &format!("{a}.self.value")],
                        h,
                    )?,
                    attention_out: Linear::load(w, &[&format!("{a}.output.dense")], h)?,
                    attention_norm: Norm::load(w, &format!("{a}.output.LayerNorm"), h, eps)?,
                    intermediate: Linear::load(w, &[&format!("{p}.intermediate.dense")], h)?,
                    output: Linear::load(w, &[&format!("{p}.output.dense")], config.intermediate_size)?,
                    output_norm: Norm::load(w, &format!("{p}.output.LayerNorm"), h, eps)?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { hidden: h, heads: config.num_attention_heads, layers, arch: pulp::Arch::new() })
    }

    /// The width of the hidden states.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// The run-time SIMD choice, for the embeddings and pooling around [`Self::forward`].
    pub fn arch(&self) -> pulp::Arch {
        self.arch
    }

    /// Every layer over the packed rows `x` of texts of `lens` tokens. Runs on the caller's
    /// rayon pool.
    pub fn forward(&self, mut x: Vec<f32>, lens: &[usize]) -> anyhow::Result<Vec<f32>> {
        let (h, arch) = (self.hidden, self.arch);
        let rows: usize = lens.iter().sum();
        if x.len() != rows * h {
            bail!("{} values for {rows} rows of {h}", x.len());
        }
        for layer in &self.layers {
            let qkv = layer.qkv.forward(x.clone(), rows, arch)?;
            let context = attention(&qkv, lens, h, self.heads, arch);
            let attended = layer.attention_out.forward(context, rows, arch)?;
            add_and_norm(&mut x, Some(&attended), &layer.attention_norm, h, arch);
            let mut inner = layer.intermediate.forward(x.clone(), rows, arch)?;
            gelu(&mut inner, arch);
            let out = layer.output.forward(inner, rows, arch)?;
            add_and_norm(&mut x, Some(&out), &layer.output_norm, h, arch);
        }
        Ok(x)
    }
}

/// Sentence vectors from packed hidden states: the mean over each text's rows, unit length.
pub fn mean_pool(x: &[f32], lens: &[usize], h: usize) -> Vec<Vec<f32>> {
    let mut vectors = Vec::with_capacity(lens.len());
    let mut rows = x.chunks_exact(h);
    for &len in lens {
        let mut v = vec![0f32; h];
        for row in rows.by_ref().take(len) {
            for (s, r) in v.iter_mut().zip(row) {
                *s += r;
            }
        }
        let mean = 1.0 / len.max(1) as f32;
        v.iter_mut().for_each(|s| *s *= mean);
        let norm = v.iter().map(|s| s * s).sum::<f32>().sqrt().max(1e-12);
        v.iter_mut().for_each(|s| *s /= norm);
        vectors.push(v);
    }
    vectors
}

/// `x = norm(x + residual)` row by row (`residual` absent: `x = norm(x)`).
fn add_and_norm(x: &mut [f32], residual: Option<&[f32]>, norm: &Norm, h: usize, arch: pulp::Arch) {
    let rows_per_task = 16;
    match residual {
        Some(res) => x
            .par_chunks_mut(h * rows_per_task)
            .zip(res.par_chunks(h * rows_per_task))
            .for_each(|(c, r)| arch.dispatch(NormRows { x: c, residual: Some(r), norm, h })),
        None => {
            x.par_chunks_mut(h * rows_per_task).for_each(|c| arch.dispatch(NormRows { x: c, residual: None, norm, h }))
        }
    }
}

#[inline(always)]
fn norm_rows(x: &mut [f32], residual: Option<&[f32]>, norm: &Norm, h: usize) {
    for (i, row) in x.chunks_exact_mut(h).enumerate() {
        if let Some(res) = residual {
            for (y, r) in row.iter_mut().zip(&res[i * h..(i + 1) * h]) {
                *y += r;
            }
        }
        norm_row(row, norm);
    }
}

#[inline(always)]
fn norm_row(row: &mut [f32], norm: &Norm) {
    let n = row.len() as f32;
    let mean = sum(row) / n;
    let mut var = [0f32; LANES];
    let (chunks, tail) = row.as_chunks::<LANES>();
    for c in chunks {
        for (v, x) in var.iter_mut().zip(c) {
            *v += (x - mean) * (x - mean);
        }
    }
    let var = (var.iter().sum::<f32>() + tail.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>()) / n;
    let inv = 1.0 / (var + norm.eps).sqrt();
    for ((v, w), b) in row.iter_mut().zip(&norm.weight).zip(&norm.bias) {
        *v = (*v - mean) * inv * w + b;
    }
}

/// Self-attention of each text over its own tokens. `qkv` is `rows × 3h` (Q, K, V side by
/// side); the result is `rows × h`, heads side by side as BERT lays them out.
fn attention(qkv: &[f32], lens: &[usize], h: usize, heads: usize, arch: pulp::Arch) -> Vec<f32> {
    let mut out = vec![0f32; qkv.len() / 3];
    // Each text's rows of the output, to fill in parallel.
    let mut parts = Vec::with_capacity(lens.len());
    let mut rest = out.as_mut_slice();
    let mut start = 0;
    for &len in lens {
        let (mine, tail) = rest.split_at_mut(len * h);
        parts.push((start, len, mine));
        rest = tail;
        start += len;
    }
    parts.into_par_iter().for_each(|(start, len, out)| {
        arch.dispatch(Attend { rows: &qkv[start * 3 * h..(start + len) * 3 * h], out, len, h, heads })
    });
    out
}

/// One text's attention, every head: `rows` its `len × 3h` Q, K, V; `out` its `len × h`. Heads
/// of 32 (MiniLM, e5-small) and 64 (BERT-base) values get a kernel whose accumulators are
/// fixed-size arrays, kept in registers; others the general loop.
#[inline(always)]
fn attend(rows: &[f32], out: &mut [f32], len: usize, h: usize, heads: usize) {
    match h / heads {
        32 => attend_d::<32>(rows, out, len, h, heads),
        64 => attend_d::<64>(rows, out, len, h, heads),
        _ => attend_any(rows, out, len, h, heads),
    }
}

#[inline(always)]
fn attend_d<const D: usize>(rows: &[f32], out: &mut [f32], len: usize, h: usize, heads: usize) {
    let scale = 1.0 / (D as f32).sqrt();
    let blocks = len.div_ceil(BLOCK);
    let mut scores = vec![0f32; blocks * BLOCK];
    // One head's keys in blocks of BLOCK, each block transposed (`kb[(b·D + c)·BLOCK + l]` is
    // value c of key b·BLOCK + l; zeros past the last key): a query's scores against a block are
    // then sums of scaled contiguous rows, which vectorise without a horizontal sum per pair.
    let mut kb = vec![0f32; blocks * D * BLOCK];
    for head in 0..heads {
        let (q_at, k_at, v_at) = (head * D, h + head * D, 2 * h + head * D);
        for (j, row) in rows.chunks_exact(3 * h).enumerate() {
            let Some(k) = row[k_at..].first_chunk::<D>() else { continue };
            let (b, l) = (j / BLOCK, j % BLOCK);
            for (c, kc) in k.iter().enumerate() {
                kb[(b * D + c) * BLOCK + l] = *kc;
            }
        }
        for (i, row) in rows.chunks_exact(3 * h).enumerate() {
            let Some(q) = row[q_at..].first_chunk::<D>() else { continue };
            let q = q.map(|x| x * scale);
            for (block, s) in kb.chunks_exact(D * BLOCK).zip(scores.chunks_exact_mut(BLOCK)) {
                let mut acc = [0f32; BLOCK];
                for (k, qc) in block.chunks_exact(BLOCK).zip(&q) {
                    for (a, k) in acc.iter_mut().zip(k) {
                        *a += qc * k;
                    }
                }
                s.copy_from_slice(&acc);
            }
            let scores = &mut scores[..len];
            let total = exp_shifted(scores);
            let mut acc = [0f32; D];
            for (p, row) in scores.iter().zip(rows.chunks_exact(3 * h)) {
                let Some(v) = row[v_at..].first_chunk::<D>() else { continue };
                for (a, x) in acc.iter_mut().zip(v) {
                    *a += p * x;
                }
            }
            let inv = 1.0 / total;
            if let Some(o) = out[i * h + head * D..].first_chunk_mut::<D>() {
                for (y, a) in o.iter_mut().zip(acc) {
                    *y = a * inv;
                }
            }
        }
    }
}

/// [`attend`] for any head width.
#[inline(always)]
fn attend_any(rows: &[f32], out: &mut [f32], len: usize, h: usize, heads: usize) {
    let d = h / heads;
    let scale = 1.0 / (d as f32).sqrt();
    let mut scores = vec![0f32; len];
    for head in 0..heads {
        let (q_at, k_at, v_at) = (head * d, h + head * d, 2 * h + head * d);
        for i in 0..len {
            let q = &rows[i * 3 * h + q_at..][..d];
            for (j, s) in scores.iter_mut().enumerate() {
                *s = dot(q, &rows[j * 3 * h + k_at..][..d]) * scale;
            }
            let total = exp_shifted(&mut scores);
            let o = &mut out[i * h + head * d..][..d];
            o.fill(0.0);
            for (j, p) in scores.iter().enumerate() {
                for (y, x) in o.iter_mut().zip(&rows[j * 3 * h + v_at..][..d]) {
                    *y += p * x;
                }
            }
            let inv = 1.0 / total;
            o.iter_mut().for_each(|y| *y *= inv);
        }
    }
}

/// Keys scored at once against one query in [`attention`] (two AVX2 registers).
const BLOCK: usize = 16;

/// The exact GELU, `x · Φ(x) = x/2 · (1 + erf(x/√2))`, in place.
fn gelu(x: &mut [f32], arch: pulp::Arch) {
    x.par_chunks_mut(1 << 14).for_each(|chunk| arch.dispatch(Gelu { x: chunk }));
}

#[inline(always)]
fn gelu_in_place(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// Lanes of the partial sums: floating-point addition is not associative, so the compiler
/// vectorises a sum only when the code itself keeps this many running sums.
const LANES: usize = 8;

/// The widest hidden layer this encoder takes (MiniLM: 384, BERT-large: 1024): a bound on what a
/// config file may ask for.
const MAX_HIDDEN: usize = 4096;

/// `Σ aᵢbᵢ` over the shorter of the two, in [`LANES`] running sums.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (ac, at) = a[..n].as_chunks::<LANES>();
    let (bc, bt) = b[..n].as_chunks::<LANES>();
    let mut acc = [0f32; LANES];
    for (x, y) in ac.iter().zip(bc) {
        for ((a, x), y) in acc.iter_mut().zip(x).zip(y) {
            *a += x * y;
        }
    }
    acc.iter().sum::<f32>() + at.iter().zip(bt).map(|(x, y)| x * y).sum::<f32>()
}

/// Softmax's numerators in place, `s = e^(s − max)`, and their sum. Max and sum are kept in
/// [`LANES`] running values and the exponentials in a loop of their own: a running total in the
/// same loop would keep it from being vectorised (one exponential per score is most of the
/// attention's time on long texts).
#[inline(always)]
fn exp_shifted(scores: &mut [f32]) -> f32 {
    let (chunks, tail) = scores.as_chunks::<LANES>();
    let mut lanes = [f32::NEG_INFINITY; LANES];
    for c in chunks {
        for (m, x) in lanes.iter_mut().zip(c) {
            *m = m.max(*x);
        }
    }
    let max = lanes.iter().chain(tail).fold(f32::NEG_INFINITY, |m, x| m.max(*x));
    for s in scores.iter_mut() {
        *s = exp(*s - max);
    }
    sum(scores)
}

/// `Σ xᵢ` in [`LANES`] running sums.
#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let (chunks, tail) = x.as_chunks::<LANES>();
    let mut acc = [0f32; LANES];
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + tail.iter().sum::<f32>()
}

/// `eˣ` for `x ≤ 0` (softmax's shifted scores), Cephes' `expf`: `2ⁿ · e^r` with `|r| ≤ ln2/2`
/// and a degree-6 polynomial for `e^r`; relative error about 1e-7, no branch, no libm call.
#[inline(always)]
fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 0.0);
    let n = (x * std::f32::consts::LOG2_E).round();
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4 * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// erf for f32 as a rational function of `x` on [-4, 4] (outside, erf is ±1 in f32): the
/// approximation Eigen and XLA use for their vectorised erf. No branch, no table, no libm call,
/// so the loop around it vectorises; the test below bounds its error against libm.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p - 2.101_024e-6;
    p = x2 * p - 5.692_506_4e-5;
    p = x2 * p - 7.349_906_3e-4;
    p = x2 * p - 2.954_6e-3;
    p = x2 * p - 1.609_603_3e-2;
    let p = x * p;
    let mut q = x2 * -1.456_607_2e-5 - 2.133_740_6e-4;
    q = x2 * q - 1.682_827e-3;
    q = x2 * q - 7.373_329e-3;
    q = x2 * q - 1.426_474e-2;
    p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libm-quality erf in f64 (Abramowitz–Stegun 7.1.28 is too coarse; use the series and the
    /// continued fraction), as the reference for the approximation.
    fn erf_reference(x: f64) -> f64 {
        // The Taylor series converges fast for |x| < 3; beyond, erf is 1 - erfc with a tiny erfc.
        if x.abs() < 3.0 {
            let mut sum = x;
            let mut term = x;
            let x2 = x * x;
            for n in 1..200 {
                term *= -x2 / n as f64;
                let add = term / (2 * n + 1) as f64;
                sum += add;
                if add.abs() < 1e-17 {
                    break;
                }
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // Continued fraction for erfc (Lentz), accurate for x ≥ 3.
            let a = x.abs();
            let mut f = 0.0;
            for n in (1..60).rev() {
                f = (n as f64 / 2.0) / (a + f);
            }
            let erfc = (-a * a).exp() / (std::f64::consts::PI.sqrt() * (a + f));
            (1.0 - erfc).copysign(x)
        }
    }

    #[test]
    fn erf_is_within_a_millionth_of_the_reference() {
        let mut worst = 0f64;
        for i in -60_000..=60_000 {
            let x = i as f64 / 10_000.0;
            let e = (erf(x as f32) as f64 - erf_reference(x)).abs();
            worst = worst.max(e);
        }
        assert!(worst < 1e-6, "worst error {worst:e}");
        assert_eq!(erf(0.0), 0.0);
        assert!((erf(10.0) - 1.0).abs() < 1e-6 && (erf(-10.0) + 1.0).abs() < 1e-6);
    }

    #[test]
    fn exp_is_within_two_ten_millionths_relative() {
        for i in 0..=870_000 {
            let x = -(i as f32) / 10_000.0;
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            assert!(((got - want) / want).abs() < 2e-7, "exp({x}) = {got}, want {want}");
        }
    }

    #[test]
    fn the_attention_kernels_agree_with_the_general_loop() {
        // A fixed pseudo-random Q, K, V (no rand dependency needed for this).
        let mut seed = 0x9e37_79b9_u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed as f32 / u32::MAX as f32) * 2.0 - 1.0
        };
        for (h, heads) in [(384, 12), (128, 2)] {
            for len in [1, 5, 16, 17, 40, 130] {
                let rows: Vec<f32> = (0..len * 3 * h).map(|_| next()).collect();
                let (mut fast, mut slow) = (vec![0f32; len * h], vec![0f32; len * h]);
                attend(&rows, &mut fast, len, h, heads);
                attend_any(&rows, &mut slow, len, h, heads);
                let worst = fast.iter().zip(&slow).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(worst < 1e-5, "h {h}, {heads} heads, {len} tokens: differ by {worst}");
                assert!(fast.iter().any(|v| *v != 0.0));
            }
        }
    }

    #[test]
    fn dot_sums_every_element() {
        let a: Vec<f32> = (0..37).map(|i| i as f32).collect();
        let b = vec![2.0f32; 40];
        assert_eq!(dot(&a, &b), 2.0 * (0..37).sum::<i32>() as f32);
    }

    #[test]
    fn gelu_matches_its_definition() {
        let mut xs: Vec<f32> = (-800..=800).map(|i| i as f32 / 100.0).collect();
        let want: Vec<f64> =
            xs.iter().map(|&x| 0.5 * x as f64 * (1.0 + erf_reference(x as f64 / std::f64::consts::SQRT_2))).collect();
        gelu(&mut xs, pulp::Arch::new());
        for (g, w) in xs.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-5, "{g} vs {w}");
        }
    }
}
