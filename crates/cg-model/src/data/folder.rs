//! Image folders: `train/<class>/*.jpg|jpeg|png` and `test/<class>/*…`, classes sorted by name (so
//! CIFAR-10's folders give the standard label order). All images must share one size and colour mode.

use std::path::{Path, PathBuf};

use super::{Dataset, MAX_IMAGE_FILE_BYTES, read_file_capped};
use crate::Result;
use crate::error::{data_err, io_err};

/// Loads the train and test splits of an image-folder data set.
pub fn load_image_folder(dir: &Path) -> Result<(Dataset, Dataset)> {
    if !dir.is_dir() {
        return Err(data_err(
            dir,
            "not a directory (expected train/<class>/ and test/<class>/)",
        ));
    }
    let classes = class_names(&dir.join("train"))?;
    let train = load_split(&dir.join("train"), &classes)?;
    let test = load_split(&dir.join("test"), &classes)?;
    if (train.channels, train.side) != (test.channels, test.side) {
        return Err(data_err(
            dir,
            "train and test images differ in size or channels",
        ));
    }
    Ok((train, test))
}

/// Largest side of an image, in pixels.
const MAX_SIDE: u32 = 4096;
/// Most bytes all decoded images of one split may take.
const MAX_DECODED_BYTES: u64 = 1 << 32;

/// Reads (capped at [`MAX_IMAGE_FILE_BYTES`], regular files only) and decodes one image, with the
/// decoder's size and allocation limits on.
fn decode_image(file: &Path) -> Result<image::DynamicImage> {
    let bytes = read_file_capped(file, MAX_IMAGE_FILE_BYTES)?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(256 << 20);
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(io_err(file))?;
    reader.limits(limits);
    reader
        .decode()
        .map_err(|e| data_err(file, format!("cannot decode image: {e}")))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .map(|e| e.map(|e| e.path()).map_err(io_err(dir)))
        .collect::<Result<_>>()?;
    out.sort();
    Ok(out)
}

fn class_names(train: &Path) -> Result<Vec<String>> {
    if !train.is_dir() {
        return Err(data_err(train, "missing split directory"));
    }
    let names: Vec<String> = sorted_entries(train)?
        .into_iter()
        .filter(|p| p.is_dir())
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    if names.len() < 2 {
        return Err(data_err(
            train,
            format!("found {} class folders, need at least 2", names.len()),
        ));
    }
    if names.len() > cg_core::limits::DATA_CLASSES {
        return Err(data_err(
            train,
            format!(
                "{} class folders; at most {} are supported",
                names.len(),
                cg_core::limits::DATA_CLASSES
            ),
        ));
    }
    Ok(names)
}

fn load_split(split: &Path, classes: &[String]) -> Result<Dataset> {
    if !split.is_dir() {
        return Err(data_err(split, "missing split directory"));
    }
    let mut images = Vec::new();
    let mut labels = Vec::new();
    let mut shape: Option<(usize, u32, u32)> = None;
    for class_dir in sorted_entries(split)? {
        if !class_dir.is_dir() {
            continue;
        }
        let name = class_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(label) = classes.iter().position(|c| *c == name) else {
            return Err(data_err(
                &class_dir,
                format!(
                    "unknown class folder `{name}` (the training split has: {})",
                    classes.join(", ")
                ),
            ));
        };
        for file in sorted_entries(&class_dir)? {
            let ext = file
                .extension()
                .map(|e| e.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            if !matches!(ext.as_str(), "jpg" | "jpeg" | "png") {
                continue;
            }
            let img = decode_image(&file)?;
            let channels = if img.color().has_color() { 3 } else { 1 };
            let (w, h) = (img.width(), img.height());
            match shape {
                None => shape = Some((channels, w, h)),
                Some(s) if s != (channels, w, h) => {
                    return Err(data_err(
                        &file,
                        format!(
                            "{w}x{h} with {channels} channel(s), but earlier images are {}x{} with {} channel(s)",
                            s.1, s.2, s.0
                        ),
                    ));
                }
                Some(_) => {}
            }
            if w != h {
                return Err(data_err(
                    &file,
                    format!("{w}x{h}: only square images are supported"),
                ));
            }
            let (w, h) = (w as usize, h as usize);
            if channels == 3 {
                let rgb = img.to_rgb8();
                let raw = rgb.as_raw();
                for c in 0..3 {
                    images.extend((0..w * h).map(|i| raw[i * 3 + c]));
                }
            } else {
                images.extend_from_slice(img.to_luma8().as_raw());
            }
            labels.push(label as u8);
            if images.len() as u64 > MAX_DECODED_BYTES {
                return Err(data_err(
                    split,
                    format!(
                        "the images decode to more than {MAX_DECODED_BYTES} bytes; use fewer or \
                         smaller images"
                    ),
                ));
            }
        }
    }
    let Some((channels, side, _)) = shape else {
        return Err(data_err(split, "no .jpg, .jpeg or .png images found"));
    };
    Ok(Dataset {
        images,
        labels,
        channels,
        side: side as usize,
        classes: classes.len(),
    })
}
