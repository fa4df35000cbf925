//! The one place that calls the YAML parser: bytes → a tree of [`Node`]s that remember their line and
//! column. The tree keeps duplicate keys (reported later, all at once, instead of stopping at the first)
//! and is built under hard limits so that an alias bomb or a huge file fails fast with a diagnostic.
//! It knows nothing of run or sweep schemas.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, Spanned};

use crate::diag::{Pos, Sink};

/// Largest file we read (bytes). Run and sweep files are a few kilobytes.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;
/// Most parser events that alias replay may add; a billion-laughs file trips this in microseconds.
pub const MAX_ALIAS_REPLAYED_EVENTS: usize = 100_000;
/// Most nodes (scalars, sequences, mappings) in one file.
pub const MAX_NODES: usize = 200_000;

/// A YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in file order, duplicates kept.
    Map(Vec<(Key, Node)>),
}

/// A mapping key with its position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub name: String,
    pub pos: Pos,
}

impl Node {
    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// A short name of the value's type for messages: "a string", "a list", ...
    pub fn kind_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::UInt(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The value as JSON (positions dropped; later duplicates ignored). `None` for non-finite floats.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        use serde_json::Value as J;
        Some(match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::UInt(u) => J::from(*u),
            Value::Float(f) => J::Number(serde_json::Number::from_f64(*f)?),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect::<Option<_>>()?),
            Value::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    if !map.contains_key(&k.name) {
                        map.insert(k.name.clone(), v.to_json()?);
                    }
                }
                J::Object(map)
            }
        })
    }
}

/// Entries of a mapping with later duplicates of a key dropped (they are reported by [`check_duplicates`]).
pub(crate) fn unique_entries(entries: &[(Key, Node)]) -> impl Iterator<Item = &(Key, Node)> {
    let mut seen = std::collections::HashSet::new();
    entries
        .iter()
        .filter(move |(k, _)| seen.insert(k.name.as_str()))
}

/// Reports every key that occurs twice in one mapping, anywhere in the tree.
pub(crate) fn check_duplicates(node: &Node, path: &str, sink: &mut Sink) {
    match &node.value {
        Value::Map(entries) => {
            let mut first: BTreeMap<&str, Pos> = BTreeMap::new();
            for (k, v) in entries {
                let child = join(path, &k.name);
                if let Some(p) = first.get(k.name.as_str()) {
                    sink.push(
                        k.pos,
                        &child,
                        "duplicate key",
                        Some(format!("first given at line {}; keep one", p.line)),
                    );
                } else {
                    first.insert(&k.name, k.pos);
                    check_duplicates(v, &child, sink);
                }
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                check_duplicates(item, &format!("{path}[{i}]"), sink);
            }
        }
        _ => {}
    }
}

/// `a.b` from `a` and `b`; `b` when `a` is empty.
pub(crate) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Parses a file's bytes. Problems (not text, empty, syntax, limits) go to `sink` and give `None`.
pub(crate) fn parse(bytes: &[u8], sink: &mut Sink) -> Option<Node> {
    if bytes.len() > MAX_FILE_BYTES {
        sink.push(
            Pos::START,
            "",
            format!(
                "file is {} bytes; run and sweep files are limited to {MAX_FILE_BYTES}",
                bytes.len()
            ),
            None,
        );
        return None;
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.valid_up_to();
            sink.push(
                pos_of_byte(bytes, at),
                "",
                format!("not a text file: invalid UTF-8 at byte {at}"),
                Some("run and sweep files are YAML or JSON text".into()),
            );
            return None;
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some(at) =
        text.find(|c: char| c == '\0' || (c.is_control() && !matches!(c, '\n' | '\r' | '\t')))
    {
        sink.push(
            pos_of_byte(text.as_bytes(), at),
            "",
            "not a text file: contains control characters",
            Some("run and sweep files are YAML or JSON text".into()),
        );
        return None;
    }
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: MAX_NODES,
            max_depth: 64,
            max_documents: 1,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_ALIAS_REPLAYED_EVENTS,
            max_replay_stack_depth: 16,
        },
        duplicate_keys: DuplicateKeyPolicy::PassThrough,
        with_snippet: false,
    };
    let parsed: Result<Option<Spanned<Raw>>, _> =
        serde_saphyr::from_str_with_options(text, options);
    match parsed {
        Ok(Some(root)) if !matches!(root.value.0, Value::Null) => Some(node(root)),
        Ok(_) => {
            sink.push(
                Pos::START,
                "",
                "empty file",
                Some("a run file needs at least `dataset: {kind: ..., path: ...}`".into()),
            );
            None
        }
        Err(e) => {
            let pos = e
                .location()
                .filter(|l| l.line() > 0)
                .map(|l| Pos::new(l.line() as u32, l.column() as u32))
                .unwrap_or(Pos::START);
            let (message, hint) = yaml_error_message(&e);
            sink.push(pos, "", message, hint);
            None
        }
    }
}

fn yaml_error_message(e: &serde_saphyr::Error) -> (String, Option<String>) {
    use serde_saphyr::Error as E;
    let mut inner = e.without_snippet();
    while let E::AliasError { error, .. } = inner {
        inner = error.without_snippet();
    }
    match inner {
        E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. }
        | E::AliasReplayCounterOverflow { .. } => (
            "aliases expand past the size limit".into(),
            Some(format!(
                "at most {MAX_ALIAS_REPLAYED_EVENTS} nodes may come from aliases; write the values out"
            )),
        ),
        E::Budget { .. } => (
            format!(
                "file too large or too deeply nested: {}",
                first_line(&inner.to_string())
            ),
            Some(format!(
                "at most {MAX_NODES} values and 64 levels of nesting"
            )),
        ),
        other => (
            format!("invalid YAML: {}", first_line(&other.to_string())),
            None,
        ),
    }
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    // serde-saphyr appends " at line L column C"; the position is rendered separately.
    match line.rfind(" at line ") {
        Some(i) => line[..i].to_string(),
        None => line.to_string(),
    }
}

fn pos_of_byte(bytes: &[u8], at: usize) -> Pos {
    let before = &bytes[..at.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    Pos::new(line as u32, column as u32)
}

fn pos(s: &Spanned<Raw>) -> Pos {
    Pos::new(s.referenced.line() as u32, s.referenced.column() as u32)
}

fn node(s: Spanned<Raw>) -> Node {
    Node {
        pos: pos(&s),
        value: s.value.0,
    }
}

/// What the YAML deserializer fills; children carry their spans.
struct Raw(Value);

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw(Value::Int(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw(match i64::try_from(v) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::UInt(v),
        }))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
        i64::try_from(v)
            .map(|i| Raw(Value::Int(i)))
            .or_else(|_| u64::try_from(v).map(|u| Raw(Value::UInt(u))))
            .map_err(|_| E::custom(format!("integer {v} is out of range")))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
        u64::try_from(v)
            .map(|u| self.visit_u64::<E>(u).unwrap_or(Raw(Value::UInt(u))))
            .map_err(|_| E::custom(format!("integer {v} is out of range")))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw(Value::Float(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw(Value::Str(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw(Value::Str(v)))
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
            items.push(node(item));
        }
        Ok(Raw(Value::Seq(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Raw>>()? {
            let key_pos = pos(&key);
            let name = match key.value.0 {
                Value::Str(s) => s,
                Value::Int(i) => i.to_string(),
                Value::UInt(u) => u.to_string(),
                Value::Float(f) => f.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => "null".to_string(),
                Value::Seq(_) | Value::Map(_) => {
                    return Err(de::Error::custom(
                        "mapping keys must be plain words, not lists or mappings",
                    ));
                }
            };
            let value = map.next_value::<Spanned<Raw>>()?;
            entries.push((Key { name, pos: key_pos }, node(value)));
        }
        Ok(Raw(Value::Map(entries)))
    }
}

/// Replaces `${VAR}` (and `${VAR:-fallback}`) in data paths (`dataset.path`, also as a parameter's
/// `value`/`values` or in a preset), and only variables named `CG_*` or `HOME`: anything else could
/// copy a secret into the database, `cg status` and reports. `${` elsewhere, another variable or an
/// undefined one without a fallback is a problem at that string that names the variable, never
/// its value. The string as written is noted in `sink`, so that later messages about the path show
/// `${VAR}` rather than its value ([`Sink::written`]).
pub(crate) fn expand_env(
    node: &mut Node,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    sink: &mut Sink,
) {
    match &mut node.value {
        Value::Str(s) if s.contains("${") => {
            if !is_data_path(path) {
                let var = first_variable(s);
                sink.push(
                    node.pos,
                    path,
                    format!("`{var}`: variables are expanded only in `dataset.path`"),
                    Some("write the value itself".into()),
                );
                return;
            }
            match expand_str(s, env) {
                Ok(expanded) => {
                    sink.note_written(node.pos, s);
                    *s = expanded;
                }
                Err(message) => sink.push(
                    node.pos,
                    path,
                    message,
                    Some("set it in the environment, or write `${CG_VAR:-fallback}`".into()),
                ),
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_env(item, &format!("{path}[{i}]"), env, sink);
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                expand_env(v, &join(path, &k.name), env, sink);
            }
        }
        _ => {}
    }
}

/// Whether a string at `path` is a data path: `dataset.path`, `presets.P.dataset.path`, or the
/// `value`/`values[i]` of a `dataset.path` parameter.
fn is_data_path(path: &str) -> bool {
    let mut p = path;
    while let Some(stripped) = p.strip_suffix(']').and_then(|q| q.rsplit_once('[')) {
        p = stripped.0;
    }
    let p = p
        .strip_suffix(".values")
        .or_else(|| p.strip_suffix(".value"))
        .unwrap_or(p);
    p == "dataset.path" || p.ends_with(".dataset.path")
}

/// The first `${…}` of `s` as written (without a fallback's text), for messages.
fn first_variable(s: &str) -> String {
    let Some(start) = s.find("${") else {
        return String::new();
    };
    let after = &s[start + 2..];
    let inner = after.find('}').map_or(after, |end| &after[..end]);
    let name = inner.split_once(":-").map_or(inner, |(n, _)| n);
    let name: String = name.chars().take(64).collect();
    format!("${{{name}}}")
}

/// The variables `${VAR}` may name: `CG_*` and `HOME`.
pub fn is_expandable_variable(name: &str) -> bool {
    name == "HOME" || name.starts_with("CG_")
}

fn expand_str(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err("unterminated `${`".into());
        };
        let inner = &after[..end];
        let (name, fallback) = match inner.split_once(":-") {
            Some((n, f)) => (n, Some(f)),
            None => (inner, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`${{{inner}}}` is not a variable name"));
        }
        if !is_expandable_variable(name) {
            return Err(format!(
                "`${{{name}}}`: only variables named `CG_*` or `HOME` are expanded"
            ));
        }
        // As in the shell, `:-` also replaces a variable that is set but empty.
        let value = env(name).filter(|v| !(v.is_empty() && fallback.is_some()));
        match (value, fallback) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(f)) => out.push_str(f),
            (None, None) => return Err(format!("environment variable `{name}` is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Node {
        let mut sink = Sink::new("t.yaml");
        let node = parse(text.as_bytes(), &mut sink);
        assert!(sink.is_empty(), "{}", sink.finish());
        node.unwrap()
    }

    fn parse_err(bytes: &[u8]) -> String {
        let mut sink = Sink::new("t.yaml");
        assert!(parse(bytes, &mut sink).is_none());
        sink.finish().to_string()
    }

    #[test]
    fn positions_of_keys_and_values() {
        let root = parse_ok("a: 1\ngate:\n  threshold: 0.5\n  mode: ctrl\nlist: [1, x]\n");
        let map = root.as_map().unwrap();
        assert_eq!(map[0].0.name, "a");
        assert_eq!(map[0].0.pos, Pos::new(1, 1));
        assert_eq!(map[0].1.pos, Pos::new(1, 4));
        let gate = map[1].1.as_map().unwrap();
        assert_eq!(gate[0].0.pos, Pos::new(3, 3));
        assert_eq!(gate[0].1.pos, Pos::new(3, 14));
        assert_eq!(gate[0].1.value, Value::Float(0.5));
        match &map[2].1.value {
            Value::Seq(items) => assert_eq!(items[1].pos, Pos::new(5, 11)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn duplicates_are_kept_for_reporting() {
        let root = parse_ok("a: 1\nb: 2\na: 3\n");
        let mut sink = Sink::new("t.yaml");
        check_duplicates(&root, "", &mut sink);
        assert_eq!(
            sink.finish().to_string(),
            "t.yaml:3:1: a: duplicate key (first given at line 1; keep one)"
        );
    }

    #[test]
    fn empty_binary_and_syntax_errors() {
        assert!(parse_err(b"").contains("empty file"));
        assert!(parse_err(b"# only a comment\n").contains("empty file"));
        assert!(parse_err(b"a: 1\n\xff\xfe").contains("t.yaml:2:1: not a text file"));
        assert!(parse_err(b"a: [1, 2\n").contains("invalid YAML"));
    }

    #[test]
    fn alias_bomb_stops_quickly() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            let items = [prev.as_str(); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
        }
        let start = std::time::Instant::now();
        let err = parse_err(text.as_bytes());
        assert!(err.contains("aliases expand past the size limit"), "{err}");
        assert!(start.elapsed().as_secs() < 5);
    }

    #[test]
    fn env_expansion() {
        let env = |name: &str| (name == "CG_DATA").then(|| "/data".to_string());
        assert_eq!(expand_str("${CG_DATA}/cifar", &env).unwrap(), "/data/cifar");
        assert_eq!(expand_str("${CG_NOPE:-/var}/x", &env).unwrap(), "/var/x");
        assert_eq!(expand_str("plain $ sign", &env).unwrap(), "plain $ sign");
        assert!(
            expand_str("${CG_NOPE}/x", &env)
                .unwrap_err()
                .contains("`CG_NOPE` is not set")
        );
        assert!(expand_str("${bad-name}", &env).is_err());
        // Only CG_* and HOME, whatever is set: the message names the variable, not its value.
        let secret = |_: &str| Some("s3cret-value".to_string());
        for var in [
            "AWS_SECRET_ACCESS_KEY",
            "PGPASSWORD",
            "USER",
            "HOMEX",
            "cg_data",
        ] {
            let err = expand_str(&format!("${{{var}}}/x"), &secret).unwrap_err();
            assert!(err.contains(var), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
            let err = expand_str(&format!("${{{var}:-/fallback}}"), &secret).unwrap_err();
            assert!(!err.contains("s3cret"), "{err}");
        }
        assert_eq!(expand_str("${HOME}/d", &secret).unwrap(), "s3cret-value/d");
    }

    #[test]
    fn variables_expand_in_data_paths_only() {
        for (path, data) in [
            ("dataset.path", true),
            ("presets.big.dataset.path", true),
            ("parameters.dataset.path.values[2]", true),
            ("parameters.dataset.path.value", true),
            ("name", false),
            ("description", false),
            ("dataset.kind", false),
            ("objectives[0].metric", false),
            ("parameters.gate.mode.values[0]", false),
            ("dataset.pathological", false),
        ] {
            assert_eq!(is_data_path(path), data, "{path}");
        }
        let text = "name: \"${AWS_SECRET_ACCESS_KEY}\"\ndescription: \"x ${CG_DATA:-y}\"\n\
                    dataset: {kind: idx, path: \"${CG_DATA}/m\"}\n";
        let mut sink = Sink::new("t.yaml");
        let mut root = parse(text.as_bytes(), &mut sink).unwrap();
        let env = |_: &str| Some("s3cret-value".to_string());
        expand_env(&mut root, "", &env, &mut sink);
        let out = sink.finish().to_string();
        assert!(out.contains("${AWS_SECRET_ACCESS_KEY}"), "{out}");
        assert!(
            out.contains("`${CG_DATA}`: variables are expanded only"),
            "{out}"
        );
        assert!(!out.contains("s3cret"), "{out}");
        let map = root.as_map().unwrap();
        let dataset = map[2].1.as_map().unwrap();
        assert!(matches!(&dataset[1].1.value, Value::Str(s) if s == "s3cret-value/m"));
    }
}
