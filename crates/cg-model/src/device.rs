//! Choosing a backend and a device at run time. Backends: `flex` (burn's pure-Rust CPU backend),
//! `cubecl` (burn's CUDA backend, `cuda` feature) and `libtorch` (burn's LibTorch backend, CPU and
//! CUDA, `libtorch` feature); devices: `cpu` or `cuda:N`.

use std::fmt;
use std::str::FromStr;

use cg_core::RunResult;

use crate::train::{Observer, Prepared, TrainOptions, train_on};
use crate::{Error, Result};

/// Where a run executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Device {
            device: s.to_string(),
            message: "expected `cpu`, `cuda` or `cuda:N`".into(),
        };
        // Names are taken in any case (`CPU`, `Cuda:1`).
        let lower = s.to_ascii_lowercase();
        match lower.as_str() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            _ => {
                let n = lower.strip_prefix("cuda:").ok_or_else(bad)?;
                n.parse().map(DeviceSpec::Cuda).map_err(|_| bad())
            }
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// The training backend. `Auto` is libtorch when compiled in, else flex on the CPU and cubecl on CUDA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    #[default]
    Auto,
    Flex,
    Cubecl,
    Libtorch,
}

impl FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        // Names are taken in any case (`LIBTORCH`, `Flex`).
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(BackendKind::Auto),
            "flex" => Ok(BackendKind::Flex),
            "cubecl" => Ok(BackendKind::Cubecl),
            "libtorch" => Ok(BackendKind::Libtorch),
            _ => Err(Error::Backend {
                backend: s.escape_debug().to_string(),
                message: "expected `flex`, `cubecl`, `libtorch` or `auto`".into(),
            }),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Auto => "auto",
            BackendKind::Flex => "flex",
            BackendKind::Cubecl => "cubecl",
            BackendKind::Libtorch => "libtorch",
        })
    }
}

impl BackendKind {
    /// Whether this build of cg has the backend.
    pub fn compiled(self) -> bool {
        match self {
            BackendKind::Auto | BackendKind::Flex => true,
            BackendKind::Cubecl => cfg!(feature = "cuda"),
            BackendKind::Libtorch => cfg!(feature = "libtorch"),
        }
    }

    /// The backend that runs on `device`: `Auto` resolved, and a clear error for a backend this
    /// build lacks or one that cannot use the device.
    pub fn resolve(self, device: DeviceSpec) -> Result<BackendKind> {
        let chosen = match (self, device) {
            (BackendKind::Auto, _) if cfg!(feature = "libtorch") => BackendKind::Libtorch,
            (BackendKind::Auto, DeviceSpec::Cpu) => BackendKind::Flex,
            (BackendKind::Auto, DeviceSpec::Cuda(_)) => BackendKind::Cubecl,
            (b, _) => b,
        };
        let refuse = |message: String| {
            Err(Error::Device {
                device: device.to_string(),
                message,
            })
        };
        match (chosen, device) {
            (BackendKind::Flex, DeviceSpec::Cuda(_)) => refuse(
                "the flex backend runs on the CPU only; use --backend cubecl or libtorch".into(),
            ),
            (BackendKind::Cubecl, DeviceSpec::Cpu) => refuse(
                "the cubecl backend runs on CUDA devices only; use --backend flex or libtorch"
                    .into(),
            ),
            (BackendKind::Cubecl, _) if !chosen.compiled() => refuse(
                "this build of cg has no CUDA support; rebuild with `--features cuda`".into(),
            ),
            (BackendKind::Libtorch, _) if !chosen.compiled() => refuse(
                "this build of cg has no LibTorch support; run `eval \"$(scripts/libtorch.sh)\"` \
                 and rebuild with `--features libtorch`"
                    .into(),
            ),
            _ => Ok(chosen),
        }
    }
}

/// The burn version this binary was built against.
pub fn burn_version() -> &'static str {
    "0.21.0"
}

/// Trains a prepared run with the chosen backend on the chosen device. Returns the result with
/// `provenance.device` and `provenance.backend` filled in.
pub fn run(
    prep: &Prepared,
    backend: BackendKind,
    device: DeviceSpec,
    opts: &TrainOptions,
    observer: &mut dyn Observer,
) -> Result<RunResult> {
    let backend = backend.resolve(device)?;
    let mut result = match (backend, device) {
        (BackendKind::Libtorch, _) => crate::libtorch::run(prep, device, opts, observer)?,
        (_, DeviceSpec::Cpu) => {
            type B = burn::backend::Autodiff<burn::backend::Flex>;
            train_on::<B>(prep, &Default::default(), opts, observer)?.0
        }
        (_, DeviceSpec::Cuda(n)) => run_cuda(prep, n, opts, observer)?,
    };
    result.provenance.device = device_name(backend, device);
    result.provenance.backend = backend.to_string();
    result.provenance.burn_version = burn_version().to_string();
    Ok(result)
}

/// A human-readable name of the backend on the device, for provenance and messages.
pub fn device_name(backend: BackendKind, device: DeviceSpec) -> String {
    match (backend.resolve(device), device) {
        (Ok(BackendKind::Libtorch), _) => crate::libtorch::describe(device),
        (Ok(_), DeviceSpec::Cpu) => {
            format!("cpu (flex, {} threads)", rayon::current_num_threads())
        }
        (_, DeviceSpec::Cuda(n)) => format!("cuda:{n} (cubecl)"),
        (Err(_), DeviceSpec::Cpu) => "cpu".into(),
    }
}

#[cfg(feature = "cuda")]
fn run_cuda(
    prep: &Prepared,
    n: usize,
    opts: &TrainOptions,
    observer: &mut dyn Observer,
) -> Result<RunResult> {
    use burn::backend::cuda::CudaDevice;
    type B = burn::backend::Autodiff<burn::backend::Cuda>;
    check_device(BackendKind::Cubecl, DeviceSpec::Cuda(n))?;
    let device = CudaDevice::new(n);
    Ok(train_on::<B>(prep, &device, opts, observer)?.0)
}

/// Starts the backend on `device` and computes one small sum there. On CUDA that loads the driver
/// and NVRTC (cubecl) or the wheel's CUDA runtime (libtorch), so a machine that cannot train on the
/// GPU says so at once, with what to check, instead of inside a job's first step.
pub fn check_device(backend: BackendKind, device: DeviceSpec) -> Result<()> {
    match (backend.resolve(device)?, device) {
        (BackendKind::Libtorch, _) => crate::libtorch::check(device),
        (_, DeviceSpec::Cpu) => {
            let t = burn::tensor::Tensor::<burn::backend::Flex, 1>::ones([4], &Default::default());
            let sum: f32 = t.sum().into_scalar();
            if sum == 4.0 {
                Ok(())
            } else {
                Err(Error::Device {
                    device: device.to_string(),
                    message: format!("a sum of four ones gave {sum}"),
                })
            }
        }
        (_, DeviceSpec::Cuda(n)) => check_cuda(n),
    }
}

#[cfg(feature = "cuda")]
fn check_cuda(n: usize) -> Result<()> {
    // The CUDA driver and NVRTC are loaded on first use; a missing library panics inside cudarc.
    let probe = std::panic::catch_unwind(|| {
        let device = burn::backend::cuda::CudaDevice::new(n);
        let t = burn::tensor::Tensor::<burn::backend::Cuda, 1>::ones([4], &device);
        let sum: f32 = t.sum().into_scalar();
        sum
    });
    let message = match probe {
        Ok(sum) if sum == 4.0 => return Ok(()),
        Ok(sum) => format!("a sum of four ones gave {sum}"),
        Err(p) => p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown error".into()),
    };
    Err(Error::Device {
        device: format!("cuda:{n}"),
        message: format!(
            "CUDA failed: {message}. If a library could not be loaded or a kernel not compiled, \
             check the NVIDIA driver (libcuda.so.1), NVRTC (libnvrtc.so.13 on LD_LIBRARY_PATH) \
             and CUDA_PATH (headers for NVRTC)"
        ),
    })
}

#[cfg(not(feature = "cuda"))]
fn check_cuda(n: usize) -> Result<()> {
    Err(Error::Device {
        device: format!("cuda:{n}"),
        message: "this build of cg has no CUDA support; rebuild with `--features cuda`".into(),
    })
}

#[cfg(not(feature = "cuda"))]
fn run_cuda(
    _prep: &Prepared,
    n: usize,
    _opts: &TrainOptions,
    _observer: &mut dyn Observer,
) -> Result<RunResult> {
    Err(check_cuda(n).expect_err("a build without CUDA cannot start it"))
}
