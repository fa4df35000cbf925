//! The `libtorch` backend: burn's LibTorch backend (tch) on the CPU or a CUDA device. Which libtorch
//! the process loaded is read from its memory map, so messages name the real one. LibTorch errors
//! (out of memory among them) surface as panics inside burn-tch; they are turned into errors here.

use cg_core::RunResult;

use crate::DeviceSpec;
use crate::train::{Observer, Prepared, TrainOptions};
use crate::{Error, Result};

#[cfg(feature = "libtorch")]
mod imp {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::path::PathBuf;
    use std::sync::Once;

    use burn::backend::libtorch::LibTorchDevice;
    use burn::backend::{Autodiff, LibTorch};

    use super::*;
    use crate::train::train_on;

    /// The training backend: burn's LibTorch under autodiff.
    pub(crate) type B = Autodiff<LibTorch<f32>>;

    fn tch_device(device: DeviceSpec) -> LibTorchDevice {
        match device {
            DeviceSpec::Cpu => LibTorchDevice::Cpu,
            DeviceSpec::Cuda(n) => LibTorchDevice::Cuda(n),
        }
    }

    /// LibTorch's intra- and inter-op threads follow the process's CPU budget (rayon's pool:
    /// `--threads`, or `RAYON_NUM_THREADS` that `--threads-per-job` sets), once per process.
    pub fn init_threads() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let n = rayon::current_num_threads().max(1) as i32;
            tch::set_num_threads(n);
            // Refused (a panic in tch) once inter-op work has started; then it keeps its count.
            let _ = catch_unwind(|| tch::set_num_interop_threads(n));
        });
    }

    /// The folder of the libtorch this process loaded, from its memory map.
    pub fn loaded_lib() -> Option<PathBuf> {
        let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
        maps.lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .find(|p| p.ends_with("/libtorch_cpu.so"))
            .and_then(|p| PathBuf::from(p).parent().map(|d| d.to_path_buf()))
    }

    /// The torch version beside a `torch/lib` folder (`torch/version.py`).
    pub fn version(lib: &std::path::Path) -> Option<String> {
        let text = std::fs::read_to_string(lib.parent()?.join("version.py")).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("__version__ = "))
            .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
    }

    /// `libtorch VERSION from FOLDER`: the one this process loaded.
    fn library() -> String {
        let lib = loaded_lib().unwrap_or_else(|| PathBuf::from(env!("CG_LIBTORCH_BUILD_LIB")));
        let version = version(&lib).unwrap_or_else(|| "of unknown version".into());
        format!("libtorch {version} from {}", lib.display())
    }

    pub fn describe(device: DeviceSpec) -> String {
        init_threads();
        let threads = tch::get_num_threads();
        format!("{device} ({}, {threads} threads)", library())
    }

    fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown error".into())
    }

    fn failed(device: DeviceSpec, message: String) -> Error {
        Error::Device {
            device: device.to_string(),
            message: format!("LibTorch failed: {message}"),
        }
    }

    pub fn check(device: DeviceSpec) -> Result<()> {
        init_threads();
        if let DeviceSpec::Cuda(n) = device {
            let count = tch::Cuda::device_count().max(0) as usize;
            if count <= n {
                return Err(Error::Device {
                    device: device.to_string(),
                    message: format!(
                        "{} sees {count} CUDA device(s): check the NVIDIA driver (libcuda.so.1, \
                         nvidia-smi), CUDA_VISIBLE_DEVICES, and that this libtorch is a CUDA build \
                         (libtorch_cuda.so beside libtorch_cpu.so)",
                        library()
                    ),
                });
            }
        }
        let d = tch_device(device);
        let probe = catch_unwind(|| {
            let t = burn::tensor::Tensor::<LibTorch<f32>, 1>::ones([4], &d);
            let sum: f32 = t.sum().into_scalar();
            sum
        });
        match probe {
            Ok(4.0) => Ok(()),
            Ok(sum) => Err(failed(device, format!("a sum of four ones gave {sum}"))),
            Err(p) => Err(failed(device, panic_text(p))),
        }
    }

    pub fn run(
        prep: &Prepared,
        device: DeviceSpec,
        opts: &TrainOptions,
        observer: &mut dyn Observer,
    ) -> Result<RunResult> {
        guarded(device, |d| Ok(train_on::<B>(prep, d, opts, observer)?.0))
    }

    /// Runs `work` on the device once it is checked; a LibTorch panic inside (out of memory
    /// among them) becomes an error naming the device.
    pub(crate) fn guarded<T>(
        device: DeviceSpec,
        work: impl FnOnce(&LibTorchDevice) -> Result<T>,
    ) -> Result<T> {
        check(device)?;
        let d = tch_device(device);
        match catch_unwind(AssertUnwindSafe(|| work(&d))) {
            Ok(r) => r,
            Err(p) => Err(failed(device, panic_text(p))),
        }
    }
}

#[cfg(not(feature = "libtorch"))]
mod imp {
    use super::*;

    fn missing(device: DeviceSpec) -> Error {
        Error::Device {
            device: device.to_string(),
            message: "this build of cg has no LibTorch support".into(),
        }
    }

    pub fn describe(device: DeviceSpec) -> String {
        format!("{device} (libtorch: not in this build)")
    }

    pub fn check(device: DeviceSpec) -> Result<()> {
        Err(missing(device))
    }

    pub fn run(
        _prep: &Prepared,
        device: DeviceSpec,
        _opts: &TrainOptions,
        _observer: &mut dyn Observer,
    ) -> Result<RunResult> {
        Err(missing(device))
    }
}

pub use imp::*;
