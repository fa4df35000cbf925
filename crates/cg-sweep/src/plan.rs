//! The plan of a sweep as plain text: a table with one row per job, its short id and the value of
//! each axis; for a `method: mo-asha` sweep also its space (each axis with its values or
//! distribution) and its rungs. For `cg sweep plan` and the like; no colours, no terminal width
//! guessing.

use cg_core::JobSpec;
use serde_json::Value as Json;

use crate::id::SHORT_ID_LEN;
use crate::sweep::{Axis, AxisKind, Sweep};

/// A table of jobs: the short id, then one column per axis: `preset` first, `train.seed` last, the others
/// in between by name (`JobSpec.params` does not keep file order; see [`plan_table_with_axes`]). Columns
/// are separated by two spaces; there is no trailing whitespace; a missing value shows as `-`.
pub fn plan_table(jobs: &[JobSpec]) -> String {
    let mut columns: Vec<String> = Vec::new();
    for job in jobs {
        for key in job.params.keys() {
            if !columns.contains(key) {
                columns.push(key.clone());
            }
        }
    }
    columns.sort_by_key(|c| (c != "preset", c == "train.seed", c.clone()));
    plan_table_with_axes(jobs, &columns)
}

/// [`plan_table`] with the columns in the given order (e.g. [`crate::Sweep::axes`], the file's order).
pub fn plan_table_with_axes(jobs: &[JobSpec], axes: &[String]) -> String {
    let columns: Vec<&str> = axes.iter().map(String::as_str).collect();
    let mut rows: Vec<Vec<String>> = Vec::with_capacity(jobs.len() + 1);
    rows.push(
        std::iter::once("id")
            .chain(columns.iter().copied())
            .map(str::to_string)
            .collect(),
    );
    for job in jobs {
        let id: String = job.id.chars().take(SHORT_ID_LEN).collect();
        let mut row = vec![id];
        row.extend(
            columns
                .iter()
                .map(|c| job.params.get(*c).map(show).unwrap_or_else(|| "-".into())),
        );
        rows.push(row);
    }
    let widths: Vec<usize> = (0..=columns.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count()));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// For a `method: mo-asha` sweep, its rungs on one line: the epochs each trains to and how many
/// configurations it can hold (fewer where jobs fail); `None` for the other methods.
pub fn rungs_line(sweep: &Sweep) -> Option<String> {
    let settings = sweep.search_settings()?;
    let rungs: Vec<String> = settings
        .rung_plan()
        .iter()
        .enumerate()
        .map(|(k, &(epochs, configs))| {
            let unit = if epochs == 1 { "epoch" } else { "epochs" };
            let what = if k == 0 { " configurations" } else { "" };
            format!("{epochs} {unit} (up to {configs}{what})")
        })
        .collect();
    Some(format!(
        "rungs (eta {}): {}",
        settings.fidelity.eta,
        rungs.join(", ")
    ))
}

/// For a `method: mo-asha` sweep, the space it searches: a heading with the number of points
/// (or "continuous"), then one line per axis in file order with its values or distribution;
/// `None` for the other methods. Fixed `value:` parameters are no axes and are left out.
pub fn space_table(sweep: &Sweep) -> Option<String> {
    let settings = sweep.search_settings()?;
    let size = match settings.space_size() {
        Some(n) => format!("{n} points"),
        None => "continuous".into(),
    };
    let axes: Vec<&Axis> = sweep.axes.iter().filter(|a| !a.fixed).collect();
    let width = axes
        .iter()
        .map(|a| a.key.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = format!("space ({size}):\n");
    for axis in axes {
        let line = format!("  {:width$}  {}", axis.key, described(axis));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Some(out)
}

/// An axis's values (`one of ...`) or the range it is drawn from.
fn described(axis: &Axis) -> String {
    match &axis.kind {
        AxisKind::Values(choices) => {
            let values: Vec<String> = choices.iter().map(|c| show(&c.shown)).collect();
            format!("one of {}", values.join(", "))
        }
        AxisKind::IntRange { min, max } => format!("an integer in {min}..={max}"),
        AxisKind::Uniform { min, max } => format!("uniform in [{min}, {max}]"),
        AxisKind::LogUniform { min, max } => format!("log-uniform in [{min}, {max}]"),
    }
}

/// A value for a table cell: strings bare, fractions to 6 significant digits.
fn show(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        Json::Number(n) if n.is_f64() => {
            let v = n.as_f64().unwrap_or(f64::NAN);
            let rounded: f64 = format!("{v:.5e}").parse().unwrap_or(v);
            if rounded.fract() == 0.0 && rounded.abs() < 1e15 {
                format!("{rounded:.1}")
            } else {
                rounded.to_string()
            }
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cg_core::{DatasetKind, DatasetSpec, RunConfig};

    #[test]
    fn aligned_columns() {
        let config = RunConfig::with_dataset(DatasetSpec {
            kind: DatasetKind::Synthetic,
            val_size: None,
            path: None,
            augment: None,
            synthetic: None,
        });
        let job = |id: &str, params: Json| JobSpec {
            id: id.into(),
            params: params.as_object().unwrap().clone(),
            config: config.clone(),
        };
        let jobs = [
            job(
                "0123456789abcdef",
                serde_json::json!({"preset": "aggressive", "gate.tau_end": 0.123456789}),
            ),
            job(
                "fedcba9876543210",
                serde_json::json!({"preset": "balanced", "train.seed": 2}),
            ),
        ];
        assert_eq!(
            plan_table(&jobs),
            "id          preset      gate.tau_end  train.seed\n\
             0123456789  aggressive  0.123457      -\n\
             fedcba9876  balanced    -             2\n"
        );
    }
}
