//! Retrieval recall of the local embedders on a mixed-language knowledge base.
//!
//! ```sh
//! cargo run --release -p careport-ml --example recall -- \
//!     --minilm DIR --multilingual DIR --set tests/fixtures/knowledge/multilingual.json
//! ```
//! Either model may be left out. The set (see `tests/fixtures/knowledge/multilingual.json`) has
//! passages, each in one language, and questions in several languages, each naming the passage
//! that answers it. Every question is ranked against every passage by cosine similarity; the
//! table gives recall@5 (and recall@1) per question language, then for English questions over
//! the English passages only, and over English renderings of all passages (`text_en`), which is
//! the monolingual baseline. multilingual-e5 gets its `query: ` / `passage: ` prefixes; MiniLM
//! takes the texts as they are. Load time and embedding speed (batches of 32) are printed too:
//! set `RAYON_NUM_THREADS` and `CANDLE_NUM_THREADS` to 1 for one-thread figures.

use std::path::PathBuf;
use std::time::Instant;

use careport_ml::e5::{MultilingualE5, PASSAGE_PREFIX, QUERY_PREFIX};
use careport_ml::minilm::MiniLm;

#[derive(serde::Deserialize)]
struct Set {
    languages: Vec<String>,
    passages: Vec<Passage>,
    questions: Vec<Question>,
}

#[derive(serde::Deserialize)]
struct Passage {
    id: String,
    lang: String,
    text: String,
    text_en: Option<String>,
}

#[derive(serde::Deserialize)]
struct Question {
    lang: String,
    text: String,
    answer: String,
}

type Embed = Box<dyn Fn(&[&str]) -> anyhow::Result<Vec<Vec<f32>>>>;

struct Model {
    name: &'static str,
    query_prefix: &'static str,
    passage_prefix: &'static str,
    embed: Embed,
    load_s: f64,
}

const BATCH: usize = 32;

fn main() -> anyhow::Result<()> {
    let mut minilm = None;
    let mut multilingual = None;
    let mut set = PathBuf::from("tests/fixtures/knowledge/multilingual.json");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow::anyhow!("{arg} needs a value"));
        match arg.as_str() {
            "--minilm" => minilm = Some(PathBuf::from(value()?)),
            "--multilingual" => multilingual = Some(PathBuf::from(value()?)),
            "--set" => set = PathBuf::from(value()?),
            other => anyhow::bail!("unknown argument {other} (expected --minilm, --multilingual, --set)"),
        }
    }
    let set: Set =
        serde_json::from_str(&std::fs::read_to_string(&set).map_err(|e| anyhow::anyhow!("{}: {e}", set.display()))?)?;
    for q in &set.questions {
        anyhow::ensure!(set.passages.iter().any(|p| p.id == q.answer), "no passage {}", q.answer);
    }

    let mut models = Vec::new();
    if let Some(dir) = minilm {
        let start = Instant::now();
        let m = MiniLm::load(&dir)?;
        let load_s = start.elapsed().as_secs_f64();
        let embed: Embed = Box::new(move |t: &[&str]| m.embed(t));
        models.push(Model { name: "all-MiniLM-L6-v2", query_prefix: "", passage_prefix: "", embed, load_s });
    }
    if let Some(dir) = multilingual {
        let start = Instant::now();
        let m = MultilingualE5::load(&dir)?;
        let load_s = start.elapsed().as_secs_f64();
        let embed: Embed = Box::new(move |t: &[&str]| m.embed(t));
        models.push(Model {
            name: "multilingual-e5-small-q4",
            query_prefix: QUERY_PREFIX,
            passage_prefix: PASSAGE_PREFIX,
            embed,
            load_s,
        });
    }
    anyhow::ensure!(!models.is_empty(), "give --minilm DIR and/or --multilingual DIR");

    let langs = &set.languages;
    println!(
        "{} passages ({}), {} questions; recall@5 (recall@1 in brackets) by question language",
        set.passages.len(),
        count_by_lang(set.passages.iter().map(|p| p.lang.as_str()), langs),
        set.questions.len()
    );
    let mut header = format!("{:<26}", "model");
    for l in langs {
        header.push_str(&format!(" {l:>11}"));
    }
    header.push_str(&format!(" {:>11} | {:>11} {:>11}", "all", "en→en only", "en→all-en"));
    println!("{header}");

    let mut speed = Vec::new();
    for model in &models {
        let start = Instant::now();
        let passages = embed_all(model, model.passage_prefix, set.passages.iter().map(|p| p.text.as_str()))?;
        let questions = embed_all(model, model.query_prefix, set.questions.iter().map(|q| q.text.as_str()))?;
        let seconds = start.elapsed().as_secs_f64();
        speed.push((model.name, model.load_s, (passages.len() + questions.len()) as f64 / seconds));
        let english_versions = embed_all(
            model,
            model.passage_prefix,
            set.passages.iter().map(|p| p.text_en.as_deref().unwrap_or(&p.text)),
        )?;

        let all: Vec<usize> = (0..set.passages.len()).collect();
        let english: Vec<usize> = all.iter().copied().filter(|&i| set.passages[i].lang == "en").collect();
        let mut row = format!("{:<26}", model.name);
        let mut total = Score::default();
        for l in langs {
            let s = score(&set, &questions, &passages, &all, |q| &q.lang == l);
            total.add(&s);
            row.push_str(&format!(" {:>11}", s.cell()));
        }
        row.push_str(&format!(" {:>11}", total.cell()));
        let en_only = score(&set, &questions, &passages, &english, |q| {
            q.lang == "en" && set.passages.iter().any(|p| p.id == q.answer && p.lang == "en")
        });
        let en_all = score(&set, &questions, &english_versions, &all, |q| q.lang == "en");
        row.push_str(&format!(" | {:>11} {:>11}", en_only.cell(), en_all.cell()));
        println!("{row}");
    }
    println!(
        "en→en only: English questions over the {} English passages; en→all-en: English questions over English versions of all passages.",
        set.passages.iter().filter(|p| p.lang == "en").count()
    );
    for (name, load_s, per_s) in speed {
        println!("{name}: loaded in {load_s:.2} s; {per_s:.1} texts/s embedding the set in batches of {BATCH}");
    }
    Ok(())
}

fn count_by_lang<'a>(langs_of: impl Iterator<Item = &'a str>, langs: &[String]) -> String {
    let langs_of: Vec<&str> = langs_of.collect();
    langs.iter().map(|l| format!("{l} {}", langs_of.iter().filter(|x| *x == l).count())).collect::<Vec<_>>().join(", ")
}

fn embed_all<'a>(model: &Model, prefix: &str, texts: impl Iterator<Item = &'a str>) -> anyhow::Result<Vec<Vec<f32>>> {
    let texts: Vec<String> = texts.map(|t| format!("{prefix}{t}")).collect();
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(BATCH) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        out.extend((model.embed)(&refs)?);
    }
    Ok(out)
}

#[derive(Default)]
struct Score {
    questions: usize,
    at1: usize,
    at5: usize,
}

impl Score {
    fn add(&mut self, other: &Score) {
        self.questions += other.questions;
        self.at1 += other.at1;
        self.at5 += other.at5;
    }
    fn cell(&self) -> String {
        if self.questions == 0 {
            return "-".into();
        }
        let n = self.questions as f64;
        format!("{:.2} ({:.2})", self.at5 as f64 / n, self.at1 as f64 / n)
    }
}

/// Rank the `candidates` (indices into the passages) for each question that `which` selects.
fn score(
    set: &Set,
    questions: &[Vec<f32>],
    passages: &[Vec<f32>],
    candidates: &[usize],
    which: impl Fn(&Question) -> bool,
) -> Score {
    let mut s = Score::default();
    for (q, v) in set.questions.iter().zip(questions) {
        if !which(q) {
            continue;
        }
        let mut ranked: Vec<(f32, usize)> = candidates.iter().map(|&i| (dot(v, &passages[i]), i)).collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        let rank = ranked.iter().position(|&(_, i)| set.passages[i].id == q.answer);
        s.questions += 1;
        s.at1 += usize::from(rank == Some(0));
        s.at5 += usize::from(rank.is_some_and(|r| r < 5));
    }
    s
}

/// Both vectors are unit length: the dot product is the cosine.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
