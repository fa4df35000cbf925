//! `cg bench-replay`: a `method: mo-asha` sweep's decision code run over a grid's recorded
//! per-epoch results, with no training, for many seeds and both samplers. `--record GRID` first
//! writes those results (the curves) from a database into the fixture file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cg_core::{Coord, RunResult, Sampler};
use cg_search::{Curve, SearchSpec, grid_hypervolume, simulate};
use cg_sweep::{LoadOptions, Sweep, load_sweep};
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::db::{DB_HELP_SHORT, DbArg, runtime};

#[derive(Args, Debug)]
#[command(mut_arg("db", |a| a.help(DB_HELP_SHORT)))]
pub struct BenchReplayArgs {
    /// The `method: mo-asha` sweep file whose search is replayed.
    #[arg(long, default_value = "experiments/fashion-mnist.yaml")]
    pub search: PathBuf,
    /// The recorded curves (JSON).
    #[arg(long, default_value = "reports/fashion-mnist-grid/curves.json")]
    pub curves: PathBuf,
    /// First write the curves from the grid sweep GRID in `--db` (the full-budget grid over
    /// the search's configurations).
    #[arg(long, value_name = "GRID")]
    pub record: Option<String>,
    #[command(flatten)]
    pub db: DbArg,
    /// Search seeds replayed per sampler: 0, 1, ...
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub seeds: u64,
    /// Simulated workers (jobs at once).
    #[arg(long, default_value_t = 2, value_parser = crate::util::count_in(MAX_REPLAY_COUNT))]
    pub workers: usize,
    /// Replace the file's `fidelity.min_epochs` (what-if; `max_epochs` is the curves').
    #[arg(long, value_parser = crate::util::count_in(MAX_REPLAY_COUNT))]
    pub min_epochs: Option<usize>,
    /// Replace the file's `fidelity.eta` (what-if).
    #[arg(long, value_parser = crate::util::count_between(2, MAX_REPLAY_COUNT))]
    pub eta: Option<usize>,
    /// Hypervolume share the goal asks for.
    #[arg(long, default_value_t = 0.95)]
    pub goal_hv: f64,
    /// Most epochs share the goal allows.
    #[arg(long, default_value_t = 0.35)]
    pub goal_epochs: f64,
    /// One JSON object per replay instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Most `--workers`, `--min-epochs` and `--eta` of a replay.
const MAX_REPLAY_COUNT: u64 = 1_000_000;

/// The fixture: every configuration of the search's space with its recorded curve.
#[derive(Debug, Serialize, Deserialize)]
struct Fixture {
    /// The grid sweep the curves come from.
    grid: String,
    /// The objectives' metrics, in the search's order.
    objectives: Vec<String>,
    configs: Vec<Recorded>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Recorded {
    point: Vec<Coord>,
    job_id: String,
    params: serde_json::Map<String, serde_json::Value>,
    /// Objective values after each epoch.
    values: Vec<Vec<f64>>,
    epoch_secs: Vec<f64>,
}

/// One replay's figures.
#[derive(Debug, Serialize)]
struct Line {
    sampler: &'static str,
    seed: u64,
    hv_share: f64,
    epochs_share: f64,
    wall_share: Option<f64>,
    top: Vec<usize>,
    finished: bool,
}

pub fn run(args: BenchReplayArgs) -> Result<ExitCode> {
    let (sweep, mut spec) = load_search(&args)?;
    if let Some(grid) = &args.record {
        record_curves(&args, grid, &sweep)?;
    }
    let fixture = read_fixture(&args, &sweep)?;
    let curves: Vec<Curve> = fixture
        .configs
        .iter()
        .map(|c| Curve {
            point: c.point.clone(),
            values: c.values.clone(),
            epoch_secs: c.epoch_secs.clone(),
        })
        .collect();
    apply_what_ifs(&args, &mut spec)?;
    if curves.is_empty() {
        bail!("{} records no curve", args.curves.display());
    }
    let grid = Grid::of(&args, &spec, &curves)?;
    if !args.json {
        println!(
            "replay of {} (rungs {:?}, {} workers) over {} recorded curves of `{}`: \
             grid hypervolume {:.6}, {} epochs",
            args.search.display(),
            spec.settings.fidelity.rungs(),
            args.workers,
            curves.len(),
            fixture.grid,
            grid.hypervolume,
            grid.epochs
        );
    }
    let lines = replay_all(&args, &spec, &curves, &grid)?;
    if !args.json {
        print_table(&lines, args.goal_hv, args.goal_epochs);
    }
    Ok(ExitCode::SUCCESS)
}

/// The `--search` file and its search's settings.
fn load_search(args: &BenchReplayArgs) -> Result<(Sweep, SearchSpec)> {
    // Recording matches the grid's jobs by id, which needs the data's fingerprint; a replay
    // needs only the search's settings.
    let options = LoadOptions {
        no_data_check: args.record.is_none(),
        ..LoadOptions::default()
    };
    let sweep = load_sweep(&args.search, &options).map_err(|d| anyhow::anyhow!("{d}"))?;
    let spec = cg_daemon::search_spec(&sweep)
        .with_context(|| format!("{} is not a `method: mo-asha` sweep", args.search.display()))?;
    Ok((sweep, spec))
}

/// `--record GRID`: writes the grid's curves from `--db` into the `--curves` file.
fn record_curves(args: &BenchReplayArgs, grid: &str, sweep: &Sweep) -> Result<()> {
    let fixture = runtime()?.block_on(record(&args.db, grid, sweep))?;
    let text = serde_json::to_string_pretty(&fixture)? + "\n";
    if let Some(dir) = args.curves.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&args.curves, text)
        .with_context(|| format!("cannot write {}", args.curves.display()))?;
    eprintln!(
        "recorded {} curves of `{grid}` into {}",
        fixture.configs.len(),
        args.curves.display()
    );
    Ok(())
}

/// The `--curves` file, refused when it records other objectives than the search's.
fn read_fixture(args: &BenchReplayArgs, sweep: &Sweep) -> Result<Fixture> {
    let text = std::fs::read_to_string(&args.curves)
        .with_context(|| format!("cannot read the curves {}", args.curves.display()))?;
    let fixture: Fixture = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a curves file", args.curves.display()))?;
    let metrics = sweep.info().metrics();
    if fixture.objectives != metrics {
        bail!(
            "{} records the objectives {:?}; {} has {:?}",
            args.curves.display(),
            fixture.objectives,
            args.search.display(),
            metrics
        );
    }
    Ok(fixture)
}

/// `--min-epochs` and `--eta` in place of the file's, refused when the schedule no longer holds.
fn apply_what_ifs(args: &BenchReplayArgs, spec: &mut SearchSpec) -> Result<()> {
    let fidelity = &mut spec.settings.fidelity;
    if let Some(m) = args.min_epochs {
        fidelity.min_epochs = m;
    }
    if let Some(eta) = args.eta {
        fidelity.eta = eta;
    }
    if let Some(why) = spec.settings.schedule_problem() {
        bail!("{} with --min-epochs/--eta: {why}", args.search.display());
    }
    Ok(())
}

/// The full grid over the recorded curves: what every replay is a share of.
struct Grid {
    hypervolume: f64,
    epochs: usize,
    /// Wall-clock seconds with `--workers` jobs at once (0 when the curves record no time).
    secs: f64,
}

impl Grid {
    fn of(args: &BenchReplayArgs, spec: &SearchSpec, curves: &[Curve]) -> Result<Grid> {
        let max_epochs = spec.settings.fidelity.max_epochs;
        let hypervolume = grid_hypervolume(spec, curves);
        // Shares of a zero hypervolume would print as NaN.
        if hypervolume.is_nan() || hypervolume <= 0.0 {
            bail!(
                "the grid's hypervolume is zero against the reference point {:?} of {}: none of \
                 the recorded configurations is better than it in every objective, so no share of \
                 it can be computed",
                spec.reference_point,
                args.search.display()
            );
        }
        let secs = curves
            .iter()
            .map(|c| c.epoch_secs.iter().take(max_epochs).sum::<f64>())
            .sum::<f64>()
            / args.workers.max(1) as f64;
        Ok(Grid {
            hypervolume,
            epochs: curves.len() * max_epochs,
            secs,
        })
    }
}

/// Every replay, both samplers, seeds 0..`--seeds`; with `--json`, each printed as it ends.
fn replay_all(
    args: &BenchReplayArgs,
    spec: &SearchSpec,
    curves: &[Curve],
    grid: &Grid,
) -> Result<Vec<Line>> {
    let mut lines = Vec::new();
    for (sampler, name) in [(Sampler::Random, "random"), (Sampler::Nsga2, "nsga2")] {
        for seed in 0..args.seeds {
            let mut s: SearchSpec = spec.clone();
            s.settings.sampler = sampler;
            s.settings.seed = seed;
            let sim = simulate(s, curves, args.workers)
                .with_context(|| format!("replay with sampler {name}, seed {seed}"))?;
            let line = Line {
                sampler: name,
                seed,
                hv_share: sim.hypervolume / grid.hypervolume,
                epochs_share: sim.epochs_spent as f64 / grid.epochs as f64,
                // `None` (JSON null, "n/a") when the curves record no time.
                wall_share: (grid.secs > 0.0).then(|| sim.wall_secs / grid.secs),
                top: sim.top,
                finished: sim.finished,
            };
            if args.json {
                println!("{}", serde_json::to_string(&line)?);
            }
            lines.push(line);
        }
    }
    Ok(lines)
}

fn print_table(lines: &[Line], goal_hv: f64, goal_epochs: f64) {
    println!(
        "{:<8} {:>6}  {:>31}  {:>20}  {:>12}  {:>9}",
        "sampler",
        "seeds",
        "hypervolume share min/p25/med/p75/max",
        "epochs share min/med/max",
        "wall med",
        "goal met"
    );
    for name in ["random", "nsga2"] {
        let of: Vec<&Line> = lines.iter().filter(|l| l.sampler == name).collect();
        if of.is_empty() {
            continue;
        }
        let hv = quantiles(of.iter().map(|l| l.hv_share));
        let ep = quantiles(of.iter().map(|l| l.epochs_share));
        let wall = match of
            .iter()
            .map(|l| l.wall_share)
            .collect::<Option<Vec<f64>>>()
        {
            Some(w) => format!("{:.1}%", 100.0 * quantiles(w.into_iter())[2]),
            None => "n/a".into(),
        };
        let met = of
            .iter()
            .filter(|l| l.hv_share >= goal_hv && l.epochs_share <= goal_epochs)
            .count();
        println!(
            "{name:<8} {:>6}  {:>5.1}% {:>5.1}% {:>5.1}% {:>5.1}% {:>5.1}%  {:>5.1}% {:>5.1}% {:>5.1}%  {:>12}  {:>4}/{:<4}",
            of.len(),
            100.0 * hv[0],
            100.0 * hv[1],
            100.0 * hv[2],
            100.0 * hv[3],
            100.0 * hv[4],
            100.0 * ep[0],
            100.0 * ep[2],
            100.0 * ep[4],
            wall,
            met,
            of.len()
        );
    }
    println!(
        "goal: hypervolume share >= {:.0}% with epochs share <= {:.0}% (median over seeds)",
        100.0 * goal_hv,
        100.0 * goal_epochs
    );
}

/// Min, 25th percentile, median, 75th percentile, max (nearest rank on the sorted values).
fn quantiles(values: impl Iterator<Item = f64>) -> [f64; 5] {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = (q * (v.len() - 1) as f64).round() as usize;
        v[i]
    };
    [at(0.0), at(0.25), at(0.5), at(0.75), at(1.0)]
}

/// The grid's curves, one per point of the search's (finite) space: the grid job whose id is the
/// point's full-budget job.
async fn record(db: &DbArg, grid: &str, sweep: &Sweep) -> Result<Fixture> {
    let store = db.open_existing_or_read_only().await?;
    let records = store
        .job_records(grid)
        .await
        .with_context(|| format!("cannot read the jobs of `{grid}`"))?;
    let settings = sweep
        .search_settings()
        .context("the search file is not `method: mo-asha`")?;
    let points = cg_search::all_points(&settings.space, 1_000_000).context(
        "a replay needs a finite space of at most a million points: `values:` axes or integer ranges",
    )?;
    let objectives = sweep.info().metrics();
    let mut configs = Vec::new();
    let mut missing = Vec::new();
    for point in points {
        // One job per seed of the point: a seeded grid holds each.
        let jobs = sweep
            .search_jobs(&point, None)
            .context("a point of the space has no job")?;
        let mut results = Vec::with_capacity(jobs.len());
        for job in &jobs {
            match records
                .iter()
                .find(|r| r.job.id == job.id)
                .and_then(|r| r.result.as_ref())
            {
                Some(result) => results.push(result),
                None => missing.push(job.params.clone()),
            }
        }
        if results.len() < jobs.len() {
            continue;
        }
        let (values, epoch_secs) = seeds_curve(&results, &objectives)?;
        let first = jobs.into_iter().next().context("a point without jobs")?;
        configs.push(Recorded {
            values,
            epoch_secs,
            point,
            job_id: first.id,
            params: first.params,
        });
    }
    if let Some(first) = missing.first() {
        bail!(
            "the grid `{grid}` has no completed result for {} of the search's configurations \
             (e.g. {}): is it the same file with `method: grid`, run to the end?",
            missing.len(),
            serde_json::Value::Object(first.clone())
        );
    }
    Ok(Fixture {
        grid: grid.to_string(),
        objectives,
        configs,
    })
}

/// A configuration's curve over its seeds' runs, as a search reads a configuration: the mean
/// objective values after each epoch (over the epochs every seed reached) and the seconds all
/// seeds spent on each epoch.
fn seeds_curve(results: &[&RunResult], objectives: &[String]) -> Result<(Vec<Vec<f64>>, Vec<f64>)> {
    let curves = results
        .iter()
        .map(|r| curve_values(r, objectives))
        .collect::<Result<Vec<_>>>()?;
    let epochs = results.iter().map(|r| r.history.len()).min().unwrap_or(0);
    let n = results.len() as f64;
    let values = (0..epochs)
        .map(|e| {
            (0..objectives.len())
                .map(|i| curves.iter().map(|c| c[e][i]).sum::<f64>() / n)
                .collect()
        })
        .collect();
    let secs = (0..epochs)
        .map(|e| results.iter().map(|r| r.history[e].wall_secs).sum())
        .collect();
    Ok((values, secs))
}

/// The objectives after each epoch, from a result's history: what a rung job stopped after that
/// epoch would have returned (accuracy on validation where the run has a split).
fn curve_values(result: &RunResult, objectives: &[String]) -> Result<Vec<Vec<f64>>> {
    let macs = result.macs_full as f64;
    // As chosen: a run with a validation split is read on validation (cg_core::chosen_metric).
    let validation = result.has_validation();
    let acc = |h: &cg_core::EpochRecord| match h.val_acc {
        Some(v) if validation => v,
        _ => h.test_acc,
    };
    result
        .history
        .iter()
        .enumerate()
        .map(|(i, h)| {
            objectives
                .iter()
                .map(|m| {
                    Ok(match m.as_str() {
                        "test_acc_final" => acc(h),
                        "test_acc_peak" => result.history[..=i]
                            .iter()
                            .map(acc)
                            .fold(f64::NEG_INFINITY, f64::max),
                        "savings_nominal" => h.savings_nominal,
                        "savings_actual" => h.savings_actual,
                        "macs_executed_nominal" => macs * (1.0 - h.savings_nominal),
                        "macs_executed_actual" => macs * (1.0 - h.savings_actual),
                        other => bail!(
                            "the objective `{other}` is not recorded per epoch; a replay takes \
                             test_acc_final, test_acc_peak, savings_nominal, savings_actual and \
                             macs_executed_*"
                        ),
                    })
                })
                .collect()
        })
        .collect()
}
