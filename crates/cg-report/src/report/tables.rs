//! The report's tables as CSV and JSON: `results.csv` (one row per finished run, with its
//! control kind), `front.csv` (one row per configuration, with front membership) and a search's
//! `stopped.csv` (on the metric it chose, with test beside).

use cg_core::JobRecord;

use super::model::{Report, SearchSection, StoppedRun};
use cg_core::METRICS;

use crate::aggregate::{self, Configuration};
use crate::table::{Cell, Table};

/// `results.csv`: one row per finished run, with its swept values and every metric.
pub(super) fn results_table(report: &Report, columns: &[String]) -> Table {
    let mut header: Vec<String> = vec!["job_id".into(), "configuration".into(), "seed".into()];
    header.extend(columns.iter().cloned());
    header.extend(["control", "attempts", "epochs"].map(String::from));
    // Every metric of a run, in the order of the cells below.
    header.extend(METRICS.map(String::from));
    let mut table = Table::new(header);
    for r in &report.runs {
        let mut row = vec![
            Cell::Text(r.job_id.clone()),
            Cell::Text(r.configuration_id.clone()),
            Cell::Int(r.seed),
        ];
        row.extend(columns.iter().map(|c| {
            r.params
                .get(c)
                .map_or(Cell::Null, |v| Cell::Json(v.clone()))
        }));
        row.extend([
            control_cell(r.control),
            Cell::Int(u64::from(r.attempts)),
            Cell::Int(r.epochs as u64),
        ]);
        row.extend(METRICS.iter().map(|m| match *m {
            "peak_epoch" => Cell::Int(r.peak_epoch as u64),
            "macs_full" => Cell::Int(r.macs_full),
            other => Cell::opt_float(r.metric(other)),
        }));
        table.push(row);
    }
    table
}

const FRONT_METRICS: [&str; 13] = [
    "test_acc_final",
    "test_acc_peak",
    "val_acc_final",
    "val_acc_peak",
    "peak_epoch",
    "savings_nominal",
    "savings_actual",
    "savings_measured",
    "predictor_agreement",
    "macs_executed_nominal",
    "macs_executed_actual",
    "infer_img_per_s",
    "wall_secs",
];

/// The columns of `stopped.csv` after the rung: each objective's metric; when a stopped run held
/// out a validation split, an accuracy objective shows the validation metric the search chose on
/// with the test metric beside it.
fn stopped_metrics<'a>(report: &'a Report, search: &SearchSection) -> Vec<&'a str> {
    let validation = search
        .stopped
        .iter()
        .any(|s| s.record.result.as_ref().is_some_and(|r| r.has_validation()));
    let mut metrics = Vec::new();
    for o in &report.objectives {
        let chosen = cg_core::chosen_metric(&o.metric, validation);
        if chosen != o.metric {
            metrics.push(chosen);
        }
        metrics.push(o.metric.as_str());
    }
    metrics
}

/// `stopped.csv`: the configurations a search stopped below its top rung, with the rung, the
/// epochs and the objectives' values there (highest rung first; on validation, as the search
/// chose, with test beside, where the runs held out a split).
pub(super) fn stopped_table(report: &Report, search: &SearchSection) -> Table {
    let records: Vec<&JobRecord> = search.stopped.iter().map(|s| &s.record).collect();
    let columns = aggregate::param_columns(&report.sweep.axes, &records);
    let mut header: Vec<String> = vec!["job_id".into()];
    header.extend(columns.iter().cloned());
    header.extend(["stopped_at_rung", "epochs"].map(String::from));
    let metrics = stopped_metrics(report, search);
    header.extend(metrics.iter().map(|m| m.to_string()));
    let mut stopped: Vec<&StoppedRun> = search.stopped.iter().collect();
    stopped.sort_by(|a, b| {
        b.rung
            .cmp(&a.rung)
            .then_with(|| a.record.job.id.cmp(&b.record.job.id))
    });
    let mut table = Table::new(header);
    for s in stopped {
        let mut row = vec![Cell::Text(s.record.job.id.clone())];
        row.extend(columns.iter().map(|c| {
            s.record
                .job
                .params
                .get(c)
                .map_or(Cell::Null, |v| Cell::Json(v.clone()))
        }));
        row.push(Cell::Int(s.rung));
        row.push(Cell::Int(s.epochs));
        row.extend(metrics.iter().map(|m| {
            Cell::opt_float(
                s.record
                    .result
                    .as_ref()
                    .and_then(|r| aggregate::run_metric(r, m))
                    .filter(|v| v.is_finite()),
            )
        }));
        table.rows.push(row);
    }
    table
}

/// `front.csv`: one row per configuration, with mean, std and the half-width of the 95% t
/// interval over seeds (empty for one seed), and front membership.
pub(super) fn front_table(report: &Report, columns: &[String]) -> Table {
    let mut header: Vec<String> = vec![
        "configuration".into(),
        "label".into(),
        "model".into(),
        "control".into(),
    ];
    header.extend(columns.iter().cloned());
    header.extend(["n_seeds", "seeds", "epochs"].map(String::from));
    for m in FRONT_METRICS {
        header.push(format!("{m}_mean"));
        header.push(format!("{m}_std"));
        header.push(format!("{m}_ci95"));
    }
    header.extend(
        [
            "n_measured",
            "on_front",
            "on_front_actual",
            "on_front_measured",
            "rerun_job_id",
            "rerun_command",
        ]
        .map(String::from),
    );
    let alt_computed = report
        .objectives
        .iter()
        .any(|o| o.metric == "savings_nominal");
    let alt = |v: Option<bool>| {
        if alt_computed {
            Cell::Bool(v.unwrap_or(false))
        } else {
            Cell::Null
        }
    };
    let mut table = Table::new(header);
    for c in &report.configurations {
        let mut row = vec![
            Cell::Text(c.id.clone()),
            Cell::Text(c.label.clone()),
            Cell::Text(model_name(c).into()),
            control_cell(c.control),
        ];
        row.extend(columns.iter().map(|k| {
            c.params
                .get(k)
                .map_or(Cell::Null, |v| Cell::Json(v.clone()))
        }));
        let seeds: Vec<String> = c.seeds.iter().map(u64::to_string).collect();
        row.extend([
            Cell::Int(c.seeds.len() as u64),
            Cell::Text(seeds.join(";")),
            Cell::Int(c.epochs as u64),
        ]);
        for m in FRONT_METRICS {
            let s = c.stat(m);
            row.push(Cell::opt_float(s.map(|s| s.mean)));
            row.push(Cell::opt_float(s.map(|s| s.std)));
            row.push(Cell::opt_float(s.and_then(|s| s.ci95())));
        }
        row.extend([
            Cell::Int(c.savings_measured.map_or(0, |s| s.n) as u64),
            Cell::Bool(c.front.objectives.unwrap_or(false)),
            alt(c.front.actual),
            alt(c.front.measured),
            Cell::Text(c.rerun.job_id.clone()),
            Cell::Text(c.rerun.command.clone()),
        ]);
        table.push(row);
    }
    table
}

/// A `control` cell: empty for a configuration, else `static` or `narrow`.
pub(super) fn control_cell(control: Option<cg_core::Control>) -> Cell {
    control.map_or(Cell::Text(String::new()), |k| Cell::Text(k.as_str().into()))
}

pub(super) fn model_name(c: &Configuration) -> &'static str {
    match c.kind {
        cg_core::ModelKind::Resnet => "resnet",
        cg_core::ModelKind::Cosinegate => "cosinegate",
    }
}
