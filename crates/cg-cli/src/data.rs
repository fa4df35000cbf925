//! `cg data fetch`: official downloads with checksum verification.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use cg_model::data::fetch::{SOURCES, fetch, source};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Download a data set (`mnist`, `fashion-mnist`, `cifar10`) and verify its checksums.
    Fetch {
        /// Which data set.
        name: String,
        /// Target directory (default: `data/<name>`).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Download from this base URL instead of the official one (a mirror).
        #[arg(long, env = "CG_DATA_MIRROR")]
        base_url: Option<String>,
    },
}

pub fn run(cmd: DataCommand) -> Result<ExitCode> {
    match cmd {
        DataCommand::Fetch { name, dir, base_url } => {
            let Some(src) = source(&name) else {
                let known: Vec<&str> = SOURCES.iter().map(|s| s.name).collect();
                bail!("unknown data set `{name}`; known: {}", known.join(", "));
            };
            let dir = dir.unwrap_or_else(|| PathBuf::from("data").join(src.name));
            let mut last = (String::new(), 0u64);
            let path = fetch(src, base_url.as_deref(), &dir, &mut |file, done, total| {
                // Print at most every 4 MiB per file.
                if last.0 != file || done >= last.1 + (4 << 20) || Some(done) == total {
                    last = (file.to_string(), done);
                    let total = total.map(|t| format!(" of {:.1} MiB", t as f64 / 1048576.0)).unwrap_or_default();
                    eprint!("\r{file}: {:.1} MiB{total}   ", done as f64 / 1048576.0);
                    let _ = std::io::stderr().flush();
                }
            })?;
            eprintln!();
            let kind = if src.name == "cifar10" { "cifar-bin" } else { "idx" };
            println!("{} ready in {} (checksums verified)", src.name, path.display());
            println!("run file: dataset: {{kind: {kind}, path: {}}}", path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
