//! Properties of the networks: gate algebra, gradients, sparse execution.

use burn::module::{AutodiffModule, Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use cg_core::{GateMode, GateSpec, ModelKind, ModelSpec, Shortcut};
use cg_model::model::{CgResNet, GateCtx, NetSpec, relaxed_gate};

type Cpu = burn::backend::Flex;
type Ad = burn::backend::Autodiff<Cpu>;

fn net(kind: ModelKind, mode: GateMode, shortcut: Shortcut) -> NetSpec {
    NetSpec {
        model: ModelSpec {
            kind,
            depth: 14,
            width: 4,
            shortcut,
            ..ModelSpec::default()
        },
        gate: GateSpec {
            mode,
            ..GateSpec::default()
        },
        in_channels: 3,
        side: 8,
    }
}

fn input<B: Backend>(n: usize, device: &B::Device) -> Tensor<B, 4> {
    let v: Vec<f32> = (0..n * 3 * 64)
        .map(|i| ((i * 7919 % 997) as f32 / 498.0) - 1.0)
        .collect();
    Tensor::from_data(TensorData::new(v, [n, 3, 8, 8]), device)
}

fn max_abs_diff<B: Backend>(a: Tensor<B, 2>, b: Tensor<B, 2>) -> f32 {
    (a - b)
        .abs()
        .max()
        .into_data()
        .iter::<f32>()
        .next()
        .unwrap_or(f32::NAN)
}

/// Trains BN statistics away from their defaults so inference is not trivially the identity.
fn warm_bn<B: burn::tensor::backend::AutodiffBackend>(
    model: CgResNet<B>,
    device: &B::Device,
) -> CgResNet<B> {
    let _ = model.forward(input::<B>(6, device), &GateCtx::Open);
    model
}

#[test]
fn all_gates_open_equals_plain_resnet() {
    let device = Default::default();
    for shortcut in [Shortcut::A, Shortcut::B] {
        let gated: CgResNet<Ad> =
            net(ModelKind::Cosinegate, GateMode::CirCtrl, shortcut).init(&device);
        let gated = warm_bn(gated, &device).valid();
        let plain = gated.clone().without_gates();
        assert_eq!(
            gated.n_gated(),
            4,
            "ResNet-14 gates its four non-downsampling blocks"
        );
        assert_eq!(plain.n_gated(), 0);
        let x = input::<Cpu>(5, &device);
        // Controller bias +3 and CIR near θ: every gate opens at p_threshold 0.5 ...
        let open = gated.forward(x.clone(), &GateCtx::Eval { p_threshold: 0.5 });
        let ones: Vec<f32> = open
            .gates
            .iter()
            .flat_map(|g| g.clone().into_data().iter::<f32>().collect::<Vec<_>>())
            .collect();
        assert!(ones.iter().all(|g| *g == 1.0), "gates {ones:?}");
        let reference = plain.forward(x.clone(), &GateCtx::Open).logits;
        assert!(max_abs_diff(open.logits, reference.clone()) < 1e-6);
        // ... and with every gate forced shut the output differs.
        let shut = gated.forward(
            x,
            &GateCtx::Eval {
                p_threshold: 0.9999,
            },
        );
        assert!(max_abs_diff(shut.logits, reference) > 1e-3);
    }
}

#[test]
fn gradients_reach_controller_and_convs_through_straight_through_gates() {
    let device = Default::default();
    let model: CgResNet<Ad> =
        net(ModelKind::Cosinegate, GateMode::CirCtrl, Shortcut::A).init(&device);
    let n = 6;
    let noise = Tensor::<Ad, 2>::from_data(TensorData::new(vec![0.3f32; 4 * n], [4, n]), &device);
    let out = model.forward(
        input::<Ad>(n, &device),
        &GateCtx::Train {
            tau: 1.0,
            hard: true,
            noise,
        },
    );
    // Forward values are hard 0/1.
    for g in &out.gates {
        let v: Vec<f32> = g.clone().into_data().iter::<f32>().collect();
        assert!(
            v.iter().all(|x| (*x - 1.0).abs() < 1e-6 || x.abs() < 1e-6),
            "{v:?}"
        );
    }
    let gate_sum = out
        .gates
        .iter()
        .fold(Tensor::<Ad, 1>::zeros([1], &device), |acc, g| {
            acc + g.clone().sum()
        });
    let loss = out.logits.square().mean() + gate_sum;
    let grads = loss.backward();
    let block = model
        .blocks
        .iter()
        .find(|b| b.gate.is_some())
        .expect("a gated block");
    let gate = block.gate.as_ref().expect("gate");
    let ctrl_out = gate.ctrl_out.as_ref().expect("controller");
    let nonzero = |t: Option<Tensor<Cpu, 2>>| t.map(|t| t.abs().sum().into_scalar()).unwrap_or(0.0);
    assert!(
        nonzero(ctrl_out.weight.grad(&grads)) > 0.0,
        "controller W2 has no gradient"
    );
    let b2: f32 = ctrl_out
        .bias
        .as_ref()
        .and_then(|b| b.grad(&grads))
        .map(|g| g.abs().sum().into_scalar())
        .unwrap_or(0.0);
    assert!(b2 > 0.0, "controller b2 has no gradient");
    let conv: f32 = block
        .conv2
        .weight
        .grad(&grads)
        .map(|g| g.abs().sum().into_scalar())
        .unwrap_or(0.0);
    assert!(conv > 0.0, "branch conv has no gradient");
    let stem: f32 = model
        .stem_conv
        .weight
        .grad(&grads)
        .map(|g| g.abs().sum().into_scalar())
        .unwrap_or(0.0);
    assert!(stem > 0.0);
}

#[test]
fn gumbel_gate_opens_with_probability_sigmoid_z() {
    use rand::{Rng, SeedableRng};
    let device = Default::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let draws = 20_000;
    for (z, tau) in [(-1.5f32, 2.0), (0.0, 0.5), (0.8, 1.0), (2.0, 0.7)] {
        let noise: Vec<f32> = (0..draws)
            .map(|_| {
                let u: f32 = rng.random_range(1e-6f32..1.0 - 1e-6);
                u.ln() - (1.0 - u).ln()
            })
            .collect();
        let zt = Tensor::<Cpu, 1>::full([draws], z, &device);
        let nt = Tensor::<Cpu, 1>::from_data(TensorData::new(noise, [draws]), &device);
        let g = relaxed_gate(zt, nt, tau, true);
        let freq: f32 = g.mean().into_scalar();
        let p = 1.0 / (1.0 + (-z).exp());
        // 4.5 standard errors of a Bernoulli mean.
        let tol = 4.5 * (p * (1.0 - p) / draws as f32).sqrt();
        assert!(
            (freq - p).abs() < tol,
            "z={z} tau={tau}: open {freq}, σ(z) {p}"
        );
    }
}

#[test]
fn sparse_inference_equals_dense_masked_inference() {
    let device = Default::default();
    let mut model: CgResNet<Cpu> =
        net(ModelKind::Cosinegate, GateMode::Ctrl, Shortcut::A).init(&device);
    // Give the controllers real weights so that decisions vary per sample.
    for b in model.blocks.iter_mut() {
        if let Some(g) = b.gate.as_mut() {
            let w = g.ctrl_out.as_ref().expect("controller").weight.val();
            let [h, o] = w.dims();
            let vals: Vec<f32> = (0..h * o)
                .map(|i| if i % 2 == 0 { 4.0 } else { -4.0 })
                .collect();
            let ctrl_out = g.ctrl_out.as_mut().expect("controller");
            ctrl_out.weight =
                Param::from_tensor(Tensor::from_data(TensorData::new(vals, [h, o]), &device));
            ctrl_out.bias = Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![-0.5f32], [1]),
                &device,
            )));
        }
    }
    let x = input::<Cpu>(16, &device);
    // Pick a threshold at which some samples skip a block and others do not.
    let (p_threshold, dense, sparse, masks) = [0.5, 0.3, 0.7, 0.1, 0.9, 0.05, 0.95, 0.01, 0.99]
        .into_iter()
        .map(|p| {
            let dense = model.forward(x.clone(), &GateCtx::Eval { p_threshold: p });
            let (sparse, masks) = model.forward_sparse(x.clone(), p);
            (p, dense, sparse, masks)
        })
        .find(|(_, _, _, masks)| {
            let opened = masks.iter().flatten().filter(|o| **o).count();
            opened > 0 && opened < masks.iter().map(|m| m.len()).sum()
        })
        .expect("some threshold mixes open and closed gates");
    eprintln!("p_threshold {p_threshold}");
    for (k, g) in dense.gates.iter().enumerate() {
        let d: Vec<bool> = g
            .clone()
            .into_data()
            .iter::<f32>()
            .map(|v| v > 0.5)
            .collect();
        assert_eq!(d, masks[k], "block {k} decisions differ");
    }
    let diff = max_abs_diff(dense.logits, sparse);
    assert!(diff < 1e-4, "sparse and dense logits differ by {diff}");
    let _ = model.num_params();
}

#[test]
fn batch_norm_normalises_per_channel_and_tracks_running_statistics() {
    use cg_model::model::BatchNorm;
    let device = Default::default();
    let bn = BatchNorm::<Ad>::new(3, &device);
    let (n, c, hw) = (4, 3, 25);
    let mut x = vec![0f32; n * c * hw];
    for i in 0..n {
        for ch in 0..c {
            for k in 0..hw {
                x[(i * c + ch) * hw + k] =
                    10.0 * ch as f32 + (ch as f32 + 1.0) * (((i * 31 + k * 7) % 11) as f32 - 5.0);
            }
        }
    }
    let xt = Tensor::<Ad, 4>::from_data(TensorData::new(x.clone(), [n, c, 5, 5]), &device);
    let y: Vec<f32> = bn.forward(xt).into_data().iter::<f32>().collect();
    for ch in 0..c {
        let vals: Vec<f32> = (0..n)
            .flat_map(|i| (0..hw).map(move |k| (i * c + ch) * hw + k))
            .map(|j| y[j])
            .collect();
        let m = vals.iter().sum::<f32>() / vals.len() as f32;
        let v = vals.iter().map(|a| (a - m).powi(2)).sum::<f32>() / vals.len() as f32;
        assert!(
            m.abs() < 1e-4 && (v - 1.0).abs() < 1e-3,
            "channel {ch}: mean {m} var {v}"
        );
    }
    // Running mean moved 10% of the way to the batch mean (10·c, since the offsets average to ~0).
    let rm: Vec<f32> = bn
        .running_mean
        .value_sync()
        .into_data()
        .iter::<f32>()
        .collect();
    let batch_mean: Vec<f32> = (0..c)
        .map(|ch| {
            (0..n)
                .flat_map(|i| (0..hw).map(move |k| (i * c + ch) * hw + k))
                .map(|j| x[j])
                .sum::<f32>()
                / (n * hw) as f32
        })
        .collect();
    for ch in 0..c {
        assert!(
            (rm[ch] - 0.1 * batch_mean[ch]).abs() < 1e-4,
            "running mean {rm:?} vs batch {batch_mean:?}"
        );
    }
    // Inference uses the running statistics: (x − μ_run)/sqrt(σ²_run + ε).
    let inner = bn.valid();
    let one = Tensor::<Cpu, 4>::from_data(TensorData::new(vec![2.0f32; 3], [1, 3, 1, 1]), &device);
    let out: Vec<f32> = inner.forward(one).into_data().iter::<f32>().collect();
    let rv: Vec<f32> = inner
        .running_var
        .value()
        .into_data()
        .iter::<f32>()
        .collect();
    for ch in 0..c {
        let expected = (2.0 - rm[ch]) / (rv[ch] + 1e-5).sqrt();
        assert!((out[ch] - expected).abs() < 1e-4, "{out:?}");
    }
}
