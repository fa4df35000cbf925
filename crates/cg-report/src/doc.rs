//! A tiny document model (headings, paragraphs, lists, tables, figures) rendered twice: to Markdown
//! and to a self-contained HTML page with the SVG figures inline. Text uses Markdown's backtick code
//! spans and nothing else, so both renderings say the same thing.

use std::fmt::Write;

/// One block of a report.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Heading(u8, String),
    Paragraph(String),
    List(Vec<String>),
    Table {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// A notice at the top of the page: the sweep is running (`running`) or has finished.
    Notice {
        running: bool,
        text: String,
    },
    /// A figure by file stem (`pareto` for `pareto.png` / `pareto.svg`).
    Figure {
        stem: String,
        caption: String,
    },
}

fn md_cell(text: &str) -> String {
    text.replace('\n', " ").replace('|', "\\|")
}

/// Markdown with `\n` line ends, one blank line between blocks and a final newline.
pub fn to_markdown(blocks: &[Block]) -> String {
    let mut out = String::new();
    for (i, block) in blocks.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match block {
            Block::Heading(level, text) => {
                let _ = writeln!(out, "{} {text}", "#".repeat(usize::from(*level)));
            }
            Block::Paragraph(text) => {
                let _ = writeln!(out, "{text}");
            }
            Block::List(items) => {
                for item in items {
                    let _ = writeln!(out, "- {}", item.replace('\n', " "));
                }
            }
            Block::Table { header, rows } => {
                let head: Vec<String> = header.iter().map(|h| md_cell(h)).collect();
                let _ = writeln!(out, "| {} |", head.join(" | "));
                let _ = writeln!(out, "|{}", " --- |".repeat(header.len()));
                for row in rows {
                    let cells: Vec<String> = row.iter().map(|c| md_cell(c)).collect();
                    let _ = writeln!(out, "| {} |", cells.join(" | "));
                }
            }
            Block::Notice { text, .. } => {
                let _ = writeln!(out, "> **{}**", text.replace('\n', " "));
            }
            Block::Figure { stem, caption } => {
                let _ = writeln!(out, "![{caption}]({stem}.png)");
                out.push('\n');
                let _ = writeln!(out, "*{caption}* ([SVG]({stem}.svg))");
            }
        }
    }
    out
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
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

/// Escaped text with backtick spans turned into `<code>`; an unmatched backtick stays as it is.
fn inline_html(text: &str) -> String {
    let parts: Vec<&str> = text.split('`').collect();
    let mut out = String::new();
    let paired = parts.len() % 2 == 1;
    for (i, part) in parts.iter().enumerate() {
        let in_code = i % 2 == 1;
        if in_code && (paired || i + 1 < parts.len()) {
            let _ = write!(out, "<code>{}</code>", escape_html(part));
        } else {
            if in_code {
                out.push('`');
            }
            out.push_str(&strong_html(&escape_html(part)));
        }
    }
    out
}

/// `**text**` as `<strong>text</strong>` where the markers pair up.
fn strong_html(text: &str) -> String {
    let parts: Vec<&str> = text.split("**").collect();
    if parts.len().is_multiple_of(2) {
        return text.to_string();
    }
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<strong>{part}</strong>");
        } else {
            out.push_str(part);
        }
    }
    out
}

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:90%}\
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}\
th{background:#f3f3f3}code{background:#f6f6f6;padding:0 .2em;font-size:90%}\
.notice{padding:.6em 1em;border-radius:4px;margin:1em 0;font-weight:600}\
.notice.running{background:#fff4d6;border:1px solid #e0b100}\
.notice.finished{background:#e6f4ea;border:1px solid #5aa469}\
figure{margin:1em 0}figure svg{max-width:100%;height:auto}figcaption{color:#555;font-style:italic}";

/// A standalone HTML page; `svg_of(stem)` gives the SVG text of a figure to inline. With
/// `reload_secs`, the page reloads itself that often.
pub fn to_html(
    title: &str,
    blocks: &[Block],
    svg_of: &dyn Fn(&str) -> Option<String>,
    reload_secs: Option<u32>,
) -> String {
    let mut out = String::new();
    let refresh = reload_secs
        .map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">\n"))
        .unwrap_or_default();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n{refresh}<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        escape_html(title)
    );
    for block in blocks {
        match block {
            Block::Heading(level, text) => {
                let _ = writeln!(out, "<h{level}>{}</h{level}>", inline_html(text));
            }
            Block::Paragraph(text) => {
                let _ = writeln!(out, "<p>{}</p>", inline_html(text));
            }
            Block::Notice { running, text } => {
                let class = if *running { "running" } else { "finished" };
                let _ = writeln!(
                    out,
                    "<div class=\"notice {class}\" role=\"status\">{}</div>",
                    inline_html(text)
                );
            }
            Block::List(items) => {
                out.push_str("<ul>\n");
                for item in items {
                    let _ = writeln!(out, "<li>{}</li>", inline_html(item));
                }
                out.push_str("</ul>\n");
            }
            Block::Table { header, rows } => {
                out.push_str("<table>\n<thead><tr>");
                for h in header {
                    let _ = write!(out, "<th>{}</th>", inline_html(h));
                }
                out.push_str("</tr></thead>\n<tbody>\n");
                for row in rows {
                    out.push_str("<tr>");
                    for c in row {
                        let _ = write!(out, "<td>{}</td>", inline_html(c));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</tbody>\n</table>\n");
            }
            Block::Figure { stem, caption } => {
                out.push_str("<figure>\n");
                match svg_of(stem) {
                    Some(svg) => out.push_str(strip_xml_declaration(&svg).trim_end()),
                    None => {
                        let _ = write!(
                            out,
                            "<img src=\"{}.png\" alt=\"{}\">",
                            escape_html(stem),
                            escape_html(caption)
                        );
                    }
                }
                let _ = writeln!(
                    out,
                    "\n<figcaption>{} (<a href=\"{stem}.png\">PNG</a>, <a href=\"{stem}.svg\">SVG</a>)</figcaption>\n</figure>",
                    inline_html(caption),
                    stem = escape_html(stem)
                );
            }
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn strip_xml_declaration(svg: &str) -> &str {
    svg.find("<svg").map_or(svg, |start| &svg[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_and_escaping() {
        assert_eq!(inline_html("a `b<c` d"), "a <code>b&lt;c</code> d");
        assert_eq!(inline_html("odd ` tick"), "odd ` tick");
        assert_eq!(md_cell("a|b\nc"), "a\\|b c");
        assert_eq!(
            inline_html("**95%** of `a**b` and 2**3"),
            "<strong>95%</strong> of <code>a**b</code> and 2**3"
        );
    }

    #[test]
    fn markdown_table() {
        let md = to_markdown(&[
            Block::Heading(2, "T".into()),
            Block::Table {
                header: vec!["a".into(), "b".into()],
                rows: vec![vec!["1".into(), "2".into()]],
            },
        ]);
        assert_eq!(md, "## T\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n");
    }
}
