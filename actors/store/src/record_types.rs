//! The twenty medical record types (seeded), and matching free text to them: "lab result" or
//! "CT report" to a type, with a score, so an upload's stated type or an OCR heading finds its
//! type even when nobody writes the canonical name.

use crate::db::Db;
use crate::fetch;
use crate::sql::Sql;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct RecordType {
    pub id: String,
    pub name: String,
    pub description: String,
    #[serde(skip)]
    pub aliases: String,
}

static ALL: Sql = Sql::new("SELECT id, name, description, aliases FROM record_types ORDER BY position");

pub async fn all(db: &Db) -> Result<Vec<RecordType>, sqlx::Error> {
    fetch!(db.reader(), RecordType, fetch_all, &ALL)
}

fn normalise(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.ends_with(' ') && !out.is_empty() {
            out.push(' ');
        }
    }
    out.trim_end().to_owned()
}

fn trigrams(s: &str) -> Vec<[char; 3]> {
    let padded: Vec<char> = format!("  {s} ").chars().collect();
    let mut grams: Vec<[char; 3]> = padded.windows(3).map(|w| [w[0], w[1], w[2]]).collect();
    grams.sort_unstable();
    grams.dedup();
    grams
}

/// Similarity of two normalised texts in 0..=1: trigram Jaccard, raised when one text's words
/// all appear in the other ("ct report" within "ct scan report").
fn similarity(a: &str, b: &str) -> f64 {
    if a == b {
        return 1.0;
    }
    let (ta, tb) = (trigrams(a), trigrams(b));
    let shared = ta.iter().filter(|g| tb.binary_search(g).is_ok()).count();
    let jaccard = shared as f64 / (ta.len() + tb.len() - shared).max(1) as f64;
    let words = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
    let (wa, wb) = (words(a), words(b));
    let covered = wa.iter().all(|w| wb.contains(w)) || wb.iter().all(|w| wa.contains(w));
    if covered { jaccard.max(0.8) } else { jaccard }
}

/// The types best matching `text`, best first, with scores in 0..=1 (at most `limit`, only
/// those scoring at least 0.3).
pub fn rank<'a>(types: &'a [RecordType], text: &str, limit: usize) -> Vec<(&'a RecordType, f64)> {
    let q = normalise(text);
    if q.is_empty() {
        return Vec::new();
    }
    let mut scored: Vec<(&RecordType, f64)> = types
        .iter()
        .map(|t| {
            let best = std::iter::once(t.name.as_str())
                .chain(t.aliases.split('|'))
                .map(|n| similarity(&q, &normalise(n)))
                .fold(0.0, f64::max);
            (t, (best * 1000.0).round() / 1000.0)
        })
        .filter(|(_, s)| *s >= 0.3)
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.name.cmp(&b.0.name)));
    scored.truncate(limit);
    scored
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: &str, name: &str, aliases: &str) -> RecordType {
        RecordType { id: id.into(), name: name.into(), description: String::new(), aliases: aliases.into() }
    }

    #[test]
    fn free_text_finds_its_type() {
        let types = vec![
            t("laboratory-results", "Laboratory Results", "lab result|blood test"),
            t("radiology-reports", "Radiology Reports", "ct report|mri|x-ray"),
            t("pathology-reports", "Pathology Reports", "histology"),
        ];
        let best = |q: &str| rank(&types, q, 3).first().map(|(t, _)| t.id.clone());
        assert_eq!(best("lab result").as_deref(), Some("laboratory-results"));
        assert_eq!(best("Lab Results!").as_deref(), Some("laboratory-results"));
        assert_eq!(best("CT report").as_deref(), Some("radiology-reports"));
        assert_eq!(best("radiology").as_deref(), Some("radiology-reports"));
        assert_eq!(best("histolgy").as_deref(), Some("pathology-reports"), "a typo still matches");
        assert!(rank(&types, "zzzz qqqq", 3).is_empty());
        assert!(rank(&types, "   ", 3).is_empty());
        assert_eq!(rank(&types, "Radiology Reports", 1)[0].1, 1.0);
    }
}
