//! The chat assistant's safety checks on text, in code: signs of a medical emergency in a user's
//! message (chest pain, not breathing, suicidal thoughts, heavy bleeding, stroke signs, fainting,
//! seizures, overdoses, anaphylaxis, fever during chemotherapy, a sudden severe headache, sudden
//! confusion), and answers that present a diagnosis. Both are decided here, deterministically and
//! before or after any language model runs, not by asking the model in a prompt: a model can be
//! talked out of an instruction, and a rule cannot.
//!
//! The rules live in `data/emergency.json` (compiled in, parsed once). Every message is checked
//! against the rules of all six languages (en, es, fr, ar, zh, hi), whatever language the session
//! is in: a patient writes in the language they think in. The rules lean towards firing: telling
//! someone who is fine to call the emergency number costs little, missing someone who is not
//! costs everything; likewise replacing a harmless answer costs less than letting a diagnosis
//! through.
//!
//! # Matching
//! Text and rule terms go through the same `normalize`: lowercase; Latin diacritics folded (é→e,
//! ñ→n, ç→c, œ→oe); Arabic harakat and tatweel removed, alef and hamza seats folded (أ إ آ ٱ→ا,
//! ؤ→و, ئ ى→ي, ة→ه); Devanagari nukta removed and chandrabindu folded into anusvara;
//! Arabic-Indic, Devanagari and full-width digits made ASCII; everything that is not a letter or
//! digit becomes a single space, and a space separates Han/kana from other letters.
//!
//! A rule is a list of terms that must all occur; a term lists spellings separated by `|`, any
//! of which will do. In zh a spelling is a plain substring. Elsewhere it is a sequence of words
//! matched at a word start: every word but the last must match whole, the last may be a prefix
//! (`bleed` matches "bleeding") unless the spelling ends in `$`, and `*` stands for any one word.
//! In ar a word may also carry a proclitic (و ف ب ل ك ال and their combinations) before the
//! spelling: `صدر` matches "الصدر" and "وصدري". For diagnoses, an occurrence right after one of
//! the language's `not_after` phrases ("if", "whether", "si", "如果"…) does not count: "if you
//! have cancer" explains, "you have cancer" diagnoses.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

/// The assistant's languages: every sign and message has an entry for each.
const LANGUAGES: [&str; 6] = ["en", "es", "fr", "ar", "zh", "hi"];

/// Arabic proclitics a word may begin with before a spelling matches (the empty one first).
const ARABIC_PROCLITICS: [&str; 19] =
    ["", "و", "ف", "ب", "ل", "ك", "ال", "وال", "فال", "بال", "كال", "لل", "ولل", "فلل", "وب", "ول", "وك", "فب", "فل"];

/// A sign of an emergency found in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Emergency {
    pub sign: &'static str,
}

/// The first emergency sign in `text`, in any of the six languages.
pub fn detect(text: &str) -> Option<Emergency> {
    let data = data();
    let norm = normalize(text);
    let text = Text::new(&norm);
    data.signs
        .iter()
        .find(|sign| sign.languages.iter().any(|set| set.matches(&text)))
        .map(|sign| Emergency { sign: sign.id.as_str() })
}

/// The emergency message in `language` (one of en es fr ar zh hi; anything else: English), with
/// `number` (the local emergency number, e.g. "112") filled in.
pub fn emergency_message(language: &str, number: &str) -> String {
    message(&data().emergency_message, language).replace("{number}", number)
}

/// Whether an answer presents a diagnosis ("you have cancer", "you are diagnosed with", "tienes
/// cáncer", ...): used to replace such an answer. Six languages, same matching rules.
pub fn presents_diagnosis(answer: &str) -> bool {
    let norm = normalize(answer);
    let text = Text::new(&norm);
    data().diagnosis.iter().any(|set| set.matches(&text))
}

/// The sentence appended (in `language`) when an answer had to be replaced because it presented
/// a diagnosis.
pub fn no_diagnosis_message(language: &str) -> String {
    message(&data().no_diagnosis, language).to_owned()
}

/// The message in `language`, else in English (the loader checked both exist).
fn message<'a>(messages: &'a HashMap<String, String>, language: &str) -> &'a str {
    messages.get(language).or_else(|| messages.get("en")).map_or("", String::as_str)
}

static DATA: LazyLock<Data> = LazyLock::new(|| {
    load(include_str!("data/emergency.json")).expect("chat/data/emergency.json is valid (its tests load it)")
});

fn data() -> &'static Data {
    LazyLock::force(&DATA)
}

// ---------------------------------------------------------------------------------------------
// The rules, as written in the JSON and as compiled.

#[derive(Deserialize)]
struct RawData {
    emergency_message: HashMap<String, String>,
    signs: Vec<RawSign>,
    diagnosis: RawDiagnosis,
}

#[derive(Deserialize)]
struct RawSign {
    id: String,
    rules: HashMap<String, Vec<Vec<String>>>,
}

#[derive(Deserialize)]
struct RawDiagnosis {
    message: HashMap<String, String>,
    #[serde(default)]
    not_after: HashMap<String, Vec<String>>,
    rules: HashMap<String, Vec<Vec<String>>>,
}

struct Data {
    emergency_message: HashMap<String, String>,
    signs: Vec<Sign>,
    no_diagnosis: HashMap<String, String>,
    diagnosis: Vec<RuleSet>,
}

struct Sign {
    id: String,
    languages: Vec<RuleSet>,
}

/// One language's rules (any may match), and the phrases after which an occurrence does not count.
struct RuleSet {
    rules: Vec<Vec<Term>>,
    guards: Vec<Spelling>,
}

/// Spellings of one term; any will do.
struct Term(Vec<Spelling>);

enum Spelling {
    /// zh: a substring of the normalized text.
    Chars(String),
    /// Words from a word start; the last a prefix unless `whole`.
    Words { tokens: Vec<Token>, whole: bool, arabic: bool, needle: String },
}

enum Token {
    Any,
    Word(String),
}

fn load(json: &str) -> Result<Data, String> {
    let raw: RawData = serde_json::from_str(json).map_err(|e| format!("emergency.json: {e}"))?;
    check_messages("emergency_message", &raw.emergency_message)?;
    if raw.emergency_message.values().any(|m| !m.contains("{number}")) {
        return Err("every emergency message must contain {number}".into());
    }
    check_messages("diagnosis.message", &raw.diagnosis.message)?;
    if raw.signs.is_empty() {
        return Err("no signs".into());
    }
    let mut signs = Vec::with_capacity(raw.signs.len());
    for sign in raw.signs {
        if sign.id.is_empty() || signs.iter().any(|s: &Sign| s.id == sign.id) {
            return Err(format!("sign id {:?} is empty or repeated", sign.id));
        }
        let languages =
            compile_languages(&sign.rules, &HashMap::new()).map_err(|e| format!("sign {}: {e}", sign.id))?;
        signs.push(Sign { id: sign.id, languages });
    }
    let diagnosis =
        compile_languages(&raw.diagnosis.rules, &raw.diagnosis.not_after).map_err(|e| format!("diagnosis: {e}"))?;
    Ok(Data { emergency_message: raw.emergency_message, signs, no_diagnosis: raw.diagnosis.message, diagnosis })
}

fn check_messages(what: &str, messages: &HashMap<String, String>) -> Result<(), String> {
    for language in LANGUAGES {
        if messages.get(language).is_none_or(|m| m.trim().is_empty()) {
            return Err(format!("{what} lacks {language}"));
        }
    }
    match messages.keys().find(|k| !LANGUAGES.contains(&k.as_str())) {
        Some(unknown) => Err(format!("{what} has an unknown language {unknown:?}")),
        None => Ok(()),
    }
}

fn compile_languages(
    rules: &HashMap<String, Vec<Vec<String>>>,
    not_after: &HashMap<String, Vec<String>>,
) -> Result<Vec<RuleSet>, String> {
    if let Some(unknown) = rules.keys().chain(not_after.keys()).find(|k| !LANGUAGES.contains(&k.as_str())) {
        return Err(format!("unknown language {unknown:?}"));
    }
    let mut sets = Vec::with_capacity(LANGUAGES.len());
    for language in LANGUAGES {
        let written = rules.get(language).filter(|r| !r.is_empty()).ok_or(format!("no rules in {language}"))?;
        let mut compiled = Vec::with_capacity(written.len());
        for rule in written {
            if rule.is_empty() {
                return Err(format!("an empty rule in {language}"));
            }
            let terms = rule.iter().map(|term| compile_term(term, language)).collect::<Result<Vec<_>, _>>()?;
            compiled.push(terms);
        }
        let guards = match not_after.get(language) {
            Some(phrases) => phrases.iter().map(|p| compile_spelling(p, language)).collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        sets.push(RuleSet { rules: compiled, guards });
    }
    Ok(sets)
}

fn compile_term(term: &str, language: &str) -> Result<Term, String> {
    let spellings = term.split('|').map(|s| compile_spelling(s, language)).collect::<Result<Vec<_>, _>>()?;
    Ok(Term(spellings))
}

fn compile_spelling(spelling: &str, language: &str) -> Result<Spelling, String> {
    let spelling = spelling.trim();
    if language == "zh" {
        let norm = normalize(spelling);
        if norm.is_empty() || spelling.contains(['*', '$']) {
            return Err(format!("bad zh spelling {spelling:?}"));
        }
        return Ok(Spelling::Chars(norm));
    }
    let (body, whole) = match spelling.strip_suffix('$') {
        Some(body) => (body, true),
        None => (spelling, false),
    };
    let mut tokens = Vec::new();
    for raw in body.split_whitespace() {
        if raw == "*" {
            tokens.push(Token::Any);
        } else {
            tokens.extend(normalize(raw).split(' ').filter(|w| !w.is_empty()).map(|w| Token::Word(w.to_owned())));
        }
    }
    let needle = tokens
        .iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w),
            Token::Any => None,
        })
        .max_by_key(|w| w.len())
        .cloned()
        .ok_or(format!("spelling {spelling:?} in {language} has no word"))?;
    Ok(Spelling::Words { tokens, whole, arabic: language == "ar", needle })
}

// ---------------------------------------------------------------------------------------------
// Matching.

/// A normalized text and its words.
struct Text<'a> {
    norm: &'a str,
    words: Vec<&'a str>,
}

impl<'a> Text<'a> {
    fn new(norm: &'a str) -> Self {
        Text { norm, words: norm.split(' ').filter(|w| !w.is_empty()).collect() }
    }
}

impl RuleSet {
    fn matches(&self, text: &Text) -> bool {
        self.rules.iter().any(|rule| rule.iter().all(|term| term.0.iter().any(|s| s.occurs(text, &self.guards))))
    }
}

impl Spelling {
    /// Whether the spelling occurs in `text` somewhere not right after one of `guards`.
    fn occurs(&self, text: &Text, guards: &[Spelling]) -> bool {
        match self {
            Spelling::Chars(s) => {
                text.norm.match_indices(s.as_str()).any(|(at, _)| !guards.iter().any(|g| g.ends_before_char(text, at)))
            }
            Spelling::Words { tokens, whole, arabic, needle } => {
                if !text.norm.contains(needle.as_str()) || tokens.len() > text.words.len() {
                    return false;
                }
                (0..=text.words.len() - tokens.len()).any(|at| {
                    tokens.iter().enumerate().all(|(j, token)| match token {
                        Token::Any => true,
                        Token::Word(w) => {
                            let prefix = j + 1 == tokens.len() && !whole;
                            word_matches(text.words[at + j], w, prefix, *arabic)
                        }
                    }) && !guards.iter().any(|g| g.ends_before_word(text, at))
                })
            }
        }
    }

    /// Whether this guard phrase ends right before the word at index `at`.
    fn ends_before_word(&self, text: &Text, at: usize) -> bool {
        let Spelling::Words { tokens, arabic, .. } = self else { return false };
        let Some(start) = at.checked_sub(tokens.len()) else { return false };
        tokens.iter().enumerate().all(|(j, token)| match token {
            Token::Any => true,
            Token::Word(w) => word_matches(text.words[start + j], w, false, *arabic),
        })
    }

    /// Whether this guard phrase ends right before byte `at` of the normalized text (zh).
    fn ends_before_char(&self, text: &Text, at: usize) -> bool {
        match self {
            Spelling::Chars(g) => text.norm.get(..at).is_some_and(|before| before.trim_end().ends_with(g.as_str())),
            Spelling::Words { .. } => false,
        }
    }
}

fn word_matches(word: &str, token: &str, prefix: bool, arabic: bool) -> bool {
    let fits = |rest: &str| if prefix { rest.starts_with(token) } else { rest == token };
    if arabic { ARABIC_PROCLITICS.iter().any(|p| word.strip_prefix(p).is_some_and(fits)) } else { fits(word) }
}

// ---------------------------------------------------------------------------------------------
// Normalization.

/// `text` lowercased and folded as described in the module documentation, its words separated
/// by single spaces, with no space at either end.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    let mut last_cjk = false;
    let mut push = |c: char, out: &mut String| {
        if c == ' ' {
            space = true;
            return;
        }
        let cjk = is_cjk(c);
        if !out.is_empty() && (space || cjk != last_cjk) {
            out.push(' ');
        }
        out.push(c);
        space = false;
        last_cjk = cjk;
    };
    for c in text.chars() {
        let c = match c as u32 {
            0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        };
        for c in c.to_lowercase() {
            match fold(c) {
                Fold::Drop => {}
                Fold::Char(c) => push(c, &mut out),
                Fold::Str(s) => s.chars().for_each(|c| push(c, &mut out)),
            }
        }
    }
    out
}

enum Fold {
    Drop,
    Char(char),
    Str(&'static str),
}

/// One lowercase character, folded; `' '` stands for a separator.
fn fold(c: char) -> Fold {
    let latin = match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => Some('a'),
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => Some('c'),
        'ď' | 'đ' | 'ð' => Some('d'),
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => Some('e'),
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => Some('g'),
        'ĥ' | 'ħ' => Some('h'),
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => Some('i'),
        'ĵ' => Some('j'),
        'ķ' | 'ĸ' => Some('k'),
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => Some('l'),
        'ñ' | 'ń' | 'ņ' | 'ň' | 'ŉ' | 'ŋ' => Some('n'),
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => Some('o'),
        'ŕ' | 'ŗ' | 'ř' => Some('r'),
        'ś' | 'ŝ' | 'ş' | 'š' | 'ſ' => Some('s'),
        'ţ' | 'ť' | 'ŧ' => Some('t'),
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => Some('u'),
        'ŵ' => Some('w'),
        'ý' | 'ÿ' | 'ŷ' => Some('y'),
        'ź' | 'ż' | 'ž' => Some('z'),
        _ => None,
    };
    if let Some(c) = latin {
        return Fold::Char(c);
    }
    let digit = |zero: u32| char::from_u32('0' as u32 + (c as u32 - zero)).map_or(Fold::Drop, Fold::Char);
    match c as u32 {
        0x00E6 => Fold::Str("ae"),
        0x0153 => Fold::Str("oe"),
        0x00DF => Fold::Str("ss"),
        0x00FE => Fold::Str("th"),
        0x0133 => Fold::Str("ij"),
        // Combining Latin diacritics (decomposed input).
        0x0300..=0x036F => Fold::Drop,
        // Arabic: harakat, superscript alef, tatweel; alef and hamza seats; digits.
        0x064B..=0x0652 | 0x0670 | 0x0640 => Fold::Drop,
        0x0622 | 0x0623 | 0x0625 | 0x0671 => Fold::Char('ا'),
        0x0649 | 0x0626 => Fold::Char('ي'),
        0x0629 => Fold::Char('ه'),
        0x0624 => Fold::Char('و'),
        0x0660..=0x0669 => digit(0x0660),
        0x06F0..=0x06F9 => digit(0x06F0),
        // Devanagari: nukta, nukta letters, chandrabindu, digits, dandas.
        0x093C => Fold::Drop,
        0x0958 => Fold::Char('क'),
        0x0959 => Fold::Char('ख'),
        0x095A => Fold::Char('ग'),
        0x095B => Fold::Char('ज'),
        0x095C => Fold::Char('ड'),
        0x095D => Fold::Char('ढ'),
        0x095E => Fold::Char('फ'),
        0x095F => Fold::Char('य'),
        0x0901 => Fold::Char('\u{0902}'),
        0x0966..=0x096F => digit(0x0966),
        0x0964 | 0x0965 | 0x0970 => Fold::Char(' '),
        0x0900..=0x097F => Fold::Char(c),
        // Invisible characters.
        0x200B..=0x200D | 0x2060 | 0xFEFF | 0x00AD => Fold::Drop,
        // Ordinal indicators (1º, 38º).
        0x00BA | 0x00AA => Fold::Char(' '),
        _ if c.is_alphanumeric() => Fold::Char(c),
        _ => Fold::Char(' '),
    }
}

/// Han and kana, written without spaces between words.
fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(text: &str) -> Option<&'static str> {
        detect(text).map(|e| e.sign)
    }

    /// Every sign whose rules match `text` (`detect` reports the first).
    fn signs(text: &str) -> Vec<&'static str> {
        let norm = normalize(text);
        let text = Text::new(&norm);
        data()
            .signs
            .iter()
            .filter(|s| s.languages.iter().any(|set| set.matches(&text)))
            .map(|s| s.id.as_str())
            .collect()
    }

    /// Each case: the message, and a sign it must be detected as.
    fn check_detected(cases: &[(&str, &str)]) {
        let missed: Vec<String> = cases
            .iter()
            .filter(|(text, want)| sign(text).is_none() || !signs(text).contains(want))
            .map(|(text, want)| format!("{text:?}: want {want}, found {:?}", signs(text)))
            .collect();
        assert!(missed.is_empty(), "missed:\n{}", missed.join("\n"));
    }

    fn check_not_detected(cases: &[&str]) {
        let fired: Vec<String> = cases
            .iter()
            .filter(|text| sign(text).is_some())
            .map(|text| format!("{text:?}: {:?}", signs(text)))
            .collect();
        assert!(fired.is_empty(), "not emergencies:\n{}", fired.join("\n"));
    }

    #[test]
    fn the_rules_load_and_cover_every_language() {
        let raw: RawData = serde_json::from_str(include_str!("data/emergency.json")).expect("valid JSON");
        let data = load(include_str!("data/emergency.json")).expect("valid rules");
        assert_eq!(data.signs.len(), raw.signs.len());
        for sign in &raw.signs {
            for language in LANGUAGES {
                assert!(sign.rules.get(language).is_some_and(|r| !r.is_empty()), "{} lacks {language}", sign.id);
            }
        }
        for id in ["chest_pain", "breathing", "suicide_self_harm", "bleeding", "stroke", "unconscious", "seizure"] {
            assert!(data.signs.iter().any(|s| s.id == id), "{id}");
        }
        for id in ["overdose", "anaphylaxis", "neutropenic_fever"] {
            assert!(data.signs.iter().any(|s| s.id == id), "{id}");
        }
    }

    /// The JSON's terms are written the way the loader reads them, so a reader sees what matches.
    #[test]
    fn terms_are_written_normalized() {
        let raw: RawData = serde_json::from_str(include_str!("data/emergency.json")).expect("valid JSON");
        let mut terms: Vec<(&str, &str)> = Vec::new();
        for sign in &raw.signs {
            for (language, rules) in &sign.rules {
                terms.extend(rules.iter().flatten().map(|t| (language.as_str(), t.as_str())));
            }
        }
        for (language, rules) in &raw.diagnosis.rules {
            terms.extend(rules.iter().flatten().map(|t| (language.as_str(), t.as_str())));
        }
        for (language, phrases) in &raw.diagnosis.not_after {
            terms.extend(phrases.iter().map(|t| (language.as_str(), t.as_str())));
        }
        for (language, term) in terms {
            for spelling in term.split('|') {
                let written = if language == "zh" {
                    normalize(spelling)
                } else {
                    let (body, whole) = spelling.strip_suffix('$').map_or((spelling, ""), |b| (b, "$"));
                    let words: Vec<String> =
                        body.split(' ').map(|w| if w == "*" { w.to_owned() } else { normalize(w) }).collect();
                    format!("{}{whole}", words.join(" "))
                };
                assert_eq!(written, spelling, "{language}: {term}");
            }
        }
    }

    #[test]
    fn normalization_folds_case_diacritics_and_punctuation() {
        assert_eq!(normalize("  Me DUELE el pecho, ¡ayuda!! "), "me duele el pecho ayuda");
        assert_eq!(normalize("I can’t breathe..."), "i can t breathe");
        assert_eq!(normalize("Œdème de Quincke, fièvre à 38,5°C"), "oedeme de quincke fievre a 38 5 c");
        assert_eq!(normalize("Niño, CORAZÓN, garçon"), "nino corazon garcon");
        assert_eq!(normalize("e\u{301}vanoui"), "evanoui");
        assert_eq!(normalize("أشعر بألمٍ شديـــد في صدري"), "اشعر بالم شديد في صدري");
        assert_eq!(normalize("إغماء آلام مسؤول"), "اغماء الام مسوول");
        assert_eq!(normalize("حرارتي ٣٩"), "حرارتي 39");
        assert_eq!(normalize("साँस लेने में तकलीफ़। बुखार १०२"), "सांस लेने में तकलीफ बुखार 102");
        assert_eq!(normalize("我发烧38.5度，在做化疗！"), "我发烧 38 5 度 在做化疗");
        assert_eq!(normalize("ＡＢＣ１２３"), "abc123");
        assert_eq!(normalize("¿?!"), "");
    }

    #[test]
    fn english() {
        check_detected(&[
            ("I have a crushing PAIN in my chest and my left arm!!", "chest_pain"),
            ("My chest feels really tight and heavy", "chest_pain"),
            ("I can't breathe properly, help", "breathing"),
            ("My husband isn't breathing!", "breathing"),
            ("I just want to die. I can't do this anymore", "suicide_self_harm"),
            ("I've been thinking about killing myself", "suicide_self_harm"),
            ("I keep cutting myself", "suicide_self_harm"),
            ("I'm bleeding heavily from my port site", "bleeding"),
            ("I've been vomiting blood since this morning", "bleeding"),
            ("I have black, tarry stools", "bleeding"),
            ("My mum's face is drooping and her speech is slurred", "stroke"),
            ("Sudden weakness on my left side", "stroke"),
            ("I fainted in the shower", "unconscious"),
            ("He passed out and won't wake up", "unconscious"),
            ("She is having a seizure", "seizure"),
            ("I think I took too many of my oxycodone tablets", "overdose"),
            ("Overdosed on sleeping pills", "overdose"),
            ("My throat is swelling after the infusion", "anaphylaxis"),
            ("I have a fever and I had chemo last week", "neutropenic_fever"),
            ("My temperature is 38.4, what do I do?", "neutropenic_fever"),
            ("Fever of 101 F tonight", "neutropenic_fever"),
            ("Worst headache of my life, came on suddenly", "severe_headache"),
        ]);
        check_not_detected(&[
            "What is a chest X-ray?",
            "How long does chemotherapy take?",
            "What does the liver do?",
            "What diet should I follow during treatment?",
            "Can I dye my hair during chemo?",
            "What temperature counts as a fever?",
            "How do I book an appointment with my oncologist?",
            "Is it normal to feel tired after radiotherapy?",
            "Am I going to lose my hair?",
            "Where can I find my blood test results?",
        ]);
    }

    #[test]
    fn spanish() {
        check_detected(&[
            ("Me duele muchísimo el PECHO y me cuesta respirar", "chest_pain"),
            ("Siento una opresión en el pecho", "chest_pain"),
            ("¡No puedo respirar!", "breathing"),
            ("Ya no quiero vivir, quiero morirme", "suicide_self_harm"),
            ("He pensado en suicidarme", "suicide_self_harm"),
            ("Me quiero matar, ya no puedo más", "suicide_self_harm"),
            ("Estoy sangrando mucho y no para", "bleeding"),
            ("Vomité sangre esta mañana", "bleeding"),
            ("A mi padre se le cayó la cara de un lado y arrastra las palabras", "stroke"),
            ("Mi madre se desmayó y no reacciona", "unconscious"),
            ("Tiene convulsiones", "seizure"),
            ("Me tomé todas las pastillas de la caja", "overdose"),
            ("Se me está hinchando la garganta", "anaphylaxis"),
            ("Tengo fiebre y estoy en quimioterapia", "neutropenic_fever"),
            ("Tengo 38,5 de fiebre", "neutropenic_fever"),
        ]);
        check_not_detected(&[
            "¿Qué es una radiografía de tórax?",
            "¿Cuánto dura la quimioterapia?",
            "¿Qué hace el hígado?",
            "¿Puedo teñirme el pelo durante el tratamiento?",
            "¿Cómo pido una cita con mi oncóloga?",
            "¿Qué dieta me recomienda durante la quimio?",
        ]);
    }

    #[test]
    fn french() {
        check_detected(&[
            ("J'ai très mal à la poitrine, ça serre !", "chest_pain"),
            ("Douleur thoracique depuis une heure", "chest_pain"),
            ("Je n'arrive plus à respirer", "breathing"),
            ("J'ai envie de mourir, je veux en finir", "suicide_self_harm"),
            ("Je pense au suicide", "suicide_self_harm"),
            ("Je saigne abondamment depuis ce matin", "bleeding"),
            ("J'ai vomi du sang", "bleeding"),
            ("Son visage est affaissé d'un côté", "stroke"),
            ("Ma femme s'est évanouie", "unconscious"),
            ("Il fait une crise d'épilepsie", "seizure"),
            ("J'ai avalé toute la boîte de somnifères", "overdose"),
            ("Ma gorge gonfle, j'ai du mal à avaler", "anaphylaxis"),
            ("J'ai de la fièvre, je suis sous chimio", "neutropenic_fever"),
            ("Fièvre à 39 ce soir", "neutropenic_fever"),
        ]);
        check_not_detected(&[
            "Qu'est-ce qu'une radiographie du thorax ?",
            "Combien de temps dure une chimiothérapie ?",
            "À quoi sert le foie ?",
            "Comment prendre rendez-vous avec mon oncologue ?",
            "Est-ce que je vais perdre mes cheveux ?",
            "Ai-je le droit de demander un deuxième avis ?",
        ]);
    }

    #[test]
    fn arabic() {
        check_detected(&[
            ("أشعر بألمٍ شديد في صدري!", "chest_pain"),
            ("عندي ضيق في الصدر ووجع", "chest_pain"),
            ("لا أستطيع التنفس", "breathing"),
            ("أريد أن أموت، لم أعد أحتمل", "suicide_self_harm"),
            ("أفكر في الانتحار", "suicide_self_harm"),
            ("عندي نزيف شديد لا يتوقف", "bleeding"),
            ("تقيأت دمًا هذا الصباح", "bleeding"),
            ("والدي فقد الوعي فجأة", "unconscious"),
            ("أغمي على أمي", "unconscious"),
            ("ابني عنده تشنجات", "seizure"),
            ("أخذت حبوب كثيرة", "overdose"),
            ("حلقي يتورم بعد الحقنة", "anaphylaxis"),
            ("عندي حمى وأنا آخذ العلاج الكيميائي", "neutropenic_fever"),
            ("حرارتي ٣٩ درجة", "neutropenic_fever"),
            ("وجهه مائل وكلامه غير واضح", "stroke"),
        ]);
        check_not_detected(&[
            "ما هي الأشعة السينية على الصدر؟",
            "كم تستغرق جلسة العلاج الكيميائي؟",
            "ما وظيفة الكبد؟",
            "ما هي الحمية المناسبة أثناء العلاج الكيميائي؟",
            "كيف أحجز موعدًا مع طبيب الأورام؟",
            "هل الضعف من الآثار الجانبية للعلاج؟",
        ]);
    }

    #[test]
    fn chinese() {
        check_detected(&[
            ("我胸口很痛，喘不过气！", "chest_pain"),
            ("胸闷得厉害", "chest_pain"),
            ("我呼吸困难", "breathing"),
            ("我不想活了", "suicide_self_harm"),
            ("我想自杀", "suicide_self_harm"),
            ("我吐血了", "bleeding"),
            ("大便是黑色的，像柏油一样", "bleeding"),
            ("我爸爸突然嘴歪，说话含糊不清", "stroke"),
            ("妈妈晕倒了，叫不醒", "unconscious"),
            ("孩子在抽搐", "seizure"),
            ("我吃了一整瓶安眠药", "overdose"),
            ("打完针后喉咙肿了", "anaphylaxis"),
            ("化疗后我发烧了", "neutropenic_fever"),
            ("体温38.5度", "neutropenic_fever"),
        ]);
        check_not_detected(&[
            "什么是胸部X光检查？",
            "化疗需要多长时间？",
            "肝脏有什么作用？",
            "怎么预约肿瘤科医生？",
            "化疗期间应该怎么吃？",
            "喉咙肿瘤是什么？",
        ]);
    }

    #[test]
    fn hindi() {
        check_detected(&[
            ("मेरे सीने में बहुत तेज़ दर्द हो रहा है!", "chest_pain"),
            ("छाती में भारीपन और दबाव है", "chest_pain"),
            ("मुझे साँस नहीं आ रही", "breathing"),
            ("मैं मरना चाहता हूँ", "suicide_self_harm"),
            ("मेरे मन में आत्महत्या के विचार आते हैं", "suicide_self_harm"),
            ("खून बहुत ज़्यादा बह रहा है, रुक नहीं रहा", "bleeding"),
            ("मुझे खून की उल्टी हुई", "bleeding"),
            ("पापा का चेहरा एक तरफ लटक गया है", "stroke"),
            ("माँ बेहोश हो गई हैं", "unconscious"),
            ("उसे मिर्गी का दौरा पड़ा", "seizure"),
            ("मैंने बहुत सारी गोलियां खा लीं", "overdose"),
            ("इंजेक्शन के बाद गला सूज रहा है", "anaphylaxis"),
            ("कीमो के बाद मुझे बुखार है", "neutropenic_fever"),
            ("बुख़ार १०२ है", "neutropenic_fever"),
            ("saans nahi aa rahi", "breathing"),
        ]);
        check_not_detected(&[
            "छाती का एक्स-रे क्या होता है?",
            "कीमोथेरेपी में कितना समय लगता है?",
            "लिवर क्या काम करता है?",
            "मैं अपने डॉक्टर से अपॉइंटमेंट कैसे लूँ?",
            "इलाज के दौरान मुझे क्या खाना चाहिए?",
            "क्या मेरे बाल झड़ेंगे?",
        ]);
    }

    #[test]
    fn any_language_is_checked_whatever_the_session() {
        // One text mixing languages, and each language's sign found without knowing the language.
        assert_eq!(sign("Doctor, no puedo respirar"), Some("breathing"));
        assert_eq!(sign("hola, 我胸口痛"), Some("chest_pain"));
    }

    #[test]
    fn the_assistants_own_messages_are_not_emergencies_or_diagnoses() {
        for language in LANGUAGES {
            let emergency = emergency_message(language, "112");
            let no_diagnosis = no_diagnosis_message(language);
            assert_eq!(sign(&emergency), None, "{emergency}");
            assert_eq!(sign(&no_diagnosis), None, "{no_diagnosis}");
            assert!(!presents_diagnosis(&emergency), "{emergency}");
            assert!(!presents_diagnosis(&no_diagnosis), "{no_diagnosis}");
        }
    }

    #[test]
    fn emergency_messages_carry_the_number() {
        assert_eq!(
            emergency_message("en", "911"),
            "This may be an emergency. Call 911 now or go to the nearest emergency department. \
             Do not wait for an answer here."
        );
        for language in LANGUAGES {
            let message = emergency_message(language, "112");
            assert!(message.contains("112") && !message.contains("{number}"), "{language}: {message}");
        }
        assert_eq!(emergency_message("de", "112"), emergency_message("en", "112"));
        assert_eq!(emergency_message("", "15"), emergency_message("en", "15"));
        assert_ne!(emergency_message("es", "112"), emergency_message("en", "112"));
    }

    #[test]
    fn no_diagnosis_messages() {
        assert_eq!(
            no_diagnosis_message("en"),
            "I can't tell you whether you have a condition or what it is. Your care team can explain what \
             your results mean for you."
        );
        assert_eq!(no_diagnosis_message("xx"), no_diagnosis_message("en"));
        let all: Vec<String> = LANGUAGES.iter().map(|l| no_diagnosis_message(l)).collect();
        for (i, a) in all.iter().enumerate() {
            assert!(all.iter().skip(i + 1).all(|b| b != a), "{a} is repeated");
        }
    }

    #[test]
    fn diagnoses_are_recognised() {
        for answer in [
            "Based on these results, you have cancer.",
            "You have been diagnosed with stage 2 breast cancer.",
            "It looks like you have lymphoma.",
            "You probably have a malignant tumour.",
            "Your biopsy shows a carcinoma.",
            "Según su biopsia, usted tiene cáncer de mama.",
            "Tienes un linfoma.",
            "Le han diagnosticado una leucemia.",
            "Vous avez un cancer du poumon.",
            "Vous êtes atteinte d'un lymphome.",
            "لديك سرطان الثدي.",
            "تم تشخيصك بسرطان القولون.",
            "根据检查结果，您患有乳腺癌。",
            "你被诊断为肺癌。",
            "आपकी रिपोर्ट के अनुसार आपको स्तन कैंसर है।",
            "आपको कैंसर है।",
        ] {
            assert!(presents_diagnosis(answer), "{answer:?} presents a diagnosis");
        }
    }

    #[test]
    fn explanations_are_not_diagnoses() {
        for answer in [
            "Chemotherapy uses medicines to kill cancer cells. Your care team can tell you more.",
            "If you have cancer, your care team will explain the treatment options.",
            "Only your doctor can tell whether you have cancer.",
            "When you were diagnosed with cancer, you may have felt shocked.",
            "Do you have any questions about cancer?",
            "Ask your care team what your results show about the tumour.",
            "You have an appointment on Monday with Dr Lee.",
            "Si tiene cáncer, su equipo le explicará las opciones.",
            "Si usted tiene cáncer de mama, el tratamiento suele incluir cirugía.",
            "La quimioterapia destruye las células del cáncer.",
            "Si vous avez un cancer, votre équipe vous expliquera les traitements.",
            "إذا كان لديك سرطان، سيشرح لك فريقك خيارات العلاج.",
            "العلاج الكيميائي يقتل الخلايا السرطانية.",
            "如果您患有癌症，您的医生会解释治疗方案。",
            "如果你得了癌症，不要独自面对。",
            "化疗使用药物杀死癌细胞。",
            "अगर आपको कैंसर है, तो आपकी टीम इलाज के विकल्प समझाएगी।",
            "क्या आपको कैंसर के बारे में कोई सवाल है?",
            "कीमोथेरेपी कैंसर कोशिकाओं को नष्ट करती है।",
        ] {
            assert!(!presents_diagnosis(answer), "{answer:?} does not present a diagnosis");
        }
    }
}
