//! HTML building blocks: escaping, the page layout and tables.

use std::fmt::Write as _;

/// The stylesheet, embedded in the binary.
pub const STYLE_CSS: &str = include_str!("../assets/style.css");

/// Escape text for HTML element content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encode a query-string value.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A whole number with thin thousands separators (`12 345`).
pub fn num(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202F}');
        }
        out.push(c);
    }
    out
}

/// The pages, in navigation order: path, title.
pub const PAGES: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/tables", "Tables"),
    ("/schema", "Schema"),
    ("/state", "State"),
    ("/loads", "Loads"),
    ("/data", "Data"),
    ("/sql", "SQL"),
    ("/charts", "Charts"),
];

/// A complete page: header with the pipeline name, navigation, and `body`.
pub fn layout(pipeline: &str, active: &str, title: &str, body: &str) -> String {
    let mut nav = String::new();
    for (path, name) in PAGES {
        let class = if *path == active { " class=\"active\"" } else { "" };
        let _ = write!(nav, "<a href=\"{path}\"{class}>{name}</a>");
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · {pipeline} · personio-pipeline</title>\
         <link rel=\"stylesheet\" href=\"/assets/style.css\"></head>\
         <body><header><span class=\"brand\">personio-pipeline</span> <span class=\"pipeline\">{pipeline}</span>\
         <nav>{nav}</nav></header><main id=\"page-{id}\"><h1>{title}</h1>{body}</main></body></html>\n",
        title = esc(title),
        pipeline = esc(pipeline),
        id = esc(&title.to_ascii_lowercase().replace(' ', "-")),
    )
}

/// A warning or error box.
pub fn notice(class: &str, id: &str, text: &str) -> String {
    format!("<p class=\"notice {class}\" id=\"{id}\">{}</p>", esc(text))
}

/// An HTML table; `head` and `rows` cells are HTML (escape text first). `id` names the table.
pub fn table(id: &str, head: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("<table id=\"{}\"><thead><tr>", esc(id));
    for h in head {
        let _ = write!(out, "<th>{h}</th>");
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// A definition list of label → HTML value pairs.
pub fn facts(id: &str, items: &[(&str, String)]) -> String {
    let mut out = format!("<dl class=\"facts\" id=\"{}\">", esc(id));
    for (label, value) in items {
        let _ = write!(out, "<dt>{}</dt><dd>{value}</dd>", esc(label));
    }
    out.push_str("</dl>");
    out
}

/// Pretty JSON in a collapsible block.
pub fn json_block(summary: &str, value: &serde_json::Value) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    format!("<details><summary>{}</summary><pre>{}</pre></details>", esc(summary), esc(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_encoding() {
        assert_eq!(esc("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(url_encode("a b&c=ü"), "a%20b%26c%3D%C3%BC");
        assert_eq!(num(1234567), "1\u{202F}234\u{202F}567");
        assert_eq!(num(12), "12");
    }

    #[test]
    fn layout_marks_the_active_page() {
        let page = layout("p<1>", "/tables", "Tables", "<p>x</p>");
        assert!(page.contains("<a href=\"/tables\" class=\"active\">Tables</a>"));
        assert!(page.contains("p&lt;1&gt;"));
        assert!(page.contains("id=\"page-tables\""));
    }
}
