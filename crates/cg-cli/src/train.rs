//! `cg train`: one configuration, one result JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cg_model::train::{Prepared, TrainOptions};
use clap::Args;

use crate::progress::TermProgress;
use crate::util::{BackendArgs, EXIT_INVALID, set_threads, stamp_provenance, write_atomic};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Run file (YAML or JSON): sections dataset, model, gate, loss, train.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Override one dotted key, e.g. `--set gate.threshold=0.9` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub target: BackendArgs,
    /// Where to write the result JSON.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Keep a checkpoint every epoch in this directory and resume from it when present.
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Keep the intermediate checkpoints after the run completes.
    #[arg(long)]
    pub keep_checkpoints: bool,
    /// CPU threads for the backend, at most the CPUs (default: all of them).
    #[arg(long, value_parser = crate::util::parse_threads)]
    pub threads: Option<usize>,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: TrainArgs) -> Result<ExitCode> {
    set_threads(args.threads)?;
    let mut config = match cg_sweep::load_run_file(&args.config) {
        Ok(c) => c,
        Err(diags) => {
            eprintln!("{diags}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    for kv in &args.set {
        let Some((key, value)) = kv.split_once('=') else {
            bail!("--set takes KEY=VALUE, got `{kv}`");
        };
        config
            .set(key.trim(), cg_core::parse_set_value(value.trim()))
            .with_context(|| format!("--set {kv}"))?;
    }
    let problems = config.problems();
    if !problems.is_empty() {
        for p in problems {
            eprintln!("{}: {}: {}", args.config.display(), p.key, p.message);
        }
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let (backend, device) = args.target.target()?;
    if !args.quiet {
        eprintln!("loading {:?} data…", config.dataset.kind);
    }
    let prep = Prepared::new(&config).context("cannot prepare the run")?;
    if !args.quiet {
        eprintln!(
            "{} training / {} test images ({}×{}×{}) from {}; {} on {}; {} MACs per image (full)",
            prep.data.train.len(),
            prep.data.test.len(),
            prep.data.train.channels,
            prep.data.train.side,
            prep.data.train.side,
            prep.data.source,
            describe(&config),
            cg_model::device::device_name(backend, device),
            prep.macs.full()
        );
    }
    let opts = TrainOptions {
        checkpoint_dir: args.checkpoint_dir.clone(),
        resume: args.checkpoint_dir.is_some(),
        keep_checkpoints: args.keep_checkpoints,
        ..TrainOptions::default()
    };
    let mut observer = TermProgress::new(args.quiet);
    let mut result =
        cg_model::run(&prep, backend, device, &opts, &mut observer).context("training failed")?;
    stamp_provenance(&mut result, backend, device);
    let json = serde_json::to_vec_pretty(&result)?;
    write_atomic(&args.out, &json)?;
    if !args.quiet {
        eprintln!(
            "test accuracy {:.2}% (peak {:.2}% at epoch {}), savings {:.1}% nominal / {:.1}% actual{}; {:.1} img/s training",
            100.0 * result.test_acc_final,
            100.0 * result.test_acc_peak,
            result.peak_epoch,
            100.0 * result.savings_nominal,
            100.0 * result.savings_actual,
            result
                .savings_measured
                .map(|m| format!(" / {:.1}% measured", 100.0 * m))
                .unwrap_or_default(),
            result.train_img_per_s
        );
        eprintln!("wrote {}", args.out.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(c: &cg_core::RunConfig) -> String {
    let kind = match c.model.kind {
        cg_core::ModelKind::Resnet => "ResNet".to_string(),
        cg_core::ModelKind::Cosinegate => format!("CosineGate ({})", c.gate.mode.as_str()),
    };
    format!("{kind}-{} width {}", c.model.depth, c.model.width)
}
