//! The gate predictor's training term and its agreement with the CIR gate (`gate.predictor`).
//!
//! Training adds `loss.predictor_weight` × the binary cross-entropy with logits between each gated
//! block's predictor logit and the CIR gate's hard decision on the same input (the target detached,
//! the predictor's input detached), averaged over the gated blocks and the clean samples (the first
//! `n` of a batch doubled by the consistency loss). Evaluation counts the (block, input) decisions
//! where the predictor's applied decision (σ(pred) ≥ p_threshold, as the forward pass took it) and
//! the CIR gate's agree.

use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;

use crate::model::Prediction;
use crate::prepared::host_f32;

/// Mean binary cross-entropy with logits over the first `n` samples of every prediction:
/// `max(l, 0) − l·t + log(1 + e^−|l|)`. Shape `[1]`; `None` without predictions.
pub(crate) fn predictor_loss<B: Backend>(
    predictions: &[Prediction<B>],
    n: usize,
) -> Option<Tensor<B, 1>> {
    let terms: Vec<Tensor<B, 1>> = predictions
        .iter()
        .map(|p| {
            let l = p.logit.clone().narrow(0, 0, n);
            let t = p.cir_open.clone().narrow(0, 0, n);
            let softplus = l.clone().abs().neg().exp().log1p();
            relu(l.clone()) - l * t + softplus
        })
        .collect();
    (!terms.is_empty()).then(|| Tensor::cat(terms, 0).mean())
}

/// Decisions compared so far: how many, and how many the predictor and the CIR gate agreed on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Agreement {
    pub agreed: usize,
    pub decisions: usize,
}

impl Agreement {
    /// Adds one batch: each gated block's applied decisions (`gate_rows`, read to the host by the
    /// evaluation: with a predictor they are its decisions) against the CIR gate's (`cir_open`).
    pub(crate) fn add<B: Backend>(
        &mut self,
        gate_rows: &[Vec<f32>],
        predictions: Vec<Prediction<B>>,
    ) {
        for (row, p) in gate_rows.iter().zip(predictions) {
            let cir_open = host_f32(p.cir_open);
            for (gate, open) in row.iter().zip(&cir_open) {
                self.agreed += usize::from((*gate > 0.5) == (*open > 0.5));
                self.decisions += 1;
            }
        }
    }

    /// The share of decisions agreed on; `None` when nothing was compared.
    pub fn share(&self) -> Option<f64> {
        (self.decisions > 0).then(|| self.agreed as f64 / self.decisions as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    type B = burn::backend::Flex;

    fn prediction(logits: Vec<f32>, open: Vec<f32>) -> Prediction<B> {
        let device = Default::default();
        let n = logits.len();
        Prediction {
            logit: Tensor::from_data(TensorData::new(logits, [n]), &device),
            cir_open: Tensor::from_data(TensorData::new(open, [n]), &device),
        }
    }

    #[test]
    fn the_loss_is_binary_cross_entropy_over_the_clean_samples() {
        let p = prediction(vec![0.0, 2.0, 9.0], vec![1.0, 0.0, 0.0]);
        // ln 2 and ln(1 + e²) over the first two samples; the third (a noisy copy) is left out.
        let expected = (2f64.ln() + (1.0 + 2f64.exp()).ln()) / 2.0;
        let loss = host_f32(predictor_loss(&[p], 2).unwrap())[0];
        assert!((f64::from(loss) - expected).abs() < 1e-5, "{loss}");
        assert!(predictor_loss::<B>(&[], 2).is_none());
    }

    #[test]
    fn agreement_counts_matching_decisions() {
        let mut a = Agreement::default();
        assert_eq!(a.share(), None);
        // The applied (predictor) decisions, as σ(3) σ(−3) and σ(−1) σ(0.5) at threshold 0.5.
        let rows = [vec![1.0, 0.0], vec![0.0, 1.0]];
        a.add(
            &rows,
            vec![
                prediction(vec![3.0, -3.0], vec![1.0, 1.0]),
                prediction(vec![-1.0, 0.5], vec![0.0, 1.0]),
            ],
        );
        assert_eq!(
            a,
            Agreement {
                agreed: 3,
                decisions: 4
            }
        );
        assert_eq!(a.share(), Some(0.75));
    }
}
