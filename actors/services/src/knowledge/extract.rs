//! A knowledge document's text from what was uploaded: plain text and Markdown as they are, HTML
//! reduced to text (script and style content dropped, headings kept as Markdown headings for the
//! chunker), PDFs from their text layers. Judged by content where the format has a signature
//! (PDF), else by the declared type; anything else, or a file with no text, is refused with its
//! own code and nothing is kept.

use std::sync::Arc;

use careport_domain::{Code, Error};
use careport_ml::ocr::{Document, DocumentLimits, OcrError};

/// The formats a knowledge document may come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Markdown,
    Html,
    Pdf,
}

impl Format {
    /// The format of an upload: a PDF by its signature, else by its declared media type or, for
    /// `application/octet-stream`, by its file name's extension.
    pub fn of(bytes: &[u8], media_type: Option<&str>, file_name: Option<&str>) -> Option<Self> {
        if bytes.starts_with(b"%PDF-") {
            return Some(Format::Pdf);
        }
        let media = media_type.map(|m| m.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
        match media.as_deref() {
            Some("text/plain") => return Some(Format::Text),
            Some("text/markdown") | Some("text/x-markdown") => return Some(Format::Markdown),
            Some("text/html") | Some("application/xhtml+xml") => return Some(Format::Html),
            Some("application/pdf") => return None, // claims PDF without the signature
            _ => {}
        }
        let ext = file_name.and_then(|n| n.rsplit_once('.')).map(|(_, e)| e.to_ascii_lowercase());
        match ext.as_deref() {
            Some("txt") => Some(Format::Text),
            Some("md") | Some("markdown") => Some(Format::Markdown),
            Some("html") | Some("htm") => Some(Format::Html),
            _ => None,
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain",
            Format::Markdown => "text/markdown",
            Format::Html => "text/html",
            Format::Pdf => "application/pdf",
        }
    }
}

fn unreadable(message: &str) -> Error {
    Error::with_message(Code::KnowledgeUnreadable, message.to_owned())
}

/// The document's text. Blocking for PDFs (call it on the blocking pool).
pub fn text_of(bytes: Vec<u8>, format: Format, max_pages: usize) -> Result<String, Error> {
    let text = match format {
        Format::Text | Format::Markdown => {
            String::from_utf8(bytes).map_err(|_| unreadable("The file is not UTF-8 text."))?
        }
        Format::Html => {
            let html = String::from_utf8(bytes).map_err(|_| unreadable("The HTML file is not UTF-8."))?;
            careport_ml::html::html_to_text(&html)
        }
        Format::Pdf => pdf_text(bytes, max_pages)?,
    };
    let text = text.replace("\r\n", "\n").replace('\0', "");
    if text.trim().is_empty() {
        return Err(Error::with_message(Code::KnowledgeUnreadable, "The document has no text to index."));
    }
    Ok(text)
}

/// The text layers of a PDF's pages, joined by blank lines. Pages without a layer (scans) add
/// nothing: a PDF that is all scans is refused (upload it as a record and let OCR read it).
fn pdf_text(bytes: Vec<u8>, max_pages: usize) -> Result<String, Error> {
    let limits = DocumentLimits { max_pages, ..DocumentLimits::default() };
    let doc = Document::open(Arc::from(bytes), &limits).map_err(|e| match e {
        OcrError::Encrypted => unreadable("The PDF is encrypted."),
        OcrError::TooManyPages { limit, .. } => unreadable(&format!("The PDF has more than {limit} pages.")),
        _ => unreadable("The PDF is damaged."),
    })?;
    let mut pages = Vec::with_capacity(doc.page_count());
    for i in 0..doc.page_count() {
        match doc.page_text_layer(i) {
            Ok(Some(text)) => pages.push(text),
            Ok(None) => {}
            Err(_) => return Err(unreadable("The PDF is damaged.")),
        }
    }
    if pages.iter().all(|p| p.trim().is_empty()) {
        return Err(unreadable(
            "The PDF has no text layer (a scan): upload it to a chart and ask for its text, or upload a PDF with text.",
        ));
    }
    Ok(pages.join("\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_by_signature_type_or_extension() {
        assert_eq!(Format::of(b"%PDF-1.7 ...", Some("text/plain"), None), Some(Format::Pdf));
        assert_eq!(Format::of(b"hello", Some("application/pdf"), Some("a.pdf")), None);
        assert_eq!(Format::of(b"# Title", Some("application/octet-stream"), Some("guide.md")), Some(Format::Markdown));
        assert_eq!(Format::of(b"<p>x</p>", Some("text/html; charset=utf-8"), None), Some(Format::Html));
        assert_eq!(Format::of(b"\x89PNG", Some("image/png"), Some("scan.png")), None);
    }

    #[test]
    fn empty_and_binary_text_is_refused() {
        assert!(text_of(b"   \n".to_vec(), Format::Text, 10).is_err());
        assert!(text_of(vec![0xff, 0xfe, 0x00], Format::Text, 10).is_err());
        assert_eq!(text_of(b"a\r\nb".to_vec(), Format::Text, 10).expect("text"), "a\nb");
    }
}
