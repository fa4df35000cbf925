//! A search's part of the report, assembled from its records and decisions: the configurations
//! stopped below the top rung, and `--against`, the comparison with a full grid.

mod common;

use cg_core::{DecisionKind, JobRecord, JobSpec, JobStatus, SweepInfo};
use cg_report::{Error, GridComparison, GridRecords, HvHistoryRow, SearchDecision, search_section};
use common::{Outcome, finished, job, params, sweep};
use serde_json::json;

fn outcome(acc: f64, savings: f64) -> Outcome {
    Outcome {
        acc,
        savings_nominal: savings,
        savings_actual: savings,
        savings_measured: None,
        epochs: 5,
        n_blocks: 3,
    }
}

/// A rung job: trained to `stop_after` epochs of its schedule.
fn rung_job(id: &str, threshold: f64, stop_after: usize) -> JobRecord {
    let mut record = finished(
        "search",
        id,
        params(&[("gate.threshold", json!(threshold))]),
        &outcome(0.5, 0.2),
    );
    record.job.config.train.stop_after = Some(stop_after);
    record
}

fn decision(kind: DecisionKind, job_id: &str, rung: u64, epochs: u64) -> SearchDecision {
    SearchDecision {
        kind,
        job_id: job_id.into(),
        rung,
        epochs,
    }
}

#[test]
fn the_stopped_configurations_are_the_stop_decisions_below_the_top_rung() {
    let top = finished(
        "search",
        "top",
        params(&[("gate.threshold", json!(0.1))]),
        &outcome(0.9, 0.3),
    );
    let records = vec![top, rung_job("low", 0.2, 1), rung_job("mid", 0.3, 3)];
    let decisions = vec![
        decision(DecisionKind::Draw, "low", 0, 1),
        decision(DecisionKind::Stop, "mid", 1, 3),
        decision(DecisionKind::Promote, "top", 2, 5),
        // A stop on a job of the top rung, or on a job not in the records: not shown.
        decision(DecisionKind::Stop, "top", 2, 5),
        decision(DecisionKind::Stop, "gone", 0, 1),
        decision(DecisionKind::Stop, "low", 0, 1),
    ];
    let section = search_section(&records, &decisions, None);
    assert_eq!(section.top_epochs, 5);
    let stopped: Vec<(&str, u64, u64)> = section
        .stopped
        .iter()
        .map(|s| (s.record.job.id.as_str(), s.rung, s.epochs))
        .collect();
    assert_eq!(
        stopped,
        [("mid", 1, 3), ("low", 0, 1)],
        "in the decisions' order"
    );
    assert_eq!(section.stopped[0].record, records[2]);
    assert!(section.against.is_none());
}

#[test]
fn a_search_without_records_has_no_top_rung() {
    let section = search_section(&[], &[], None);
    assert_eq!(section.top_epochs, 0);
    assert!(section.stopped.is_empty());
}

/// Two grid configurations, completed, and the search's jobs for them.
fn grid() -> Vec<JobRecord> {
    vec![
        finished(
            "grid",
            "a",
            params(&[("gate.threshold", json!(0.1))]),
            &outcome(0.9, 0.2),
        ),
        finished(
            "grid",
            "b",
            params(&[("gate.threshold", json!(0.2))]),
            &outcome(0.8, 0.4),
        ),
    ]
}

/// `--against` of the search `search` (objectives and reference point of `info`) with `grid`.
fn compare(
    info: &SweepInfo,
    required: &[JobSpec],
    grid: &[JobRecord],
    last: Option<HvHistoryRow>,
) -> cg_report::Result<GridComparison> {
    GridRecords {
        grid: "grid",
        sweep: "search",
        info,
        required,
        grid_records: grid,
        last,
    }
    .compare()
}

#[test]
fn a_full_grid_gives_its_hypervolume_and_epochs_beside_the_search() {
    let info = sweep("search", &["gate.threshold"]);
    let grid = grid();
    let required: Vec<_> = grid.iter().map(|r| r.job.clone()).collect();
    let last = HvHistoryRow {
        seq: 7,
        epochs_spent: 6,
        hypervolume: 0.3,
    };
    let comparison = compare(&info, &required, &grid, Some(last)).expect("a full grid");
    assert_eq!(comparison.grid, "grid");
    assert_eq!(comparison.grid_epochs, 10);
    assert_eq!(comparison.search_epochs, 6);
    assert_eq!(comparison.search_hypervolume, 0.3);
    let points: Vec<Vec<f64>> = grid
        .iter()
        .map(|r| info.objective_values(r.result.as_ref().unwrap()).unwrap())
        .collect();
    let directions: Vec<_> = info.objectives.iter().map(|o| o.direction).collect();
    let expected = cg_report::hypervolume(&points, &directions, &info.reference_point);
    assert!(expected > 0.0);
    assert_eq!(comparison.grid_hypervolume, expected);
}

#[test]
fn a_search_without_a_result_has_zero_hypervolume_and_epochs() {
    let info = sweep("search", &[]);
    let grid = grid();
    let required: Vec<_> = grid.iter().map(|r| r.job.clone()).collect();
    let comparison = compare(&info, &required, &grid, None).unwrap();
    assert_eq!(
        (comparison.search_hypervolume, comparison.search_epochs),
        (0.0, 0)
    );
}

#[test]
fn a_grid_without_every_configuration_completed_is_refused() {
    let info = sweep("search", &[]);
    let mut grid = grid();
    let required: Vec<_> = grid.iter().map(|r| r.job.clone()).collect();
    grid[1].status = JobStatus::Failed;
    grid.push(job(
        "grid",
        "c",
        params(&[("gate.threshold", json!(0.3))]),
        JobStatus::Completed,
        None,
    ));
    let mut required_c = required.clone();
    required_c.push(grid[2].job.clone());
    let err = compare(&info, &required_c, &grid, None).unwrap_err();
    assert!(matches!(err, Error::NotFullGrid { missing: 2, .. }));
    assert_eq!(
        err.to_string(),
        "the grid `grid` is not the full grid of `search`: it has no completed full-budget \
         result for 2 of the search's 3 configurations (e.g. {\"gate.threshold\":0.2}); \
         --against needs the search's file with `method: grid`, run to the end"
    );
}

#[test]
fn a_grid_with_no_hypervolume_is_refused() {
    let mut info = sweep("search", &[]);
    info.reference_point = vec![1.0, 1.0];
    let grid = grid();
    let required: Vec<_> = grid.iter().map(|r| r.job.clone()).collect();
    let err = compare(&info, &required, &grid, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the grid `grid` has no hypervolume against the search's reference point [1.0, 1.0]: \
         none of its results is better than it in every objective, so no share of it can be \
         computed"
    );
}

#[test]
fn the_searchs_share_of_the_grid_at_stricter_references() {
    let info = sweep("search", &["gate.threshold"]);
    let grid = grid();
    let required: Vec<_> = grid.iter().map(|r| r.job.clone()).collect();
    let against = compare(&info, &required, &grid, None).unwrap();
    // The search's top rung holds only configuration a (0.9, 0.2); the grid also b (0.8, 0.4).
    let top = finished(
        "search",
        "a",
        params(&[("gate.threshold", json!(0.1))]),
        &outcome(0.9, 0.2),
    );
    let opts = cg_report::ReportOptions {
        search: Some(cg_report::SearchSection {
            top_epochs: 5,
            stopped: Vec::new(),
            against: Some(against),
        }),
        ..Default::default()
    };
    let report = cg_report::build_report(&info, &[top], &opts).unwrap();
    let trust = report.hv_trust.as_ref().expect("a front");
    let shares: Vec<f64> = trust
        .references
        .iter()
        .map(|r| r.search_share.unwrap())
        .collect();
    // By hand: 0.18 / 0.34, 0.176 / 0.332, 0.17 / 0.32.
    for (share, expected) in shares.iter().zip([0.18 / 0.34, 0.176 / 0.332, 0.17 / 0.32]) {
        assert!((share - expected).abs() < 1e-12, "{shares:?}");
    }
    // One configuration holds the whole hypervolume.
    assert_eq!(trust.largest, Some(("c1".to_string(), 1.0)));
    let md = report.markdown();
    assert!(md.contains("| search's share of the grid's |"), "{md}");
    assert!(
        md.contains("| +5 points | (0.05, 0) | 0.170000 | 53.1% |"),
        "{md}"
    );
}

#[test]
fn a_seeded_grid_is_compared_by_configuration_means() {
    // Two seeds per point: the grid's points are the means over seeds, as the search's are.
    let info = sweep("search", &["gate.threshold", "train.seed"]);
    let run = |id: &str, threshold: f64, seed: u64, acc: f64, savings: f64| {
        let p = params(&[
            ("gate.threshold", json!(threshold)),
            ("train.seed", json!(seed)),
        ]);
        finished("grid", id, p, &outcome(acc, savings))
    };
    let grid = vec![
        run("a0", 0.1, 0, 0.88, 0.2),
        run("a1", 0.1, 1, 0.92, 0.2),
        run("b0", 0.2, 0, 0.78, 0.4),
        run("b1", 0.2, 1, 0.82, 0.4),
    ];
    let required: Vec<_> = grid.iter().map(|r| r.job.clone()).collect();
    let comparison = compare(&info, &required, &grid, None).unwrap();
    assert_eq!(
        comparison.grid_points.len(),
        2,
        "one point per configuration"
    );
    let directions: Vec<_> = info.objectives.iter().map(|o| o.direction).collect();
    let means = vec![vec![0.9, 0.2], vec![0.8, 0.4]];
    let expected = cg_report::hypervolume(&means, &directions, &info.reference_point);
    assert!((comparison.grid_hypervolume - expected).abs() < 1e-12);
    assert_eq!(comparison.grid_epochs, 20, "every seed's epochs");
    // Without one seed's result the grid is refused.
    let err = compare(&info, &required, &grid[..3], None).unwrap_err();
    assert!(
        matches!(err, Error::NotFullGrid { missing: 1, .. }),
        "{err}"
    );
}

#[test]
fn stopped_runs_show_the_validation_they_were_chosen_on_beside_test() {
    let info = sweep("search", &["gate.threshold"]);
    let mut top = finished(
        "search",
        "top",
        params(&[("gate.threshold", json!(0.1))]),
        &outcome(0.9, 0.3),
    );
    let mut low = rung_job("low", 0.2, 1);
    for r in [&mut top, &mut low] {
        let result = r.result.as_mut().unwrap();
        result.val_acc_final = Some(0.7);
        result.val_acc_peak = Some(0.7);
    }
    let decisions = vec![
        decision(DecisionKind::Stop, "low", 0, 1),
        decision(DecisionKind::Promote, "top", 1, 5),
    ];
    let records = vec![top.clone(), low];
    let section = search_section(&records, &decisions, None);
    let opts = cg_report::ReportOptions {
        plot_size: (320, 240),
        search: Some(section),
        ..cg_report::ReportOptions::default()
    };
    let report = cg_report::build_report(&info, &[top], &opts).unwrap();
    let stopped = report.file("stopped.csv").unwrap();
    let stopped = std::str::from_utf8(&stopped.contents).unwrap();
    let mut lines = stopped.lines();
    assert_eq!(
        lines.next().unwrap(),
        "job_id,gate.threshold,stopped_at_rung,epochs,val_acc_final,test_acc_final,savings_nominal"
    );
    assert_eq!(lines.next().unwrap(), "low,0.2,0,1,0.7,0.5,0.2");
}
