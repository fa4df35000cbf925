//! Analytic multiply-accumulate counts per sample: the backbone, each block, and the gates' own cost.
//! Conv and linear layers only (FLOPs = 2·MACs); batch norm, ReLU, adds and pooling are not counted in
//! the backbone. Gate overhead counts the cosine (3 MACs per element: dot product and two norms), the
//! global average pool (1 per element) and the controller MLP; a predictor (`gate.predictor`) costs
//! what a controller of hidden width [`PREDICTOR_HIDDEN`] does, and replaces the cosine and the
//! controller at inference (nothing computed to decide: body = nominal, as in `ctrl`).
//!
//! Blocks listed in `model.removed_blocks` are not part of the network: [`block_shapes`] leaves them
//! out, so every table built from it (and `full()`) is the smaller network's. Each shape keeps its
//! index in the full block list ([`BlockShape::index`]), the index results report gates by.

use cg_core::{GateMode, ModelSpec, Shortcut};

/// Hidden width of a gate's predictor (GAP → Linear(C, 16) → ReLU → Linear(16, 1)).
pub const PREDICTOR_HIDDEN: usize = 16;

/// Shape of one residual block, enough to count its cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockShape {
    /// Index in the full block list of the depth (removed blocks included), as `gates[].block_idx`.
    pub index: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub stride: usize,
    /// Side length of the block's output feature map.
    pub out_side: usize,
    pub gated: bool,
}

impl BlockShape {
    pub fn downsamples(&self) -> bool {
        self.stride != 1 || self.in_channels != self.out_channels
    }
}

/// Per-sample MAC accounting of one network.
#[derive(Debug, Clone, PartialEq)]
pub struct MacsTable {
    pub stem: u64,
    /// Residual branch F(x) of each block (two 3×3 convs).
    pub branch: Vec<u64>,
    /// Shortcut of each block (non-zero only for option-B projections).
    pub shortcut: Vec<u64>,
    pub head: u64,
    pub blocks: Vec<BlockShape>,
    /// Gate cost of each block when its decision needs F(x) (cosine + pool + controller), else pool +
    /// controller; with a predictor, pool + predictor.
    pub gate_overhead: Vec<u64>,
    /// The gates decide with a predictor at inference ([`MacsTable::with_predictor`]).
    pub predictor: bool,
}

fn conv_macs(cin: usize, cout: usize, k: usize, out_side: usize) -> u64 {
    product(&[cin, cout, k, k, out_side, out_side])
}

/// A product of sizes as MACs, saturating at `u64::MAX` instead of wrapping (validation bounds
/// the sizes far below that; this keeps an unchecked configuration from wrapping to a small count).
fn product(factors: &[usize]) -> u64 {
    factors
        .iter()
        .try_fold(1u64, |acc, &f| acc.checked_mul(f as u64))
        .unwrap_or(u64::MAX)
}

/// A sum of MACs, saturating.
fn sum<'a>(values: impl IntoIterator<Item = &'a u64>) -> u64 {
    values.into_iter().fold(0u64, |a, &b| a.saturating_add(b))
}

/// The blocks of a CIFAR ResNet of the given depth and width on `side × side` inputs, without
/// those of `spec.removed_blocks` (which keep their shape: removing one changes no other block).
pub fn block_shapes(spec: &ModelSpec, side: usize, gate_downsample: bool) -> Vec<BlockShape> {
    let n = (spec.depth.saturating_sub(2)) / 6;
    let mut blocks = Vec::with_capacity(3 * n);
    let mut in_ch = spec.width;
    let mut cur_side = side;
    for stage in 0..3 {
        let out_ch = spec.width.saturating_mul(1 << stage);
        for i in 0..n {
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            cur_side = cur_side.div_ceil(stride);
            let index = stage * n + i;
            if spec.removed_blocks.contains(&index) {
                continue;
            }
            let shape = BlockShape {
                index,
                in_channels: in_ch,
                out_channels: out_ch,
                stride,
                out_side: cur_side,
                gated: false,
            };
            let gated = spec.kind == cg_core::ModelKind::Cosinegate
                && (gate_downsample || !shape.downsamples());
            blocks.push(BlockShape { gated, ..shape });
            in_ch = out_ch;
        }
    }
    blocks
}

impl MacsTable {
    pub fn new(
        spec: &ModelSpec,
        in_channels: usize,
        side: usize,
        gate_downsample: bool,
        mode: GateMode,
        hidden: usize,
    ) -> Self {
        let blocks = block_shapes(spec, side, gate_downsample);
        let stem = conv_macs(in_channels, spec.width, 3, side);
        let mut branch = Vec::new();
        let mut shortcut = Vec::new();
        let mut gate_overhead = Vec::new();
        for b in &blocks {
            branch.push(
                conv_macs(b.in_channels, b.out_channels, 3, b.out_side).saturating_add(conv_macs(
                    b.out_channels,
                    b.out_channels,
                    3,
                    b.out_side,
                )),
            );
            shortcut.push(if b.downsamples() && spec.shortcut == Shortcut::B {
                conv_macs(b.in_channels, b.out_channels, 1, b.out_side)
            } else {
                0
            });
            let elems = product(&[b.out_channels, b.out_side, b.out_side]);
            let overhead = if !b.gated {
                0
            } else {
                let ctrl = if mode.has_controller() {
                    elems
                        .saturating_add(product(&[b.out_channels, hidden]))
                        .saturating_add(hidden as u64)
                } else {
                    0
                };
                let cos = if mode.needs_branch() {
                    elems.saturating_mul(3)
                } else {
                    0
                };
                ctrl.saturating_add(cos)
            };
            gate_overhead.push(overhead);
        }
        let head = product(&[4, spec.width, spec.num_classes]);
        Self {
            stem,
            branch,
            shortcut,
            head,
            blocks,
            gate_overhead,
            predictor: false,
        }
    }

    /// The table of a network whose gates decide with a predictor at inference: each gated block
    /// pays the pool and a controller-shaped MLP of hidden width [`PREDICTOR_HIDDEN`], and no
    /// cosine or controller.
    pub fn with_predictor(mut self) -> Self {
        for (b, overhead) in self.blocks.iter().zip(&mut self.gate_overhead) {
            if b.gated {
                *overhead = product(&[b.out_channels, b.out_side, b.out_side])
                    .saturating_add(product(&[b.out_channels, PREDICTOR_HIDDEN]))
                    .saturating_add(PREDICTOR_HIDDEN as u64);
            }
        }
        self.predictor = true;
        self
    }

    /// Whether deciding a gate needs its branch F(x) computed (the CIR modes without predictor).
    pub fn decision_needs_branch(&self, mode: GateMode) -> bool {
        mode.needs_branch() && !self.predictor
    }

    /// The index in the full block list ([`BlockShape::index`]) of each gated block, in order.
    pub fn gated_indices(&self) -> Vec<usize> {
        self.gated_blocks()
            .iter()
            .map(|b| self.blocks[*b].index)
            .collect()
    }

    /// The backbone alone, every block executed, no gate heads.
    pub fn full(&self) -> u64 {
        sum([
            &self.stem,
            &sum(&self.branch),
            &sum(&self.shortcut),
            &self.head,
        ])
    }

    /// Everything that runs whatever the gates say: stem, shortcuts, ungated branches, head.
    pub fn fixed(&self) -> u64 {
        let ungated = sum(self
            .blocks
            .iter()
            .zip(&self.branch)
            .filter(|(b, _)| !b.gated)
            .map(|(_, m)| m));
        sum([&self.stem, &sum(&self.shortcut), &ungated, &self.head])
    }

    /// Positions of the gated blocks in `blocks` (and `branch`, `shortcut`), in order.
    pub fn gated_blocks(&self) -> Vec<usize> {
        self.blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| b.gated)
            .map(|(i, _)| i)
            .collect()
    }

    /// Nominal executed MACs of one sample: a skipped block costs zero. `open[k]` is the gate of the k-th
    /// gated block.
    pub fn executed_nominal(&self, open: &[bool]) -> u64 {
        self.mean_executed_nominal(&rates(open)) as u64
    }

    /// MACs really computed for one sample: in the CIR modes (without predictor) every gated branch
    /// runs to decide, and each gate adds its own cost.
    pub fn executed_actual(&self, open: &[bool], mode: GateMode) -> u64 {
        self.mean_executed_actual(&rates(open), mode) as u64
    }

    /// Mean nominal MACs per sample given each gated block's open rate (cost is linear in the gates).
    pub fn mean_executed_nominal(&self, open_rate: &[f64]) -> f64 {
        let gated = self.gated_blocks();
        debug_assert_eq!(gated.len(), open_rate.len());
        self.fixed() as f64
            + gated
                .iter()
                .zip(open_rate)
                .map(|(b, r)| self.branch[*b] as f64 * r)
                .sum::<f64>()
    }

    /// Mean MACs really computed per sample given each gated block's open rate.
    pub fn mean_executed_actual(&self, open_rate: &[f64], mode: GateMode) -> f64 {
        let overhead = sum(self.gated_blocks().iter().map(|b| &self.gate_overhead[*b]));
        let body = if self.decision_needs_branch(mode) {
            self.full() as f64
        } else {
            self.mean_executed_nominal(open_rate)
        };
        body + overhead as f64
    }
}

fn rates(open: &[bool]) -> Vec<f64> {
    open.iter().map(|o| f64::from(u8::from(*o))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cg_core::ModelKind;

    #[test]
    fn huge_sizes_saturate_instead_of_wrapping() {
        let mut m = spec(ModelKind::Cosinegate, Shortcut::B);
        m.width = 4_294_967_296;
        m.num_classes = 4_294_967_296;
        let t = MacsTable::new(&m, 3, 32, true, GateMode::CirCtrl, 4_294_967_296);
        assert_eq!(t.full(), u64::MAX);
        assert_eq!(t.head, u64::MAX);
        assert!(t.fixed() >= t.head);
        assert_eq!(product(&[1 << 40, 1 << 40]), u64::MAX);
        assert_eq!(product(&[3, 4]), 12);
    }

    fn spec(kind: ModelKind, shortcut: Shortcut) -> ModelSpec {
        ModelSpec {
            kind,
            shortcut,
            ..ModelSpec::default()
        }
    }

    /// Checks a network's full MACs against METHOD.md's oracle table.
    fn check(kind: ModelKind, shortcut: Shortcut, in_channels: usize, expected: u64) {
        let t = MacsTable::new(
            &spec(kind, shortcut),
            in_channels,
            32,
            false,
            GateMode::CirCtrl,
            16,
        );
        assert_eq!(t.full(), expected, "{kind:?} {shortcut:?} {in_channels}ch");
    }

    #[test]
    fn method_md_oracles() {
        check(ModelKind::Resnet, Shortcut::A, 3, 40_551_040);
        check(ModelKind::Resnet, Shortcut::B, 3, 40_813_184);
        check(ModelKind::Resnet, Shortcut::A, 1, 40_256_128);
        check(ModelKind::Cosinegate, Shortcut::A, 3, 40_551_040);
        let t = MacsTable::new(
            &spec(ModelKind::Cosinegate, Shortcut::A),
            3,
            32,
            false,
            GateMode::CirCtrl,
            16,
        );
        assert_eq!(t.stem, 442_368);
        assert_eq!(t.branch[0], 4_718_592);
        assert_eq!(t.branch[3], 3_538_944);
        assert_eq!(t.head, 640);
        assert_eq!(t.gated_blocks(), [0, 1, 2, 4, 5, 7, 8]);
    }

    #[test]
    fn removed_blocks_leave_the_table_and_keep_their_indices() {
        let full = MacsTable::new(
            &spec(ModelKind::Cosinegate, Shortcut::A),
            3,
            32,
            false,
            GateMode::CirCtrl,
            16,
        );
        let mut m = spec(ModelKind::Cosinegate, Shortcut::A);
        m.removed_blocks = vec![1, 5];
        let t = MacsTable::new(&m, 3, 32, false, GateMode::CirCtrl, 16);
        assert_eq!(t.blocks.len(), 7);
        assert_eq!(t.full(), full.full() - full.branch[1] - full.branch[5]);
        assert_eq!(t.gated_indices(), [0, 2, 4, 7, 8]);
        assert_eq!(t.gated_blocks(), [0, 1, 3, 5, 6]);
    }

    #[test]
    fn a_predictor_costs_a_controller_of_hidden_16_and_no_branch() {
        let cir = MacsTable::new(
            &spec(ModelKind::Cosinegate, Shortcut::A),
            3,
            32,
            false,
            GateMode::Cir,
            64,
        );
        let t = cir.clone().with_predictor();
        assert_eq!(t.full(), cir.full(), "the backbone is unchanged");
        // Stage-1 gate: pool over 16·32·32 elements + predictor 16·16+16.
        assert_eq!(t.gate_overhead[0], 16_384 + 272);
        let none = [false; 7];
        let overhead: u64 = t.gate_overhead.iter().sum();
        assert_eq!(
            t.executed_actual(&none, GateMode::Cir),
            t.executed_nominal(&none) + overhead
        );
        assert!(cir.executed_actual(&none, GateMode::Cir) > cir.full());
    }

    #[test]
    fn nominal_and_actual_cost() {
        let t = MacsTable::new(
            &spec(ModelKind::Cosinegate, Shortcut::A),
            3,
            32,
            false,
            GateMode::CirCtrl,
            16,
        );
        let all = [true; 7];
        let none = [false; 7];
        assert_eq!(t.executed_nominal(&all), t.full());
        assert_eq!(t.executed_nominal(&none), t.full() - 7 * 4_718_592);
        // CIR modes compute every branch: actual cost exceeds the full network.
        assert!(t.executed_actual(&none, GateMode::CirCtrl) > t.full());
        let ctrl = MacsTable::new(
            &spec(ModelKind::Cosinegate, Shortcut::A),
            3,
            32,
            false,
            GateMode::Ctrl,
            16,
        );
        // Stage-1 gate: pool over 16·32·32 elements + controller 16·16+16.
        assert_eq!(ctrl.gate_overhead[0], 16_384 + 272);
        assert!(ctrl.executed_actual(&none, GateMode::Ctrl) < ctrl.full());
    }
}
