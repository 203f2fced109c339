//! Text cut into retrieval chunks that fit the embedder's window.
//!
//! The knowledge base embeds chunks, not documents: MiniLM reads at most 256 tokens, and a chunk
//! about one thing retrieves better than a page about ten. So the cut follows the document's own
//! structure, coarsest first: Markdown headings make sections (each chunk keeps its heading path,
//! `Care plan > Diet`), then blank lines (paragraphs), lines, sentences (`.` `!` `?` and
//! `。！？؟ । ॥ ۔`), words, and only as a last resort tokens — a 10,000-character "word" or
//! Chinese text without punctuation still fits. Adjacent pieces are packed greedily into windows
//! of at most [`ChunkConfig::max_tokens`], and consecutive windows of a section share about
//! [`ChunkConfig::overlap_tokens`], so a sentence cut by a window edge is whole in one of them.
//!
//! Token counts come from the embedder's own tokenizer ([`Tokens`]), run once over the whole
//! text; everything after that works on its offsets, so a 200-page document costs one
//! tokenization plus linear scans. Counting a span's tokens by the tokens of the whole text that
//! start in it is exact where the span's edges touch whitespace, for tokenizers that do not look
//! across whitespace (BERT's WordPiece, which MiniLM uses). A window whose edge is glued to the
//! text beyond it (cut inside a word, after `。`, between two Chinese characters) is tokenized
//! again on its own, and shrunk if that count is over the window, so `max_tokens` holds for the
//! chunk's text as the embedder will see it. Such re-counts make Chinese or Japanese text cost
//! about twice the tokenization of a European text.
//!
//! A chunk is an exact span of the input — [`Chunk::text`] is the input's characters
//! `start..end` — so a citation can highlight it in the original.

use std::cell::Cell;
use std::ops::Range;

/// A tokenizer, as far as chunking needs one.
pub trait Tokens {
    /// Byte offsets `(start, end)` in `text` of each token, in order, without special tokens.
    fn offsets(&self, text: &str) -> Vec<(usize, usize)>;
}

impl Tokens for tokenizers::Tokenizer {
    /// `Tokenizer::encode` reports byte offsets into the original text (`OffsetType::Byte`),
    /// mapped back through normalization (lower-casing, accent stripping). Padding and truncation
    /// set on the tokenizer (MiniLM's `tokenizer.json` ships with both) must not hide any text:
    /// padding is dropped (attention mask 0), and when the encoding may have been truncated (as
    /// long as the limit) the text is encoded again by a copy without truncation. So pass a
    /// tokenizer with truncation off, or at least above the chunk window, to avoid that copy.
    fn offsets(&self, text: &str) -> Vec<(usize, usize)> {
        let encode = |tokenizer: &tokenizers::Tokenizer| {
            tokenizer.encode(text, false).map(|encoding| {
                let mask = encoding.get_attention_mask();
                encoding.get_offsets().iter().zip(mask).filter(|(_, m)| **m != 0).map(|(o, _)| *o).collect::<Vec<_>>()
            })
        };
        let unbounded = || {
            let mut unbounded = self.clone();
            // Removing truncation cannot fail (only a bad stride can).
            let _ = unbounded.with_truncation(None);
            encode(&unbounded)
        };
        let offsets = match self.get_truncation().map(|t| t.max_length) {
            None => encode(self),
            // A whole document: surely over the limit, skip the truncated try.
            Some(limit) if text.len() > 16 * limit => unbounded(),
            Some(limit) => match encode(self) {
                // Shorter than the limit: nothing was cut.
                Ok(offsets) if offsets.len() < limit => Ok(offsets),
                _ => unbounded(),
            },
        };
        offsets.unwrap_or_else(|e| {
            // Never seen with a loaded tokenizer; count every character as a token, which
            // over-counts and so still never overflows the window.
            tracing::warn!(error = %e, "tokenizer failed; counting characters as tokens");
            text.char_indices().map(|(i, c)| (i, i + c.len_utf8())).collect()
        })
    }
}

/// Window and overlap, in tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkConfig {
    /// Most tokens in a chunk, special tokens not counted: MiniLM's 256 less `[CLS]` and `[SEP]`.
    pub max_tokens: usize,
    /// Tokens that consecutive chunks of a section share, about (at most half the window).
    pub overlap_tokens: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        ChunkConfig { max_tokens: crate::minilm::MAX_TOKENS - 2, overlap_tokens: 32 }
    }
}

/// One chunk: an exact span of the input and where it sits in the document's headings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The input's characters `start..end`, never empty, no whitespace at either end.
    pub text: String,
    /// Headings above the chunk, outermost first (`["Care plan", "Diet"]`); empty before the
    /// first heading.
    pub heading_path: Vec<String>,
    /// Offsets in characters (not bytes) into the input.
    pub start: usize,
    pub end: usize,
    /// Tokens in the chunk, at most `max_tokens`.
    pub tokens: usize,
}

/// Cut `text` (plain text or Markdown) into chunks; see the module docs. An input with no
/// visible characters gives no chunks.
pub fn chunk(text: &str, tokens: &dyn Tokens, cfg: &ChunkConfig) -> Vec<Chunk> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    let max = cfg.max_tokens.max(1);
    let chunker = Chunker {
        text,
        tokens,
        starts: token_starts(text, tokens.offsets(text)),
        max,
        overlap: cfg.overlap_tokens.min(max / 2),
        last_measured: Cell::new(None),
    };
    let mut chunks = Vec::new();
    let mut start_chars = CharCursor::default();
    let mut end_chars = CharCursor::default();
    let mut pieces = Vec::new();
    for section in sections(text) {
        pieces.clear();
        chunker.split(section.span.clone(), Level::Paragraph, &mut pieces);
        chunker.pack(&pieces, |span, tokens| {
            chunks.push(Chunk {
                text: text[span.clone()].to_owned(),
                heading_path: section.path.clone(),
                start: start_chars.chars_at(text, span.start),
                end: end_chars.chars_at(text, span.end),
                tokens,
            });
        });
    }
    chunks
}

// ---------------------------------------------------------------------------------------------
// Sections: the text between Markdown headings, with the heading path above it.

struct Section {
    /// Byte span; the heading line itself is the section's first line.
    span: Range<usize>,
    path: Vec<String>,
}

fn sections(text: &str) -> Vec<Section> {
    let mut lines = Vec::new();
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\n', '\r']);
        lines.push(at..at + content.len());
        at += line.len();
    }

    let mut sections = Vec::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut begin = 0;
    let mut fence: Option<char> = None;
    let mut previous_blank = true;
    let mut skip_underline = false;
    for (i, span) in lines.iter().enumerate() {
        let line = &text[span.clone()];
        if std::mem::take(&mut skip_underline) {
            previous_blank = false;
            continue;
        }
        if let Some(marker) = fence_marker(line) {
            match fence {
                None => fence = Some(marker),
                Some(open) if open == marker => fence = None,
                Some(_) => {}
            }
            previous_blank = false;
            continue;
        }
        if fence.is_some() {
            continue;
        }
        let setext = || {
            let next = lines.get(i + 1).map(|s| &text[s.clone()])?;
            let level = setext_underline(next)?;
            (previous_blank && !line.trim().is_empty()).then(|| (level, line.trim().to_owned()))
        };
        let (heading, underlined) = match atx_heading(line) {
            Some(h) => (Some(h), false),
            None => (setext(), true),
        };
        if let Some((level, title)) = heading {
            skip_underline = underlined;
            if begin < span.start {
                sections.push(Section { span: begin..span.start, path: titles(&path) });
            }
            begin = span.start;
            while path.last().is_some_and(|(l, _)| *l >= level) {
                path.pop();
            }
            path.push((level, title));
            previous_blank = true;
            continue;
        }
        previous_blank = line.trim().is_empty();
    }
    sections.push(Section { span: begin..text.len(), path: titles(&path) });
    sections.retain(|s| !text[s.span.clone()].trim().is_empty());
    sections
}

fn titles(path: &[(usize, String)]) -> Vec<String> {
    path.iter().filter(|(_, t)| !t.is_empty()).map(|(_, t)| t.clone()).collect()
}

/// Up to three spaces of indentation, as Markdown allows.
fn unindent(line: &str) -> Option<&str> {
    let rest = line.trim_start_matches(' ');
    (line.len() - rest.len() <= 3).then_some(rest)
}

/// `# Title` … `###### Title` (a closing run of `#` dropped).
fn atx_heading(line: &str) -> Option<(usize, String)> {
    let rest = unindent(line)?;
    let level = rest.bytes().take_while(|&b| b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let title = &rest[level..];
    if !(title.is_empty() || title.starts_with([' ', '\t'])) {
        return None;
    }
    let title = title.trim();
    let unclosed = title.trim_end_matches('#');
    let title = if unclosed.is_empty() || unclosed.ends_with([' ', '\t']) { unclosed.trim_end() } else { title };
    Some((level, title.to_owned()))
}

/// `===` (level 1) or `---` (level 2) under a one-line paragraph.
fn setext_underline(line: &str) -> Option<usize> {
    let rest = unindent(line)?.trim_end();
    let first = rest.chars().next()?;
    let level = match first {
        '=' => 1,
        '-' => 2,
        _ => return None,
    };
    (rest.len() >= 3 && rest.chars().all(|c| c == first)).then_some(level)
}

fn fence_marker(line: &str) -> Option<char> {
    let rest = unindent(line)?;
    ["```", "~~~"].iter().find(|f| rest.starts_with(*f)).and_then(|f| f.chars().next())
}

// ---------------------------------------------------------------------------------------------
// Splitting and packing.

/// Where a span may be cut, coarsest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Paragraph,
    Line,
    Sentence,
    Word,
    Token,
}

impl Level {
    fn finer(self) -> Level {
        match self {
            Level::Paragraph => Level::Line,
            Level::Line => Level::Sentence,
            Level::Sentence => Level::Word,
            Level::Word | Level::Token => Level::Token,
        }
    }
}

struct Chunker<'a> {
    text: &'a str,
    tokens: &'a dyn Tokens,
    /// Byte offset where each token of the whole text starts, sorted.
    starts: Vec<usize>,
    max: usize,
    overlap: usize,
    last_measured: Cell<Option<(Range<usize>, usize)>>,
}

/// Token start offsets, cleaned: empty or out-of-range tokens dropped, starts moved onto
/// character boundaries, sorted.
fn token_starts(text: &str, offsets: Vec<(usize, usize)>) -> Vec<usize> {
    let mut starts: Vec<usize> = offsets
        .into_iter()
        .filter(|&(s, e)| s < e && e <= text.len())
        .map(|(s, _)| (0..=s).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0))
        .collect();
    if !starts.is_sorted() {
        starts.sort_unstable();
    }
    starts
}

impl Chunker<'_> {
    /// Index of the first token starting at or after byte `at`.
    fn token_index(&self, at: usize) -> usize {
        self.starts.partition_point(|&s| s < at)
    }

    /// Tokens of the whole text that start in `span`.
    fn count(&self, span: &Range<usize>) -> usize {
        self.token_index(span.end) - self.token_index(span.start)
    }

    /// Whether `at` has visible characters on both sides: inside a word, after a CJK full stop,
    /// between two CJK characters. A span cut there may tokenize differently on its own.
    fn glued(&self, at: usize) -> bool {
        let before = self.text[..at].chars().next_back();
        let after = self.text[at..].chars().next();
        matches!((before, after), (Some(b), Some(a)) if !b.is_whitespace() && !a.is_whitespace())
    }

    /// Tokens in `span` as the embedder will count them: the whole text's count, or, for a span
    /// with a glued edge, the larger of that and the span tokenized on its own.
    fn measure(&self, span: &Range<usize>) -> usize {
        let global = self.count(span);
        if !(self.glued(span.start) || self.glued(span.end)) {
            return global;
        }
        // The window just checked is usually measured again when emitted.
        if let Some((cached, tokens)) = self.last_measured.take()
            && cached == *span
        {
            self.last_measured.set(Some((cached, tokens)));
            return tokens;
        }
        let local = token_starts(&self.text[span.clone()], self.tokens.offsets(&self.text[span.clone()])).len();
        let tokens = global.max(local);
        self.last_measured.set(Some((span.clone(), tokens)));
        tokens
    }

    fn fits(&self, span: &Range<usize>) -> bool {
        self.count(span) <= self.max && self.measure(span) <= self.max
    }

    /// Cut `span` into pieces of at most `max` tokens each, at the coarsest level that works.
    fn split(&self, span: Range<usize>, level: Level, out: &mut Vec<Range<usize>>) {
        // A piece is measured on its own only when it is more than half a window: a glued edge
        // shifts a count by a token or two, not by half a window. Windows are always measured.
        let count = self.count(&span);
        if count <= self.max && (2 * count <= self.max || self.fits(&span)) {
            out.push(span);
            return;
        }
        if level == Level::Token {
            self.split_tokens(span, out);
            return;
        }
        let mut parts = Vec::new();
        segments(self.text, span.clone(), level, &mut parts);
        for part in parts {
            self.split(part, level.finer(), out);
        }
    }

    /// The last resort: cut between tokens, each piece as many tokens as fit.
    fn split_tokens(&self, span: Range<usize>, out: &mut Vec<Range<usize>>) {
        let mut from = span.start;
        while from < span.end {
            let first = self.token_index(from);
            let last = self.token_index(span.end);
            let mut take = self.max.min(last - first);
            let end = loop {
                // Cut where the token after the first `take` starts, past any tokens sharing
                // a start with the first one (so the piece is never empty).
                let mut cut_at = first + take;
                while cut_at < last && self.starts[cut_at] <= from {
                    cut_at += 1;
                }
                let end = if cut_at >= last { span.end } else { self.starts[cut_at] };
                let candidate = from..end;
                if take <= 1 || self.fits(&candidate) {
                    break end;
                }
                let excess = self.measure(&candidate).saturating_sub(self.max).max(1);
                take = take.saturating_sub(excess).max(1);
            };
            if let Some(piece) = trimmed(self.text, from..end) {
                out.push(piece);
            }
            from = end;
        }
    }

    /// Pack adjacent pieces greedily into windows, each starting inside the previous one's tail
    /// for the overlap; `emit` gets each window's span and its token count.
    fn pack(&self, pieces: &[Range<usize>], mut emit: impl FnMut(Range<usize>, usize)) {
        let Some(first) = pieces.first() else { return };
        let mut start = first.start;
        // The window reaches at least the end of piece `least`, which fits with `start`.
        let mut least = 0;
        loop {
            let mut last = least;
            while last + 1 < pieces.len() && self.count(&(start..pieces[last + 1].end)) <= self.max {
                last += 1;
            }
            while last > least && !self.fits(&(start..pieces[last].end)) {
                last -= 1;
            }
            if let Some(span) = trimmed(self.text, start..pieces[last].end) {
                let tokens = self.measure(&span);
                emit(span, tokens);
            }
            let Some(next) = pieces.get(last + 1) else { return };
            start = self.overlap_start(pieces, start..pieces[last].end, next).unwrap_or(next.start);
            least = last + 1;
        }
    }

    /// Where the next window starts so that it repeats about `overlap` tokens of `window`'s end
    /// and still fits with `next`: at a piece boundary if one gives at least half the overlap,
    /// else at a line, sentence or word boundary, else at a later word (less overlap), and
    /// inside a word only where the tail has no spaces at all (a huge word, Chinese text).
    fn overlap_start(&self, pieces: &[Range<usize>], window: Range<usize>, next: &Range<usize>) -> Option<usize> {
        let first = self.token_index(window.start);
        let in_window = self.token_index(window.end) - first;
        // A window this short ended early because the next piece did not fit (a heading before
        // a long paragraph): repeating half of it helps nobody.
        if in_window < 2 * self.overlap {
            return None;
        }
        let budget = self.overlap.min(self.max.saturating_sub(self.count(next)));
        if budget == 0 {
            return None;
        }
        // Starting anywhere in earliest..=latest repeats between budget/2 and budget tokens.
        let earliest = self.starts[first + in_window - budget];
        let latest = self.starts[first + in_window - budget.div_ceil(2)];
        let pick = |starts: &mut dyn Iterator<Item = usize>, until: usize| {
            starts
                .skip_while(|&at| at < earliest || at <= window.start)
                .take_while(|&at| at <= until)
                .find(|&at| self.fits(&(at..next.end)))
        };

        // Pieces starting in the tail; `holder` is the piece that holds `earliest`.
        let holder = pieces.partition_point(|p| p.start <= earliest).saturating_sub(1);
        let tail = pieces.get(holder..).unwrap_or_default();
        let tail = &tail[..tail.partition_point(|p| p.start <= latest)];
        if let Some(at) = pick(&mut tail.iter().map(|p| p.start), latest) {
            return Some(at);
        }
        // Boundaries inside those pieces.
        let scan = tail.first().map_or(window.start, |p| p.start.max(window.start))..window.end;
        let mut parts = Vec::new();
        for level in [Level::Line, Level::Sentence, Level::Word] {
            parts.clear();
            segments(self.text, scan.clone(), level, &mut parts);
            if let Some(at) = pick(&mut parts.iter().map(|p| p.start), latest) {
                return Some(at);
            }
        }
        // `parts` now holds the words: a later one repeats less but stays whole.
        if let Some(at) = pick(&mut parts.iter().map(|p| p.start), window.end - 1) {
            return Some(at);
        }
        if self.text[earliest..window.end].contains(char::is_whitespace) {
            return None;
        }
        pick(&mut self.starts[first..first + in_window].iter().copied(), latest)
    }
}

/// `span` without whitespace at either end, or `None` if nothing is left.
fn trimmed(text: &str, span: Range<usize>) -> Option<Range<usize>> {
    let s = &text[span.clone()];
    let start = span.start + (s.len() - s.trim_start().len());
    let end = span.end - (s.len() - s.trim_end().len());
    (start < end).then_some(start..end)
}

/// Closing punctuation that belongs to the sentence before it.
fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '}' | '»' | '”' | '’' | '」' | '』' | '）' | '】' | '》' | '〉')
}

/// Sentence ends that need no space after them (CJK, Arabic, Devanagari, Urdu).
fn is_hard_end(c: char) -> bool {
    matches!(c, '。' | '！' | '？' | '｡' | '؟' | '।' | '॥' | '۔')
}

fn ends_sentence(s: &str) -> bool {
    s.trim_end_matches(is_closer)
        .chars()
        .next_back()
        .is_some_and(|c| matches!(c, '.' | '!' | '?' | '…') || is_hard_end(c))
}

/// Split `span` at every boundary of `level` into trimmed, non-empty parts that together hold
/// every visible character of `span`.
fn segments(text: &str, span: Range<usize>, level: Level, out: &mut Vec<Range<usize>>) {
    let s = &text[span.clone()];
    let base = span.start;
    let mut begin = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_whitespace() {
            let mut newlines = usize::from(c == '\n');
            let mut run_end = i + c.len_utf8();
            while let Some(&(k, d)) = chars.peek() {
                if !d.is_whitespace() {
                    break;
                }
                newlines += usize::from(d == '\n');
                run_end = k + d.len_utf8();
                chars.next();
            }
            let cut = match level {
                Level::Paragraph => newlines >= 2,
                Level::Line => newlines >= 1,
                Level::Sentence => ends_sentence(&s[begin..i]),
                Level::Word => true,
                Level::Token => false,
            };
            if cut {
                out.extend(trimmed(text, base + begin..base + i));
                begin = run_end;
            }
        } else if level == Level::Sentence && is_hard_end(c) {
            let mut end = i + c.len_utf8();
            while let Some(&(k, d)) = chars.peek() {
                if !(is_closer(d) || is_hard_end(d)) {
                    break;
                }
                end = k + d.len_utf8();
                chars.next();
            }
            // Followed by whitespace, the run above cuts; followed by text, cut here.
            if chars.peek().is_some_and(|&(_, d)| !d.is_whitespace()) {
                out.extend(trimmed(text, base + begin..base + end));
                begin = end;
            }
        }
    }
    out.extend(trimmed(text, base + begin..span.end));
}

/// Byte offsets to character offsets for increasing positions, in one pass overall.
#[derive(Default)]
struct CharCursor {
    byte: usize,
    chars: usize,
}

impl CharCursor {
    fn chars_at(&mut self, text: &str, byte: usize) -> usize {
        if byte < self.byte {
            *self = CharCursor::default();
        }
        self.chars += text[self.byte..byte].chars().count();
        self.byte = byte;
        self.chars
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Instant;

    use tokenizers::{PaddingParams, PaddingStrategy, TruncationDirection, TruncationParams};

    use super::*;

    /// One token per run of non-whitespace characters.
    struct Words;

    impl Tokens for Words {
        fn offsets(&self, text: &str) -> Vec<(usize, usize)> {
            let mut out = Vec::new();
            let mut start = None;
            for (i, c) in text.char_indices() {
                match (c.is_whitespace(), start) {
                    (true, Some(s)) => {
                        out.push((s, i));
                        start = None;
                    }
                    (false, None) => start = Some(i),
                    _ => {}
                }
            }
            if let Some(s) = start {
                out.push((s, text.len()));
            }
            out
        }
    }

    /// Words, but at most three characters per token (so long words and CJK runs need cutting).
    struct Trigrams;

    impl Tokens for Trigrams {
        fn offsets(&self, text: &str) -> Vec<(usize, usize)> {
            let mut out = Vec::new();
            for (s, e) in Words.offsets(text) {
                let bounds: Vec<usize> = text[s..e].char_indices().map(|(i, _)| s + i).chain([e]).collect();
                for k in (0..bounds.len() - 1).step_by(3) {
                    out.push((bounds[k], bounds[(k + 3).min(bounds.len() - 1)]));
                }
            }
            out
        }
    }

    /// MiniLM's tokenizer as `tokenizer.json` has it (padding and truncation at 128).
    fn minilm_as_shipped() -> Option<tokenizers::Tokenizer> {
        let dir = PathBuf::from(std::env::var_os("CAREPORT_TEST_MODEL_DIR")?);
        tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).ok()
    }

    fn minilm() -> Option<tokenizers::Tokenizer> {
        let mut tokenizer = minilm_as_shipped()?;
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).ok()?;
        Some(tokenizer)
    }

    fn cfg(max_tokens: usize, overlap_tokens: usize) -> ChunkConfig {
        ChunkConfig { max_tokens, overlap_tokens }
    }

    /// What every chunking must satisfy, whatever the input.
    fn check(text: &str, tokens: &dyn Tokens, cfg: &ChunkConfig) -> Vec<Chunk> {
        let chunks = chunk(text, tokens, cfg);
        let chars: Vec<char> = text.chars().collect();
        let mut covered = vec![false; chars.len()];
        for c in &chunks {
            assert!(!c.text.is_empty(), "empty chunk");
            assert_eq!(c.text.trim(), c.text, "untrimmed chunk");
            let span: String = chars[c.start..c.end].iter().collect();
            assert_eq!(span, c.text, "offsets do not match the text");
            let own = tokens.offsets(&c.text).len();
            let max = cfg.max_tokens.max(1);
            assert!(c.tokens <= max, "{} tokens: {:?}", c.tokens, c.text);
            assert!(own <= max, "{own} tokens when tokenized alone: {:?}", c.text);
            covered[c.start..c.end].iter_mut().for_each(|x| *x = true);
        }
        for (i, (ch, cov)) in chars.iter().zip(&covered).enumerate() {
            assert!(*cov || ch.is_whitespace(), "char {i} {ch:?} is in no chunk");
        }
        for w in chunks.windows(2) {
            assert!(w[0].start < w[1].start && w[0].end < w[1].end, "chunks out of order");
        }
        chunks
    }

    fn sample_document(paragraphs: usize) -> String {
        let sentences = [
            "The patient was admitted with shortness of breath and a productive cough.",
            "Oxygen saturation improved to 96% on two litres via nasal cannula!",
            "Is the family aware of the discharge plan?",
            "Continue amoxicillin 500 mg three times daily for five days.",
            "Review renal function (creatinine, eGFR) before the next dose.",
        ];
        let mut text = String::new();
        for p in 0..paragraphs {
            if p % 7 == 0 {
                text.push_str(&format!("# Admission {}\n\n", p / 7));
            }
            if p % 7 == 3 {
                text.push_str("## Plan\n\n");
            }
            for s in 0..(3 + p % 5) {
                text.push_str(sentences[(p + s) % sentences.len()]);
                text.push(if s % 3 == 2 { '\n' } else { ' ' });
            }
            text.push_str("\n\n");
        }
        text
    }

    #[test]
    fn empty_input_gives_no_chunks() {
        assert!(chunk("", &Words, &cfg(10, 2)).is_empty());
        assert!(chunk(" \n\n\t  \n", &Words, &cfg(10, 2)).is_empty());
    }

    #[test]
    fn headings_give_each_chunk_its_path() {
        let text = "Preamble line.\n\n# Care plan\n\nIntro text.\n\n## Diet\n\nSoft food.\n\n### Fluids\n\n\
                    Two litres.\n\n## Mobility ##\n\nWalk daily.\n\nSetext title\n============\n\nUnder it.\n\n\
                    Sub\n---\n\nLast.\n\n```\n# not a heading\n```\n";
        let chunks = check(text, &Words, &cfg(50, 5));
        let paths: Vec<(String, Vec<String>)> =
            chunks.iter().map(|c| (c.text.clone(), c.heading_path.clone())).collect();
        let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            paths,
            vec![
                ("Preamble line.".to_owned(), path(&[])),
                ("# Care plan\n\nIntro text.".to_owned(), path(&["Care plan"])),
                ("## Diet\n\nSoft food.".to_owned(), path(&["Care plan", "Diet"])),
                ("### Fluids\n\nTwo litres.".to_owned(), path(&["Care plan", "Diet", "Fluids"])),
                ("## Mobility ##\n\nWalk daily.".to_owned(), path(&["Care plan", "Mobility"])),
                ("Setext title\n============\n\nUnder it.".to_owned(), path(&["Setext title"])),
                ("Sub\n---\n\nLast.\n\n```\n# not a heading\n```".to_owned(), path(&["Setext title", "Sub"])),
            ]
        );
    }

    #[test]
    fn windows_are_full_bounded_and_overlap() {
        let text = sample_document(60);
        let config = cfg(40, 8);
        let chunks = check(&text, &Words, &config);
        assert!(chunks.len() > 20);
        let mut overlapping = 0;
        for w in chunks.windows(2) {
            if w[0].heading_path == w[1].heading_path && w[1].start < w[0].end {
                overlapping += 1;
                let shared =
                    Words.offsets(&text.chars().skip(w[1].start).take(w[0].end - w[1].start).collect::<String>()).len();
                assert!((1..=8).contains(&shared), "overlap of {shared} tokens");
            }
        }
        assert!(overlapping > 10, "only {overlapping} overlaps");
        // Windows are packed, not one sentence each.
        let mean = chunks.iter().map(|c| c.tokens).sum::<usize>() / chunks.len();
        assert!(mean > 20, "mean {mean} tokens");
        // No overlap asked, none given.
        let chunks = check(&text, &Words, &cfg(40, 0));
        assert!(chunks.windows(2).all(|w| w[1].start > w[0].end));
    }

    #[test]
    fn paragraphs_are_kept_whole_when_they_fit() {
        let text = "one two three\n\nfour five six\n\nseven eight nine ten eleven twelve thirteen";
        let chunks = check(text, &Words, &cfg(6, 0));
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["one two three\n\nfour five six", "seven eight nine ten eleven twelve", "thirteen"]);
    }

    #[test]
    fn sentences_split_in_every_script() {
        let text = "مرحبا بكم في العيادة. كيف حالك اليوم؟ نأمل أن تكون بخير!\n\
                    मरीज़ को बुखार है। दवा दी गई। कल फिर जाँच होगी।";
        let chunks = check(text, &Words, &cfg(4, 0));
        assert!(chunks.iter().any(|c| c.text == "كيف حالك اليوم؟"), "{chunks:#?}");
        assert!(chunks.iter().any(|c| c.text == "दवा दी गई।"), "{chunks:#?}");
    }

    #[test]
    fn chinese_without_spaces_is_cut() {
        let sentence = "患者今天早上感觉胸闷气短需要进一步检查心电图和血氧饱和度";
        let text = format!("{sentence}。{sentence}！{}", sentence.repeat(20));
        let chunks = check(&text, &Trigrams, &cfg(10, 3));
        assert!(chunks.len() > 10);
        assert!(chunks[0].text.ends_with('。') || chunks[0].tokens == 10, "{:?}", chunks[0]);
    }

    #[test]
    fn a_huge_word_is_cut_by_tokens() {
        let word: String = "abcdefghij".repeat(1_000);
        let text = format!("Before it.\n\n{word}\n\nAfter it.");
        let chunks = check(&text, &Trigrams, &cfg(50, 10));
        // 10,000 characters in tokens of three, windows of 50 tokens.
        assert!(chunks.len() >= 10_000 / 3 / 50, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.tokens <= 50));
        let chunks = check(&text, &Words, &cfg(50, 10));
        assert_eq!(chunks.len(), 1, "one token is one word");
    }

    #[test]
    fn tiny_windows_still_work() {
        let text = sample_document(5);
        check(&text, &Words, &cfg(1, 0));
        check(&text, &Words, &cfg(1, 1));
        check(&text, &Trigrams, &cfg(2, 1));
        check(&text, &Words, &cfg(0, 5));
    }

    #[test]
    fn minilm_tokenizer_counts_and_offsets() {
        let Some(tokenizer) = minilm() else {
            eprintln!("CAREPORT_TEST_MODEL_DIR not set: skipped");
            return;
        };
        // Byte offsets into the original text, through lower-casing and accent stripping.
        let text = "Élodie a reçu 500 mg — 患者 OK.";
        let offsets = Tokens::offsets(&tokenizer, text);
        let pieces: Vec<&str> = offsets.iter().map(|&(s, e)| text.get(s..e).unwrap_or("<not bytes>")).collect();
        assert_eq!(pieces.concat(), text.replace(' ', ""), "{pieces:?}");
        assert!(pieces.contains(&"患") && pieces.contains(&"者"), "{pieces:?}");
        // The shipped tokenizer.json pads and truncates at 128; the impl must see everything.
        let long = sample_document(3);
        let unbounded = Tokens::offsets(&tokenizer, &long);
        assert!(unbounded.len() > 100);
        for (direction, stride, padding) in [
            (TruncationDirection::Right, 0, None),
            (TruncationDirection::Right, 5, Some(PaddingStrategy::Fixed(128))),
            (TruncationDirection::Left, 3, Some(PaddingStrategy::BatchLongest)),
        ] {
            let mut bounded = tokenizer.clone();
            let truncation = TruncationParams { max_length: 16, stride, direction, ..Default::default() };
            bounded.with_truncation(Some(truncation)).map(|_| ()).ok();
            bounded.with_padding(padding.map(|strategy| PaddingParams { strategy, ..Default::default() }));
            assert_eq!(Tokens::offsets(&bounded, &long), unbounded, "{direction:?} {stride}");
        }
        let config = ChunkConfig::default();
        let mut text = sample_document(40);
        text.push_str("\n\nمرحبا بكم في العيادة. كيف حالك اليوم؟\n\nमरीज़ को बुखार है। दवा दी गई।\n\n");
        text.push_str(&"患者今天早上感觉胸闷气短需要进一步检查".repeat(60));
        text.push_str("\n\n");
        text.push_str(&"pneumonoultramicroscopicsilicovolcanoconiosis".repeat(250));
        let chunks = check(&text, &tokenizer, &config);
        assert!(chunks.iter().any(|c| c.tokens > 200), "windows are filled");
        let shipped = minilm_as_shipped().map(|t| chunk(&text, &t, &config));
        assert!(shipped == Some(chunks.clone()), "the shipped tokenizer's truncation changed the chunks");
        let small = check(&text, &tokenizer, &cfg(12, 4));
        assert!(small.len() > chunks.len());
    }

    #[test]
    fn six_hundred_thousand_characters_quickly() {
        let text = sample_document(1_950);
        assert!(text.len() > 600_000, "{}", text.len());
        let (tokens, name): (Box<dyn Tokens>, &str) = match minilm() {
            Some(t) => (Box::new(t), "MiniLM"),
            None => (Box::new(Words), "whitespace"),
        };
        let started = Instant::now();
        let chunks = chunk(&text, tokens.as_ref(), &ChunkConfig::default());
        let elapsed = started.elapsed();
        eprintln!("{} chars, {name} tokenizer: {} chunks in {elapsed:?}", text.chars().count(), chunks.len());
        assert!(!chunks.is_empty());
        // About 0.3 s optimized with MiniLM on a busy 2-core machine; the bound only catches
        // quadratic behaviour, which would take minutes.
        if cfg!(not(debug_assertions)) {
            assert!(elapsed.as_secs_f64() < 5.0, "{elapsed:?}");
        }
    }
}
