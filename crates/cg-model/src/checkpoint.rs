//! Epoch checkpoints of a run in its folder: the model and optimizer records of the last epoch
//! done (`model-NNNN`, `optim-NNNN`), `state.json` naming that epoch with the run's history
//! (written last, atomically), and once the run completes its final weights (`final`).

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::Optimizer;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use cg_core::{EpochRecord, RunConfig};
use serde::{Deserialize, Serialize};

use crate::error::io_err;
use crate::model::CgResNet;
use crate::{Error, Result};

/// Saved after every epoch beside the model and optimizer records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CheckpointState {
    pub(crate) config: RunConfig,
    pub(crate) epochs_done: usize,
    pub(crate) history: Vec<EpochRecord>,
    pub(crate) train_secs: f64,
    pub(crate) train_images: u64,
}

type Rec = NamedMpkFileRecorder<FullPrecisionSettings>;

fn ckpt_paths(dir: &Path, epoch: usize) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("model-{epoch:04}")),
        dir.join(format!("optim-{epoch:04}")),
    )
}

/// The model and optimizer records of the checkpoint of `epochs_done` epochs in `dir`, loaded
/// into `model` and `optim`.
pub(crate) fn load_checkpoint<B: AutodiffBackend, O: Optimizer<CgResNet<B>, B>>(
    dir: &Path,
    epochs_done: usize,
    model: CgResNet<B>,
    optim: O,
    device: &B::Device,
) -> Result<(CgResNet<B>, O)> {
    let (mpath, opath) = ckpt_paths(dir, epochs_done);
    let rec = Rec::new();
    let model = model
        .load_file(&mpath, &rec, device)
        .map_err(|e| Error::Checkpoint {
            path: mpath.clone(),
            message: e.to_string(),
        })?;
    let orec = rec
        .load(opath.clone(), device)
        .map_err(|e| Error::Checkpoint {
            path: opath.clone(),
            message: e.to_string(),
        })?;
    let optim = optim.load_record(orec);
    Ok((model, optim))
}

/// The state of the last checkpoint in `dir`, if there is one.
pub(crate) fn load_state(dir: &Path) -> Result<Option<CheckpointState>> {
    let path = dir.join("state.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Checkpoint {
            path,
            message: format!("unreadable state: {e}"),
        })
}

/// Saves the checkpoint of `state.epochs_done` epochs and removes the older ones.
pub(crate) fn save_checkpoint<B: AutodiffBackend, O: Optimizer<CgResNet<B>, B>>(
    dir: &Path,
    model: &CgResNet<B>,
    optim: &O,
    state: &CheckpointState,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let ck = |path: &Path, e: String| Error::Checkpoint {
        path: path.to_path_buf(),
        message: e,
    };
    let rec = Rec::new();
    let (mpath, opath) = ckpt_paths(dir, state.epochs_done);
    model
        .clone()
        .save_file(&mpath, &rec)
        .map_err(|e| ck(&mpath, e.to_string()))?;
    rec.record(optim.to_record(), opath.clone())
        .map_err(|e| ck(&opath, e.to_string()))?;
    // The state file names the epoch whose records are complete; write it last, atomically.
    let tmp = dir.join("state.json.tmp");
    let text = serde_json::to_string(state).map_err(|e| ck(&tmp, e.to_string()))?;
    std::fs::write(&tmp, text).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, dir.join("state.json")).map_err(io_err(dir))?;
    remove_older(dir, state.epochs_done);
    Ok(())
}

/// Removes checkpoint records of epochs before `keep`.
fn remove_older(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let epoch = name
            .strip_prefix("model-")
            .or_else(|| name.strip_prefix("optim-"))
            .and_then(|rest| rest.split('.').next())
            .and_then(|n| n.parse::<usize>().ok());
        if epoch.is_some_and(|ep| ep < keep) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Writes the final weights as `final.mpk`; drops intermediate records unless asked to keep them.
pub(crate) fn finish_checkpoints<B: Backend>(
    dir: &Path,
    model: &CgResNet<B>,
    keep: bool,
) -> Result<()> {
    let path = dir.join("final");
    model
        .clone()
        .save_file(&path, &Rec::new())
        .map_err(|e| Error::Checkpoint {
            path: path.clone(),
            message: e.to_string(),
        })?;
    if !keep {
        remove_older(dir, usize::MAX);
        let _ = std::fs::remove_file(dir.join("state.json"));
    }
    Ok(())
}
