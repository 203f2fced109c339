//! Charts drawn on the server as SVG: no script, no library, readable by a screen reader (a
//! `<title>` and a table of the same numbers beside each chart in the page).

/// Escape text for SVG content and attributes.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A horizontal bar chart of `(label, value)` rows.
pub fn bars(title: &str, rows: &[(String, f64)]) -> String {
    const ROW: f64 = 26.0;
    const LABEL: f64 = 170.0;
    const WIDTH: f64 = 560.0;
    let max = rows.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max).max(1.0);
    let height = ROW * rows.len().max(1) as f64 + 8.0;
    let mut out = format!(
        "<svg class=\"chart\" role=\"img\" direction=\"ltr\" viewBox=\"0 0 {WIDTH} {height}\" xmlns=\"http://www.w3.org/2000/svg\"><title>{}</title>",
        esc(title)
    );
    for (i, (label, value)) in rows.iter().enumerate() {
        let y = 4.0 + ROW * i as f64;
        let w = ((WIDTH - LABEL - 60.0) * value / max).max(if *value > 0.0 { 2.0 } else { 0.0 });
        let shown: String = label.chars().take(24).collect();
        out.push_str(&format!(
            "<text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\" class=\"chart-label\">{l}</text>\
             <rect x=\"{LABEL}\" y=\"{y}\" width=\"{w:.1}\" height=\"{h}\" class=\"chart-bar\"></rect>\
             <text x=\"{vx:.1}\" y=\"{ty}\" class=\"chart-value\">{v}</text>",
            lx = LABEL - 8.0,
            ty = y + ROW * 0.62,
            l = esc(&shown),
            h = ROW - 8.0,
            vx = LABEL + w + 6.0,
            v = format_value(*value),
        ));
    }
    out.push_str("</svg>");
    out
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.2}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_value_and_escape_labels() {
        let svg = bars("A <chart>", &[("a&b".into(), 10.0), ("c".into(), 5.0)]);
        assert!(svg.contains("<title>A &lt;chart&gt;</title>"));
        assert!(svg.contains(">a&amp;b</text>"));
        // 330 px for the largest, half of it for half the value.
        assert!(svg.contains("width=\"330.0\""), "{svg}");
        assert!(svg.contains("width=\"165.0\""), "{svg}");
    }

    #[test]
    fn an_empty_chart_is_still_a_valid_image() {
        let svg = bars("Nothing yet", &[]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
