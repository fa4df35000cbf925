//! One job's child process: the command that makes the `cg` binary a job runner on a slot, the
//! configuration it reads on stdin, its stderr kept in the attempt's log, and the watch over it
//! to its end: its messages shown and recorded, the lease heartbeated, the time limit and the
//! shutdown (stdin closed, then a kill after the grace) enforced. Also how a child that died
//! without a result is described (its exit, its panic or last line of stderr).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use cg_core::RunConfig;
use cg_store::Claim;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;

use super::LocalOptions;
use super::ctx::Ctx;
use crate::Event;
use crate::gpu::Slot;
use crate::protocol::ChildMessage;

/// How a child's run ended, as far as the parent is concerned.
pub(super) enum End {
    /// Its stdout closed (it exited).
    Exited,
    /// It ran past `timeout_per_job` and was killed.
    TimedOut,
    /// Its lease was taken back and it was killed.
    LeaseLost,
}

/// What the parent learnt from one child's run.
pub(super) struct ChildRun {
    pub(super) end: End,
    /// The child's last result or failure message, if it sent one.
    pub(super) outcome: Option<ChildMessage>,
    /// Its exit status.
    pub(super) status: std::io::Result<ExitStatus>,
    /// The last 16 KiB of its stderr (the whole is in the attempt's log).
    pub(super) stderr_tail: String,
    /// From spawning to its first output on stderr.
    pub(super) startup: Option<Duration>,
    /// From the claim to its first message on stdout.
    pub(super) first_progress: Option<Duration>,
}

/// The command that runs attempt `attempt` of `job` as a job runner on `slot`, with its
/// checkpoints in `checkpoint_dir`.
pub(super) fn child_command(
    opts: &LocalOptions,
    slot: &Slot,
    job: &str,
    attempt: u32,
    checkpoint_dir: &Path,
) -> Command {
    let mut cmd = Command::new(&opts.exe);
    cmd.args(&opts.runner_args)
        .arg("--job-id")
        .arg(job)
        .arg("--attempt")
        .arg(attempt.to_string())
        .arg("--checkpoint-dir")
        .arg(checkpoint_dir)
        .arg("--device")
        .arg(slot.child_device().to_string())
        // Pinned: the child sees its own GPU only (as cuda:0), or none on a CPU slot.
        .env("CUDA_VISIBLE_DEVICES", slot.child_visible_devices())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group: a Ctrl-C at the terminal reaches the parent only, which then
        // stops the child cleanly.
        .process_group(0)
        // The child never opens the database; it need not see where it is or how to log in.
        .env_remove("CG_DB")
        .env_remove("PGPASSWORD")
        .env_remove("PGPASSFILE");
    if opts.keep_checkpoints {
        cmd.arg("--keep-checkpoints");
    }
    if let Some(t) = opts.threads_per_job {
        cmd.env("RAYON_NUM_THREADS", t.max(1).to_string())
            .env("OMP_NUM_THREADS", t.max(1).to_string());
    }
    cmd
}

/// Runs a spawned child to its end: sends it the claim's configuration, keeps its stderr in
/// `log_path` and watches it (see [`watch_child`]).
pub(super) async fn run_child(
    ctx: &Ctx,
    worker: &str,
    claim: &Claim,
    mut child: Child,
    spawned_at: Instant,
    claimed_at: Instant,
    log_path: &Path,
) -> ChildRun {
    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    send_config(stdin.as_mut(), &claim.job.config).await;
    let stderr_task = tokio::spawn(capture_stderr(stderr, log_path.to_path_buf(), spawned_at));
    let watched = watch_child(ctx, worker, claim, &mut child, stdin, stdout, claimed_at).await;
    let status = child.wait().await;
    let (stderr_tail, startup) = stderr_task.await.unwrap_or_default();
    ChildRun {
        end: watched.end,
        outcome: watched.outcome,
        status,
        stderr_tail,
        startup,
        first_progress: watched.first_progress,
    }
}

/// Writes the configuration as one JSON line on the child's stdin.
async fn send_config(stdin: Option<&mut ChildStdin>, config: &RunConfig) {
    if let Some(input) = stdin {
        let mut line = serde_json::to_string(config).expect("configs serialise");
        line.push('\n');
        // A child that died at once shows up later as exiting without a result.
        let _ = input.write_all(line.as_bytes()).await;
        let _ = input.flush().await;
    }
}

/// Copies the child's stderr into the log at `log_path`, keeping its last 16 KiB; returns them
/// and the time from `spawned_at` to its first output.
async fn capture_stderr(
    stderr: ChildStderr,
    log_path: PathBuf,
    spawned_at: Instant,
) -> (String, Option<Duration>) {
    let mut log = tokio::fs::File::create(&log_path).await.ok();
    let mut reader = BufReader::new(stderr);
    let mut tail = String::new();
    let mut buf = vec![0u8; 8192];
    let mut startup = None;
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0 {
            break;
        }
        startup.get_or_insert_with(|| spawned_at.elapsed());
        if let Some(f) = log.as_mut() {
            let _ = f.write_all(&buf[..n]).await;
        }
        tail.push_str(&String::from_utf8_lossy(&buf[..n]));
        keep_tail(&mut tail, 16 * 1024);
    }
    if let Some(f) = log.as_mut() {
        let _ = f.flush().await;
    }
    (tail, startup)
}

/// What the watch saw of the child's stdout, and how the watch ended.
struct Watched {
    end: End,
    outcome: Option<ChildMessage>,
    first_progress: Option<Duration>,
    /// The run's epochs, as the child last said.
    epochs_total: usize,
    claimed_at: Instant,
}

/// Watches the child until its stdout closes, heartbeating the lease: a lost lease or the time
/// limit kills it; the shutdown closes its stdin (dropping `stdin`) and kills it after the grace.
async fn watch_child(
    ctx: &Ctx,
    worker: &str,
    claim: &Claim,
    child: &mut Child,
    mut stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    claimed_at: Instant,
) -> Watched {
    let (store, opts) = (&ctx.store, &ctx.options);
    let (job, attempt) = (claim.job.id.as_str(), claim.attempt);
    let mut lines = BufReader::new(stdout).lines();
    let mut heartbeat = tokio::time::interval((opts.lease / 4).max(Duration::from_millis(100)));
    heartbeat.tick().await;
    let deadline = opts
        .timeout_per_job
        .and_then(|t| Instant::now().checked_add(t));
    let mut grace_deadline: Option<Instant> = None;
    let mut shutdown = ctx.shutdown.clone();
    let mut watching_shutdown = true;
    let mut watched = Watched {
        end: End::Exited,
        outcome: None,
        first_progress: None,
        epochs_total: claim.job.config.train.epochs,
        claimed_at,
    };
    if ctx.stopping() {
        stdin = None;
        grace_deadline = Some(Instant::now() + opts.grace);
    }
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => watched.read(ctx, job, attempt, &line).await,
                Ok(None) | Err(_) => break,
            },
            _ = heartbeat.tick() => {
                match store.heartbeat(job, attempt, worker, opts.lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        watched.end = End::LeaseLost;
                        let _ = child.kill().await;
                        break;
                    }
                    Err(e) => ctx.warn(format!("job {job}: heartbeat failed: {e}")),
                }
            }
            _ = sleep_until(deadline) => {
                watched.end = End::TimedOut;
                let _ = child.kill().await;
                break;
            }
            _ = sleep_until(grace_deadline) => {
                let _ = child.kill().await;
                break;
            }
            changed = shutdown.changed(), if watching_shutdown => {
                if changed.is_err() || *shutdown.borrow() {
                    watching_shutdown = false;
                    if *shutdown.borrow() {
                        // Closing stdin asks the child to stop at its next step.
                        stdin = None;
                        grace_deadline = Some(Instant::now() + opts.grace);
                    }
                }
            }
        }
    }
    drop(stdin);
    watched
}

impl Watched {
    /// Acts on one line of the child's stdout: progress and notes are shown, epochs recorded, and
    /// a result or failure kept as the outcome.
    #[rustfmt::skip]
    async fn read(&mut self, ctx: &Ctx, job: &str, attempt: u32, line: &str) {
        let Some(message) = ChildMessage::parse(line) else {
            return;
        };
        let claimed_at = self.claimed_at;
        self.first_progress.get_or_insert_with(|| claimed_at.elapsed());
        let job = job.to_string();
        match message {
            ChildMessage::Step { epoch, epochs, step, steps_per_epoch, loss, img_per_s, eta_secs } => {
                self.epochs_total = epochs;
                ctx.emit(Event::Step { job, epoch, epochs, step, steps_per_epoch, loss, img_per_s, eta_secs });
            }
            ChildMessage::Epoch { record } => {
                if let Err(e) = ctx.store.record_epoch(&job, attempt, &record).await {
                    ctx.warn(format!("job {job}: cannot record epoch {}: {e}", record.epoch));
                }
                let epochs = self.epochs_total;
                ctx.emit(Event::Epoch { job, attempt, epochs, record });
            }
            ChildMessage::Note { message } => ctx.emit(Event::Note { job, message }),
            m @ (ChildMessage::Done { .. } | ChildMessage::Failed { .. }) => self.outcome = Some(m),
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The last `max` bytes of `s`, cut at a character boundary.
fn keep_tail(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = s.len() - max;
        while !s.is_char_boundary(cut) {
            cut += 1;
        }
        s.drain(..cut);
    }
}

/// The last line of `s` that is not blank, trimmed.
pub(super) fn last_line(s: &str) -> Option<String> {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
}

/// A Rust panic in `stderr` as `panicked at FILE:LINE:COL: MESSAGE` (the last panic; its message
/// may span lines up to the backtrace note), so that the job's error says why it died.
pub(super) fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.rfind("panicked at ")?;
    let rest = &stderr[start..];
    let mut lines = rest.lines();
    let head = lines.next()?.trim_end();
    let message: Vec<&str> = lines
        .take_while(|l| !l.starts_with("note: ") && !l.starts_with("stack backtrace:"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    // Before Rust 1.73 the message followed on the same line: `panicked at 'msg', file:line`.
    let mut out = head.trim_end_matches(':').to_string();
    if !message.is_empty() {
        out.push_str(": ");
        out.push_str(&message.join(" "));
    }
    let mut out: String = out.chars().take(2000).collect();
    out.truncate(out.trim_end().len());
    Some(out)
}

/// How a child process ended: its exit code or the signal that killed it.
pub(super) fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(9)) => "was killed (SIGKILL)".into(),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => "ended".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_told_by_its_message_not_the_backtrace_hint() {
        for (stderr, expected) in [
            (
                "epoch 1\nthread 'main' panicked at crates/x/src/lib.rs:10:5:\nindex out of bounds: \
                 the len is 3 but the index is 7\nnote: run with `RUST_BACKTRACE=1` environment \
                 variable to display a backtrace\n",
                "panicked at crates/x/src/lib.rs:10:5: index out of bounds: the len is 3 but the index is 7",
            ),
            (
                "thread '<unnamed>' panicked at src/a.rs:1:1:\nfirst\nsecond line\nstack backtrace:\n   0: x\n",
                "panicked at src/a.rs:1:1: first second line",
            ),
            (
                "thread 'main' panicked at 'old style', src/a.rs:1:1\nnote: run with `RUST_BACKTRACE=1`\n",
                "panicked at 'old style', src/a.rs:1:1",
            ),
        ] {
            assert_eq!(panic_message(stderr).as_deref(), Some(expected), "{stderr}");
        }
        assert_eq!(panic_message("Killed\n"), None);
        assert_eq!(last_line("a\n  b  \n\n").as_deref(), Some("b"));
    }

    #[test]
    fn tail_keeps_the_end_at_a_char_boundary() {
        let mut s = "ééééé".to_string();
        keep_tail(&mut s, 3);
        assert_eq!(s, "é");
        let mut s = "abc".to_string();
        keep_tail(&mut s, 10);
        assert_eq!(s, "abc");
    }
}
