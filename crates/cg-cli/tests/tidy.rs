//! The shape rules of the workspace's source, checked by `cargo test` (as rust-analyzer's `tidy.rs`):
//! every `.rs` file under `crates/*/src` opens with a `//!` paragraph, no source file is over
//! [`MAX_FILE_LINES`] lines, no function is over [`MAX_FN_LINES`] lines, and every crate of the
//! workspace is named in `ARCHITECTURE.md`. Each failure names the file and the line.
//!
//! Functions are found the way rustfmt lays them out: a line that starts (after indentation) with
//! `fn`, `pub fn`, `async fn`, … and whose body closes on a line holding only `}` at the same
//! indentation. Code that rustfmt has formatted always reads this way (`.ci/run` checks fmt).

use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 1_200;
const MAX_FN_LINES: usize = 120;

/// One broken rule: where and what.
#[derive(Debug, PartialEq)]
struct Problem {
    file: String,
    line: usize,
    what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.what)
    }
}

/// The name of the function whose signature starts this line, if one does (after indentation).
fn fn_name(line: &str) -> Option<&str> {
    let mut rest = line.trim_start();
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
    ] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    if let Some(r) = rest.strip_prefix("extern \"")
        && let Some(end) = r.find("\" ")
    {
        rest = &r[end + 2..];
    }
    let name = rest.strip_prefix("fn ")?;
    let end = name
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(name.len());
    (end > 0).then(|| &name[..end])
}

/// The problems of one source file's text; `file` is the name to report.
fn check_source(file: &str, text: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    let problem = |line: usize, what: String| Problem {
        file: file.to_string(),
        line,
        what,
    };
    if !text.starts_with("//!") {
        problems.push(problem(
            1,
            "does not open with a `//!` paragraph saying what the file is for".into(),
        ));
    }
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() > MAX_FILE_LINES {
        problems.push(problem(
            lines.len(),
            format!(
                "{} lines, over the limit of {MAX_FILE_LINES}: split it into modules",
                lines.len()
            ),
        ));
    }
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = fn_name(line) else { continue };
        let Some(open) = (i..lines.len()).find(|&j| {
            let l = lines[j].trim_end();
            l.ends_with('{') || l.ends_with(';')
        }) else {
            continue;
        };
        if lines[open].trim_end().ends_with(';') {
            continue; // a declaration (trait method without a body)
        }
        let indent = &line[..line.len() - line.trim_start().len()];
        let close = format!("{indent}}}");
        if let Some(end) = (open..lines.len()).find(|&j| lines[j] == close) {
            let length = end - i + 1;
            if length > MAX_FN_LINES {
                problems.push(problem(
                    i + 1,
                    format!(
                        "fn `{name}` is {length} lines, over the limit of {MAX_FN_LINES}: \
                         make it a sequence of named steps"
                    ),
                ));
            }
        }
    }
    problems
}

/// The problems of the architecture document: each crate must be named as `crates/<name>`.
fn check_architecture(doc: &str, crates: &[String]) -> Vec<Problem> {
    crates
        .iter()
        .filter(|name| !doc.contains(&format!("crates/{name}")))
        .map(|name| Problem {
            file: "ARCHITECTURE.md".into(),
            line: 1,
            what: format!("the crate `{name}` is not named (as `crates/{name}`) in the code map"),
        })
        .collect()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/cg-cli sits two levels below the workspace root")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn crate_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .expect("the workspace has a crates/ folder")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn the_sources_keep_their_shape() {
    let root = workspace_root();
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for dir in crate_dirs(&root) {
        rust_files(&dir.join("src"), &mut files);
    }
    assert!(files.len() > 20, "found only {} source files", files.len());
    for path in &files {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let name = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        problems.extend(check_source(&name, &text));
    }
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(shown.is_empty(), "tidy:\n{}", shown.join("\n"));
}

#[test]
fn every_crate_is_in_the_architecture_document() {
    let root = workspace_root();
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let crates: Vec<String> = crate_dirs(&root)
        .iter()
        .map(|d| {
            d.file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert!(crates.iter().any(|c| c == "cg-cli"), "crates: {crates:?}");
    let problems: Vec<String> = check_architecture(&doc, &crates)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(problems.is_empty(), "tidy:\n{}", problems.join("\n"));
}

// The checker itself, on small texts: each rule can fail and names the line.

fn body(name_line: &str, lines: usize) -> String {
    let indent = &name_line[..name_line.len() - name_line.trim_start().len()];
    let mut text = format!("{name_line}\n");
    for _ in 0..lines.saturating_sub(2) {
        text.push_str(&format!("{indent}    step();\n"));
    }
    text.push_str(&format!("{indent}}}\n"));
    text
}

#[test]
fn the_checker_finds_each_kind_of_problem() {
    let long = body("pub async fn long(x: u32) -> u32 {", MAX_FN_LINES + 1);
    let text = format!("//! A file.\n\n{long}");
    assert_eq!(
        check_source("a.rs", &text),
        vec![Problem {
            file: "a.rs".into(),
            line: 3,
            what: format!(
                "fn `long` is {} lines, over the limit of {MAX_FN_LINES}: make it a sequence \
                 of named steps",
                MAX_FN_LINES + 1
            ),
        }]
    );

    let fits = body("    pub(crate) fn fits(&self) {", MAX_FN_LINES);
    let text = format!("//! A file.\nimpl A {{\n{fits}}}\n");
    assert_eq!(check_source("b.rs", &text), vec![]);

    let nested = body("    fn inner() {", MAX_FN_LINES + 5);
    let text = format!("//! A file.\nimpl A {{\n{nested}}}\n");
    let found = check_source("c.rs", &text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].line, 3);

    let text = "// a plain comment\nfn f() {}\n";
    let found = check_source("d.rs", text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].file.as_str(), found[0].line), ("d.rs", 1));

    let text = format!("//! Long.\n{}", "const A: u8 = 0;\n".repeat(MAX_FILE_LINES));
    let found = check_source("e.rs", &text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].line, MAX_FILE_LINES + 1);

    // A signature over several lines, and a bodiless trait method, are read right.
    let multi =
        "//! M.\nfn multi(\n    a: u32,\n) -> u32 {\n    a\n}\ntrait T {\n    fn decl(&self);\n}\n";
    assert_eq!(check_source("f.rs", multi), vec![]);
}

#[test]
fn the_checker_finds_a_missing_crate() {
    let doc = "- **`crates/cg-core`** — types.\n";
    let crates = vec!["cg-core".to_string(), "cg-new".to_string()];
    let found = check_architecture(doc, &crates);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].what.contains("cg-new"), "{}", found[0]);
}

#[test]
fn signatures_are_recognised() {
    assert_eq!(fn_name("pub fn a() {"), Some("a"));
    assert_eq!(
        fn_name("    pub(crate) async fn b_2<T>(x: T) {"),
        Some("b_2")
    );
    assert_eq!(fn_name("const fn c() -> u8 {"), Some("c"));
    assert_eq!(fn_name("unsafe extern \"C\" fn d() {"), Some("d"));
    assert_eq!(fn_name("let f = |x| x;"), None);
    assert_eq!(fn_name("// fn not_code() {"), None);
    assert_eq!(fn_name("function() {"), None);
}
