//! The example plugins of `plugins/examples/`, loaded from their committed modules exactly as
//! an operator would install them, on realistic OCR text.

use std::path::PathBuf;

use careport_plugins::Registry;
use careport_plugins::registry::HostConfig;
use serde_json::{Value, json};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn load(name: &str) -> Registry {
    let r = Registry::new(HostConfig::default()).expect("registry");
    r.install_dir(&examples().join(name)).expect("the committed example installs");
    r
}

const LETTER: &str = "St Elsewhere Hospital - Oncology Clinic\n\
Patient: Jane Doe    MRN: H-00482913    DOB: 12/03/1961\n\
Contact: jane.doe@example.org, tel +44 20 7946 0958\n\
Seen on 2026-11-20 for follow-up of uterine leiomyosarcoma (uLMS).\n\
Next review 2026-12-18. Patient ID CP0012345678 on the ward list.\n\
Born on 4 July 1958 is the husband's date, not hers.";

fn spans(out: &Value) -> Vec<(String, String)> {
    let original = LETTER.as_bytes();
    out["annotations"]
        .as_array()
        .expect("annotations")
        .iter()
        .map(|a| {
            let (s, e) = (a["start"].as_u64().expect("start") as usize, a["end"].as_u64().expect("end") as usize);
            (a["kind"].as_str().expect("kind").to_owned(), String::from_utf8_lossy(&original[s..e]).into_owned())
        })
        .collect()
}

#[test]
fn redact_phi_masks_identifiers_and_keeps_clinical_dates() {
    let r = load("redact-phi");
    let out = r.call("redact-phi", &json!({"text": LETTER, "pages": [], "language": "en"})).expect("call");
    let found = spans(&out);
    let has = |kind: &str, text: &str| found.iter().any(|(k, t)| k == kind && t == text);
    assert!(has("mrn", "H-00482913"), "{found:?}");
    assert!(has("date_of_birth", "12/03/1961"), "{found:?}");
    assert!(has("email", "jane.doe@example.org"), "{found:?}");
    assert!(has("phone", "+44 20 7946 0958"), "{found:?}");
    assert!(has("mrn", "CP0012345678"), "{found:?}");
    assert!(has("date_of_birth", "4 July 1958"), "{found:?}");
    let text = out["text"].as_str().expect("text");
    assert_eq!(text.len(), LETTER.len(), "masking keeps offsets");
    for secret in ["H-00482913", "12/03/1961", "jane.doe@example.org", "7946 0958", "CP0012345678"] {
        assert!(!text.contains(secret), "{secret} left in: {text}");
    }
    for kept in ["2026-11-20", "2026-12-18", "uterine leiomyosarcoma", "Jane Doe"] {
        assert!(text.contains(kept), "{kept} was masked: {text}");
    }
}

#[test]
fn redact_phi_handles_escapes_unicode_and_empty_text() {
    let r = load("redact-phi");
    let text = "Résumé \"quoted\"\tline\nemail: zoë@example.org\n电话 +33 1 23 45 67 89";
    let out = r.call("redact-phi", &json!({"text": text, "language": "fr"})).expect("call");
    let masked = out["text"].as_str().expect("text");
    assert_eq!(masked.len(), text.len());
    assert!(masked.starts_with("Résumé \"quoted\"\tline\n"), "{masked}");
    assert!(!masked.contains("+33 1 23 45 67 89"), "{masked}");
    let out = r.call("redact-phi", &json!({"text": ""})).expect("call");
    assert_eq!(out, json!({"text": "", "annotations": []}));
    let out = r.call("redact-phi", &json!({"pages": []})).expect("call");
    assert_eq!(out["error"], "the input has no text");
}

const LAB_REPORT: &str = "Laboratory report — 20 Nov 2026\n\
HbA1c: 7.2 %   (48-53 mmol/mol target)\n\
Fasting glucose = 6,1 mmol/L\n\
Creatinine 88 µmol/L   eGFR > 90\n\
Hb 11.8 g/dL; WBC 4.3 x10^9/L; Platelets 250 x10^9/L\n\
Sodium 139 mmol/L, Potassium 4.1 mmol/L\n\
CA-125: 35 U/mL (reference < 35)\n\
Hbx 99 is not a test; neither is the word hemoglobinopathy.";

#[test]
fn lab_values_finds_results_with_values_units_and_offsets() {
    let r = load("lab-values");
    let out = r.call("lab-values", &json!({"text": LAB_REPORT, "pages": [], "language": "en"})).expect("call");
    assert_eq!(out["text"], LAB_REPORT, "the text comes back unchanged");
    let found: Vec<(String, f64, Value, String)> = out["annotations"]
        .as_array()
        .expect("annotations")
        .iter()
        .map(|a| {
            let (s, e) = (a["start"].as_u64().expect("start") as usize, a["end"].as_u64().expect("end") as usize);
            (
                a["test"].as_str().expect("test").to_owned(),
                a["value"].as_f64().expect("value"),
                a["unit"].clone(),
                LAB_REPORT[s..e].to_owned(),
            )
        })
        .collect();
    let expect = [
        ("HbA1c", 7.2, json!("%"), "HbA1c: 7.2 %"),
        ("Glucose", 6.1, json!("mmol/l"), "Fasting glucose = 6,1 mmol/L"),
        ("Creatinine", 88.0, json!("µmol/l"), "Creatinine 88 µmol/L"),
        ("Haemoglobin", 11.8, json!("g/dl"), "Hb 11.8 g/dL"),
        ("WBC", 4.3, json!("x10^9/l"), "WBC 4.3 x10^9/L"),
        ("Platelets", 250.0, json!("x10^9/l"), "Platelets 250 x10^9/L"),
        ("Sodium", 139.0, json!("mmol/l"), "Sodium 139 mmol/L"),
        ("Potassium", 4.1, json!("mmol/l"), "Potassium 4.1 mmol/L"),
        ("CA-125", 35.0, json!("u/ml"), "CA-125: 35 U/mL"),
    ];
    assert_eq!(found.len(), expect.len(), "{found:?}");
    for ((test, value, unit, span), (t, v, u, s)) in found.iter().zip(expect) {
        assert_eq!((test.as_str(), *value, unit, span.as_str()), (t, v, &u, s));
    }
}

/// The output shown in plugins/README.md's worked example.
#[test]
fn redact_phi_answers_as_the_readme_shows() {
    let r = load("redact-phi");
    let out =
        r.call("redact-phi", &json!({"text": "MRN: H-00482913, DOB: 12/03/1961", "language": "en"})).expect("call");
    assert_eq!(
        out,
        json!({"text": "MRN: **********, DOB: **********", "annotations": [
            {"kind": "mrn", "start": 5, "end": 15}, {"kind": "date_of_birth", "start": 22, "end": 32}]})
    );
}
