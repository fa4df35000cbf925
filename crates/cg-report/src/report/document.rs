//! The report's document, as blocks that `doc` renders to markdown and HTML: the title, where the
//! sweep stands, the summary, the front, whether it routes, the search, the figures, every configuration, the failed
//! jobs and the files.

use cg_core::Direction;

use super::fronts::sorted_front;
use super::model::{JobCounts, Progress, Report, ReportOptions, SearchSection};
use super::tables::{model_name, stopped_table};
use crate::aggregate::{Configuration, FrontMembership, Stat};
use crate::doc::Block;
use crate::plots::Figure;
use crate::table::Cell;

fn fmt_stat(s: Stat) -> String {
    if s.n > 1 {
        format!("{:.4} ± {:.4}", s.mean, s.std)
    } else {
        format!("{:.4}", s.mean)
    }
}

/// An accuracy: mean ± std and the 95% Student-t interval over seeds (just the mean for one
/// seed, which has no interval).
fn fmt_acc(s: Stat) -> String {
    match s.ci95() {
        Some(h) => format!(
            "{:.4} ± {:.4} [{:.4}, {:.4}]",
            s.mean,
            s.std,
            s.mean - h,
            s.mean + h
        ),
        None => format!("{:.4}", s.mean),
    }
}

fn fmt_opt_acc(s: Option<Stat>) -> String {
    s.map_or_else(|| "—".into(), fmt_acc)
}

fn fmt_opt_stat(s: Option<Stat>) -> String {
    s.map_or_else(|| "—".into(), fmt_stat)
}

fn fmt_number(v: f64) -> String {
    format!("{v}")
}

fn first_line(text: &str, max_chars: usize) -> String {
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if line.chars().count() > max_chars {
        format!("{}…", line.chars().take(max_chars).collect::<String>())
    } else {
        line.to_string()
    }
}

/// Which optional columns the front and baseline tables show.
#[derive(Clone, Copy)]
struct Shown {
    /// Validation accuracy (what chose) before test accuracy.
    val: bool,
    /// The predictor's agreement with the CIR gate, when some configuration has a predictor.
    agreement: bool,
}

impl Shown {
    fn of(report: &Report) -> Self {
        Shown {
            val: shows_validation(report),
            agreement: report
                .configurations
                .iter()
                .any(|c| c.predictor_agreement.is_some()),
        }
    }
}

/// A row of the front and baseline tables.
fn configuration_row(c: &Configuration, shown: Shown) -> Vec<String> {
    let mut row = vec![c.id.clone(), format!("`{}`", c.label)];
    if shown.val {
        row.push(fmt_opt_acc(c.val_acc_final));
        row.push(fmt_opt_acc(c.val_acc_peak));
    }
    row.extend([
        fmt_acc(c.test_acc_final),
        format!(
            "{} (epoch {:.0})",
            fmt_acc(c.test_acc_peak),
            c.peak_epoch.mean
        ),
        fmt_stat(c.savings_nominal),
        fmt_stat(c.savings_actual),
        fmt_opt_stat(c.savings_measured),
    ]);
    if shown.agreement {
        row.push(fmt_opt_acc(c.predictor_agreement));
    }
    row.extend([
        c.epochs.to_string(),
        c.seeds.len().to_string(),
        format!("`{}`", c.rerun.command),
    ]);
    row
}

/// The header of [`configuration_row`].
fn config_header(shown: Shown) -> Vec<String> {
    let accuracy: &[&str] = if shown.val {
        &[
            "val accuracy final",
            "val accuracy peak",
            "test accuracy final",
            "test accuracy peak",
        ]
    } else {
        &["accuracy final", "accuracy peak"]
    };
    let mut header = vec!["id", "configuration"];
    header.extend(accuracy);
    header.extend(["savings nominal", "savings actual", "savings measured"]);
    if shown.agreement {
        header.push("predictor agreement");
    }
    header.extend(["epochs", "seeds", "re-run"]);
    header.into_iter().map(String::from).collect()
}

/// Whether any configuration has validation accuracy (the tables then show it beside test).
fn shows_validation(report: &Report) -> bool {
    report
        .configurations
        .iter()
        .any(|c| c.val_acc_final.is_some())
}

/// The plain line near the top that says what chose: validation, or the test set.
fn selection_line(report: &Report) -> Option<Block> {
    let n = report.configurations.len();
    let with = report
        .configurations
        .iter()
        .filter(|c| c.validation)
        .count();
    let text = if n == 0 {
        return None;
    } else if with == n {
        "Selection: on the validation split (`dataset.val_size`): the front, the hypervolume \
         and the peak epochs are chosen on validation accuracy; test accuracy is shown beside and \
         never chooses."
            .to_string()
    } else if with == 0 {
        "Selection: on the test set. These runs held out no validation split \
         (`dataset.val_size`), so the front, the hypervolume and the peak epochs are chosen on \
         the accuracy they report, which flatters them."
            .to_string()
    } else {
        format!(
            "Selection: mixed. {with} of {n} configurations held out a validation split and are \
             chosen on it; the other {} are chosen on the test set.",
            n - with
        )
    };
    Some(Block::Paragraph(text))
}

/// The document's blocks, section by section.
pub(super) fn document(report: &Report, figures: &[Figure], opts: &ReportOptions) -> Vec<Block> {
    let mut blocks = vec![Block::Heading(
        1,
        format!("Sweep report: `{}`", report.sweep.name),
    )];
    if let Some(progress) = &opts.progress {
        blocks.push(progress_notice(&report.counts, progress));
    }
    blocks.extend(opts.preface.iter().cloned().map(Block::Paragraph));
    blocks.extend(selection_line(report));
    blocks.push(Block::List(summary(report)));
    blocks.extend(nothing_yet(&report.counts));
    if !report.configurations.is_empty() {
        blocks.extend(front_section(report, opts));
        blocks.extend(hypervolume_section(report));
        blocks.extend(baseline_section(report));
        blocks.extend(super::controls::controls_section(report));
        blocks.extend(super::routing::routing_section(report));
    }
    if let Some(search) = &opts.search {
        blocks.extend(search_section(report, search, opts));
    }
    blocks.extend(figures_section(report, figures));
    if !report.configurations.is_empty() {
        blocks.extend(configurations_section(report, opts));
    }
    if !report.failed.is_empty() {
        blocks.extend(failed_section(report, opts));
    }
    blocks.extend(files_section(report));
    blocks
}

/// The summary list: jobs, configurations, objectives, backends, axes, hypervolume.
fn summary(report: &Report) -> Vec<String> {
    let mut summary = vec![
        jobs_line(&report.counts),
        configurations_line(report),
        objectives_line(report),
    ];
    if !report.runs.is_empty() {
        let mut backends: std::collections::BTreeMap<&str, usize> = Default::default();
        for r in &report.runs {
            *backends.entry(r.backend.as_str()).or_default() += 1;
        }
        let backends: Vec<String> = backends
            .iter()
            .map(|(b, n)| format!("`{b}` ({n} run{})", if *n == 1 { "" } else { "s" }))
            .collect();
        summary.push(format!("Backends: {}.", backends.join(", ")));
    }
    if !report.sweep.axes.is_empty() {
        let axes: Vec<String> = report.sweep.axes.iter().map(|a| format!("`{a}`")).collect();
        summary.push(format!("Axes: {}.", axes.join(", ")));
    }
    let n_front = report.front().count();
    summary.push(match report.hypervolume {
        Some(hv) => format!("Hypervolume: {hv:.6} (front of {n_front} configurations)."),
        None => {
            "Hypervolume: none (no finished CosineGate configuration has every objective).".into()
        }
    });
    summary
}

/// `Jobs: N (k finished, …)`, naming only the states that have jobs.
fn jobs_line(counts: &JobCounts) -> String {
    let mut states = vec![format!("{} finished", counts.finished)];
    for (n, what) in [
        (counts.failed, "failed"),
        (counts.queued, "queued"),
        (counts.running, "running"),
        (counts.cancelled, "cancelled"),
        (
            counts.completed_without_result,
            "completed without a stored result",
        ),
    ] {
        if n > 0 {
            states.push(format!("{n} {what}"));
        }
    }
    format!("Jobs: {} ({}).", counts.total, states.join(", "))
}

/// `Configurations: N (k CosineGate, m ResNet baseline) from r finished runs…`.
fn configurations_line(report: &Report) -> String {
    let counts = &report.counts;
    let count =
        |f: fn(&Configuration) -> bool| report.configurations.iter().filter(|c| f(c)).count();
    let n_baseline = count(Configuration::is_baseline);
    let n_control = count(Configuration::is_control);
    format!(
        "Configurations: {} ({} CosineGate, {} ResNet baseline{}) from {} finished runs{}.",
        report.configurations.len(),
        report.configurations.len() - n_baseline - n_control,
        n_baseline,
        if n_control > 0 {
            format!(", {n_control} matched-compute control")
        } else {
            String::new()
        },
        counts.finished - counts.below_top,
        if counts.below_top > 0 {
            format!(
                " on the whole schedule ({} more ended at a lower rung of the search)",
                counts.below_top
            )
        } else {
            String::new()
        }
    )
}

/// `Objectives: … ; reference point (…).`
fn objectives_line(report: &Report) -> String {
    let objectives: Vec<String> = report
        .objectives
        .iter()
        .map(|o| {
            let dir = match o.direction {
                Direction::Maximize => "maximise",
                Direction::Minimize => "minimise",
            };
            format!("`{}` ({dir})", o.metric)
        })
        .collect();
    let reference: Vec<String> = report
        .reference_point
        .iter()
        .map(|v| fmt_number(*v))
        .collect();
    format!(
        "Objectives: {}; reference point ({}).",
        objectives.join(", "),
        reference.join(", ")
    )
}

/// A paragraph when there is nothing to report yet (no jobs, or none finished).
fn nothing_yet(counts: &JobCounts) -> Option<Block> {
    if counts.total == 0 {
        Some(Block::Paragraph(
            "The sweep has no jobs yet: there is nothing to report.".into(),
        ))
    } else if counts.finished == 0 {
        Some(Block::Paragraph(format!(
            "No job of this sweep has finished{}: there are no results to report yet.",
            if counts.failed == counts.total {
                " (every job failed)"
            } else {
                ""
            }
        )))
    } else {
        None
    }
}

/// "Pareto front": what it is, its configurations (best first objective first), and the fronts
/// with actual and measured savings.
fn front_section(report: &Report, opts: &ReportOptions) -> Vec<Block> {
    let mut blocks = vec![
        Block::Heading(2, "Pareto front".into()),
        Block::Paragraph(format!(
            "Configurations that no other configuration beats in every objective, compared by their means \
             over seeds; ties and duplicates all stay on the front. Figures are mean ± sample standard deviation \
             over seeds (just the mean for one seed); accuracies add their 95% Student-t interval over \
             seeds in brackets (a configuration with one seed has none). Baselines are references, not candidates. \
             The re-run command repeats a configuration with its lowest seed from its resolved configuration in \
             `{}/`; add `--set train.seed=N` for another seed.",
            opts.configs_dir.trim_end_matches('/')
        )),
    ];
    let front = sorted_front(report);
    if front.is_empty() {
        blocks.push(Block::Paragraph(
            "No configuration is a candidate for the front.".into(),
        ));
    } else {
        let shown = Shown::of(report);
        blocks.push(Block::Table {
            header: config_header(shown),
            rows: front.iter().map(|c| configuration_row(c, shown)).collect(),
        });
    }
    if report
        .objectives
        .iter()
        .any(|o| o.metric == "savings_nominal")
    {
        blocks.push(other_fronts(report));
    }
    blocks
}

/// "Hypervolume": the share of its largest single contributor and the hypervolume at stricter
/// reference accuracies (with a search's share of its grid's at each, given `--against`).
fn hypervolume_section(report: &Report) -> Vec<Block> {
    let Some(trust) = &report.hv_trust else {
        return Vec::new();
    };
    let lead = match &trust.largest {
        Some((id, share)) => format!(
            "The largest single contributor, {id}, holds {:.1}% of the hypervolume (its exclusive \
             part: what the hypervolume loses without it); a share near 100% means one \
             configuration makes the number.",
            100.0 * share
        ),
        None => "The hypervolume is zero at the sweep's reference point.".into(),
    };
    let stricter = if trust.references.len() > 1 {
        " Below, the reference accuracy is raised by 2 and 5 points (capped at the best \
         baseline's accuracy when there is a baseline): a hypervolume that falls fast lives near \
         the reference."
    } else {
        " No objective is an accuracy, so there are no stricter references."
    };
    let with_search = trust.references.iter().any(|r| r.search_share.is_some());
    let mut header = vec!["reference", "point", "hypervolume"];
    if with_search {
        header.push("search's share of the grid's");
    }
    let rows = trust
        .references
        .iter()
        .map(|r| {
            let point: Vec<String> = r.reference.iter().map(|v| fmt_number(*v)).collect();
            let mut row = vec![
                if r.capped {
                    format!("{} (capped at the best baseline)", r.label)
                } else {
                    r.label.clone()
                },
                format!("({})", point.join(", ")),
                format!("{:.6}", r.hypervolume),
            ];
            if with_search {
                row.push(r.search_share.map_or_else(
                    || "n/a (the grid's is zero)".into(),
                    |s| format!("{:.1}%", 100.0 * s),
                ));
            }
            row
        })
        .collect();
    vec![
        Block::Heading(2, "Hypervolume".into()),
        Block::Paragraph(format!("{lead}{stricter}")),
        Block::Table {
            header: header.into_iter().map(String::from).collect(),
            rows,
        },
    ]
}

/// The fronts with actual and with measured savings in place of nominal savings.
fn other_fronts(report: &Report) -> Block {
    let ids = |pick: fn(&FrontMembership) -> Option<bool>| -> String {
        let ids: Vec<String> = report
            .configurations
            .iter()
            .filter(|c| pick(&c.front) == Some(true))
            .map(|c| c.id.clone())
            .collect();
        if ids.is_empty() {
            "none".into()
        } else {
            ids.join(", ")
        }
    };
    let measured_any = report
        .configurations
        .iter()
        .any(|c| c.front.measured.is_some());
    let mut lines = vec![
        format!(
            "Front with actual savings instead of nominal: {}.",
            ids(|m| m.actual)
        ),
        if measured_any {
            format!(
                "Front with measured savings instead of nominal (configurations that measured it): {}.",
                ids(|m| m.measured)
            )
        } else {
            "Front with measured savings: no configuration measured wall-clock savings.".into()
        },
    ];
    if measured_any {
        lines.push(measured_figure_line(report));
    }
    Block::List(lines)
}

/// Whether the front is drawn on measured savings (`pareto_measured`), or which front
/// configurations lack a measurement.
fn measured_figure_line(report: &Report) -> String {
    if super::fronts::front_measured(report) {
        return "Every front configuration measured its savings: `pareto_measured` draws the \
                front on measured savings."
            .into();
    }
    let missing: Vec<String> = super::fronts::front_unmeasured(report)
        .iter()
        .map(|c| c.id.clone())
        .collect();
    format!(
        "Not drawn on measured savings: front configuration(s) {} lack a measurement.",
        missing.join(", ")
    )
}

/// "Baseline": the ResNet configurations, when there are any.
fn baseline_section(report: &Report) -> Vec<Block> {
    let baselines: Vec<&Configuration> = report
        .configurations
        .iter()
        .filter(|c| c.is_baseline())
        .collect();
    if baselines.is_empty() {
        return Vec::new();
    }
    vec![
        Block::Heading(2, "Baseline".into()),
        Block::Table {
            header: config_header(Shown::of(report)),
            rows: baselines
                .iter()
                .map(|c| configuration_row(c, Shown::of(report)))
                .collect(),
        },
    ]
}

/// "Search (mo-asha)": the top rung, the comparison with a grid, the hypervolume history and the
/// configurations stopped below the top.
fn search_section(report: &Report, search: &SearchSection, opts: &ReportOptions) -> Vec<Block> {
    let mut blocks = vec![
        Block::Heading(2, "Search (mo-asha)".into()),
        Block::Paragraph(format!(
            "The front above compares like with like: it is made of the configurations that reached \
             the top rung ({} epochs). The {} configuration(s) stopped at a lower rung are listed \
             below with the rung they stopped at and their objectives there (`stopped.csv`); they \
             are not candidates for the front. `hv_history.csv` holds the hypervolume of the top \
             rung after every result against the epochs spent so far.",
            search.top_epochs,
            search.stopped.len()
        )),
    ];
    if let Some(against) = &search.against {
        blocks.push(Block::Paragraph(against.sentence()));
    }
    blocks.push(Block::Figure {
        stem: "hv_history".into(),
        caption: "Hypervolume against epochs spent".into(),
    });
    let table = stopped_table(report, search);
    if !table.rows.is_empty() {
        let shown = table.rows.len().min(opts.max_table_rows);
        blocks.push(Block::Table {
            header: table.columns.clone(),
            rows: table.rows[..shown]
                .iter()
                .map(|row| row.iter().map(Cell::text).collect())
                .collect(),
        });
    }
    blocks
}

/// "Figures": each figure with its caption, or a note while no job has finished.
fn figures_section(report: &Report, figures: &[Figure]) -> Vec<Block> {
    let mut blocks = vec![Block::Heading(2, "Figures".into())];
    if report.runs.is_empty() {
        // Empty plots would fill the page (a live report starts this way): the files still exist.
        blocks.push(Block::Paragraph(
            "No figures yet: they are drawn once a job has finished (the figure files say so too)."
                .into(),
        ));
    } else {
        for f in figures {
            blocks.push(Block::Figure {
                stem: f.stem.clone(),
                caption: f.caption.clone(),
            });
        }
    }
    blocks
}

/// "All configurations": the first `max_table_rows` of them.
fn configurations_section(report: &Report, opts: &ReportOptions) -> Vec<Block> {
    let mut blocks = vec![Block::Heading(2, "All configurations".into())];
    let shown = report.configurations.len().min(opts.max_table_rows);
    if shown < report.configurations.len() {
        blocks.push(Block::Paragraph(format!(
            "The first {shown} of {} configurations; `front.csv` has them all.",
            report.configurations.len()
        )));
    }
    let val = shows_validation(report);
    let mut header = vec!["id", "configuration", "model", "on front"];
    header.extend(if val {
        &["val accuracy final", "test accuracy final"][..]
    } else {
        &["accuracy final"][..]
    });
    header.extend(["savings nominal", "savings actual", "seeds"]);
    blocks.push(Block::Table {
        header: header.into_iter().map(String::from).collect(),
        rows: report.configurations[..shown]
            .iter()
            .map(|c| {
                let mut row = vec![
                    c.id.clone(),
                    format!("`{}`", c.label),
                    model_name(c).into(),
                    match c.front.objectives {
                        Some(true) => "yes".into(),
                        Some(false) => "no".into(),
                        None => "—".into(),
                    },
                ];
                if val {
                    row.push(fmt_opt_acc(c.val_acc_final));
                }
                row.extend([
                    fmt_acc(c.test_acc_final),
                    fmt_stat(c.savings_nominal),
                    fmt_stat(c.savings_actual),
                    c.seeds.len().to_string(),
                ]);
                row
            })
            .collect(),
    });
    blocks
}

/// "Failed jobs": the first `max_table_rows` of them, with the first line of their error.
fn failed_section(report: &Report, opts: &ReportOptions) -> Vec<Block> {
    let mut blocks = vec![Block::Heading(2, "Failed jobs".into())];
    let shown = report.failed.len().min(opts.max_table_rows);
    if shown < report.failed.len() {
        blocks.push(Block::Paragraph(format!(
            "The first {shown} of {} failed jobs.",
            report.failed.len()
        )));
    }
    blocks.push(Block::Table {
        header: ["job", "configuration", "attempts", "error"]
            .map(String::from)
            .to_vec(),
        rows: report.failed[..shown]
            .iter()
            .map(|f| {
                vec![
                    format!("`{}`", f.job_id),
                    format!("`{}`", f.label),
                    f.attempts.to_string(),
                    first_line(&f.error, 200).replace('`', "'"),
                ]
            })
            .collect(),
    });
    blocks
}

/// "Files": what the report folder holds.
fn files_section(report: &Report) -> Vec<Block> {
    let mut blocks = vec![
        Block::Heading(2, "Files".into()),
        Block::List(vec![
            "`results.csv`, `results.json`: one row per finished run.".into(),
            "`front.csv`, `front.json`: one row per configuration, with mean, std and the half-width of the 95% t interval (`_ci95`) over seeds, and front membership.".into(),
            "`configs/<job_id>.json`: the resolved configuration of each configuration's re-run job.".into(),
            "`pareto`, `gates_open`, `gates_cir`, `curves` (and `gates_class` when the runs recorded gate-open rates per class): figures as `.png` and `.svg`.".into(),
        ]),
    ];
    if report.configurations.iter().any(Configuration::is_control) {
        push_item(
            &mut blocks,
            "`controls.csv`, `controls.json`: the table against matched-compute controls.",
        );
    }
    if super::fronts::front_measured(report) {
        push_item(
            &mut blocks,
            "`pareto_measured`: the front on measured savings, as `.png` and `.svg`.",
        );
    }
    blocks
}

/// Adds an item to the last block, a list.
fn push_item(blocks: &mut [Block], item: &str) {
    if let Some(Block::List(items)) = blocks.last_mut() {
        items.push(item.into());
    }
}

/// The notice at the top: running (k of n done, what runs, when) or finished.
fn progress_notice(counts: &JobCounts, progress: &Progress) -> Block {
    let done = counts.finished + counts.completed_without_result + counts.failed + counts.cancelled;
    let completed = counts.finished + counts.completed_without_result;
    let mut parts = vec![format!("{completed} completed")];
    if counts.failed > 0 {
        parts.push(format!("{} failed", counts.failed));
    }
    if counts.cancelled > 0 {
        parts.push(format!("{} cancelled", counts.cancelled));
    }
    match progress {
        Progress::Running {
            updated,
            reload_secs,
        } => Block::Notice {
            running: true,
            text: format!(
                "Sweep running: {done} of {} jobs done ({}), {} running, {} queued. Last update: {updated}. \
                 This page reloads every {reload_secs} s until the sweep has finished.",
                counts.total,
                parts.join(", "),
                counts.running,
                counts.queued
            ),
        },
        Progress::Paused { updated } => Block::Notice {
            running: true,
            text: format!(
                "Sweep paused: {done} of {} jobs done ({}), {} running, {} queued. Last update: {updated}. \
                 Queued jobs wait until the sweep is resumed (`cg sweep resume`); this page does not reload.",
                counts.total,
                parts.join(", "),
                counts.running,
                counts.queued
            ),
        },
        Progress::Finished { finished } => Block::Notice {
            running: false,
            text: format!(
                "Sweep finished: {} jobs ({}). Finished: {finished}.",
                counts.total,
                parts.join(", ")
            ),
        },
    }
}
