//! Whether a path lies on a network file system (NFS, Lustre, GPFS, CIFS, …), read with
//! `statfs(2)`: SQLite's locks are not to be trusted there, so a database file on one must not be
//! shared by the workers of many nodes.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::{Error, Result};

/// File systems that are shared over a network, by their `statfs` magic number (Linux's
/// `magic.h` and the file systems' own sources).
const NETWORK: [(i64, &str); 14] = [
    (0x6969, "NFS"),
    (0x517B, "SMB"),
    (0xFF53_4D42, "CIFS"),
    (0xFE53_4D42, "SMB2"),
    (0x0BD0_0BD0, "Lustre"),
    (0x4750_4653, "GPFS"),
    (0x00C3_6400, "CephFS"),
    (0x5346_414F, "AFS"),
    (0x7461_636F, "OCFS2"),
    (0x0116_1970, "GFS2"),
    (0x1983_0326, "BeeGFS"),
    (0x0102_1997, "9P"),
    (0xAAD7_AAEA, "PanFS"),
    (0x0000_564C, "NCP"),
];

/// The name of the network file system with this `statfs` magic number, if it is one.
pub fn fs_kind_of_magic(magic: i64) -> Option<&'static str> {
    NETWORK
        .iter()
        .find(|(m, _)| *m == magic)
        .map(|(_, name)| *name)
}

/// The network file system `path` lies on (`Some("NFS")`, …), or `None` for a local one. A path
/// that does not exist yet is judged by its nearest existing parent (where it would be created).
///
/// Debug builds read the magic number from `CG_TEST_FS_MAGIC` (hex) when it is set, so tests can
/// fake a network mount.
pub fn network_fs(path: &Path) -> Result<Option<&'static str>> {
    #[cfg(debug_assertions)]
    if let Ok(fake) = std::env::var("CG_TEST_FS_MAGIC") {
        let magic = i64::from_str_radix(fake.trim_start_matches("0x"), 16).unwrap_or(0);
        return Ok(fs_kind_of_magic(magic));
    }
    let existing = path
        .ancestors()
        .find(|p| !p.as_os_str().is_empty() && p.exists())
        .unwrap_or(Path::new("."));
    Ok(fs_kind_of_magic(magic_of(existing)?))
}

// Audited: one `statfs(2)` into a zeroed buffer (std has no statfs).
#[allow(unsafe_code)]
fn magic_of(path: &Path) -> Result<i64> {
    let statfs_error = |source| Error::Statfs {
        path: path.to_path_buf(),
        source,
    };
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        statfs_error(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path holds a NUL byte",
        ))
    })?;
    let mut buf = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `c` is a NUL-terminated path and `buf` a statfs buffer that the call fills in.
    let rc = unsafe { libc::statfs(c.as_ptr(), buf.as_mut_ptr()) };
    if rc != 0 {
        return Err(statfs_error(std::io::Error::last_os_error()));
    }
    // SAFETY: statfs returned 0, so it filled the buffer.
    let stat = unsafe { buf.assume_init() };
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    Ok(i64::from(stat.f_type as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_magic_numbers_are_named() {
        assert_eq!(fs_kind_of_magic(0x6969), Some("NFS"));
        assert_eq!(fs_kind_of_magic(0x0BD0_0BD0), Some("Lustre"));
        assert_eq!(fs_kind_of_magic(0x4750_4653), Some("GPFS"));
        assert_eq!(fs_kind_of_magic(0xFF53_4D42), Some("CIFS"));
        // ext4, tmpfs, xfs, btrfs, overlayfs: local.
        for local in [0xEF53, 0x0102_1994, 0x5846_5342, 0x9123_683E, 0x794C_7630] {
            assert_eq!(fs_kind_of_magic(local), None, "{local:#x}");
        }
    }

    #[test]
    fn a_temporary_folder_is_local_and_a_missing_file_is_judged_by_its_folder() {
        if std::env::var_os("CG_TEST_FS_MAGIC").is_some() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("not/yet/there.db");
        assert_eq!(network_fs(&missing).unwrap(), None);
        assert!(magic_of(dir.path()).unwrap() != 0);
    }
}
