//! Suggested questions: the `SuggestActor` picks, from careport's own question bank
//! (`data/questions.json`: general questions and at least ten per cancer type, a few per
//! subtype, in the six languages), the ones that fit the recent conversation.
//!
//! - **Candidates**: the general questions and those of the user's cancer types, in the
//!   session's language.
//! - **Never again**: a question already asked or suggested in the session is dropped, exactly
//!   or when its embedding is at cosine ≥ 0.93 of one (a rephrasing is the same question).
//! - **Relevance**: cosine similarity to the recent user messages (the local embedding model);
//!   with no conversation yet, the user's cancer types come first, in the bank's order.
//! - **Diversity**: maximal marginal relevance (λ = 0.7), so four suggestions are not four
//!   rephrasings of one.
//!
//! Without an embedding model the same steps run on word overlap. Question vectors are kept
//! (the knowledge base's query vectors, by digest), so after the first requests only a new
//! message is embedded, and only once for its search and its suggestions.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use crate::knowledge::Knowledge;
use actix::prelude::*;
use serde::{Deserialize, Serialize};

use super::grounded::keys;

/// A question rephrased is the same question from this cosine on.
pub const SAME_QUESTION: f32 = 0.93;
/// Weight of relevance against novelty in MMR.
const LAMBDA: f32 = 0.7;

/// A suggested question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    pub text: String,
    /// The cancer type it is about; absent for a general question.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cancer_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Bank {
    general: HashMap<String, Vec<String>>,
    types: HashMap<String, HashMap<String, Vec<String>>>,
}

static BANK: LazyLock<Bank> = LazyLock::new(|| {
    serde_json::from_str(include_str!("data/questions.json")).unwrap_or_else(|e| panic!("questions.json: {e}"))
});

/// The bank's questions for `language` (English when the bank lacks it) and cancer types, the
/// types' own first.
pub fn candidates(language: &str, cancer_types: &[String]) -> Vec<Suggestion> {
    let pick = |m: &HashMap<String, Vec<String>>| m.get(language).or_else(|| m.get("en")).cloned().unwrap_or_default();
    let mut out = Vec::new();
    for t in cancer_types {
        if let Some(by_language) = BANK.types.get(t) {
            out.extend(pick(by_language).into_iter().map(|text| Suggestion { text, cancer_type: Some(t.clone()) }));
        }
    }
    out.extend(pick(&BANK.general).into_iter().map(|text| Suggestion { text, cancer_type: None }));
    out
}

/// The cancer types the bank has questions for.
pub fn bank_types() -> Vec<&'static str> {
    BANK.types.keys().map(String::as_str).collect()
}

/// Ask for suggestions.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Vec<Suggestion>")]
pub struct Suggest {
    pub language: String,
    /// The user's cancer types (subtypes with their parent types).
    pub cancer_types: Vec<String>,
    /// The recent user messages, oldest first.
    pub recent: Vec<String>,
    /// Everything asked or suggested in the session so far.
    pub exclude: Vec<String>,
    pub count: usize,
}

/// Picks suggestions; see the module doc.
pub struct SuggestActor {
    knowledge: Knowledge,
    /// Held while the bank's questions are embedded: a burst of new sessions embeds them once,
    /// the others wait and find them kept.
    bank: Arc<tokio::sync::Mutex<()>>,
}

impl SuggestActor {
    pub fn new(knowledge: Knowledge) -> Self {
        Self { knowledge, bank: Arc::default() }
    }
}

impl Actor for SuggestActor {
    type Context = Context<Self>;
}

impl Supervised for SuggestActor {}

impl Handler<crate::Ping> for SuggestActor {
    type Result = MessageResult<crate::Ping>;

    fn handle(&mut self, _: crate::Ping, _: &mut Self::Context) -> Self::Result {
        let model = self.knowledge.configured().map_or_else(|| "word overlap (no model)".to_owned(), |(m, _)| m);
        MessageResult(crate::ActorStatus { ok: true, detail: format!("ranking with {model}") })
    }
}

impl Handler<Suggest> for SuggestActor {
    type Result = ResponseActFuture<Self, Vec<Suggestion>>;

    fn handle(&mut self, msg: Suggest, _: &mut Self::Context) -> Self::Result {
        let knowledge = self.knowledge.clone();
        let bank = Arc::clone(&self.bank);
        // Requests run side by side; only embedding the bank is one at a time.
        Box::pin(async move { suggest(Some(&knowledge), &bank, msg).await }.into_actor(self))
    }
}

fn normal(text: &str) -> String {
    text.trim().trim_end_matches(['?', '？', '؟', '.', '!']).trim().to_lowercase()
}

async fn suggest(knowledge: Option<&Knowledge>, bank: &tokio::sync::Mutex<()>, msg: Suggest) -> Vec<Suggestion> {
    let count = msg.count.clamp(1, super::MAX_SUGGESTIONS);
    let excluded: Vec<String> = msg.exclude.iter().map(|t| normal(t)).collect();
    let mut pool: Vec<Suggestion> = candidates(&msg.language, &msg.cancer_types);
    pool.retain(|s| !excluded.contains(&normal(&s.text)));
    pool.dedup_by(|a, b| normal(&a.text) == normal(&b.text));
    if pool.is_empty() {
        return Vec::new();
    }
    let recent: Vec<String> = msg.recent.iter().rev().take(3).cloned().collect();
    let found = match knowledge {
        Some(k) => vectors_for(k, bank, &pool, &recent, &msg.exclude).await,
        None => None,
    };
    match found {
        Some((candidates, recent_vec, excluded_vecs)) => {
            let keep: Vec<usize> = (0..pool.len())
                .filter(|&i| excluded_vecs.iter().all(|e| cosine(&candidates[i], e) < SAME_QUESTION))
                .collect();
            let relevance: Vec<f32> = keep
                .iter()
                .map(|&i| match &recent_vec {
                    Some(r) => cosine(&candidates[i], r),
                    None => prior(i, pool.len()),
                })
                .collect();
            let chosen = mmr(&relevance, count, |a, b| cosine(&candidates[keep[a]], &candidates[keep[b]]));
            chosen.into_iter().map(|j| pool[keep[j]].clone()).collect()
        }
        None => {
            // No model: word overlap stands in for similarity.
            let sets: Vec<_> = pool.iter().map(|s| keys(&s.text)).collect();
            let excluded_sets: Vec<_> = msg.exclude.iter().map(|t| keys(t)).collect();
            let recent_set = keys(&recent.join("\n"));
            let keep: Vec<usize> =
                (0..pool.len()).filter(|&i| excluded_sets.iter().all(|e| jaccard(&sets[i], e) < 0.8)).collect();
            let relevance: Vec<f32> = keep
                .iter()
                .map(|&i| if recent_set.is_empty() { prior(i, pool.len()) } else { jaccard(&sets[i], &recent_set) })
                .collect();
            let chosen = mmr(&relevance, count, |a, b| jaccard(&sets[keep[a]], &sets[keep[b]]));
            chosen.into_iter().map(|j| pool[keep[j]].clone()).collect()
        }
    }
}

/// With no conversation to compare with, the bank's order: the user's types first.
fn prior(i: usize, n: usize) -> f32 {
    1.0 - i as f32 / (n as f32 + 1.0)
}

type Found = (Vec<Vec<f32>>, Option<Vec<f32>>, Vec<Vec<f32>>);

/// Unit vectors of the candidates, of the recent conversation (the mean of its messages'
/// vectors) and of what was asked or suggested; `None` without a working model. Vectors come
/// from the knowledge base's query vectors, so a question embedded for its search is not
/// embedded again here.
async fn vectors_for(
    knowledge: &Knowledge,
    bank: &tokio::sync::Mutex<()>,
    pool: &[Suggestion],
    recent: &[String],
    exclude: &[String],
) -> Option<Found> {
    let questions: Vec<&str> = pool.iter().map(|s| s.text.as_str()).collect();
    let candidates = {
        let _one_at_a_time = bank.lock().await;
        knowledge.embed_queries(&questions).await?.ok()?
    };
    let mut own: Vec<&str> = exclude.iter().map(String::as_str).collect();
    own.extend(recent.iter().map(String::as_str));
    let own = knowledge.embed_queries(&own).await?.ok()?;
    let (excluded, recent_vecs) = own.split_at(exclude.len());
    let recent_vec = (!recent_vecs.is_empty()).then(|| {
        let dim = recent_vecs[0].len();
        let mut mean = vec![0.0f32; dim];
        for v in recent_vecs {
            for (m, x) in mean.iter_mut().zip(normalized(v.to_vec())) {
                *m += x;
            }
        }
        normalized(mean)
    });
    Some((
        candidates.iter().map(|v| normalized(v.to_vec())).collect(),
        recent_vec,
        excluded.iter().map(|v| normalized(v.to_vec())).collect(),
    ))
}

fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Cosine of two unit vectors.
fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn jaccard(a: &std::collections::HashSet<String>, b: &std::collections::HashSet<String>) -> f32 {
    let union = a.union(b).count();
    if union == 0 { 0.0 } else { a.intersection(b).count() as f32 / union as f32 }
}

/// Maximal marginal relevance: `count` indices of `relevance`, each the best trade of its own
/// relevance against its likeness to those already chosen.
pub fn mmr(relevance: &[f32], count: usize, similarity: impl Fn(usize, usize) -> f32) -> Vec<usize> {
    let mut chosen: Vec<usize> = Vec::new();
    let mut left: Vec<usize> = (0..relevance.len()).collect();
    while chosen.len() < count && !left.is_empty() {
        let score = |i: usize| {
            let redundancy = chosen.iter().map(|&c| similarity(i, c)).fold(0.0f32, f32::max);
            LAMBDA * relevance[i] - (1.0 - LAMBDA) * redundancy
        };
        let (pos, _) = left
            .iter()
            .enumerate()
            .map(|(pos, &i)| (pos, score(i)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, 0.0));
        chosen.push(left.remove(pos));
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    const LANGUAGES: [&str; 6] = ["en", "es", "fr", "ar", "zh", "hi"];
    const TOP_LEVEL: [&str; 21] = [
        "breast",
        "lung",
        "prostate",
        "pancreatic",
        "colorectal",
        "liver",
        "stomach",
        "ovarian",
        "cervical",
        "uterine",
        "kidney",
        "bladder",
        "skin",
        "brain",
        "throat",
        "esophageal",
        "bone",
        "thyroid",
        "testicular",
        "leukemia",
        "lymphoma",
    ];

    #[test]
    fn the_bank_has_ten_questions_per_type_in_every_language_in_the_same_order() {
        for t in TOP_LEVEL {
            let by_language = BANK.types.get(t).unwrap_or_else(|| panic!("no questions for {t}"));
            let n = by_language.get("en").map_or(0, Vec::len);
            assert!(n >= 10, "{t}: {n} questions");
            for l in LANGUAGES {
                assert_eq!(by_language.get(l).map_or(0, Vec::len), n, "{t} in {l}");
            }
        }
        for (t, by_language) in &BANK.types {
            let n = by_language.get("en").map_or(0, Vec::len);
            assert!(n >= 3, "{t}");
            for l in LANGUAGES {
                let questions = by_language.get(l).unwrap_or_else(|| panic!("{t} lacks {l}"));
                assert_eq!(questions.len(), n, "{t} in {l}");
                let mut seen = std::collections::HashSet::new();
                assert!(questions.iter().all(|q| seen.insert(normal(q))), "{t} in {l} repeats a question");
            }
        }
        for l in LANGUAGES {
            assert!(BANK.general.get(l).map_or(0, Vec::len) >= 10, "general in {l}");
        }
    }

    #[test]
    fn candidates_put_the_user_s_types_first_and_fall_back_to_english() {
        let c = candidates("es", &["lung".into()]);
        assert_eq!(c[0].cancer_type.as_deref(), Some("lung"));
        assert_eq!(c.last().and_then(|s| s.cancer_type.clone()), None);
        assert_eq!(c[0].text, BANK.types["lung"]["es"][0]);
        assert_eq!(candidates("xx", &[])[0].text, BANK.general["en"][0]);
    }

    #[test]
    fn mmr_trades_relevance_for_novelty() {
        // 0 and 1 are the same question; 2 is less relevant but new.
        let relevance = [0.9, 0.89, 0.6];
        let same = |a: usize, b: usize| if a.min(b) == 0 && a.max(b) == 1 { 1.0 } else { 0.1 };
        assert_eq!(mmr(&relevance, 2, same), vec![0, 2]);
        assert_eq!(mmr(&relevance, 5, same).len(), 3);
    }

    #[tokio::test]
    async fn without_a_model_suggestions_never_repeat_what_was_asked_or_suggested() {
        let bank = tokio::sync::Mutex::new(());
        let mut exclude: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..4 {
            let msg = Suggest {
                language: "en".into(),
                cancer_types: vec!["breast".into()],
                recent: vec!["What are the side effects of radiotherapy?".into()],
                exclude: exclude.clone(),
                count: 4,
            };
            let got = suggest(None, &bank, msg).await;
            assert_eq!(got.len(), 4);
            for s in got {
                assert!(seen.insert(normal(&s.text)), "repeated: {}", s.text);
                exclude.push(s.text);
            }
        }
    }
}
