//! What a run fixes before its first step ([`Prepared`]): the configuration checked, the data
//! loaded and split (validation held out, training and test subsets drawn), the network sized
//! (without `model.removed_blocks`) and its MACs counted (a predictor's cost instead of the CIR
//! gate's with `gate.predictor`), the normalisation measured; and how a batch of images becomes a tensor.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use cg_core::{ModelKind, RunConfig};

use crate::data::{Batch, DataSplits, Normalisation};
use crate::macs::MacsTable;
use crate::model::NetSpec;
use crate::{Error, Result};

/// Everything fixed before the first step.
pub struct Prepared {
    pub config: RunConfig,
    pub net: NetSpec,
    pub macs: MacsTable,
    pub data: DataSplits,
    pub norm: Normalisation,
}

/// Every problem of `config` ([`RunConfig::problems`]) as one error; nothing when it is usable.
pub(crate) fn check_config(config: &RunConfig) -> Result<()> {
    let problems = config.problems();
    if problems.is_empty() {
        return Ok(());
    }
    let msg: Vec<String> = problems
        .iter()
        .map(|p| format!("{}: {}", p.key, p.message))
        .collect();
    Err(Error::Config(msg.join("; ")))
}

impl Prepared {
    /// Checks the configuration, loads the data, holds out the validation split
    /// (`dataset.val_size`), draws the training and test subsets (`train.limit_train`,
    /// `train.limit_test`) and sizes the network.
    pub fn new(config: &RunConfig) -> Result<Self> {
        check_config(config)?;
        let t = &config.train;
        let mut data = crate::data::load(&config.dataset, t.seed)?.split_training(
            config.dataset.val_size,
            t.limit_train,
            t.seed,
        )?;
        data.test = data
            .test
            .subset(config.train.limit_test, config.train.seed.wrapping_add(1));
        Self::with_data(config, data)
    }

    /// Like [`Prepared::new`] with data already in memory (tests, benchmarks), split as given: its
    /// validation images must number `dataset.val_size` ([`DataSplits::split_training`]).
    pub fn with_data(config: &RunConfig, data: DataSplits) -> Result<Self> {
        let held_out = data.val.as_ref().map(|v| v.data.len());
        if config.dataset.val_size != held_out {
            return Err(Error::Config(format!(
                "dataset.val_size is {:?} but the data hold out {:?} validation images",
                config.dataset.val_size, held_out
            )));
        }
        // A split of one image would skip every batch (batch norm needs two) and "complete" a
        // run that never trained.
        if data.train.len() < 2 {
            return Err(Error::Config(format!(
                "the training split has {} image(s); training needs at least 2 (batch norm)",
                data.train.len()
            )));
        }
        if data.test.is_empty() {
            return Err(Error::Config("the test split has no images".into()));
        }
        let in_channels = config.model.in_channels.unwrap_or(data.train.channels);
        if in_channels != data.train.channels {
            return Err(Error::Config(format!(
                "model.in_channels is {in_channels} but the data set has {} channel(s)",
                data.train.channels
            )));
        }
        if data.train.classes > config.model.num_classes {
            return Err(Error::Config(format!(
                "the data set has {} classes but model.num_classes is {}",
                data.train.classes, config.model.num_classes
            )));
        }
        let net = NetSpec {
            model: config.model.clone(),
            gate: config.gate.clone(),
            in_channels,
            side: data.train.side,
        };
        let macs = MacsTable::new(
            &config.model,
            in_channels,
            data.train.side,
            config.gate.gate_downsample,
            config.gate.mode,
            config.gate.controller_hidden,
        );
        let macs = if config.gate.predictor {
            macs.with_predictor()
        } else {
            macs
        };
        let norm = Normalisation::of(&data.train);
        Ok(Self {
            config: config.clone(),
            net,
            macs,
            data,
            norm,
        })
    }

    pub(crate) fn gated(&self) -> bool {
        self.config.model.kind == ModelKind::Cosinegate && !self.macs.gated_blocks().is_empty()
    }
}

/// Moves the batch's images into a tensor (leaving `batch.images` empty). Shape [n, channels, side, side].
pub(crate) fn to_tensor<B: Backend>(batch: &mut Batch, device: &B::Device) -> Tensor<B, 4> {
    Tensor::from_data(
        TensorData::new(
            std::mem::take(&mut batch.images),
            [batch.n, batch.channels, batch.side, batch.side],
        ),
        device,
    )
}

/// A tensor's values on the host, as f32.
pub(crate) fn host_f32<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}
