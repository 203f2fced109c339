//! HTML reduced to the text a reader sees, for the knowledge base.
//!
//! Uploaded and fetched web pages are untrusted: the text we index must be what a person reading
//! the page would read, not scripts, style sheets, tracking markup or content the page hides (a
//! place where prompt injections like to live). Finding where a `<script>` really ends, what an
//! unclosed tag or a stray `</script >` means, or which text a comment swallows is exactly what the
//! WHATWG parsing algorithm defines, so we run the real one ([`html5ever`], the parser of Servo,
//! pure Rust) instead of regexes. html5ever builds its tree through a [`TreeSink`]; the sink here
//! is a small arena (indices, no `Rc`, no recursion), so deeply nested garbage can neither
//! overflow the stack nor panic.
//!
//! The tree builder's scope checks walk the stack of open elements, so nesting costs quadratic
//! time: 20,000 unclosed `<div>`s (100 kB) take seconds. A first pass with html5ever's tokenizer
//! alone (linear) measures the nesting; past [`MAX_DEPTH`] (Chrome stops nesting at 512 too) the
//! text from that pass is used instead: the same content dropped, but without the tree's repairs
//! and with plainer structure (headings and list items become plain lines).
//!
//! The output is plain text with light Markdown, shaped for [`crate::chunking`]: block elements
//! end lines, paragraphs end with a blank line, headings become `#`…`######` lines (so chunks keep
//! their heading path), list items start with `- ` or `1. `, table cells are joined by ` | `.
//! Entities are decoded by the parser; runs of whitespace collapse to one space (except in
//! `<pre>`, whose lines are kept).

use std::borrow::Cow;
use std::cell::RefCell;

use html5ever::tendril::{StrTendril, TendrilSink};
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{BufferQueue, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer};
use html5ever::tree_builder::{ElemName, ElementFlags, NodeOrText, QuirksMode, TreeSink};
use html5ever::{Attribute, LocalName, Namespace, QualName, ns, parse_document};

/// Deepest nesting the tree builder is given; deeper documents get the flat pass's text.
pub const MAX_DEPTH: usize = 512;

/// Elements whose content is never text for a reader: code, styling, embedded documents,
/// the document head (the `<title>` included) and graphics.
const DROPPED: [&str; 11] =
    ["script", "style", "template", "noscript", "iframe", "object", "embed", "svg", "head", "title", "noframes"];

/// The readable text of an HTML document (see the module docs for the shape). Never panics,
/// whatever the input.
pub fn html_to_text(html: &str) -> String {
    let flat = flat_pass(html);
    if flat.max_depth > MAX_DEPTH {
        return flat.out.finish();
    }
    let sink = Sink { nodes: RefCell::new(vec![Node::new(Data::Document)]) };
    let nodes = parse_document(sink, Default::default()).one(html);
    render(&nodes)
}

// ---------------------------------------------------------------------------------------------
// The tree: an arena of nodes addressed by index.

struct Node {
    parent: Option<usize>,
    children: Vec<usize>,
    data: Data,
}

enum Data {
    Document,
    /// A template's content fragment, or a comment, processing instruction: never rendered.
    Other,
    Element {
        name: QualName,
        /// Hidden from readers (`hidden`, `style="display:none"`, `visibility:hidden`).
        hidden: bool,
        template_contents: Option<usize>,
        mathml_integration_point: bool,
    },
    Text(String),
}

impl Node {
    fn new(data: Data) -> Self {
        Node { parent: None, children: Vec::new(), data }
    }
}

struct Sink {
    nodes: RefCell<Vec<Node>>,
}

/// An element's name handed to the tree builder. Owned (atoms are cheap to clone) so that no
/// borrow of the arena outlives a call into the sink.
#[derive(Debug)]
struct Name(QualName);

impl ElemName for Name {
    fn ns(&self) -> &Namespace {
        &self.0.ns
    }

    fn local_name(&self) -> &LocalName {
        &self.0.local
    }
}

fn push(nodes: &mut Vec<Node>, data: Data) -> usize {
    nodes.push(Node::new(data));
    nodes.len() - 1
}

/// Take `node` out of its parent's children, if it has a parent.
fn detach(nodes: &mut [Node], node: usize) {
    let Some(parent) = nodes.get_mut(node).and_then(|n| n.parent.take()) else { return };
    if let Some(p) = nodes.get_mut(parent) {
        // Moved nodes are usually among the last children: search from the end.
        if let Some(i) = p.children.iter().rposition(|&c| c == node) {
            p.children.remove(i);
        }
    }
}

fn is_text(nodes: &[Node], node: usize) -> bool {
    matches!(nodes.get(node).map(|n| &n.data), Some(Data::Text(_)))
}

fn append_text(nodes: &mut [Node], node: usize, text: &str) {
    if let Some(Node { data: Data::Text(t), .. }) = nodes.get_mut(node) {
        t.push_str(text);
    }
}

fn hidden_by(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|a| match &*a.name.local {
        "hidden" => true,
        "style" => {
            let style: String = a.value.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
            style.contains("display:none") || style.contains("visibility:hidden")
        }
        _ => false,
    })
}

impl TreeSink for Sink {
    type Handle = usize;
    type Output = Vec<Node>;
    type ElemName<'a> = Name;

    fn finish(self) -> Vec<Node> {
        self.nodes.into_inner()
    }

    fn parse_error(&self, _msg: Cow<'static, str>) {}

    fn get_document(&self) -> usize {
        0
    }

    fn elem_name<'a>(&'a self, target: &'a usize) -> Name {
        match self.nodes.borrow().get(*target).map(|n| &n.data) {
            Some(Data::Element { name, .. }) => Name(name.clone()),
            _ => Name(QualName::new(None, ns!(), LocalName::from(""))),
        }
    }

    fn create_element(&self, name: QualName, attrs: Vec<Attribute>, flags: ElementFlags) -> usize {
        let mut nodes = self.nodes.borrow_mut();
        let template_contents = flags.template.then(|| push(&mut nodes, Data::Other));
        let hidden = hidden_by(&attrs);
        push(
            &mut nodes,
            Data::Element {
                name,
                hidden,
                template_contents,
                mathml_integration_point: flags.mathml_annotation_xml_integration_point,
            },
        )
    }

    fn create_comment(&self, _text: StrTendril) -> usize {
        push(&mut self.nodes.borrow_mut(), Data::Other)
    }

    fn create_pi(&self, _target: StrTendril, _data: StrTendril) -> usize {
        push(&mut self.nodes.borrow_mut(), Data::Other)
    }

    fn append(&self, parent: &usize, child: NodeOrText<usize>) {
        let nodes = &mut *self.nodes.borrow_mut();
        let parent = *parent;
        if parent >= nodes.len() {
            return;
        }
        match child {
            NodeOrText::AppendNode(node) => {
                if node >= nodes.len() || node == parent {
                    return;
                }
                detach(nodes, node);
                nodes[node].parent = Some(parent);
                nodes[parent].children.push(node);
            }
            NodeOrText::AppendText(text) => match nodes[parent].children.last().copied() {
                Some(last) if is_text(nodes, last) => append_text(nodes, last, &text),
                _ => {
                    let node = push(nodes, Data::Text(text.to_string()));
                    nodes[node].parent = Some(parent);
                    nodes[parent].children.push(node);
                }
            },
        }
    }

    fn append_based_on_parent_node(&self, element: &usize, prev_element: &usize, child: NodeOrText<usize>) {
        let has_parent = self.nodes.borrow().get(*element).is_some_and(|n| n.parent.is_some());
        if has_parent { self.append_before_sibling(element, child) } else { self.append(prev_element, child) }
    }

    fn append_doctype_to_document(&self, _name: StrTendril, _public_id: StrTendril, _system_id: StrTendril) {}

    fn get_template_contents(&self, target: &usize) -> usize {
        match self.nodes.borrow().get(*target).map(|n| &n.data) {
            Some(Data::Element { template_contents: Some(contents), .. }) => *contents,
            _ => *target,
        }
    }

    fn same_node(&self, x: &usize, y: &usize) -> bool {
        x == y
    }

    fn set_quirks_mode(&self, _mode: QuirksMode) {}

    fn append_before_sibling(&self, sibling: &usize, new_node: NodeOrText<usize>) {
        let nodes = &mut *self.nodes.borrow_mut();
        let sibling = *sibling;
        if let NodeOrText::AppendNode(node) = new_node {
            if node >= nodes.len() || node == sibling {
                return;
            }
            detach(nodes, node);
        }
        let Some(parent) = nodes.get(sibling).and_then(|n| n.parent) else { return };
        let Some(at) = nodes[parent].children.iter().rposition(|&c| c == sibling) else { return };
        match new_node {
            NodeOrText::AppendNode(node) => {
                nodes[node].parent = Some(parent);
                nodes[parent].children.insert(at, node);
            }
            NodeOrText::AppendText(text) => {
                let before = at.checked_sub(1).map(|i| nodes[parent].children[i]);
                match before {
                    Some(prev) if is_text(nodes, prev) => append_text(nodes, prev, &text),
                    _ => {
                        let node = push(nodes, Data::Text(text.to_string()));
                        nodes[node].parent = Some(parent);
                        nodes[parent].children.insert(at, node);
                    }
                }
            }
        }
    }

    fn add_attrs_if_missing(&self, _target: &usize, _attrs: Vec<Attribute>) {}

    fn remove_from_parent(&self, target: &usize) {
        detach(&mut self.nodes.borrow_mut(), *target);
    }

    fn reparent_children(&self, node: &usize, new_parent: &usize) {
        let nodes = &mut *self.nodes.borrow_mut();
        let (node, new_parent) = (*node, *new_parent);
        if node >= nodes.len() || new_parent >= nodes.len() || node == new_parent {
            return;
        }
        let children = std::mem::take(&mut nodes[node].children);
        for &c in &children {
            nodes[c].parent = Some(new_parent);
        }
        nodes[new_parent].children.extend(children);
    }

    fn is_mathml_annotation_xml_integration_point(&self, handle: &usize) -> bool {
        matches!(
            self.nodes.borrow().get(*handle).map(|n| &n.data),
            Some(Data::Element { mathml_integration_point: true, .. })
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering: one iterative walk over the tree.

/// What an element does to the text around it.
#[derive(Clone, Copy)]
enum Kind {
    Drop,
    Inline,
    /// Ends the line before and after.
    Line,
    /// Separated by a blank line, as a paragraph.
    Block,
    Heading(usize),
    List {
        ordered: bool,
    },
    Item,
    Cell,
    Break,
    Pre,
}

fn classify(data: &Data) -> Kind {
    let Data::Element { name, hidden, .. } = data else { return Kind::Inline };
    classify_name(&name.local, name.ns == ns!(html), *hidden)
}

fn classify_name(local: &str, html: bool, hidden: bool) -> Kind {
    if hidden || DROPPED.contains(&local) {
        return Kind::Drop;
    }
    if !html {
        return Kind::Inline;
    }
    match local {
        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => Kind::Heading(usize::from(local.as_bytes()[1] - b'0')),
        "p" | "blockquote" | "table" | "article" | "section" | "aside" | "header" | "footer" | "nav" | "main"
        | "figure" | "dl" | "hr" | "address" | "fieldset" | "details" => Kind::Block,
        "div" | "dt" | "dd" | "tr" | "caption" | "figcaption" | "legend" | "summary" | "option" | "center" | "form"
        | "dialog" | "hgroup" | "search" | "tbody" | "thead" | "tfoot" | "body" | "textarea" | "select" => Kind::Line,
        "ul" | "menu" | "dir" => Kind::List { ordered: false },
        "ol" => Kind::List { ordered: true },
        "li" => Kind::Item,
        "td" | "th" => Kind::Cell,
        "br" => Kind::Break,
        "pre" | "listing" | "xmp" | "plaintext" => Kind::Pre,
        _ => Kind::Inline,
    }
}

fn render(nodes: &[Node]) -> String {
    enum Step {
        Enter(usize),
        Exit(Kind),
    }
    let mut out = Out::default();
    let mut stack = vec![Step::Enter(0)];
    // A tree visits each node once; the budget only guards against a cycle the sink never makes.
    let mut budget = nodes.len().saturating_mul(2) + 2;
    while let Some(step) = stack.pop() {
        budget = budget.saturating_sub(1);
        if budget == 0 {
            break;
        }
        match step {
            Step::Exit(kind) => out.close(kind),
            Step::Enter(id) => {
                let Some(node) = nodes.get(id) else { continue };
                match &node.data {
                    Data::Text(t) => out.text(t),
                    Data::Other => {}
                    Data::Document | Data::Element { .. } => {
                        let kind = classify(&node.data);
                        if matches!(kind, Kind::Drop) {
                            continue;
                        }
                        out.open(kind);
                        stack.push(Step::Exit(kind));
                        stack.extend(node.children.iter().rev().map(|&c| Step::Enter(c)));
                    }
                }
            }
        }
    }
    out.finish()
}

/// The text being written, with whitespace decided lazily: a space or line breaks are only
/// written once visible text follows them, so nothing piles up at line ends or around
/// empty elements.
#[derive(Default)]
struct Out {
    buf: String,
    /// Line breaks owed before the next text (0, 1, or 2 for a blank line).
    breaks: usize,
    space: bool,
    separator: Option<&'static str>,
    /// Written at the start of the next line of text: `## `, `- `, `3. `.
    prefix: String,
    /// Open lists: `Some(next number)` for `<ol>`, `None` for `<ul>`.
    lists: Vec<Option<usize>>,
    headings: usize,
    pre: usize,
}

impl Out {
    fn line_break(&mut self, n: usize) {
        if self.headings > 0 {
            // A heading is one line.
            self.space = true;
        } else {
            self.breaks = self.breaks.max(n);
        }
    }

    fn open(&mut self, kind: Kind) {
        match kind {
            Kind::Drop | Kind::Inline => {}
            Kind::Line | Kind::Break => self.line_break(1),
            Kind::Block | Kind::Pre => self.line_break(2),
            Kind::Heading(level) => {
                self.line_break(2);
                if self.headings == 0 {
                    self.prefix = format!("{} ", "#".repeat(level.clamp(1, 6)));
                }
                self.headings += 1;
            }
            Kind::List { ordered } => {
                self.line_break(if self.lists.is_empty() { 2 } else { 1 });
                self.lists.push(ordered.then_some(1));
            }
            Kind::Item => {
                self.line_break(1);
                let indent = "  ".repeat(self.lists.len().saturating_sub(1));
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        *n += 1;
                        format!("{}. ", *n - 1)
                    }
                    _ => "- ".to_owned(),
                };
                if self.headings == 0 {
                    self.prefix = indent + &marker;
                }
            }
            Kind::Cell => {
                if !self.buf.is_empty() && self.breaks == 0 && !self.buf.ends_with('\n') {
                    self.separator = Some(" | ");
                }
            }
        }
        if matches!(kind, Kind::Pre) {
            self.pre += 1;
        }
    }

    fn close(&mut self, kind: Kind) {
        match kind {
            Kind::Drop | Kind::Inline | Kind::Break | Kind::Cell => {}
            Kind::Line => self.line_break(1),
            Kind::Block => self.line_break(2),
            Kind::Pre => {
                self.pre = self.pre.saturating_sub(1);
                self.line_break(2);
            }
            Kind::Heading(_) => {
                self.headings = self.headings.saturating_sub(1);
                if self.headings == 0 {
                    self.prefix.clear();
                    self.line_break(2);
                }
            }
            Kind::List { .. } => {
                self.lists.pop();
                self.line_break(if self.lists.is_empty() { 2 } else { 1 });
            }
            Kind::Item => {
                if self.headings == 0 {
                    self.prefix.clear();
                }
                self.line_break(1);
            }
        }
    }

    fn text(&mut self, text: &str) {
        for c in text.chars() {
            if self.pre > 0 && self.headings == 0 {
                match c {
                    '\n' => self.breaks = (self.breaks + 1).min(2),
                    '\r' => {}
                    ' ' | '\t' => self.put(' '),
                    c if c.is_control() => {}
                    c => self.put(c),
                }
            } else if c.is_whitespace() {
                self.space = true;
            } else if !c.is_control() {
                self.put(c);
            }
        }
    }

    /// Write one visible character, after whatever whitespace is owed.
    fn put(&mut self, c: char) {
        let at_line_start = if self.buf.is_empty() {
            true
        } else if self.breaks > 0 {
            let kept = self.buf.trim_end_matches([' ', '\t']).len();
            self.buf.truncate(kept);
            for _ in 0..self.breaks {
                self.buf.push('\n');
            }
            true
        } else if self.buf.ends_with('\n') {
            true
        } else {
            if let Some(sep) = self.separator {
                self.buf.push_str(sep);
            } else if self.space {
                self.buf.push(' ');
            }
            false
        };
        if at_line_start && !self.prefix.is_empty() {
            self.buf.push_str(&std::mem::take(&mut self.prefix));
        }
        self.breaks = 0;
        self.space = false;
        self.separator = None;
        self.buf.push(c);
    }

    fn finish(mut self) -> String {
        let kept = self.buf.trim_end().len();
        self.buf.truncate(kept);
        self.buf
    }
}

// ---------------------------------------------------------------------------------------------
// The flat pass: tokens only, linear whatever the nesting.

/// Elements that never hold children, or whose end tag may be left out: they do not deepen
/// the tree builder's stack of open elements.
const SHALLOW: [&str; 33] = [
    "area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "img", "input", "keygen", "link",
    "meta", "param", "source", "track", "wbr", "p", "li", "dt", "dd", "option", "optgroup", "tr", "td", "th", "tbody",
    "thead", "tfoot", "colgroup", "html", "body",
];

#[derive(Default)]
struct Flat {
    out: Out,
    depth: usize,
    max_depth: usize,
    /// Inside `<svg>`/`<math>`, where `<x/>` really closes.
    foreign: usize,
    /// The dropped element being skipped, and how many of its kind are open.
    skipping: Option<(LocalName, usize)>,
}

struct FlatSink(RefCell<Flat>);

fn flat_pass(html: &str) -> Flat {
    let tokenizer = Tokenizer::new(FlatSink(RefCell::new(Flat::default())), Default::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from(html));
    // The sink never blocks on scripts, so one feed takes everything.
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    tokenizer.sink.0.take()
}

impl TokenSink for FlatSink {
    type Handle = ();

    fn process_token(&self, token: Token, _line_number: u64) -> TokenSinkResult<()> {
        let flat = &mut *self.0.borrow_mut();
        let tag = match token {
            Token::TagToken(tag) => tag,
            Token::CharacterTokens(text) => {
                if flat.skipping.is_none() {
                    flat.out.text(&text);
                }
                return TokenSinkResult::Continue;
            }
            _ => return TokenSinkResult::Continue,
        };
        let name: &str = &tag.name;
        let start = tag.kind == TagKind::StartTag;
        if matches!(name, "svg" | "math") {
            flat.foreign = if start { flat.foreign + 1 } else { flat.foreign.saturating_sub(1) };
        }
        let closed = tag.self_closing && flat.foreign > 0;
        if !SHALLOW.contains(&name) && !closed {
            if start {
                flat.depth += 1;
                flat.max_depth = flat.max_depth.max(flat.depth);
            } else {
                flat.depth = flat.depth.saturating_sub(1);
            }
        }
        if let Some((skipped, open)) = &mut flat.skipping {
            if *skipped == tag.name && !closed {
                *open = if start { *open + 1 } else { *open - 1 };
                if *open == 0 {
                    flat.skipping = None;
                }
            }
        } else {
            // `<head>` may be left open, so it is not skipped here; its `<title>` is.
            let kind = if name == "head" { Kind::Inline } else { classify_name(name, true, hidden_by(&tag.attrs)) };
            match kind {
                Kind::Drop if start && !closed => flat.skipping = Some((tag.name.clone(), 1)),
                Kind::Drop => {}
                Kind::Inline => {}
                Kind::Cell => flat.out.space = true,
                Kind::Line | Kind::Break | Kind::Item | Kind::List { .. } => flat.out.line_break(1),
                Kind::Block | Kind::Pre | Kind::Heading(_) => flat.out.line_break(2),
            }
        }
        if !start || closed {
            return TokenSinkResult::Continue;
        }
        // The tokenizer states the tree builder would switch to.
        match name {
            "script" => TokenSinkResult::RawData(RawKind::ScriptData),
            "style" | "xmp" | "iframe" | "noembed" | "noframes" | "noscript" => {
                TokenSinkResult::RawData(RawKind::Rawtext)
            }
            "title" | "textarea" => TokenSinkResult::RawData(RawKind::Rcdata),
            "plaintext" => TokenSinkResult::Plaintext,
            _ => TokenSinkResult::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_and_styles_never_reach_the_text() {
        let cases = [
            "<p>a</p><script>alert('x')</script><p>b</p>",
            "<p>a</p><SCRIPT>alert('x')</SCRIPT><p>b</p>",
            "<p>a</p><script type=text/plain>alert('x')</script><p>b</p>",
            "<p>a</p><script>alert('x')</script ><p>b</p>",
            "<p>a</p><script>if (1 < 2) { alert('x') } // </p></script><p>b</p>",
            "<p>a</p><style>body { color: red } alert('x')</style><p>b</p>",
            "<p>a</p><StYlE>alert('x')</sTyLe><p>b</p>",
            "<p>a</p><script><!-- alert('x') </script><p>b</p>",
            "<p>a</p><script>document.write('</scr' + 'ipt>alert(\"x\")')</script><p>b</p>",
            "<p>a</p><noscript>alert('x')</noscript><p>b</p>",
            "<p>a</p><template><p>alert('x')</p></template><p>b</p>",
            "<p>a</p><iframe>alert('x')</iframe><p>b</p>",
            "<p>a</p><object data=x>alert('x')</object><p>b</p>",
            "<p>a</p><svg><text>alert('x')</text><script>alert('x')</script></svg><p>b</p>",
            "<p>a</p><!-- alert('x') --><p>b</p>",
            "<p>a</p><div hidden>alert('x')</div><p>b</p>",
            "<p>a</p><span style='display: none'>alert('x')</span><p>b</p>",
            "<html><head><title>alert('x')</title><style>alert('x')</style></head><body><p>a</p><p>b</p>",
        ];
        for html in cases {
            let text = html_to_text(html);
            assert!(!text.contains("alert"), "{html:?} gave {text:?}");
            assert_eq!(text, "a\n\nb", "{html:?}");
        }
    }

    #[test]
    fn an_unclosed_script_swallows_the_rest() {
        assert_eq!(html_to_text("<p>before</p><script>alert('x') <p>after</p>"), "before");
        assert_eq!(html_to_text("<p>before</p><style>p { }"), "before");
        assert_eq!(html_to_text("<p>before<script"), "before");
    }

    #[test]
    fn headings_become_markdown_lines() {
        let text = html_to_text("<h1>Care plan</h1><p>Intro</p><h2>Diet <em>and</em><br>fluids</h2><h6>Small</h6>x");
        assert_eq!(text, "# Care plan\n\nIntro\n\n## Diet and fluids\n\n###### Small\n\nx");
        // An empty heading leaves no stray marker.
        assert_eq!(html_to_text("<h2> </h2><p>x</p>"), "x");
    }

    #[test]
    fn lists_and_paragraphs_keep_their_breaks() {
        let html = "<p>Before</p><ul><li>one</li><li>two<ul><li>nested</li></ul></li></ul>\
                    <ol><li>first</li><li>second</li></ol><div>a</div><div>b<br>c</div>";
        assert_eq!(html_to_text(html), "Before\n\n- one\n- two\n  - nested\n\n1. first\n2. second\n\na\nb\nc");
    }

    #[test]
    fn tables_are_rows_of_cells() {
        let html = "<table><tr><th>Drug</th><th>Dose</th></tr><tr><td>Paracetamol</td><td>1 g</td></tr></table>";
        assert_eq!(html_to_text(html), "Drug | Dose\nParacetamol | 1 g");
    }

    #[test]
    fn entities_are_decoded_and_whitespace_collapsed() {
        let html =
            "<p>  Fish &amp; chips &lt;3 &eacute;t&eacute; &#x4E2D;&#25991; &nbsp;caf&#233;\n\n   ok &bogus; </p>";
        assert_eq!(html_to_text(html), "Fish & chips <3 été 中文 café ok &bogus;");
    }

    #[test]
    fn pre_keeps_its_lines() {
        assert_eq!(html_to_text("<p>x</p><pre>a  b\nc\n\n\nd</pre>"), "x\n\na  b\nc\n\nd");
    }

    #[test]
    fn any_script_passes_through() {
        let html = "<p dir=rtl>مرحبا بالعالم</p><p>你好世界。</p><p>नमस्ते दुनिया।</p>";
        assert_eq!(html_to_text(html), "مرحبا بالعالم\n\n你好世界。\n\nनमस्ते दुनिया।");
    }

    #[test]
    fn malformed_input_never_panics() {
        let nasty = [
            "",
            "<",
            "</",
            "<<<>>>",
            "<p><b><i>x</p></b>y</i>",
            "<table><td>a<table><td>b</table>c<p>d",
            "<a><p><a>x</a></p></a>",
            "<template><template><tr><td>x",
            "<svg><foreignObject><p>x</svg>y",
            "<math><annotation-xml encoding=text/html><p>x</math>",
            "<select><option>a<option>b</select>",
            "<frameset><frame></frameset>text",
            "\u{0}\u{1}<p>\u{0}x\u{7}</p>",
            "<!DOCTYPE html><!-- unterminated",
            "<p>x</p></body></html><p>after html",
            "<head><body><head><p>x",
            "<b><b><b><b><b><b><p>x</b>y",
        ];
        for html in nasty {
            let _ = html_to_text(html);
        }
        assert_eq!(html_to_text("<p><b><i>x</p></b>y</i>"), "x\n\ny");
        // Deep nesting is handled without recursion, and in linear time.
        let started = std::time::Instant::now();
        let deep = "<div><span>".repeat(20_000) + "deep" + &"</span></div>".repeat(20_000);
        assert_eq!(html_to_text(&deep), "deep");
        let deep = "<div>".repeat(100_000) + "<p>deep</p><script>alert('x')</script><p>er";
        assert_eq!(html_to_text(&deep), "deep\n\ner");
        assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
        let misnested = "<a><b><p>x</a>".repeat(2_000);
        assert!(html_to_text(&misnested).contains('x'));
    }

    #[test]
    fn ordinary_pages_get_the_tree_builder() {
        // Thousands of self-closed SVG shapes and unclosed list items nest nothing.
        let icons = format!("<svg>{}</svg>", "<path d='M0 0'/>".repeat(2_000));
        let items = "<li>item".repeat(2_000);
        let html = format!("<h2>Title</h2>{icons}<ul>{items}</ul><p>after");
        let text = html_to_text(&html);
        assert!(text.starts_with("## Title\n\n- item\n- item"), "{}", &text[..40]);
        assert!(text.ends_with("- item\n\nafter"));
        assert!(flat_pass(&html).max_depth < 10);
    }

    #[test]
    fn the_flat_pass_follows_the_same_rules() {
        let html = "<html><head><title>t</title><style>s</style></head><body><h1>A</h1><p>b <b>c</b></p>\
                    <div hidden>h<div>h</div>h</div><script>if (a<b) x()</script><ul><li>d<li>e</ul>\
                    <table><tr><td>f<td>g</table>";
        assert_eq!(flat_pass(html).out.finish(), "A\n\nb c\n\nd\ne\n\nf g");
    }

    #[test]
    fn pseudo_random_garbage_never_panics() {
        let alphabet: Vec<&str> = vec![
            "<", ">", "/", "p", "script", "style", "table", "td", "tr", "b", "a", "li", "ul", "h2", "!--", "-->", "&",
            "amp;", "#x", "=", "\"", "'", " ", "\n", "x", "中", "template", "svg", "math", "select", "option", "/>",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..300 {
            let mut html = String::new();
            for _ in 0..200 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                html.push_str(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let text = html_to_text(&html);
            assert!(!text.contains("\n\n\n"), "{html:?}");
        }
    }
}
