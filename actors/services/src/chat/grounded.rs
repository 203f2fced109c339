//! Answers built from retrieved passages, without a language model: the sentences of the
//! passages that share the most with the question, quoted as they are, each with its source.
//!
//! This is what careport says when no model is configured (the default: nothing leaves the
//! host) and whenever the configured one fails. It never writes a sentence of its own about the
//! patient: the answer is excerpts, labelled as excerpts, so it cannot invent or diagnose.
//!
//! Matching is lexical and language-neutral: words of three letters or more compared on their
//! first six letters (a crude stem that catches "chemotherapy"/"chemo-therapies"), character
//! pairs for Chinese (no spaces between words). The passages themselves were already ranked by
//! the hybrid search (vectors and full text), so a passage with no word in common still counts
//! through its rank: its first sentence is the fallback.

use std::collections::HashSet;

/// Words that say nothing about the subject, in the Latin-script languages.
const STOP: &[&str] = &[
    "the", "and", "for", "with", "what", "how", "can", "does", "are", "you", "your", "that", "this", "from", "have",
    "has", "why", "when", "who", "should", "will", "which", "about", "que", "los", "las", "por", "para", "una", "del",
    "con", "como", "cual", "mis", "les", "des", "est", "pour", "une", "dans", "qui", "quoi", "comment", "mes", "sur",
    "pas", "quel", "quelle",
];

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2A6DF)
}

/// The comparable keys of a text.
pub fn keys(text: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    for run in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let lower = run.to_lowercase();
        if lower.chars().any(is_cjk) {
            let chars: Vec<char> = lower.chars().collect();
            for pair in chars.windows(2) {
                out.insert(pair.iter().collect());
            }
            if chars.len() == 1 {
                out.insert(lower.clone());
            }
            continue;
        }
        if lower.chars().count() < 3 || STOP.contains(&lower.as_str()) {
            continue;
        }
        out.insert(lower.chars().take(6).collect());
    }
    out
}

/// Two keys name the same word: equal, or one begins the other and both have four letters or
/// more ("last" and "lasts"; keys are cut at six letters, so "treatment" is "treatm").
fn same_word(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    short.chars().count() >= 4 && long.starts_with(short)
}

/// A text cut into sentences (at `.` `!` `?` `。` `！` `？` `؟` `।` and line ends), trimmed.
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == '\n' {
            push_sentence(&mut out, &mut current);
            continue;
        }
        current.push(c);
        let ends = match c {
            '。' | '！' | '？' | '؟' | '।' => true,
            // A full stop ends a sentence when a space or the end follows (not "3.5", "e.g").
            '.' | '!' | '?' => chars.get(i + 1).is_none_or(|n| n.is_whitespace()),
            _ => false,
        };
        if ends {
            push_sentence(&mut out, &mut current);
        }
    }
    push_sentence(&mut out, &mut current);
    out
}

fn push_sentence(out: &mut Vec<String>, current: &mut String) {
    let s = current.trim().trim_start_matches(['#', '-', '*', '•']).trim();
    if s.chars().filter(|c| c.is_alphanumeric()).count() >= 3 {
        out.push(s.to_owned());
    }
    current.clear();
}

/// A sentence chosen for an answer: which passage it is from and its place there.
#[derive(Debug, Clone, PartialEq)]
pub struct Picked {
    pub passage: usize,
    pub position: usize,
    pub sentence: String,
    pub score: f64,
}

/// The sentences of `passages` (best-ranked first) that answer `question` best: at most `max`,
/// at most two from one passage, in the passages' order. Empty only when there are no passages.
pub fn pick(question: &str, passages: &[&str], max: usize) -> Vec<Picked> {
    let wanted = keys(question);
    let mut scored: Vec<Picked> = Vec::new();
    for (p, text) in passages.iter().enumerate() {
        for (position, sentence) in sentences(text).into_iter().enumerate() {
            let have = keys(&sentence);
            let common = wanted.iter().filter(|w| have.iter().any(|h| same_word(w, h))).count() as f64;
            if common == 0.0 {
                continue;
            }
            // Shared keys, a little less for long sentences, a little more for better passages.
            let score = common / (have.len().max(1) as f64).sqrt() + 0.25 / (1.0 + p as f64);
            scored.push(Picked { passage: p, position, sentence, score });
        }
    }
    scored.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut chosen: Vec<Picked> = Vec::new();
    for s in scored {
        if chosen.len() >= max {
            break;
        }
        if chosen.iter().filter(|c| c.passage == s.passage).count() >= 2
            || chosen.iter().any(|c| c.sentence == s.sentence)
        {
            continue;
        }
        chosen.push(s);
    }
    if chosen.is_empty() {
        // Nothing in common word for word (another language, other words): the best passage's
        // opening, which the search ranked first for a reason.
        if let Some(first) = passages.first().and_then(|t| sentences(t).into_iter().next()) {
            chosen.push(Picked { passage: 0, position: 0, sentence: first, score: 0.0 });
        }
    }
    chosen.sort_by_key(|c| (c.passage, c.position));
    chosen
}

/// The labels a grounded answer is written with, in the session's language.
#[derive(Debug, Clone)]
pub struct Labels {
    pub intro: String,
    pub sources: String,
    pub nothing: String,
}

/// A source as an answer lists it.
#[derive(Debug, Clone)]
pub struct Source {
    pub title: String,
    pub heading: String,
}

/// The answer's text: the intro, each sentence quoted with the number of its source, then the
/// sources. `sources[i]` is passage `i`'s; only cited ones are listed, numbered from 1 in the
/// order they are first cited. Returns the text and the passages cited, in that order.
pub fn compose(picked: &[Picked], sources: &[Source], labels: &Labels) -> (String, Vec<usize>) {
    if picked.is_empty() {
        return (labels.nothing.clone(), Vec::new());
    }
    let mut cited: Vec<usize> = Vec::new();
    let mut text = format!("{}\n", labels.intro);
    for p in picked {
        let n = match cited.iter().position(|&c| c == p.passage) {
            Some(i) => i + 1,
            None => {
                cited.push(p.passage);
                cited.len()
            }
        };
        text.push_str(&format!("\n“{}” [{n}]", p.sentence));
    }
    text.push_str(&format!("\n\n{}:", labels.sources));
    for (i, &p) in cited.iter().enumerate() {
        let Some(s) = sources.get(p) else { continue };
        if s.heading.is_empty() || s.heading == s.title {
            text.push_str(&format!("\n[{}] {}", i + 1, s.title));
        } else {
            text.push_str(&format!("\n[{}] {} — {}", i + 1, s.title, s.heading));
        }
    }
    (text, cited)
}

/// Cut `text` into the pieces a stream sends: a word and the spaces after it (a CJK character
/// on its own).
pub fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_space = false;
    for c in text.chars() {
        if is_cjk(c) {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            out.push(c.to_string());
            in_space = false;
            continue;
        }
        if c.is_whitespace() {
            in_space = true;
        } else if in_space && !current.is_empty() {
            out.push(std::mem::take(&mut current));
            in_space = false;
        }
        current.push(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Labels {
        Labels { intro: "Excerpts:".into(), sources: "Sources".into(), nothing: "Nothing found.".into() }
    }

    #[test]
    fn sentences_split_at_every_scripts_full_stop_but_not_inside_numbers() {
        assert_eq!(
            sentences("Take 2.5 mg daily. Then rest!\nNext line\n放疗很安全。请多喝水。"),
            vec!["Take 2.5 mg daily.", "Then rest!", "Next line", "放疗很安全。", "请多喝水。"]
        );
        assert_eq!(sentences("هل هذا آمن؟ نعم."), vec!["هل هذا آمن؟", "نعم."]);
        assert_eq!(sentences("थकान सामान्य है। आराम करें।"), vec!["थकान सामान्य है।", "आराम करें।"]);
    }

    #[test]
    fn the_sentences_that_share_the_question_s_words_are_picked_in_document_order() {
        let passages = [
            "Radiotherapy is given on weekdays. Fatigue is common during radiotherapy and lasts weeks. Parking is free.",
            "Mouth sores can follow chemotherapy. Rinse with salt water.",
        ];
        let picked = pick("How long does fatigue from radiotherapy last?", &passages, 3);
        let texts: Vec<&str> = picked.iter().map(|p| p.sentence.as_str()).collect();
        assert_eq!(
            texts[..2],
            ["Radiotherapy is given on weekdays.", "Fatigue is common during radiotherapy and lasts weeks."]
        );
        assert!(!texts.contains(&"Parking is free."), "{texts:?}");
        assert!(picked.iter().all(|p| p.passage == 0), "{picked:?}");
        // "last" finds "lasts".
        let picked = pick("How long does it last?", &["It is common. It lasts a few weeks."], 1);
        assert_eq!(picked[0].sentence, "It lasts a few weeks.");
    }

    #[test]
    fn chinese_is_matched_by_character_pairs() {
        let passages = ["化疗期间要多喝水。医院停车免费。"];
        let picked = pick("化疗期间可以喝咖啡吗", &passages, 2);
        assert_eq!(picked.len(), 1);
        assert_eq!(picked[0].sentence, "化疗期间要多喝水。");
    }

    #[test]
    fn with_no_word_in_common_the_best_passage_opens_the_answer() {
        let picked = pick("xyzzy", &["First sentence here. Second."], 3);
        assert_eq!(picked.len(), 1);
        assert_eq!(picked[0].sentence, "First sentence here.");
        assert!(pick("anything", &[], 3).is_empty());
    }

    #[test]
    fn the_answer_quotes_numbers_and_lists_its_sources() {
        let picked = vec![
            Picked { passage: 1, position: 0, sentence: "B says.".into(), score: 1.0 },
            Picked { passage: 1, position: 2, sentence: "B again.".into(), score: 1.0 },
            Picked { passage: 0, position: 0, sentence: "A says.".into(), score: 1.0 },
        ];
        let sources = vec![
            Source { title: "Guide A".into(), heading: "Side effects".into() },
            Source { title: "Guide B".into(), heading: String::new() },
        ];
        let (text, cited) = compose(&picked, &sources, &labels());
        assert_eq!(cited, vec![1, 0]);
        assert_eq!(
            text,
            "Excerpts:\n\n“B says.” [1]\n“B again.” [1]\n“A says.” [2]\n\nSources:\n[1] Guide B\n[2] Guide A — Side effects"
        );
        assert_eq!(compose(&[], &sources, &labels()).0, "Nothing found.");
    }

    #[test]
    fn pieces_join_back_to_the_text() {
        for text in ["Hello  there, world.\n\nNext “quoted” [1]", "放疗 很安全。ok", "مرحبا بك"] {
            assert_eq!(pieces(text).concat(), text);
        }
        assert_eq!(pieces("a b"), vec!["a ", "b"]);
    }
}
