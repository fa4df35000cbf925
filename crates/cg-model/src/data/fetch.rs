//! `cg data fetch`: downloads a data set's official files and verifies each against its published MD5
//! before it is moved into place. Needs the internet; nothing else in cg does. The base URL can be
//! replaced (a mirror, or a loopback server in tests).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use crate::error::io_err;
use crate::{Error, Result};

/// One file of a data set.
#[derive(Debug, Clone, Copy)]
pub struct RemoteFile {
    pub name: &'static str,
    pub md5: &'static str,
}

/// A data set that `cg data fetch` knows.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    pub name: &'static str,
    pub base_url: &'static str,
    pub files: &'static [RemoteFile],
    /// A `.tar.gz` to unpack after verification.
    pub unpack: bool,
}

const fn f(name: &'static str, md5: &'static str) -> RemoteFile {
    RemoteFile { name, md5 }
}

pub const SOURCES: &[Source] = &[
    Source {
        name: "mnist",
        base_url: "https://storage.googleapis.com/cvdf-datasets/mnist/",
        files: &[
            f(
                "train-images-idx3-ubyte.gz",
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            ),
            f(
                "train-labels-idx1-ubyte.gz",
                "d53e105ee54ea40749a09fcc7d6af6b5",
            ),
            f(
                "t10k-images-idx3-ubyte.gz",
                "9fb629c4189551a2d022fa330f9573f3",
            ),
            f(
                "t10k-labels-idx1-ubyte.gz",
                "ec29112dd5afa0611ce80d1b7f02629c",
            ),
        ],
        unpack: false,
    },
    Source {
        name: "fashion-mnist",
        base_url: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        files: &[
            f(
                "train-images-idx3-ubyte.gz",
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            ),
            f(
                "train-labels-idx1-ubyte.gz",
                "25c81989df183df01b3e8a0aad5dffbe",
            ),
            f(
                "t10k-images-idx3-ubyte.gz",
                "bef4ecab320f06d8554ea6380940ec79",
            ),
            f(
                "t10k-labels-idx1-ubyte.gz",
                "bb300cfdad3c16e7a12a480ee83cd310",
            ),
        ],
        unpack: false,
    },
    Source {
        name: "cifar10",
        base_url: "https://www.cs.toronto.edu/~kriz/",
        files: &[f(
            "cifar-10-binary.tar.gz",
            "c32a1d4ab5d03f1284b67883e8d87530",
        )],
        unpack: true,
    },
];

pub fn source(name: &str) -> Option<&'static Source> {
    SOURCES.iter().find(|s| s.name == name)
}

/// Downloads every file of `src` into `dest` (created if needed), verifying checksums; files already
/// present with the right checksum are kept. Returns the directory a run file's `dataset.path` should
/// name. `progress(file, bytes_done, bytes_total)` is called as bytes arrive.
pub fn fetch(
    src: &Source,
    base_url: Option<&str>,
    dest: &Path,
    progress: &mut dyn FnMut(&str, u64, Option<u64>),
) -> Result<PathBuf> {
    std::fs::create_dir_all(dest).map_err(io_err(dest))?;
    let base = base_url.unwrap_or(src.base_url);
    for file in src.files {
        let target = dest.join(file.name);
        if target.is_file() && md5_of(&target)? == file.md5 {
            continue;
        }
        let url = format!("{}/{}", base.trim_end_matches('/'), file.name);
        let part = dest.join(format!("{}.part", file.name));
        download(&url, &part, &mut |done, total| {
            progress(file.name, done, total)
        })?;
        let got = md5_of(&part)?;
        if got != file.md5 {
            let _ = std::fs::remove_file(&part);
            return Err(Error::Fetch {
                url,
                message: format!(
                    "checksum mismatch: MD5 {got}, expected {} (file discarded)",
                    file.md5
                ),
            });
        }
        std::fs::rename(&part, &target).map_err(io_err(&target))?;
    }
    if src.unpack {
        for file in src.files {
            let archive = dest.join(file.name);
            let gz = flate2::read::GzDecoder::new(
                std::fs::File::open(&archive).map_err(io_err(&archive))?,
            );
            tar::Archive::new(gz)
                .unpack(dest)
                .map_err(|e| Error::Data {
                    path: archive.clone(),
                    message: format!("cannot unpack: {e}"),
                })?;
        }
        let nested = dest.join("cifar-10-batches-bin");
        if nested.is_dir() {
            return Ok(nested);
        }
    }
    Ok(dest.to_path_buf())
}

fn download(url: &str, to: &Path, progress: &mut dyn FnMut(u64, Option<u64>)) -> Result<()> {
    let fail = |message: String| Error::Fetch {
        url: url.to_string(),
        message,
    };
    let mut resp = ureq::get(url).call().map_err(|e| fail(e.to_string()))?;
    let total = resp.body().content_length();
    let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
    let mut out = std::fs::File::create(to).map_err(io_err(to))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut done = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).map_err(io_err(to))?;
        done += n as u64;
        progress(done, total);
    }
    if let Some(t) = total
        && t != done
    {
        return Err(fail(format!("connection closed after {done} of {t} bytes")));
    }
    out.sync_all().map_err(io_err(to))?;
    Ok(())
}

/// Hex MD5 of a file.
pub fn md5_of(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}
