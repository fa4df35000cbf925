//! Which GPUs the local workers use, and the slots (concurrent jobs) on them.
//!
//! A GPU is numbered as this process sees it (`index`: the n-th entry of `CUDA_VISIBLE_DEVICES`
//! when that is set, else the physical index) and pinned by `id`, the value a child gets as its
//! only visible device (`CUDA_VISIBLE_DEVICES=<id>`, then `cuda:0` inside the child). A job can
//! then neither touch nor allocate a context on any other GPU.

use std::fmt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use cg_model::DeviceSpec;

use crate::{Error, Result};

/// A GPU the workers may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    /// As this process numbers it (`--gpus` takes these).
    pub index: usize,
    /// What pins a child to it: a physical index or a `GPU-…`/`MIG-…` UUID.
    pub id: String,
}

/// One concurrent job of the local workers: where it trains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    Cpu,
    Gpu(Gpu),
}

impl Slot {
    /// The device the child is told to use: `cpu`, or `cuda:0` (it sees only its GPU).
    pub fn child_device(&self) -> DeviceSpec {
        match self {
            Slot::Cpu => DeviceSpec::Cpu,
            Slot::Gpu(_) => DeviceSpec::Cuda(0),
        }
    }

    /// `CUDA_VISIBLE_DEVICES` of the child: its GPU, or none at all on a CPU slot.
    pub fn child_visible_devices(&self) -> &str {
        match self {
            Slot::Cpu => "",
            Slot::Gpu(gpu) => &gpu.id,
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Slot::Cpu => write!(f, "cpu"),
            Slot::Gpu(g) if g.id == g.index.to_string() => write!(f, "cuda:{}", g.index),
            Slot::Gpu(g) => write!(f, "cuda:{} ({})", g.index, g.id),
        }
    }
}

/// The GPUs named by a `CUDA_VISIBLE_DEVICES` value, as CUDA reads it: entries up to the first
/// empty or negative one (`-1` or `""` hide every GPU).
pub fn parse_visible_devices(value: &str) -> Vec<Gpu> {
    value
        .split(',')
        .map(str::trim)
        .take_while(|s| !s.is_empty() && !s.starts_with('-'))
        .enumerate()
        .map(|(index, id)| Gpu {
            index,
            id: id.to_string(),
        })
        .collect()
}

/// The GPUs in `nvidia-smi --query-gpu=index --format=csv,noheader` output.
pub fn parse_nvidia_smi(output: &str) -> Vec<Gpu> {
    output
        .lines()
        .filter_map(|l| l.trim().parse::<usize>().ok())
        .map(|index| Gpu {
            index,
            id: index.to_string(),
        })
        .collect()
}

/// The GPUs this process may use: those of `CUDA_VISIBLE_DEVICES` when it is set (possibly
/// none), else those `nvidia-smi` lists; `None` when neither says anything.
pub fn detect_gpus() -> Option<Vec<Gpu>> {
    if let Ok(visible) = std::env::var("CUDA_VISIBLE_DEVICES") {
        return Some(parse_visible_devices(&visible));
    }
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=index", "--format=csv,noheader"])
        .stderr(Stdio::null())
        .output();
    match out {
        Ok(out) if out.status.success() => {
            Some(parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout)))
        }
        _ => None,
    }
}

/// The GPUs `--gpus 0,1` asks for (each once), among `available` (from [`detect_gpus`]). When
/// nothing is known (`None`: no `CUDA_VISIBLE_DEVICES`, no `nvidia-smi`), indices are taken as
/// physical ones, unchecked.
pub fn pick_gpus(requested: &[usize], available: Option<&[Gpu]>) -> Result<Vec<Gpu>> {
    let mut picked: Vec<Gpu> = Vec::new();
    for &index in requested {
        if picked.iter().any(|g| g.index == index) {
            continue;
        }
        let gpu = match available {
            None => Gpu {
                index,
                id: index.to_string(),
            },
            Some(available) => available
                .iter()
                .find(|g| g.index == index)
                .cloned()
                .ok_or_else(|| {
                    let seen: Vec<String> = available.iter().map(|g| g.index.to_string()).collect();
                    Error::NoSuchGpu {
                        index,
                        available: if seen.is_empty() {
                            "none".into()
                        } else {
                            seen.join(",")
                        },
                    }
                })?,
        };
        picked.push(gpu);
    }
    Ok(picked)
}

/// `jobs_per_gpu` slots on each GPU, GPU by GPU.
pub fn gpu_slots(gpus: &[Gpu], jobs_per_gpu: usize) -> Vec<Slot> {
    gpus.iter()
        .flat_map(|g| std::iter::repeat_n(Slot::Gpu(g.clone()), jobs_per_gpu.max(1)))
        .collect()
}

/// Runs `exe check_args… --device cuda:0` once per GPU among `slots`, pinned as a job would be,
/// all at once, each within `timeout`. An error names every GPU that failed, with the last lines
/// its check wrote; CPU slots are not checked.
pub async fn check_gpus(
    exe: &Path,
    check_args: &[String],
    slots: &[Slot],
    timeout: Duration,
) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    let mut checks = tokio::task::JoinSet::new();
    for slot in slots {
        if *slot == Slot::Cpu || !seen.insert(slot.to_string()) {
            continue;
        }
        let mut cmd = tokio::process::Command::new(exe);
        cmd.args(check_args)
            .arg("--device")
            .arg(slot.child_device().to_string())
            .env("CUDA_VISIBLE_DEVICES", slot.child_visible_devices())
            .env_remove("CG_DB")
            .env_remove("PGPASSWORD")
            .env_remove("PGPASSFILE")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let name = slot.to_string();
        checks.spawn(async move {
            let detail = match tokio::time::timeout(timeout, cmd.output()).await {
                Err(_) => format!("its device check took longer than {} s", timeout.as_secs()),
                Ok(Err(e)) => format!("cannot start its device check: {e}"),
                Ok(Ok(out)) if out.status.success() => return None,
                Ok(Ok(out)) => {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    let lines: Vec<&str> =
                        stderr.lines().filter(|l| !l.trim().is_empty()).collect();
                    let last = lines[lines.len().saturating_sub(5)..].join("\n  ");
                    format!("its device check failed ({}):\n  {last}", out.status)
                }
            };
            Some((name, detail))
        });
    }
    let mut failed = Vec::new();
    while let Some(done) = checks.join_next().await {
        if let Ok(Some(failure)) = done {
            failed.push(failure);
        }
    }
    failed.sort();
    match failed.as_slice() {
        [] => Ok(()),
        [(device, detail)] => Err(Error::DeviceCheck {
            device: device.clone(),
            detail: detail.clone(),
        }),
        many => Err(Error::DeviceCheck {
            device: many
                .iter()
                .map(|(d, _)| d.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            detail: many
                .iter()
                .map(|(d, detail)| format!("\n{d}: {detail}"))
                .collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(gpus: &[Gpu]) -> Vec<(usize, &str)> {
        gpus.iter().map(|g| (g.index, g.id.as_str())).collect()
    }

    #[test]
    fn visible_devices_are_read_as_cuda_reads_them() {
        let cases: &[(&str, &[(usize, &str)])] = &[
            ("0", &[(0, "0")]),
            ("2,3", &[(0, "2"), (1, "3")]),
            (" 1 , 0 ", &[(0, "1"), (1, "0")]),
            ("GPU-8e1c,MIG-77", &[(0, "GPU-8e1c"), (1, "MIG-77")]),
            ("", &[]),
            ("-1", &[]),
            ("1,-1,2", &[(0, "1")]),
            ("0,,1", &[(0, "0")]),
        ];
        for (value, want) in cases {
            assert_eq!(ids(&parse_visible_devices(value)), *want, "{value:?}");
        }
    }

    #[test]
    fn nvidia_smi_lines_are_indices() {
        assert_eq!(ids(&parse_nvidia_smi("0\n1\n")), [(0, "0"), (1, "1")]);
        assert_eq!(ids(&parse_nvidia_smi("")), []);
        assert_eq!(
            ids(&parse_nvidia_smi("No devices were found\n")),
            [] as [(usize, &str); 0]
        );
    }

    #[test]
    fn picked_gpus_keep_their_pinning_id() {
        let visible = parse_visible_devices("4,GPU-ab");
        assert_eq!(
            ids(&pick_gpus(&[1, 0, 1], Some(&visible)).unwrap()),
            [(1, "GPU-ab"), (0, "4")]
        );
        let err = pick_gpus(&[2], Some(&visible)).unwrap_err().to_string();
        assert!(err.contains("GPU 2") && err.contains("0,1"), "{err}");
        assert_eq!(ids(&pick_gpus(&[3], None).unwrap()), [(3, "3")]);
        // CUDA_VISIBLE_DEVICES=-1 hides every GPU: asking for one is an error, not GPU 0.
        let err = pick_gpus(&[0], Some(&parse_visible_devices("-1")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sees GPUs none"), "{err}");
    }

    #[test]
    fn slots_pack_jobs_per_gpu_and_pin_children() {
        let slots = gpu_slots(&parse_visible_devices("5,6"), 2);
        let names: Vec<String> = slots.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            ["cuda:0 (5)", "cuda:0 (5)", "cuda:1 (6)", "cuda:1 (6)"]
        );
        assert!(
            slots
                .iter()
                .all(|s| s.child_device() == DeviceSpec::Cuda(0))
        );
        assert_eq!(slots[2].child_visible_devices(), "6");
        assert_eq!(Slot::Cpu.child_visible_devices(), "");
        assert_eq!(Slot::Cpu.child_device(), DeviceSpec::Cpu);
        assert_eq!(gpu_slots(&parse_nvidia_smi("0\n"), 0).len(), 1);
    }
}
