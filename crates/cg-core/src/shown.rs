//! Text from outside (file names, sweep files, the database) made safe to show or store: control
//! characters escaped, so that a name cannot forge a log line or send escape codes to a terminal,
//! and URL credentials masked, so that a password never reaches a message. Every crate that shows
//! such text calls these two functions; nothing else escapes or masks. No IO.

use std::borrow::Cow;

/// Whether `c` is escaped by [`escape_control`]: C0/C1 controls, DEL, the Unicode line and
/// paragraph separators and the bidirectional overrides and isolates (which reorder what a
/// terminal shows). Ordinary Unicode (letters, accents, emoji) stays readable.
fn is_escaped(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with each control character written as Rust's `escape_debug` writes it (`\n`, `\t`,
/// `\u{1b}`); everything else unchanged. Escaping twice gives the same text.
pub fn escape_control(s: &str) -> Cow<'_, str> {
    escape_where(s, is_escaped)
}

/// [`escape_control`] for a text of several lines: the line breaks (`\n`) are kept, every other
/// control character is escaped.
pub fn escape_control_lines(s: &str) -> Cow<'_, str> {
    escape_where(s, |c| c != '\n' && is_escaped(c))
}

fn escape_where(s: &str, escaped: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(&escaped) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if escaped(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A URL with its password replaced by `***`, whether it sits in the user-info part
/// (`postgres://user:secret@host/db`, any scheme, with or without `//`) or in a `password=` query
/// parameter. A string without a scheme is returned unchanged.
pub fn mask_url(url: &str) -> Cow<'_, str> {
    let Some(scheme) = url_scheme(url) else {
        return Cow::Borrowed(url);
    };
    let after = &url[scheme.len() + 1..];
    let rest_start = scheme.len() + 1 + (after.len() - after.trim_start_matches('/').len());
    let rest = &url[rest_start..];
    let query_start = rest.find(['?', '#']).unwrap_or(rest.len());
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..rest_start]);
    // The user-info ends at the last `@` before the query, so a password holding `/` or `@` is
    // still hidden as a whole.
    let mut body_start = 0;
    if let Some(at) = rest[..query_start].rfind('@') {
        let userinfo = &rest[..at];
        match userinfo.find(':') {
            Some(colon) => {
                out.push_str(&userinfo[..colon]);
                out.push_str(":***");
            }
            None => out.push_str(userinfo),
        }
        body_start = at;
    }
    out.push_str(&rest[body_start..query_start]);
    let tail = &rest[query_start..];
    if let Some(query) = tail.strip_prefix('?') {
        let (query, fragment) = match query.find('#') {
            Some(i) => (&query[..i], &query[i..]),
            None => (query, ""),
        };
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
        out.push_str(fragment);
    } else {
        out.push_str(tail);
    }
    if out == url {
        Cow::Borrowed(url)
    } else {
        Cow::Owned(out)
    }
}

/// The scheme of a URL-like string (`word:` at the start, RFC 3986 characters), if it has one.
pub fn url_scheme(s: &str) -> Option<&str> {
    let colon = s.find(':')?;
    let scheme = &s[..colon];
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() && chars.all(is_scheme_char)).then_some(scheme)
}

fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

/// `text` (a message, a path) with the password of every URL in it masked as [`mask_url`] does.
/// A URL is found in each whitespace-separated word, wherever it starts in the word (after a
/// quote, a `/`, a `=`); masking too much is preferred to showing a password.
pub fn mask_credentials(text: &str) -> Cow<'_, str> {
    if !text.contains(':') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut rest = text;
    while !rest.is_empty() {
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, tail) = rest.split_at(word_end);
        let masked = mask_word(word);
        changed |= matches!(masked, Cow::Owned(_));
        out.push_str(&masked);
        let space_end = tail
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(tail.len());
        out.push_str(&tail[..space_end]);
        rest = &tail[space_end..];
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

/// One word with the first URL in it masked: the URL starts at a letter that follows no scheme
/// character.
fn mask_word(word: &str) -> Cow<'_, str> {
    let mut prev: Option<char> = None;
    for (i, c) in word.char_indices() {
        let starts = c.is_ascii_alphabetic() && !prev.is_some_and(is_scheme_char);
        prev = Some(c);
        if !starts || url_scheme(&word[i..]).is_none() {
            continue;
        }
        if let Cow::Owned(masked) = mask_url(&word[i..]) {
            return Cow::Owned(format!("{}{masked}", &word[..i]));
        }
    }
    Cow::Borrowed(word)
}

/// Text from outside made fit to show on one line or in a log: credentials masked, then control
/// characters escaped ([`escape_control`]).
pub fn shown(text: &str) -> Cow<'_, str> {
    masked_then(text, escape_control)
}

/// [`shown`] for a message of several lines: the line breaks are kept.
pub fn shown_lines(text: &str) -> Cow<'_, str> {
    masked_then(text, escape_control_lines)
}

fn masked_then<'a>(text: &'a str, escape: fn(&str) -> Cow<'_, str>) -> Cow<'a, str> {
    match mask_credentials(text) {
        Cow::Borrowed(t) => escape(t),
        Cow::Owned(t) => Cow::Owned(escape(&t).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_unicode_kept() {
        assert_eq!(escape_control("plain.yaml"), "plain.yaml");
        assert!(matches!(escape_control("plain"), Cow::Borrowed(_)));
        assert_eq!(escape_control("a\nb\tc\rd\0"), "a\\nb\\tc\\rd\\0");
        assert_eq!(escape_control("x\u{1b}[31my"), "x\\u{1b}[31my");
        assert_eq!(escape_control("é ü 日本 🚀"), "é ü 日本 🚀");
        assert_eq!(
            escape_control("a\u{202e}b\u{85}c\u{7f}"),
            "a\\u{202e}b\\u{85}c\\u{7f}"
        );
        let once = escape_control("a\n\u{1b}b").into_owned();
        assert_eq!(escape_control(&once), once);
        assert_eq!(escape_control_lines("a\u{1b}\nb\rc"), "a\\u{1b}\nb\\rc");
    }

    #[test]
    fn url_passwords_are_masked() {
        for (input, expected) in [
            (
                "postgres://cg:s3cret@h:5432/db",
                "postgres://cg:***@h:5432/db",
            ),
            (
                "postgresql://cg:s3/c@ret@h/db?x=1",
                "postgresql://cg:***@h/db?x=1",
            ),
            (
                "postgres://h/db?user=cg&Password=s3cret#f",
                "postgres://h/db?user=cg&Password=***#f",
            ),
            ("postgres:cg:s3cret@h/db", "postgres:cg:***@h/db"),
            ("postgres://cg@h/db", "postgres://cg@h/db"),
            ("runs/cg.db", "runs/cg.db"),
        ] {
            assert_eq!(mask_url(input), expected, "{input}");
        }
    }

    #[test]
    fn credentials_are_masked_anywhere_in_a_text() {
        for text in [
            "data directory not found: postgres://u:s3cret@h/db/x",
            "not found: /base/postgres:/u:s3cret@h/db/x (check it)",
            "path=`postgres://u:s3cret@h/db`, and more",
            "\"mysql://root:s3cret@10.0.0.1/x\"",
            "x: postgres://h/db?password=s3cret&sslmode=require",
            "two: a://u:s3cret@h b://v:s3cret@h",
        ] {
            let masked = mask_credentials(text);
            assert!(!masked.contains("s3cret"), "{text} -> {masked}");
            assert!(masked.contains("***"), "{text} -> {masked}");
        }
        let plain = "r.yaml:1:28: dataset.path: data directory not found: /a/b (hint: x@y)";
        assert!(matches!(mask_credentials(plain), Cow::Borrowed(_)));
        assert_eq!(shown("a\nb postgres://u:pw@h"), "a\\nb postgres://u:***@h");
        assert_eq!(shown_lines("a\nb\u{1b}"), "a\nb\\u{1b}");
    }
}
