//! The file front door of cg-sweep: opening a run or sweep file (a regular file under the size cap),
//! turning its bytes into a tree (YAML or JSON, duplicate keys reported, `${VAR}` expanded), the
//! directory its relative data paths resolve against, and where each dotted key of the file sits.
//! Run files and sweep files both come in this way; nothing here knows what a sweep is.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::diag::{Diagnostics, Pos, Sink};
use crate::yaml::{self, Key, Node};

/// How files are loaded.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Skip the check that `dataset.path` exists (planning on a machine without the data, CI).
    pub no_data_check: bool,
    /// Variables for `${VAR}`; `None` reads the process environment.
    pub env: Option<BTreeMap<String, String>>,
}

impl LoadOptions {
    /// Options for checking a file's form only: no data check.
    pub fn no_data_check() -> Self {
        Self {
            no_data_check: true,
            env: None,
        }
    }

    pub(crate) fn lookup(&self, name: &str) -> Option<String> {
        match &self.env {
            Some(map) => map.get(name).cloned(),
            None => std::env::var(name).ok(),
        }
    }
}

/// Opens `path` to read without blocking (a FIFO would wait for a writer) and checks, on the open
/// handle, that it is a regular file (a link is followed): a device (a link to `/dev/zero`), a
/// FIFO or a directory is refused before a byte is read, with `InvalidInput`. Returns the file
/// and its length. cg's one way to open a file from outside that it reads under a cap.
pub fn open_regular(path: &Path) -> std::io::Result<(std::fs::File, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a device, pipe or directory?); cg reads only regular files",
        ));
    }
    Ok((file, meta.len()))
}

/// Reads a run or sweep file: a regular file ([`open_regular`]) of at most
/// [`MAX_FILE_BYTES`](crate::yaml::MAX_FILE_BYTES); the read stops past the cap.
pub(crate) fn read_file(path: &Path, origin: &str) -> Result<Vec<u8>, Diagnostics> {
    use std::io::Read;
    let max = crate::yaml::MAX_FILE_BYTES as u64;
    let refuse = |message: String| {
        let mut sink = Sink::new(origin);
        sink.error(Pos::default(), "", message);
        sink.finish()
    };
    let too_big = |n: u64| format!("file is {n} bytes; run and sweep files are limited to {max}");
    let (file, len) = open_regular(path).map_err(|e| refuse(format!("cannot read file: {e}")))?;
    if len > max {
        return Err(refuse(too_big(len)));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(format!("cannot read file: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(refuse(too_big(bytes.len() as u64)));
    }
    Ok(bytes)
}

pub(crate) fn base_dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Bytes → tree, with duplicate keys reported and `${VAR}` expanded.
pub(crate) fn read_tree(bytes: &[u8], options: &LoadOptions, sink: &mut Sink) -> Option<Node> {
    let mut root = yaml::parse(bytes, sink)?;
    yaml::check_duplicates(&root, "", sink);
    yaml::expand_env(&mut root, "", &|name| options.lookup(name), sink);
    Some(root)
}

pub(crate) fn root_entries<'a>(root: &'a Node, sink: &mut Sink) -> Option<&'a [(Key, Node)]> {
    match root.as_map() {
        Some(entries) => Some(entries),
        None => {
            sink.push(
                root.pos,
                "",
                format!(
                    "expected a mapping of sections at the top level, found {}",
                    root.kind_name()
                ),
                Some("start with `dataset:`".into()),
            );
            None
        }
    }
}

/// Where each dotted key of a file sits: its key and its value.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    keys: HashMap<String, Pos>,
    values: HashMap<String, Pos>,
}

impl Positions {
    pub fn record(&mut self, key: &str, key_pos: Pos, value_pos: Pos) {
        self.keys.entry(key.to_string()).or_insert(key_pos);
        self.values.entry(key.to_string()).or_insert(value_pos);
    }

    pub fn key(&self, key: &str) -> Option<Pos> {
        self.keys.get(key).copied()
    }

    /// The value at `key`, when the file sets it.
    pub fn value(&self, key: &str) -> Option<Pos> {
        self.values.get(key).copied()
    }

    /// The value at `key`, else the key of its nearest ancestor in the file, else the start of the file.
    pub fn of(&self, key: &str) -> Pos {
        if let Some(p) = self.values.get(key) {
            return *p;
        }
        let mut k = key;
        while let Some((parent, _)) = k.rsplit_once('.') {
            if let Some(p) = self.keys.get(parent) {
                return *p;
            }
            k = parent;
        }
        Pos::START
    }
}
