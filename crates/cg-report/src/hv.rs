//! The hypervolume history of a search (`method: mo-asha`): `hv_history.csv` and a plot of
//! hypervolume against epochs spent (`hv_history.png` / `.svg`). Pure: rows in, files out.

use std::path::{Path, PathBuf};

use crate::Result;
use crate::plots::{Figure, FigureKind, LineFigure, render};

/// The hypervolume of the top rung's results after a result, against the sweep's reference point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HvHistoryRow {
    /// The position of the result in the search's order.
    pub seq: u64,
    /// Epochs trained so far (a promoted job adds its new epochs only).
    pub epochs_spent: u64,
    pub hypervolume: f64,
}

/// The CSV text: `result,epochs_spent,hypervolume`, one row per result.
pub fn hv_history_csv(rows: &[HvHistoryRow]) -> String {
    let mut out = String::from("result,epochs_spent,hypervolume\n");
    for r in rows {
        out.push_str(&format!("{},{},{}\n", r.seq, r.epochs_spent, r.hypervolume));
    }
    out
}

/// Writes `hv_history.csv`, `hv_history.png` and `hv_history.svg` into `dir` (each through a
/// temporary file and a rename, with permission bits `mode` as the report's; `dir` is created when
/// missing and refused when it is a symbolic link) and returns their paths.
pub fn write_hv_history(
    dir: &Path,
    sweep: &str,
    rows: &[HvHistoryRow],
    mode: Option<u32>,
) -> Result<Vec<PathBuf>> {
    let kind = if rows.is_empty() {
        FigureKind::Message {
            title: format!("{sweep}: hypervolume"),
            message: "no result yet".into(),
        }
    } else {
        FigureKind::Line(LineFigure {
            title: format!("{sweep}: hypervolume of the top rung"),
            x_desc: "epochs spent".into(),
            y_desc: "hypervolume".into(),
            points: rows
                .iter()
                .map(|r| (r.epochs_spent as f64, r.hypervolume))
                .collect(),
        })
    };
    let figure = Figure {
        stem: "hv_history".into(),
        caption: "Hypervolume against epochs spent".into(),
        kind,
    };
    let drawn = render(&figure, (900, 560))?;
    let csv = hv_history_csv(rows);
    crate::write::write_files_into(
        dir,
        &[
            ("hv_history.csv", csv.as_bytes()),
            ("hv_history.png", &drawn.png),
            ("hv_history.svg", drawn.svg.as_bytes()),
        ],
        mode,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_plots_are_written() {
        let rows = [
            HvHistoryRow {
                seq: 0,
                epochs_spent: 1,
                hypervolume: 0.0,
            },
            HvHistoryRow {
                seq: 1,
                epochs_spent: 4,
                hypervolume: 0.25,
            },
        ];
        assert_eq!(
            hv_history_csv(&rows),
            "result,epochs_spent,hypervolume\n0,1,0\n1,4,0.25\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let files = write_hv_history(dir.path(), "s", &rows, None).unwrap();
        assert_eq!(files.len(), 3);
        let png = std::fs::read(dir.path().join("hv_history.png")).unwrap();
        assert_eq!(&png[..4], b"\x89PNG");
        let svg = std::fs::read_to_string(dir.path().join("hv_history.svg")).unwrap();
        assert!(
            svg.contains("epochs spent"),
            "{}",
            &svg[..200.min(svg.len())]
        );
    }
}
