//! "Against matched-compute controls": each front configuration beside every control trained at
//! its compute (`static`: its closed blocks removed; `narrow`: a narrower plain ResNet), matched
//! through the control's `control_of`. Accuracy is shown on validation (what chose) and on test;
//! the verdict reads test accuracy, since the configuration was chosen on validation.

use cg_core::Control;

use super::fronts::sorted_front;
use super::model::Report;
use crate::aggregate::{Configuration, Stat};
use crate::doc::Block;
use crate::table::{Cell, Table};

/// Control kinds in the order rows show them.
const KINDS: [Control; 2] = [Control::Static, Control::Narrow];

/// One front configuration beside one of its controls.
pub(super) struct ControlRow<'a> {
    pub config: &'a Configuration,
    pub control: &'a Configuration,
}

/// `better` or `worse` when the two 95% intervals do not overlap, `tied` when they do, and
/// `tied (no interval)` when a side has a single seed (no interval).
pub fn verdict(config: Stat, control: Stat) -> &'static str {
    let (Some(a), Some(b)) = (config.ci95(), control.ci95()) else {
        return "tied (no interval)";
    };
    if config.mean - a > control.mean + b {
        "better"
    } else if config.mean + a < control.mean - b {
        "worse"
    } else {
        "tied"
    }
}

/// The test accuracy the verdict reads: the accuracy objective's (`test_acc_final` or
/// `test_acc_peak`), else `test_acc_final`.
pub(super) fn test_metric(report: &Report) -> &str {
    report
        .objectives
        .iter()
        .map(|o| o.metric.as_str())
        .find(|m| m.starts_with("test_acc"))
        .unwrap_or("test_acc_final")
}

/// One row per (front configuration, control kind) that has a control, front order (best
/// first), static before narrow.
pub(super) fn control_rows(report: &Report) -> Vec<ControlRow<'_>> {
    let controls: Vec<&Configuration> = report
        .configurations
        .iter()
        .filter(|c| c.is_control())
        .collect();
    let mut rows = Vec::new();
    for config in sorted_front(report) {
        for kind in KINDS {
            if let Some(control) = controls
                .iter()
                .find(|c| c.control == Some(kind) && c.controls(&config.params))
            {
                rows.push(ControlRow { config, control });
            }
        }
    }
    rows
}

/// The validation statistic beside a test metric (`val_acc_final` for `test_acc_final`).
fn val_stat(c: &Configuration, test: &str) -> Option<Stat> {
    c.stat(cg_core::chosen_metric(test, true))
}

fn fmt_acc(s: Option<Stat>) -> String {
    match s {
        None => "—".into(),
        Some(s) => match s.ci95() {
            Some(h) => format!("{:.4} ± {:.4}", s.mean, h),
            None => format!("{:.4}", s.mean),
        },
    }
}

/// `controls.csv`/`.json`: the section's table with means and 95% half-widths as numbers.
pub(super) fn controls_table(report: &Report) -> Table {
    let test = test_metric(report);
    let mut header: Vec<String> = ["configuration", "label", "macs_nominal"]
        .map(String::from)
        .to_vec();
    let accuracies = |who: &str| -> Vec<String> {
        ["val", "test"]
            .into_iter()
            .flat_map(|s| [format!("{who}{s}_acc_mean"), format!("{who}{s}_acc_ci95")])
            .collect()
    };
    header.extend(accuracies(""));
    header.extend(["control", "control_configuration", "control_macs"].map(String::from));
    header.extend(accuracies("control_"));
    header.push("verdict".into());
    let mut table = Table::new(header);
    for row in control_rows(report) {
        table.push(csv_row(&row, test));
    }
    table
}

fn stat_cells(s: Option<Stat>) -> [Cell; 2] {
    [
        Cell::opt_float(s.map(|s| s.mean)),
        Cell::opt_float(s.and_then(|s| s.ci95())),
    ]
}

fn csv_row(row: &ControlRow<'_>, test: &str) -> Vec<Cell> {
    let (c, k) = (row.config, row.control);
    let mut cells = vec![
        Cell::Text(c.id.clone()),
        Cell::Text(c.label.clone()),
        Cell::Float(c.macs_executed_nominal.mean),
    ];
    cells.extend(stat_cells(val_stat(c, test)));
    cells.extend(stat_cells(c.stat(test)));
    cells.extend([
        Cell::Text(k.control.map_or("", Control::as_str).into()),
        Cell::Text(k.id.clone()),
        Cell::Float(k.macs_full.mean),
    ]);
    cells.extend(stat_cells(val_stat(k, test)));
    cells.extend(stat_cells(k.stat(test)));
    cells.push(Cell::Text(row_verdict(row, test).into()));
    cells
}

fn row_verdict(row: &ControlRow<'_>, test: &str) -> &'static str {
    match (row.config.stat(test), row.control.stat(test)) {
        (Some(a), Some(b)) => verdict(a, b),
        _ => "tied (no interval)",
    }
}

/// The section, when the sweep has control results.
pub(super) fn controls_section(report: &Report) -> Vec<Block> {
    if !report.configurations.iter().any(Configuration::is_control) {
        return Vec::new();
    }
    let test = test_metric(report);
    let rows = control_rows(report);
    let mut blocks = vec![
        Block::Heading(2, "Against matched-compute controls".into()),
        Block::Paragraph(
            "Each front configuration beside the plain ResNets trained at its compute: `static` \
             removes the gated blocks it closes for at least 95% of inputs, `narrow` is the \
             same depth at the width whose MACs are closest to its nominal MACs. Accuracies are \
             mean ± the half-width of the 95% Student-t interval over seeds (just the mean for \
             one seed). `better` or `worse` only when the two intervals do not overlap."
                .into(),
        ),
    ];
    if rows.is_empty() {
        blocks.push(Block::Paragraph(
            "No control matches a configuration on the front.".into(),
        ));
        return blocks;
    }
    let header = [
        "configuration",
        "MACs (nominal)",
        "val accuracy",
        "test accuracy",
        "control",
        "control MACs",
        "control val accuracy",
        "control test accuracy",
        "verdict (test)",
    ];
    blocks.push(Block::Table {
        header: header.map(String::from).to_vec(),
        rows: rows.iter().map(|r| document_row(r, test)).collect(),
    });
    blocks.push(Block::Paragraph(format!(
        "The verdict reads test accuracy (`{test}`): the configuration was chosen on validation, \
         so its validation figure carries selection bias."
    )));
    blocks
}

fn document_row(row: &ControlRow<'_>, test: &str) -> Vec<String> {
    let (c, k) = (row.config, row.control);
    vec![
        format!("{} `{}`", c.id, c.label),
        format!("{:.0}", c.macs_executed_nominal.mean),
        fmt_acc(val_stat(c, test)),
        fmt_acc(c.stat(test)),
        format!("{} ({})", k.control.map_or("", Control::as_str), k.id),
        format!("{:.0}", k.macs_full.mean),
        fmt_acc(val_stat(k, test)),
        fmt_acc(k.stat(test)),
        row_verdict(row, test).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(values: &[f64]) -> Stat {
        Stat::of(values).unwrap()
    }

    #[test]
    fn verdicts_need_intervals_apart() {
        let high = stat(&[0.90, 0.91, 0.92]);
        let low = stat(&[0.80, 0.81, 0.82]);
        assert_eq!(verdict(high, low), "better");
        assert_eq!(verdict(low, high), "worse");
        assert_eq!(verdict(high, stat(&[0.89, 0.91, 0.93])), "tied");
        assert_eq!(verdict(stat(&[0.99]), low), "tied (no interval)");
        assert_eq!(verdict(high, stat(&[0.1])), "tied (no interval)");
    }
}
