//! Whether a DICOM file is about the chart's patient: the patient identifiers the file states
//! (Patient ID, Patient's Name, Patient's Birth Date) against the chart's medical record number,
//! name and date of birth.
//!
//! The rule, decided once here:
//! - every identifier the file states and the chart has must match; one that differs makes the
//!   file a mismatch (refused unless an administrator overrides it);
//! - Patient ID matches the MRN ignoring case and surrounding spaces;
//! - a name matches when its words (letters and digits, case and accents ignored, DICOM's `^`
//!   components as words) are the chart's words, or one set holds the other and they share at
//!   least two words (a middle name written on one side only). Only the first, alphabetic
//!   representation of a DICOM name counts (`=` separates ideographic and phonetic ones);
//! - a file that states none of the three (a de-identified export) is `absent`: accepted, and
//!   recorded as such with the image.
//!
//! What differs is told by field name only: no value of either side reaches an error or a log.

use std::collections::BTreeSet;

use unicode_normalization::UnicodeNormalization;

/// The chart's side of the comparison.
#[derive(Clone, Default)]
pub struct ChartIdentity {
    pub mrn: String,
    pub full_name: String,
    /// `YYYY-MM-DD`.
    pub date_of_birth: Option<String>,
}

// Patient data: not printed.
impl std::fmt::Debug for ChartIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChartIdentity { .. }")
    }
}

/// The file's side: what a DICOM file states (each `None` when absent or empty).
#[derive(Clone, Default)]
pub struct FileIdentity {
    pub patient_id: Option<String>,
    pub patient_name: Option<String>,
    /// `YYYY-MM-DD`.
    pub birth_date: Option<String>,
}

impl std::fmt::Debug for FileIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileIdentity { .. }")
    }
}

/// The outcome of [`compare`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Every identifier the file states matches the chart.
    Matched,
    /// The file states no identifier.
    Absent,
    /// These identifiers (field names: `patient_id`, `patient_name`, `birth_date`) differ.
    Mismatch(Vec<&'static str>),
}

/// Compare the file's identifiers with the chart's.
pub fn compare(file: &FileIdentity, chart: &ChartIdentity) -> Identity {
    let present = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let (id, birth) = (present(&file.patient_id), present(&file.birth_date));
    // A name of separators only (`^`, as anonymisers leave it) states no name.
    let name = present(&file.patient_name).filter(|n| !words(n.split('=').next().unwrap_or_default()).is_empty());
    if id.is_none() && name.is_none() && birth.is_none() {
        return Identity::Absent;
    }
    let mut differ = Vec::new();
    if let Some(id) = id
        && !id.eq_ignore_ascii_case(chart.mrn.trim())
    {
        differ.push("patient_id");
    }
    if let Some(name) = name {
        let alphabetic = name.split('=').next().unwrap_or_default();
        if !names_match(&words(alphabetic), &words(&chart.full_name)) {
            differ.push("patient_name");
        }
    }
    if let (Some(birth), Some(chart_birth)) = (birth, chart.date_of_birth.as_deref())
        && birth != chart_birth.trim()
    {
        differ.push("birth_date");
    }
    if differ.is_empty() { Identity::Matched } else { Identity::Mismatch(differ) }
}

/// A name's words: compatibility-decomposed, accents dropped, lowercased, split at anything that
/// is not a letter or a digit (DICOM's `^`, spaces, commas, hyphens, dots).
fn words(name: &str) -> BTreeSet<String> {
    let plain: String = name
        .nfkd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect();
    plain.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

fn names_match(file: &BTreeSet<String>, chart: &BTreeSet<String>) -> bool {
    if file.is_empty() || chart.is_empty() {
        return file == chart;
    }
    if file == chart {
        return true;
    }
    let (small, large) = if file.len() <= chart.len() { (file, chart) } else { (chart, file) };
    small.len() >= 2 && small.is_subset(large)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> ChartIdentity {
        ChartIdentity {
            mrn: "MRN-0042".into(),
            full_name: "María José García López".into(),
            date_of_birth: Some("1961-04-09".into()),
        }
    }

    fn file(id: Option<&str>, name: Option<&str>, birth: Option<&str>) -> FileIdentity {
        FileIdentity {
            patient_id: id.map(Into::into),
            patient_name: name.map(Into::into),
            birth_date: birth.map(Into::into),
        }
    }

    #[test]
    fn a_file_that_states_the_chart_s_identifiers_matches() {
        let f = file(Some(" mrn-0042 "), Some("GARCIA LOPEZ^MARIA JOSE"), Some("1961-04-09"));
        assert_eq!(compare(&f, &chart()), Identity::Matched);
    }

    #[test]
    fn a_middle_name_on_one_side_only_still_matches_but_one_shared_word_does_not() {
        assert_eq!(compare(&file(None, Some("Garcia^Maria"), None), &chart()), Identity::Matched);
        assert_eq!(
            compare(&file(None, Some("Garcia^Pedro"), None), &chart()),
            Identity::Mismatch(vec!["patient_name"])
        );
    }

    #[test]
    fn only_the_alphabetic_representation_of_a_name_counts() {
        let f = file(None, Some("Garcia Lopez^Maria Jose=ガルシア^マリア"), None);
        assert_eq!(compare(&f, &chart()), Identity::Matched);
    }

    #[test]
    fn each_differing_identifier_is_named_and_no_value_is_told() {
        let f = file(Some("MRN-9999"), Some("Smith^John"), Some("1970-01-01"));
        let outcome = compare(&f, &chart());
        assert_eq!(outcome, Identity::Mismatch(vec!["patient_id", "patient_name", "birth_date"]));
        assert!(!format!("{outcome:?}{f:?}{:?}", chart()).contains("Smith"));
    }

    #[test]
    fn a_de_identified_file_is_absent_and_an_identifier_the_chart_lacks_is_not_compared() {
        assert_eq!(compare(&file(None, Some("  "), None), &chart()), Identity::Absent);
        assert_eq!(compare(&file(Some(""), Some("^^"), None), &chart()), Identity::Absent);
        let no_birth = ChartIdentity { date_of_birth: None, ..chart() };
        assert_eq!(compare(&file(Some("MRN-0042"), None, Some("1999-12-31")), &no_birth), Identity::Matched);
    }
}
