//! What an upload is, decided by its first bytes (never by its name or the client's
//! `Content-Type`), and the names it may be served under.
//!
//! The allow list: PDF, PNG, JPEG, TIFF, DICOM and plain text. Plain text is UTF-8 without
//! control characters other than tab and line ends, and must not look like markup: a text
//! file that starts with `<` (HTML, SVG, XML) is refused, because a browser that ignored our
//! headers could run it.

/// How many leading bytes [`media_type`] needs to decide (DICOM's marker is at 128).
pub const SNIFF_LEN: usize = 512;

/// The media type of content starting with `head` (at most [`SNIFF_LEN`] bytes; fewer only
/// when the whole content is shorter), or `None` if it is not on the allow list.
pub fn media_type(head: &[u8], whole: bool) -> Option<&'static str> {
    if head.starts_with(b"%PDF-") {
        return Some("application/pdf");
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some("image/png");
    }
    if head.starts_with(b"\xff\xd8\xff") {
        return Some("image/jpeg");
    }
    if head.starts_with(b"II*\0") || head.starts_with(b"MM\0*") {
        return Some("image/tiff");
    }
    if head.len() >= 132 && &head[128..132] == b"DICM" {
        return Some("application/dicom");
    }
    if is_plain_text(head, whole) {
        return Some("text/plain");
    }
    None
}

fn is_plain_text(head: &[u8], whole: bool) -> bool {
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        // A multi-byte character may be cut at the end of the sniffed bytes.
        Err(e) if !whole && e.error_len().is_none() => match std::str::from_utf8(&head[..e.valid_up_to()]) {
            Ok(t) => t,
            Err(_) => return false,
        },
        Err(_) => return false,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_start().starts_with('<') {
        return false;
    }
    text.chars().all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\u{c}'))
}

/// The usual extension of an allowed media type.
pub fn extension(media_type: &str) -> &'static str {
    match media_type {
        "application/pdf" => "pdf",
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/tiff" => "tif",
        "application/dicom" => "dcm",
        _ => "txt",
    }
}

/// A file name safe to keep and to show: the last path component of what the client sent,
/// without control characters, quotes or separators, at most 120 characters; "document" when
/// nothing is left. It is only ever shown (Content-Disposition), never used as a path.
pub fn sanitize_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '\'' | ';' | ':' | '<' | '>' | '|' | '*' | '?' | '`'))
        .take(120)
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    if trimmed.is_empty() { "document".to_owned() } else { trimmed.to_owned() }
}

/// `Content-Disposition` for serving a record: `inline` only for types a browser shows without
/// running anything (PDF and images), `attachment` otherwise; the name both as an ASCII
/// fallback and percent-encoded UTF-8 (RFC 6266 / 5987).
pub fn content_disposition(name: &str, media_type: &str) -> String {
    let kind = match media_type {
        "application/pdf" | "image/png" | "image/jpeg" => "inline",
        _ => "attachment",
    };
    let ascii: String = name.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '_' }).collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allow_list_is_decided_by_magic_bytes() {
        assert_eq!(media_type(b"%PDF-1.7\n...", false), Some("application/pdf"));
        assert_eq!(media_type(b"\x89PNG\r\n\x1a\n....", false), Some("image/png"));
        assert_eq!(media_type(b"\xff\xd8\xff\xe0..JFIF", false), Some("image/jpeg"));
        assert_eq!(media_type(b"II*\0....", false), Some("image/tiff"));
        assert_eq!(media_type(b"MM\0*....", false), Some("image/tiff"));
        let mut dicom = vec![0u8; 128];
        dicom.extend_from_slice(b"DICM\x02\x00");
        assert_eq!(media_type(&dicom, false), Some("application/dicom"));
        assert_eq!(media_type("Haemoglobin 13.5 g/dL\r\nWBC 6.1\n".as_bytes(), true), Some("text/plain"));
        assert_eq!(media_type("Résumé: ça va ✓".as_bytes(), true), Some("text/plain"));
        // Markup, executables, archives and binary junk are refused.
        for bad in [
            &b"<html><script>alert(1)</script>"[..],
            b"  <svg onload=alert(1)>",
            b"\xef\xbb\xbf<!DOCTYPE html>",
            b"MZ\x90\0\x03\0\0\0",
            b"PK\x03\x04zip",
            b"\x7fELF\x02\x01",
            b"text with a NUL\0inside",
            b"\xff\xfe\xfd not utf-8",
        ] {
            assert_eq!(media_type(bad, true), None, "{bad:?}");
        }
        // A UTF-8 character cut by the sniff window is not a reason to refuse.
        let mut cut = "a".repeat(SNIFF_LEN - 1).into_bytes();
        cut.push(0xc3);
        assert_eq!(media_type(&cut, false), Some("text/plain"));
        assert_eq!(media_type(&cut, true), None);
    }

    #[test]
    fn names_are_cut_to_their_last_component_and_cleaned() {
        assert_eq!(sanitize_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_name("C:\\Users\\x\\scan 1.pdf"), "scan 1.pdf");
        assert_eq!(sanitize_name("..."), "document");
        assert_eq!(sanitize_name(""), "document");
        assert_eq!(sanitize_name("a\"b;c\r\nd.pdf"), "abcd.pdf");
        assert_eq!(sanitize_name(".htaccess"), "htaccess");
        assert_eq!(sanitize_name(&"x".repeat(500)).len(), 120);
    }

    #[test]
    fn content_disposition_is_inline_only_for_what_a_browser_shows_safely() {
        assert_eq!(
            content_disposition("Blood test é.pdf", "application/pdf"),
            "inline; filename=\"Blood test _.pdf\"; filename*=UTF-8''Blood%20test%20%C3%A9.pdf"
        );
        assert!(content_disposition("notes.txt", "text/plain").starts_with("attachment;"));
        assert!(content_disposition("scan.dcm", "application/dicom").starts_with("attachment;"));
        assert!(content_disposition("scan.tif", "image/tiff").starts_with("attachment;"));
    }
}

/// Any bytes and any name, generated: a decision or a refusal, never a panic; what is kept as a
/// name is never a path and never markup.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn any_bytes_are_an_allowed_type_or_refused_and_text_is_never_markup(
            bytes in proptest::collection::vec(any::<u8>(), 0..SNIFF_LEN),
            whole in any::<bool>(),
        ) {
            if let Some(t) = media_type(&bytes, whole) {
                prop_assert!(["application/pdf", "image/png", "image/jpeg", "image/tiff", "application/dicom", "text/plain"].contains(&t));
                prop_assert!(!extension(t).is_empty());
                if t == "text/plain" {
                    let text = String::from_utf8_lossy(&bytes);
                    let markup = text.trim_start_matches('\u{feff}').trim_start().starts_with('<');
                    prop_assert!(!markup, "markup taken for text");
                }
            }
        }

        #[test]
        fn text_with_a_cut_character_at_the_end_is_still_text_when_the_file_goes_on(
            text in "[a-zA-Z0-9 .,:éàü✓\n]{1,100}",
            cut in 1usize..3,
        ) {
            let mut bytes = text.into_bytes();
            bytes.extend_from_slice(&"✓".as_bytes()[..cut]);
            prop_assert_eq!(media_type(&bytes, false), Some("text/plain"));
            prop_assert_eq!(media_type(&bytes, true), None, "a whole file ending mid-character is not UTF-8");
        }

        #[test]
        fn any_name_becomes_one_short_harmless_component(raw in any::<String>()) {
            let name = sanitize_name(&raw);
            prop_assert!(!name.is_empty() && name.chars().count() <= 120);
            prop_assert!(!name.contains(['/', '\\', '"', '\'', ';', ':', '<', '>', '|', '*', '?', '`']));
            prop_assert!(!name.chars().any(char::is_control));
            prop_assert!(!name.starts_with('.'), "no hidden file, no `..`: {name:?}");
            let header = content_disposition(&name, "application/pdf");
            prop_assert!(header.is_ascii() && !header.contains(['\r', '\n']), "{header:?}");
        }
    }
}
