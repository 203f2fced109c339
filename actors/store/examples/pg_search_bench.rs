//! The knowledge base's vector arm on PostgreSQL + pgvector, measured as it runs in careport:
//! the `embeddings` rows, the partial HNSW index per space, and `knowledge::pg_vector_search`
//! with the caller's filter inside the scan (iterative scans).
//!
//! It fills a fresh database with `--n` clustered synthetic unit vectors (1,000 documents of
//! equal size; 10 % of them patient-audience, the rest clinician-only), builds the index, runs
//! `--queries` queries with and without a patient's filter (which hides 90 % of the chunks), and
//! prints one line per configuration: `pgvector <none|90%> recall@10 p50_ms p99_ms` (the header
//! is `bench/search.sh`'s), recall against an exact scan of the same vectors with the same filter.
//!
//!   cargo run --release -p careport-store --example pg_search_bench -- --url postgres://…/db [--n 100000]

use std::time::Instant;

use careport_store::knowledge::{self as stored, DocFilter, NewChunk, NewDocument};
use careport_store::{Db, DbConfig};
use uuid::Uuid;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn gauss(&mut self) -> f32 {
        // Box–Muller.
        let u1 = ((self.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let u2 = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = arg(&args, "--url").ok_or_else(|| anyhow::anyhow!("--url postgres://… is required"))?;
    let n: usize = arg(&args, "--n").map_or(Ok(100_000), |s| s.parse())?;
    let queries: usize = arg(&args, "--queries").map_or(Ok(1_000), |s| s.parse())?;
    let dim: usize = arg(&args, "--dim").map_or(Ok(384), |s| s.parse())?;
    let k = 10usize;
    let ef: i64 = arg(&args, "--ef").map_or(Ok(100), |s| s.parse())?;
    let docs = 1_000usize;
    let per_doc = n.div_ceil(docs);
    let model = "bench/synthetic";

    let cfg = DbConfig {
        url: Some(secrecy::SecretString::from(url)),
        max_connections: 4,
        acquire_timeout_secs: 30,
        connect_retries: 0,
        busy_timeout_ms: 5000,
    };
    let tmp = std::env::temp_dir();
    let db = Db::connect(&cfg, &tmp).await?;
    db.migrate().await?;

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let centres: Vec<Vec<f32>> = (0..1_000).map(|_| unit((0..dim).map(|_| rng.gauss()).collect())).collect();
    let near = |rng: &mut Rng, c: &[f32], noise: f32| unit(c.iter().map(|x| x + noise * rng.gauss()).collect());

    // Documents: one in ten for patients (visible through the filter), the rest clinician-only.
    let started = Instant::now();
    let mut all: Vec<(i64, bool, Vec<f32>)> = Vec::with_capacity(n);
    for d in 0..docs {
        let patient = d % 10 == 0;
        let doc = NewDocument {
            id: Uuid::now_v7(),
            title: format!("Synthetic {d}"),
            media_type: "text/plain".into(),
            cancer_type: None,
            department: None,
            audience: if patient { "patient" } else { "clinician" }.into(),
            sensitivity: "normal".into(),
            language: "en".into(),
            record_id: None,
            patient_id: None,
            body: Some(String::new()),
            chars: 0,
            sha256: String::new(),
            created_by: None,
        };
        stored::insert_document(&db, &doc, Uuid::now_v7(), 0, model).await?;
        let count = per_doc.min(n - all.len());
        let chunks: Vec<NewChunk> = (0..count)
            .map(|i| NewChunk {
                heading: String::new(),
                start_char: i as i64,
                end_char: i as i64 + 1,
                tokens: 1,
                text: None,
            })
            .collect();
        stored::replace_chunks(&db, doc.id, &chunks).await?;
        let ids = stored::chunk_ids(&db, doc.id).await?;
        let rows: Vec<(i64, Vec<f32>)> = ids
            .into_iter()
            .map(|id| {
                let c = &centres[(rng.next() % centres.len() as u64) as usize];
                (id, near(&mut rng, c, 0.08))
            })
            .collect();
        stored::put_vectors(&db, model, &rows).await?;
        all.extend(rows.into_iter().map(|(id, v)| (id, patient, v)));
    }
    eprintln!("loaded {} vectors in {:.1} s", all.len(), started.elapsed().as_secs_f64());
    let started = Instant::now();
    stored::ensure_pg_index(&db, model, dim).await?;
    eprintln!("HNSW index built in {:.1} s", started.elapsed().as_secs_f64());

    let qs: Vec<Vec<f32>> = (0..queries)
        .map(|_| {
            let c = &centres[(rng.next() % centres.len() as u64) as usize];
            near(&mut rng, c, 0.1)
        })
        .collect();
    let everyone = DocFilter { all_documents: true, ..DocFilter::default() };
    let patient = DocFilter { audiences: vec!["patient".into(), "all".into()], ..DocFilter::default() };
    for (label, filter, visible_only) in [("none", &everyone, false), ("90%", &patient, true)] {
        let mut times = Vec::with_capacity(queries);
        let mut hits = 0usize;
        for q in &qs {
            let t = Instant::now();
            let got = stored::pg_vector_search(&db, model, q, filter, k as i64, ef).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            let mut exact: Vec<(f32, i64)> =
                all.iter().filter(|(_, p, _)| !visible_only || *p).map(|(id, _, v)| (dot(q, v), *id)).collect();
            exact.sort_by(|a, b| b.0.total_cmp(&a.0));
            let truth: std::collections::HashSet<i64> = exact.iter().take(k).map(|(_, id)| *id).collect();
            hits += got.iter().filter(|(id, _)| truth.contains(id)).count();
        }
        times.sort_by(f64::total_cmp);
        let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        println!("pgvector {label} {:.4} {:.2} {:.2}", hits as f64 / (queries * k) as f64, p(0.5), p(0.99));
    }
    db.close().await;
    Ok(())
}
