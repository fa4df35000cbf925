//! Small helpers shared by the commands.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use cg_core::Provenance;
use cg_model::{BackendKind, DeviceSpec};
use clap::Args;

/// Exit code for input that failed validation.
pub const EXIT_INVALID: u8 = 2;

/// Writes a file atomically: a new temporary file beside it (unpredictable name, never through a
/// link), then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    cg_report::write_atomic(path, bytes, None)?;
    Ok(())
}

/// Most jobs at once: `--workers` (CPU), each `--packing` of `cg bench-workers`.
pub const MAX_JOBS_AT_ONCE: u64 = 256;
/// Most `--jobs-per-gpu`.
pub const MAX_JOBS_PER_GPU: u64 = 64;
/// Most `--iters` of `cg bench`.
pub const MAX_BENCH_ITERS: u64 = 10_000;
/// Most `--jobs` and `--steps` of `cg bench-workers`.
pub const MAX_BENCH_JOBS: u64 = 10_000;
pub const MAX_BENCH_STEPS: u64 = 100_000;

/// A command-line count between 1 and `max`, checked by clap before any work starts.
pub fn count_in(max: u64) -> clap::builder::RangedU64ValueParser<usize> {
    count_between(1, max)
}

/// A command-line count between `min` and `max`, checked by clap before any work starts.
pub fn count_between(min: u64, max: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(min..=max)
}

/// The CPUs this process may use (its affinity and cgroup quota), at least 1.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `--threads`, `--threads-per-job`: from 1 to the CPUs this process may use (more only slows
/// training: 4096 threads took minutes for a job of a second).
pub fn parse_threads(text: &str) -> std::result::Result<usize, String> {
    let cpus = available_cpus();
    let refused = || format!("must be a whole number from 1 to {cpus} (the CPUs cg may use here)");
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=cpus).contains(&n) => Ok(n),
        _ => Err(refused()),
    }
}

/// Most bytes of a `--preface` file.
pub const MAX_PREFACE_BYTES: u64 = 64 * 1024;
/// Most bytes `cg logs` shows of one log: its end.
pub const LOG_TAIL_BYTES: u64 = 256 * 1024;

/// [`cg_sweep::open_regular`] with the path in its error.
fn open_regular(path: &Path) -> Result<(std::fs::File, u64)> {
    cg_sweep::open_regular(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidInput => anyhow::anyhow!("{} is {e}", path.display()),
        _ => anyhow::Error::new(e).context(format!("cannot open {}", path.display())),
    })
}

/// The whole of the regular file `path`, refused when it has more than `max` bytes; `what` names
/// it in messages ("the preface").
pub fn read_capped(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let (file, len) = open_regular(path)?;
    let too_big = |n: u64| {
        anyhow::anyhow!(
            "{what} {} has {n} bytes, more than the {max} that cg reads",
            path.display()
        )
    };
    if len > max {
        return Err(too_big(len));
    }
    let mut out = Vec::with_capacity(len as usize);
    // A file that grows meanwhile is still read no further than the cap.
    file.take(max + 1)
        .read_to_end(&mut out)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if out.len() as u64 > max {
        return Err(too_big(out.len() as u64));
    }
    Ok(out)
}

/// The end of the regular file `path`: its last `max` bytes at most, and how many bytes come
/// before them (not read).
pub fn read_tail(path: &Path, max: u64) -> Result<(Vec<u8>, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let (mut file, len) = open_regular(path)?;
    let skipped = len.saturating_sub(max);
    file.seek(SeekFrom::Start(skipped))
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::new();
    file.take(max)
        .read_to_end(&mut out)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok((out, skipped))
}

/// Sets the CPU thread budget of the training backend (once per process).
pub fn set_threads(threads: Option<usize>) -> Result<()> {
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()
            .context("cannot size the CPU thread pool")?;
    }
    Ok(())
}

/// The backend and the device of a command that trains or measures (flattened into each).
#[derive(Args, Debug, Clone)]
pub struct BackendArgs {
    /// `flex` (CPU), `cubecl` (CUDA), `libtorch` (CPU and CUDA; a build with `--features
    /// libtorch`) or `auto`: libtorch when this cg has it, else flex on the CPU and cubecl on CUDA.
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl BackendArgs {
    /// The backend (resolved: never `auto`) and the device; an error names what is wrong.
    pub fn target(&self) -> Result<(BackendKind, DeviceSpec)> {
        let device: DeviceSpec = self.device.parse()?;
        let backend: BackendKind = self.backend.parse()?;
        Ok((backend.resolve(device)?, device))
    }
}

/// Fills in where and with what `result` was produced; what the run itself recorded there (its
/// validation split) is kept.
pub fn stamp_provenance(result: &mut cg_core::RunResult, backend: BackendKind, device: DeviceSpec) {
    let val_split = result.provenance.val_split.take();
    result.provenance = Provenance {
        val_split,
        ..provenance(backend, device)
    };
}

/// Where and with what this result is produced.
fn provenance(backend: BackendKind, device: DeviceSpec) -> Provenance {
    let commit = env!("CG_GIT_COMMIT");
    Provenance {
        cg_version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit: (!commit.is_empty()).then(|| commit.to_string()),
        burn_version: cg_model::burn_version().to_string(),
        device: provenance_device(backend, device),
        backend: backend.to_string(),
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
        finished_at: Some(rfc3339_now()),
        val_split: None,
    }
}

/// The device as provenance names it; a job runner pinned to one GPU also names that GPU, since
/// it sees it as `cuda:0`.
fn provenance_device(backend: BackendKind, device: DeviceSpec) -> String {
    let name = cg_model::device::device_name(backend, device);
    match (device, std::env::var("CUDA_VISIBLE_DEVICES")) {
        (DeviceSpec::Cuda(_), Ok(visible)) if !visible.is_empty() => {
            format!("{name} (CUDA_VISIBLE_DEVICES={visible})")
        }
        _ => name,
    }
}

/// The current UTC time as RFC 3339 (seconds).
pub fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (y, m, d, h, mi, s) = civil(secs);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Unix milliseconds as `2026-12-02 00:40:12 UTC`.
pub fn utc_text(ms: i64) -> String {
    let (y, m, d, h, mi, s) = civil(ms.div_euclid(1000));
    format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC")
}

/// The current time in unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Year, month, day, hour, minute, second (UTC) of unix seconds.
fn civil(secs: i64) -> (i64, i64, i64, i64, i64, i64) {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Formats seconds as `1h02m`, `3m05s` or `12s`.
pub fn human_secs(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// A job's swept parameters as `key=value` pairs on one line.
pub fn params_line(params: &serde_json::Map<String, serde_json::Value>) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// An error and its causes on one line, `a: b: c`, each cause once: a layer whose message already
/// quotes its cause (as many library errors do) does not repeat it.
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// The backend a result was trained with, for the tables (`-` in results from before it was kept).
pub(crate) fn backend_of(result: &cg_core::RunResult) -> &str {
    match result.provenance.backend.as_str() {
        "" => "-",
        b => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that quotes its source in its message and also returns it as `source()`.
    #[derive(Debug)]
    struct Quoting {
        source: std::io::Error,
    }

    impl std::fmt::Display for Quoting {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot open database x.db: {}", self.source)
        }
    }

    impl std::error::Error for Quoting {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn each_cause_is_printed_once() {
        let io = std::io::Error::other("permission denied");
        let e =
            anyhow::Error::new(Quoting { source: io }).context("cannot open the results database");
        assert_eq!(
            error_chain(&e),
            "cannot open the results database: cannot open database x.db: permission denied"
        );
        let plain = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(error_chain(&plain), "outer: middle: inner");
    }
}
