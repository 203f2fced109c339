//! A signed diagnosis report as a PDF, made in process with lopdf: A4 pages of text in the
//! PDF's built-in Helvetica, word-wrapped, numbered, with the signature block and the digest.
//! The built-in fonts carry Latin-1 only (WinAnsi): a character outside it is written as `?`
//! (README: "Diagnosis reports" says so); the report itself, in the API, is exact.

use lopdf::content::{Content, Operation};
use lopdf::{Document, Object, Stream, dictionary};

use super::reports::Report;

const PAGE_W: i64 = 595;
const PAGE_H: i64 = 842;
const MARGIN: i64 = 56;
const LEADING: i64 = 14;
const COLUMNS: usize = 92;

/// Latin-1 bytes of `s` for a WinAnsi string: what the built-in font can show, `?` otherwise.
fn latin1(s: &str) -> Vec<u8> {
    s.chars().map(|c| if (c as u32) < 256 && !c.is_control() { c as u8 } else { b'?' }).collect()
}

/// Lines of at most `COLUMNS` characters, breaking at spaces where it can.
fn wrap(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        for word in para.split_whitespace() {
            let mut word = word.to_owned();
            while word.chars().count() > COLUMNS {
                let head: String = word.chars().take(COLUMNS).collect();
                word = word.chars().skip(COLUMNS).collect();
                if !line.is_empty() {
                    out.push(std::mem::take(&mut line));
                }
                out.push(head);
            }
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > COLUMNS {
                out.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&word);
        }
        out.push(line);
    }
    out
}

/// The PDF of `report` for the patient named `name` with record number `mrn`.
pub fn render(report: &Report, name: &str, mrn: &str) -> Vec<u8> {
    let kind = if report.kind == "pathology" { "Pathology report" } else { "Imaging report" };
    let mut lines: Vec<(bool, String)> = vec![
        (true, format!("{kind} — version {}", report.version)),
        (false, format!("Patient: {name}   Record number: {mrn}")),
        (false, format!("Report {}   State: {}", report.report_id, report.state)),
        (false, String::new()),
        (true, "Findings".into()),
    ];
    lines.extend(wrap(&report.findings).into_iter().map(|l| (false, l)));
    lines.push((false, String::new()));
    lines.push((true, "Impression".into()));
    lines.extend(wrap(&report.impression).into_iter().map(|l| (false, l)));
    if let Some(r) = &report.recommendations {
        lines.push((false, String::new()));
        lines.push((true, "Recommendations".into()));
        lines.extend(wrap(r).into_iter().map(|l| (false, l)));
    }
    if !report.icd10.is_empty() {
        lines.push((false, String::new()));
        lines.push((true, "ICD-10".into()));
        lines.push((false, report.icd10.join(", ")));
    }
    lines.push((false, String::new()));
    lines.push((
        false,
        format!(
            "Signed by {} at {}",
            report.signed_by.map(|u| u.to_string()).unwrap_or_default(),
            report.signed_at.clone().unwrap_or_default()
        ),
    ));
    lines.push((false, format!("SHA-256 of the signed text: {}", report.digest.clone().unwrap_or_default())));

    let per_page = ((PAGE_H - 2 * MARGIN) / LEADING) as usize;
    let pages: Vec<&[(bool, String)]> = lines.chunks(per_page.max(1)).collect();
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let regular = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding",
    });
    let bold = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica-Bold", "Encoding" => "WinAnsiEncoding",
    });
    let resources = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => regular, "F2" => bold } });
    let mut kids = Vec::new();
    for (n, page) in pages.iter().enumerate() {
        let mut ops = vec![Operation::new("BT", vec![]), Operation::new("TL", vec![LEADING.into()])];
        ops.push(Operation::new("Td", vec![MARGIN.into(), (PAGE_H - MARGIN).into()]));
        for (heading, text) in page.iter() {
            let font = if *heading { "F2" } else { "F1" };
            ops.push(Operation::new("Tf", vec![font.into(), 10.into()]));
            ops.push(Operation::new("Tj", vec![Object::string_literal(latin1(text))]));
            ops.push(Operation::new("T*", vec![]));
        }
        ops.push(Operation::new("ET", vec![]));
        ops.push(Operation::new("BT", vec![]));
        ops.push(Operation::new("Tf", vec!["F1".into(), 8.into()]));
        ops.push(Operation::new("Td", vec![(PAGE_W - MARGIN - 40).into(), (MARGIN / 2).into()]));
        ops.push(Operation::new("Tj", vec![Object::string_literal(format!("{} / {}", n + 1, pages.len()))]));
        ops.push(Operation::new("ET", vec![]));
        let encoded = Content { operations: ops }.encode().unwrap_or_default();
        let content = doc.add_object(Stream::new(dictionary! {}, encoded));
        kids.push(Object::from(doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => content,
        })));
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => kids, "Count" => count, "Resources" => resources,
            "MediaBox" => vec![0.into(), 0.into(), PAGE_W.into(), PAGE_H.into()],
        }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    doc.compress();
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = doc.save_to(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_words_and_lines_wrap_within_the_page() {
        let lines = wrap(&format!("{} short words\n{}", "a".repeat(200), "word ".repeat(60)));
        assert!(lines.iter().all(|l| l.chars().count() <= COLUMNS), "{lines:?}");
        assert!(lines.len() >= 5);
        assert_eq!(latin1("é ✓"), vec![0xe9, b' ', b'?']);
    }
}
