//! The validation split (`dataset.val_size`): one held-out draw per data set, whatever the run's
//! seed, disjoint from the images trained on; the peak epoch chosen on validation; routing
//! statistics per gated block.

use burn::backend::{Autodiff, Flex};
use cg_core::{BlockGateStats, DatasetKind, DatasetSpec, GateMode, RunConfig, RunResult};
use cg_core::{EpochRecord, SyntheticSpec};
use cg_model::data::{Dataset, load, split_hash, validation_indices};
use cg_model::train::{Prepared, Silent, TrainOptions, evaluate, initial_model, train_on};
use cg_model::{BackendKind, DeviceSpec, Error};

const N_TRAIN: usize = 48;

fn tiny(val_size: Option<usize>, seed: u64, limit_train: Option<usize>) -> RunConfig {
    let mut c = RunConfig::with_dataset(DatasetSpec {
        kind: DatasetKind::Synthetic,
        val_size,
        path: None,
        augment: Some(true),
        synthetic: Some(SyntheticSpec {
            n_train: N_TRAIN,
            n_test: 24,
            channels: 3,
            side: 8,
            classes: 4,
        }),
    });
    c.model.depth = 14;
    c.model.width = 4;
    c.gate.mode = GateMode::CirCtrl;
    c.train.epochs = 2;
    c.train.batch_size = 16;
    c.train.seed = seed;
    c.train.limit_train = limit_train;
    c
}

fn run(c: &RunConfig) -> RunResult {
    let prep = Prepared::new(c).unwrap();
    cg_model::run(
        &prep,
        BackendKind::Flex,
        DeviceSpec::Cpu,
        &TrainOptions::default(),
        &mut Silent,
    )
    .unwrap()
}

/// The training split as loaded, before anything is held out or subset.
fn loaded_train(c: &RunConfig) -> Dataset {
    load(&c.dataset, c.train.seed).unwrap().train
}

#[test]
fn held_out_images_are_one_draw_per_data_set() {
    const VAL: usize = 12;
    // (train.seed, train.limit_train, images trained on)
    let cases = [
        (5, None, N_TRAIN - VAL),
        (6, Some(20), 20),
        (99, Some(30), 30),
    ];
    let mut first: Option<(Vec<usize>, String)> = None;
    for (seed, limit, trained_n) in cases {
        let c = tiny(Some(VAL), seed, limit);
        let prep = Prepared::new(&c).unwrap();
        let held = prep.data.val.as_ref().expect("a validation split");
        let case = format!("seed {seed}, limit_train {limit:?}");
        assert_eq!(held.indices.len(), VAL, "{case}");
        assert_eq!(held.trained.len(), trained_n, "{case}");
        assert!(
            held.indices.iter().all(|i| !held.trained.contains(i)),
            "{case}: held-out {:?} overlap trained {:?}",
            held.indices,
            held.trained
        );
        // The recorded indices are the images actually used.
        let all = loaded_train(&c);
        assert_eq!(held.data, all.select(&held.indices), "{case}");
        assert_eq!(prep.data.train, all.select(&held.trained), "{case}");
        assert_eq!(
            held.indices,
            validation_indices(&all, VAL).unwrap(),
            "{case}"
        );
        let now = (held.indices.clone(), held.hash());
        match &first {
            None => first = Some(now),
            Some(f) => assert_eq!(&now, f, "{case}: another split than the first case's"),
        }
    }
    let (indices, hash) = first.unwrap();
    assert_ne!(
        indices,
        (0..VAL).collect::<Vec<_>>(),
        "a draw, not a prefix"
    );
    assert_eq!(hash, split_hash(&indices));
    assert_eq!(hash.len(), 16);
}

#[test]
fn provenance_names_the_split_of_every_job_and_n() {
    let a = run(&tiny(Some(12), 5, None));
    let b = run(&tiny(Some(12), 77, Some(24)));
    let other_n = run(&tiny(Some(8), 5, None));
    let none = run(&tiny(None, 5, None));
    let split = |r: &RunResult| r.provenance.val_split.clone();
    assert!(split(&a).is_some());
    assert_eq!(split(&a), split(&b), "two seeds and limits, one split");
    assert_ne!(
        split(&a),
        split(&other_n),
        "another val_size, another split"
    );
    assert_eq!(split(&none), None);
    // The counts actually used.
    assert_eq!((a.train_images, a.val_images), (Some(36), Some(12)));
    assert_eq!((b.train_images, b.val_images), (Some(24), Some(12)));
    assert_eq!((none.train_images, none.val_images), (Some(N_TRAIN), None));
    assert!(none.history.iter().all(|h| h.val_acc.is_none()));
    assert_eq!((none.val_acc_final, none.val_acc_peak), (None, None));
}

/// The first epoch of the best validation accuracy.
fn best_val(history: &[EpochRecord]) -> &EpochRecord {
    let mut best = &history[0];
    for r in history {
        if r.val_acc.unwrap() > best.val_acc.unwrap() {
            best = r;
        }
    }
    best
}

#[test]
fn the_peak_is_chosen_on_validation() {
    let mut c = tiny(Some(10), 5, None);
    c.train.epochs = 4;
    let r = run(&c);
    assert_eq!(r.history.len(), 4);
    assert!(r.history.iter().all(|h| h.val_acc.is_some()));
    let best = best_val(&r.history);
    assert_eq!(r.peak_epoch, best.epoch);
    assert_eq!(r.val_acc_peak, best.val_acc);
    assert_eq!(
        r.test_acc_peak, best.test_acc,
        "the test accuracy at that epoch"
    );
    let last = r.history.last().unwrap();
    assert_eq!(r.val_acc_final, last.val_acc);
    assert_eq!(r.test_acc_final, last.test_acc);
    assert_eq!((r.train_images, r.val_images), (Some(38), Some(10)));
}

/// Checks one evaluation's gate statistics against the labels it was made on.
fn check_routing(gates: &[BlockGateStats], labels: &[u8], classes: usize, what: &str) {
    let n = labels.len() as f64;
    let counts: Vec<f64> = (0..classes)
        .map(|c| labels.iter().filter(|l| usize::from(**l) == c).count() as f64)
        .collect();
    assert!(!gates.is_empty());
    for g in gates {
        let open = g.gate_open_rate;
        assert_eq!(g.routing_share, Some(open.min(1.0 - open)), "{what}");
        let rates = g
            .class_open_rates
            .as_ref()
            .expect("every class has samples");
        assert_eq!(rates.len(), classes, "{what}");
        let weighted: f64 = rates.iter().zip(&counts).map(|(r, c)| r * c).sum::<f64>() / n;
        assert!(
            (weighted - open).abs() < 1e-12,
            "{what}, block {}: class rates give {weighted}, open rate {open}",
            g.block_idx
        );
        // A rate over `n` samples is a whole number of them.
        assert!((open * n - (open * n).round()).abs() < 1e-9, "{what}");
    }
}

#[test]
fn routing_statistics_agree_with_the_open_rate() {
    // An untrained net's gates open for some inputs and not others at some threshold: sweep it.
    let device = Default::default();
    let mut prep = Prepared::new(&tiny(Some(10), 5, None)).unwrap();
    let model = initial_model::<Flex>(&prep, 5, &device).unwrap();
    let val = prep.data.val.clone().unwrap().data;
    let mut routed = 0;
    for p in (1..100).map(|p| f64::from(p) / 100.0) {
        prep.config.gate.p_threshold = p;
        for data in [&val, &prep.data.test] {
            let eval = evaluate(&model, &prep, data, 64, &device);
            check_routing(&eval.gates, &data.labels, 4, &format!("threshold {p}"));
            routed += eval
                .gates
                .iter()
                .filter(|g| g.routing_share.unwrap() > 0.0)
                .count();
        }
    }
    assert!(
        routed > 0,
        "no threshold routes: the check above checked nothing"
    );
}

/// A trained run's figures are its final weights' evaluations: accuracy on both sets, the gate
/// statistics on validation when the run has a split, else on the test set.
#[test]
fn results_evaluate_validation_and_test() {
    for val_size in [Some(10), None] {
        let prep = Prepared::new(&tiny(val_size, 5, None)).unwrap();
        let device = Default::default();
        let (r, model) =
            train_on::<Autodiff<Flex>>(&prep, &device, &TrainOptions::default(), &mut Silent)
                .unwrap();
        let test = evaluate(&model, &prep, &prep.data.test, 64, &device);
        assert_eq!(r.test_acc_final, test.accuracy);
        let gates_on = match &prep.data.val {
            Some(v) => {
                let val = evaluate(&model, &prep, &v.data, 64, &device);
                assert_eq!(r.val_acc_final, Some(val.accuracy));
                val
            }
            None => test,
        };
        assert_eq!(r.gates, gates_on.gates, "val_size {val_size:?}");
        assert_eq!(r.gates, r.history.last().unwrap().gates);
        let labels = &prep
            .data
            .val
            .as_ref()
            .map_or(&prep.data.test, |v| &v.data)
            .labels;
        check_routing(&r.gates, labels, 4, &format!("val_size {val_size:?}"));
    }
}

#[test]
fn a_validation_split_too_large_is_named() {
    for val_size in [N_TRAIN, N_TRAIN + 1, 1000, 0] {
        let c = tiny(Some(val_size), 5, None);
        match Prepared::new(&c) {
            Err(e @ Error::Config(_)) => {
                let msg = e.to_string();
                for needle in [
                    "dataset.val_size".to_string(),
                    val_size.to_string(),
                    format!("{N_TRAIN} images"),
                ] {
                    assert!(msg.contains(&needle), "{needle:?} not in {msg}");
                }
            }
            Err(e) => panic!("val_size {val_size}: expected a configuration error, got {e}"),
            Ok(_) => panic!("val_size {val_size}: accepted"),
        }
    }
    // The largest split that leaves two images to train on is fine.
    assert!(Prepared::new(&tiny(Some(N_TRAIN - 2), 5, None)).is_ok());
}

/// A run with a split resumed from its epoch checkpoint replays the uninterrupted run, validation
/// included.
#[test]
fn a_resumed_run_with_a_split_equals_the_uninterrupted_run() {
    let mut c = tiny(Some(10), 5, Some(30));
    c.train.epochs = 3;
    let straight = run(&c);
    let prep = Prepared::new(&c).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = TrainOptions {
        checkpoint_dir: Some(dir.path().to_path_buf()),
        resume: true,
        stop_after_epochs: Some(1),
        ..TrainOptions::default()
    };
    let go = |opts: &TrainOptions| {
        cg_model::run(&prep, BackendKind::Flex, DeviceSpec::Cpu, opts, &mut Silent)
    };
    assert!(matches!(go(&opts), Err(Error::Stopped { epoch: 1 })));
    let resumed = go(&TrainOptions {
        stop_after_epochs: None,
        ..opts
    })
    .unwrap();
    for (a, b) in straight.history.iter().zip(&resumed.history) {
        assert_eq!(
            (a.val_acc, a.test_acc),
            (b.val_acc, b.test_acc),
            "epoch {}",
            a.epoch
        );
        assert_eq!(a.gates, b.gates, "epoch {}", a.epoch);
    }
    assert_eq!(
        (
            straight.peak_epoch,
            straight.val_acc_peak,
            straight.test_acc_peak
        ),
        (
            resumed.peak_epoch,
            resumed.val_acc_peak,
            resumed.test_acc_peak
        )
    );
    assert_eq!(straight.provenance.val_split, resumed.provenance.val_split);
}
