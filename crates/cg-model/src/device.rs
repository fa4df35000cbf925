//! Choosing a backend at run time: `cpu` (burn's flex backend) or `cuda:N` (with the `cuda` feature).

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
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            _ => {
                let n = s.strip_prefix("cuda:").ok_or_else(bad)?;
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

/// The burn version this binary was built against.
pub fn burn_version() -> &'static str {
    "0.21.0"
}

/// Trains a prepared run on the chosen device. Returns the result with `provenance.device` filled in.
pub fn run(
    prep: &Prepared,
    device: DeviceSpec,
    opts: &TrainOptions,
    observer: &mut dyn Observer,
) -> Result<RunResult> {
    let mut result = match device {
        DeviceSpec::Cpu => {
            type B = burn::backend::Autodiff<burn::backend::Flex>;
            train_on::<B>(prep, &Default::default(), opts, observer)?.0
        }
        DeviceSpec::Cuda(n) => run_cuda(prep, n, opts, observer)?,
    };
    result.provenance.device = device_name(device);
    result.provenance.burn_version = burn_version().to_string();
    Ok(result)
}

/// A human-readable name of the device, for provenance.
pub fn device_name(device: DeviceSpec) -> String {
    match device {
        DeviceSpec::Cpu => format!("cpu (flex, {} threads)", rayon::current_num_threads()),
        DeviceSpec::Cuda(n) => format!("cuda:{n}"),
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
    check_device(DeviceSpec::Cuda(n))?;
    let device = CudaDevice::new(n);
    Ok(train_on::<B>(prep, &device, opts, observer)?.0)
}

/// Starts the backend on `device` and computes one small sum there. On CUDA that loads the driver
/// and NVRTC and compiles a kernel, so a machine that cannot train on the GPU says so at once,
/// with what to check, instead of inside a job's first step.
pub fn check_device(device: DeviceSpec) -> Result<()> {
    match device {
        DeviceSpec::Cpu => {
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
        DeviceSpec::Cuda(n) => check_cuda(n),
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
