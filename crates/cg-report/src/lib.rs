//! Reports of a sweep: configurations aggregated over seeds (mean ± std and a 95% t interval), the
//! Pareto front of the sweep's objectives (accuracy up, FLOPs savings up by default; accuracy read
//! on validation where the runs hold a split) and its hypervolume (with its largest contributor
//! and its sensitivity to the reference), whether the front's gates route, figures (PNG and SVG, drawn with
//! plotters and an embedded font), and `report.md`, a self-contained `report.html`, CSV and JSON tables.
//!
//! Pure: [`build_report`] takes a sweep's job records and computes everything in memory;
//! [`write_report`] writes the files, each atomically. A search's part of the report is assembled
//! from its records and decisions ([`search_section`], [`GridRecords`]), and [`ReportSchedule`]
//! says when the reports of running sweeps are due. This crate never opens a database and is the
//! only one that knows plotters. Same records, same bytes: nothing here reads a clock (the
//! schedule is told the time).

mod aggregate;
mod doc;
mod error;
mod font;
mod hv;
mod interval;
mod plots;
mod report;
mod schedule;
mod table;
mod write;

pub use aggregate::{
    BlockGateMean, Configuration, CurvePoint, FrontMembership, Rerun, RunRow, SEED_KEY, Stat,
};
/// The one list of metric names an objective can name (cg-core's).
pub use cg_core::METRICS;
/// Pareto dominance and hypervolume live in cg-core (the search shares them); re-exported here.
pub use cg_core::pareto;
pub use error::{Error, Result};
pub use hv::{HvHistoryRow, hv_history_csv, write_hv_history};
pub use interval::{half_width_95, t_975};
pub use pareto::{dominates, hypervolume, pareto_mask};
pub use report::{
    FailedJob, GridComparison, GridRecords, HvReference, HvTrust, JobCounts, Progress, Report,
    ReportFile, ReportOptions, SearchDecision, SearchSection, StoppedRun, WrittenReport,
    build_report, search_section,
};
pub use schedule::{ADOPT_EVERY, Due, ReportSchedule, STALE_FINAL_CLAIM, SweepEnd};
pub use write::{WriteOptions, write_atomic, write_report, write_report_with};
