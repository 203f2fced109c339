//! Recall and latency of the embedded vector index ([`careport_ml::index::VectorIndex`]).
//!
//! ```sh
//! cargo run --release -p careport-ml --example search_bench -- --n 100000 --queries 1000 --dim 384 --k 10
//! ```
//! Makes `n` synthetic unit vectors in clusters (seeded: `n / 100` random centres, each vector
//! its centre plus Gaussian noise of norm 0.6, so about cosine 0.86 to it, as embeddings of
//! related passages sit together) and `queries` more the same way, loads them with
//! `insert_batch` (all cores) and runs every query on one thread, once without a filter and
//! once with a filter hiding 90 % of the ids (by a hash of the id). recall@k is measured
//! against exact brute force over the same vectors. Prints the build time and the index's
//! memory on stderr, then one line per configuration on stdout:
//! `embedded <none|90%> recall@k p50_ms p99_ms` (`bench/search.sh` prints the header).

use std::time::Instant;

use anyhow::{Context, bail};
use careport_ml::index::VectorIndex;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

struct Args {
    n: usize,
    queries: usize,
    dim: usize,
    k: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args { n: 100_000, queries: 1000, dim: 384, k: 10 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value: usize = it.next().with_context(|| format!("{flag} needs a value"))?.parse()?;
        match flag.as_str() {
            "--n" => args.n = value,
            "--queries" => args.queries = value,
            "--dim" => args.dim = value,
            "--k" => args.k = value,
            _ => bail!("unknown flag {flag} (flags: --n --queries --dim --k)"),
        }
    }
    if args.n == 0 || args.queries == 0 || args.dim == 0 || args.k == 0 {
        bail!("--n, --queries, --dim and --k must be positive");
    }
    Ok(args)
}

fn gaussian(rng: &mut StdRng) -> f32 {
    let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
    ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
}

/// `count` vectors around `centres`, from `seed`.
fn around(centres: &[Vec<f32>], count: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let dim = centres[0].len();
    let sigma = 0.6 / (dim as f32).sqrt();
    (0..count)
        .map(|_| {
            let centre = &centres[rng.random_range(0..centres.len())];
            let mut v: Vec<f32> = centre.iter().map(|c| c + sigma * gaussian(&mut rng)).collect();
            normalise(&mut v);
            v
        })
        .collect()
}

/// The id filter of the "90%" configuration: keeps one id in ten, by a hash.
fn visible(id: u64) -> bool {
    let mut x = id.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)).is_multiple_of(10)
}

/// Exact top `k` by brute force, over all ids and over the visible ones.
fn exact(data: &[Vec<f32>], query: &[f32], k: usize) -> (Vec<u64>, Vec<u64>) {
    let scored: Vec<(f32, u64)> = data.iter().enumerate().map(|(i, v)| (dot(v, query), i as u64)).collect();
    let kept: Vec<(f32, u64)> = scored.iter().copied().filter(|s| visible(s.1)).collect();
    (top(scored, k), top(kept, k))
}

fn top(mut scored: Vec<(f32, u64)>, k: usize) -> Vec<u64> {
    let by_score = |a: &(f32, u64), b: &(f32, u64)| b.0.total_cmp(&a.0);
    if scored.len() > k {
        scored.select_nth_unstable_by(k, by_score);
        scored.truncate(k);
    }
    scored.sort_unstable_by(by_score);
    scored.into_iter().map(|s| s.1).collect()
}

/// Plain f32 dot product, 8 lanes.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let Args { n, queries, dim, k } = args()?;
    let mut rng = StdRng::seed_from_u64(2026);
    let centres: Vec<Vec<f32>> = (0..(n / 100).max(1))
        .map(|_| {
            let mut c: Vec<f32> = (0..dim).map(|_| gaussian(&mut rng)).collect();
            normalise(&mut c);
            c
        })
        .collect();
    let data = around(&centres, n, 1);
    let probes = around(&centres, queries, 2);
    let started = Instant::now();
    let truth: Vec<(Vec<u64>, Vec<u64>)> = probes.par_iter().map(|q| exact(&data, q, k)).collect();
    eprintln!("exact search for {queries} queries: {:.1} s", started.elapsed().as_secs_f64());

    let index = VectorIndex::new(dim);
    let items: Vec<(u64, Vec<f32>)> = data.into_iter().enumerate().map(|(i, v)| (i as u64, v)).collect();
    let started = Instant::now();
    index.insert_batch(&items);
    let build = started.elapsed().as_secs_f64();
    drop(items);
    eprintln!(
        "build: {n} x {dim} in {build:.1} s on {} threads; index memory {:.1} MiB",
        rayon::current_num_threads(),
        index.memory_bytes() as f64 / (1 << 20) as f64
    );

    let hide: &(dyn Fn(u64) -> bool + Sync) = &visible;
    for (label, filter) in [("none", None), ("90%", Some(hide))] {
        let mut times = Vec::with_capacity(queries);
        let mut hits = 0usize;
        let mut wanted = 0usize;
        for (q, (all, kept)) in probes.iter().zip(&truth) {
            let started = Instant::now();
            let found = index.search(q, k, filter);
            times.push(started.elapsed().as_secs_f64() * 1e3);
            let expected = if filter.is_some() { kept } else { all };
            wanted += expected.len();
            hits += found.iter().filter(|(id, _)| expected.contains(id)).count();
        }
        times.sort_unstable_by(f64::total_cmp);
        let recall = hits as f64 / wanted as f64;
        println!("embedded {label} {recall:.4} {:.3} {:.3}", percentile(&times, 0.5), percentile(&times, 0.99));
    }
    Ok(())
}
