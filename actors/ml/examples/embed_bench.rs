//! Embedding throughput and latency of the local MiniLM (bench/README.md).
//!
//! ```sh
//! embed_bench MODEL_DIR                    # everything in one process
//! embed_bench MODEL_DIR THREADS BATCH      # one throughput configuration
//! embed_bench MODEL_DIR latency            # the latency run only
//! ```
//! `bench/embeddings.sh` runs each thread count in its own process (see there why).
//!
//! On 1,000 short clinical sentences: sentences/s at batch 1 and 32, with 1 and 2 threads;
//! then, through the batching pool, the p50/p99 latency of single-sentence requests while 16
//! others are in flight; and the process's peak RSS.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use careport_ml::minilm::MiniLm;
use careport_ml::{EmbeddingProvider, LocalConfig, LocalEmbedder};

/// The 1,000 sentences below, or the lines of the file `EMBED_BENCH_FILE` names (longer texts,
/// for instance).
fn sentences() -> Vec<String> {
    if let Some(path) = std::env::var_os("EMBED_BENCH_FILE") {
        let text = std::fs::read_to_string(&path).expect("EMBED_BENCH_FILE");
        return text.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect();
    }
    let who = [
        "The patient",
        "A 54-year-old woman",
        "The child",
        "An elderly man",
        "The resident",
        "She",
        "He",
        "The outpatient",
        "The donor",
        "The athlete",
    ];
    let what = [
        "reports chest pain radiating to the left arm",
        "has had a productive cough for three days",
        "presents with fever and night sweats",
        "complains of persistent lower back pain",
        "shows elevated blood pressure at 160 over 95",
        "describes shortness of breath on exertion",
        "has a rash on both forearms",
        "reports nausea after starting metformin",
        "has swelling in the right ankle after a fall",
        "mentions fatigue and unexplained weight loss",
    ];
    let when = [
        "since this morning.",
        "for two weeks.",
        "after the last chemotherapy cycle.",
        "at night.",
        "despite treatment.",
        "since the surgery.",
        "during the follow-up visit.",
        "on waking.",
        "after meals.",
        "this week.",
    ];
    let mut out = Vec::with_capacity(1000);
    for a in who {
        for b in what {
            for c in when {
                out.push(format!("{a} {b} {c}"));
            }
        }
    }
    out
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn throughput(model: &MiniLm, texts: &[String], batch: usize, threads: usize) -> f64 {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // Warm up.
    pool.install(|| model.embed(&refs[..batch.min(refs.len())])).expect("warm up");
    let start = Instant::now();
    for chunk in refs.chunks(batch) {
        pool.install(|| model.embed(chunk)).expect("embed");
    }
    texts.len() as f64 / start.elapsed().as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: embed_bench MODEL_DIR"));
    let texts = sentences();
    let model = MiniLm::load(&dir).expect("load model");
    println!("sentences: {}", texts.len());
    // `embed_bench DIR THREADS BATCH` measures one configuration only (for profiling).
    let args: Vec<usize> = std::env::args().skip(2).filter_map(|a| a.parse().ok()).collect();
    if let [threads, batch] = args[..] {
        let rate = throughput(&model, &texts, batch, threads);
        println!("threads={threads} batch={batch}: {rate:.1} sentences/s; peak RSS {:.0} MiB", peak_rss_mib());
        return;
    }
    if std::env::args().nth(2).as_deref() != Some("latency") {
        for threads in [1, 2] {
            for batch in [1, 32] {
                let rate = throughput(&model, &texts, batch, threads);
                println!("threads={threads} batch={batch}: {rate:.1} sentences/s");
            }
        }
    }
    drop(model);

    // Latency under load, through the batching pool (2 threads, batch up to 32, 2 ms wait).
    let cfg = LocalConfig { model_dir: None, threads: 2, max_batch: 32, max_wait_ms: 2, queue_capacity: 256 };
    let pool = Arc::new(LocalEmbedder::start(dir, &cfg));
    let texts = Arc::new(texts);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut background = Vec::new();
    for k in 0..16 {
        let (pool, texts, stop) = (pool.clone(), texts.clone(), stop.clone());
        background.push(tokio::spawn(async move {
            let mut i = k;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                pool.embed(vec![texts[i % texts.len()].clone()]).await.expect("embed");
                i += 16;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut latencies = Vec::new();
    for i in 0..300 {
        let start = Instant::now();
        pool.embed(vec![texts[(i * 7) % texts.len()].clone()]).await.expect("embed");
        latencies.push(start.elapsed());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for b in background {
        b.await.expect("task");
    }
    latencies.sort();
    let stats = pool.stats();
    let batches = stats.batches.load(std::sync::atomic::Ordering::Relaxed);
    let embedded = stats.texts.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "single request with 16 in flight: p50 {:.1} ms, p99 {:.1} ms ({} texts in {} batches, mean batch {:.1})",
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        embedded,
        batches,
        embedded as f64 / batches.max(1) as f64
    );
    println!("peak RSS: {:.0} MiB", peak_rss_mib());
}
