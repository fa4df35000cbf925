//! Loaders on files the tests write themselves: good ones load, corrupt ones name the file and problem.

use std::path::Path;

use cg_model::Error;
use cg_model::data::{
    load_cifar_bin, load_idx_dir, load_image_folder, write_cifar_bin, write_idx_images,
    write_idx_labels,
};

fn images(n: usize, len: usize) -> Vec<u8> {
    (0..n * len).map(|i| (i * 31 % 251) as u8).collect()
}

fn write_idx(dir: &Path, gz: bool, n_train: usize, n_test: usize) {
    let ext = if gz { ".gz" } else { "" };
    for (prefix, n) in [("train", n_train), ("t10k", n_test)] {
        write_idx_images(
            &dir.join(format!("{prefix}-images-idx3-ubyte{ext}")),
            &images(n, 28 * 28),
            n,
            28,
        )
        .unwrap();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        write_idx_labels(
            &dir.join(format!("{prefix}-labels-idx1-ubyte{ext}")),
            &labels,
        )
        .unwrap();
    }
}

/// Expects a data error whose message names `file` and contains `needle`.
fn check_err(result: Result<impl std::fmt::Debug, Error>, file: &str, needle: &str) {
    let err = result.expect_err("corrupt input must fail");
    let msg = err.to_string();
    assert!(matches!(err, Error::Data { .. }), "not a data error: {msg}");
    assert!(msg.contains(file), "message does not name {file}: {msg}");
    assert!(msg.contains(needle), "message lacks `{needle}`: {msg}");
}

#[test]
fn idx_raw_and_gz_load() {
    for gz in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        write_idx(dir.path(), gz, 30, 12);
        let (train, test) = load_idx_dir(dir.path()).unwrap();
        assert_eq!(
            (train.len(), test.len(), train.side, train.channels),
            (30, 12, 28, 1)
        );
        assert_eq!(train.image(1), &images(30, 784)[784..1568]);
        assert_eq!(train.labels[13], 3);
        // Padding to 32 keeps the pixels, centred.
        let padded = train.pad_to(32);
        assert_eq!(padded.image(0)[2 * 32 + 2], images(1, 784)[0]);
    }
}

#[test]
fn idx_corruptions_are_named() {
    let cases: Vec<(&str, Box<dyn Fn(&Path)>, &str, &str)> = vec![
        (
            "truncated images",
            Box::new(|d: &Path| {
                let p = d.join("train-images-idx3-ubyte");
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() - 100]).unwrap();
            }),
            "train-images-idx3-ubyte",
            "truncated",
        ),
        (
            "wrong magic",
            Box::new(|d: &Path| {
                let p = d.join("t10k-labels-idx1-ubyte");
                let mut b = std::fs::read(&p).unwrap();
                b[3] = 0x03;
                std::fs::write(&p, b).unwrap();
            }),
            "t10k-labels-idx1-ubyte",
            "wrong magic number",
        ),
        (
            "count mismatch",
            Box::new(|d: &Path| {
                write_idx_labels(&d.join("train-labels-idx1-ubyte"), &[1, 2, 3]).unwrap()
            }),
            "train-labels-idx1-ubyte",
            "3 labels but",
        ),
        (
            "label out of range",
            Box::new(|d: &Path| {
                write_idx_labels(
                    &d.join("t10k-labels-idx1-ubyte"),
                    &[0, 1, 2, 3, 4, 5, 6, 7, 8, 42],
                )
                .unwrap()
            }),
            "t10k-labels-idx1-ubyte",
            "label 42",
        ),
        (
            "missing file",
            Box::new(|d: &Path| std::fs::remove_file(d.join("t10k-images-idx3-ubyte")).unwrap()),
            "t10k-images-idx3-ubyte",
            "missing",
        ),
        (
            "corrupt gzip",
            Box::new(|d: &Path| {
                std::fs::remove_file(d.join("train-images-idx3-ubyte")).unwrap();
                std::fs::write(
                    d.join("train-images-idx3-ubyte.gz"),
                    [0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5],
                )
                .unwrap();
            }),
            "train-images-idx3-ubyte.gz",
            "corrupt gzip",
        ),
    ];
    for (name, corrupt, file, needle) in cases {
        let dir = tempfile::tempdir().unwrap();
        write_idx(dir.path(), false, 20, 10);
        corrupt(dir.path());
        eprintln!("case: {name}");
        check_err(load_idx_dir(dir.path()), file, needle);
    }
}

fn write_cifar(dir: &Path) {
    let len = 3 * 32 * 32;
    for i in 1..=5 {
        let labels: Vec<u8> = (0..4).map(|k| ((i + k) % 10) as u8).collect();
        write_cifar_bin(
            &dir.join(format!("data_batch_{i}.bin")),
            &images(4, len),
            &labels,
        )
        .unwrap();
    }
    write_cifar_bin(&dir.join("test_batch.bin"), &images(3, len), &[7, 8, 9]).unwrap();
}

#[test]
fn cifar_binary_loads_and_rejects_corruption() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar(dir.path());
    let (train, test) = load_cifar_bin(dir.path()).unwrap();
    assert_eq!(
        (train.len(), test.len(), train.channels, train.side),
        (20, 3, 3, 32)
    );
    assert_eq!(test.labels, [7, 8, 9]);
    assert_eq!(test.image(2), &images(3, 3072)[2 * 3072..]);

    let p = dir.path().join("data_batch_3.bin");
    let b = std::fs::read(&p).unwrap();
    std::fs::write(&p, &b[..b.len() - 5]).unwrap();
    check_err(
        load_cifar_bin(dir.path()),
        "data_batch_3.bin",
        "whole number",
    );

    write_cifar(dir.path());
    let p = dir.path().join("test_batch.bin");
    let mut b = std::fs::read(&p).unwrap();
    b[3073] = 200;
    std::fs::write(&p, b).unwrap();
    check_err(load_cifar_bin(dir.path()), "test_batch.bin", "label 200");

    write_cifar(dir.path());
    std::fs::remove_file(dir.path().join("data_batch_5.bin")).unwrap();
    check_err(load_cifar_bin(dir.path()), "data_batch_5.bin", "missing");
}

fn write_png(path: &Path, seed: u8, rgb: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    if rgb {
        let img =
            image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([seed, x as u8 * 10, y as u8 * 20]));
        img.save(path).unwrap();
    } else {
        let img = image::GrayImage::from_fn(8, 8, |x, _| image::Luma([seed + x as u8]));
        img.save(path).unwrap();
    }
}

#[test]
fn image_folders_load_in_class_order_and_reject_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (split, n) in [("train", 3), ("test", 2)] {
        for class in ["cat", "airplane"] {
            for i in 0..n {
                write_png(
                    &root.join(split).join(class).join(format!("{i}.png")),
                    40 + i as u8,
                    true,
                );
            }
        }
    }
    let (train, test) = load_image_folder(root).unwrap();
    assert_eq!(
        (
            train.len(),
            test.len(),
            train.channels,
            train.side,
            train.classes
        ),
        (6, 4, 3, 8, 2)
    );
    // Classes sorted by name: airplane = 0, cat = 1.
    assert_eq!(train.labels, [0, 0, 0, 1, 1, 1]);
    // Channel-major: the red plane first.
    assert!(train.image(0)[..64].iter().all(|p| *p == 40));

    write_png(&root.join("test").join("dog").join("0.png"), 1, true);
    check_err(load_image_folder(root), "dog", "unknown class folder `dog`");
    std::fs::remove_dir_all(root.join("test").join("dog")).unwrap();

    std::fs::write(
        root.join("train").join("cat").join("9.png"),
        b"not a png at all",
    )
    .unwrap();
    check_err(load_image_folder(root), "9.png", "cannot decode");
    std::fs::remove_file(root.join("train").join("cat").join("9.png")).unwrap();

    write_png(&root.join("train").join("cat").join("8.png"), 1, false);
    check_err(load_image_folder(root), "8.png", "channel");
}
