//! Where inference runs: `cpu`, `cuda:N` or `auto`, as a pipeline file names it.

use candle_core::Device;

use crate::error::{Error, Result};

/// A device named in a pipeline file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The CPU (the default).
    #[default]
    Cpu,
    /// CUDA device N (needs a build with the `cuda` feature and a GPU).
    Cuda(usize),
    /// CUDA device 0 where this build has CUDA and a GPU is present, else the CPU.
    Auto,
}

impl DeviceChoice {
    /// Parses `cpu`, `cuda`, `cuda:N` or `auto`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "cpu" => Ok(Self::Cpu),
            "auto" => Ok(Self::Auto),
            "cuda" => Ok(Self::Cuda(0)),
            _ => text
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| {
                    Error::Config(format!(
                        "device `{text}`: expected `cpu`, `cuda:N` (N a GPU ordinal) or `auto`"
                    ))
                }),
        }
    }

    /// The candle device; an error says why CUDA cannot be used.
    pub fn open(self) -> Result<Device> {
        self.open_named().map(|(device, _)| device)
    }

    /// [`Self::open`], with the name of the device opened: `cpu`, `cuda:N`, and for `auto`
    /// which one it took and, where it is the CPU, why (a run on `auto` that falls back to the
    /// CPU says so rather than running slower in silence).
    pub fn open_named(self) -> Result<(Device, String)> {
        match self {
            Self::Cpu => Ok((Device::Cpu, "cpu".into())),
            Self::Cuda(n) => {
                if !cfg!(feature = "cuda") {
                    return Err(Error::Config(format!(
                        "device cuda:{n}: this build has no CUDA support (build with `--features cuda`)"
                    )));
                }
                let device = open_cuda(n)
                    .map_err(|e| Error::Config(format!("device cuda:{n} cannot be opened: {e}")))?;
                Ok((device, format!("cuda:{n}")))
            }
            Self::Auto => {
                let why = if !cfg!(feature = "cuda") {
                    "this build has no CUDA support".to_string()
                } else if !candle_core::utils::cuda_is_available() {
                    "no CUDA device".to_string()
                } else {
                    match open_cuda(0) {
                        Ok(device) => return Ok((device, "cuda:0 (auto)".into())),
                        Err(e) => format!("cuda:0 cannot be opened: {e}"),
                    }
                };
                Ok((Device::Cpu, format!("cpu (auto: {why})")))
            }
        }
    }
}

/// CUDA device `n`, without cudarc's event tracking. With it on, every tensor the device
/// allocates creates two CUDA events and destroys them when it is dropped: four driver calls
/// for each operation's output. cudarc records them only in a context that has made streams of
/// its own, to order those streams; candle's device never makes one (it issues everything on
/// the calling thread's default stream), so the events were made and never used. Without them
/// a GRU batch on an H200 took 8–41 % less in each of three alternating rounds, a linear one
/// 1–12 % (`benches/RESULTS.md`, "The CUDA device without event tracking").
#[cfg_attr(
    feature = "cuda",
    allow(
        unsafe_code,
        reason = "candle's switch for event tracking is an unsafe fn"
    )
)]
fn open_cuda(n: usize) -> candle_core::Result<Device> {
    let device = Device::new_cuda(n)?;
    #[cfg(feature = "cuda")]
    if let Device::Cuda(cuda) = &device
        && !cuda.cuda_stream().context().is_in_multi_stream_mode()
    {
        // SAFETY: the context has made no streams of its own (checked just above; nothing in
        // tickflow makes one), so the events would order nothing: turning them off changes no
        // synchronization.
        unsafe { cuda.disable_event_tracking() }
    }
    Ok(device)
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Auto => f.write_str("auto"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_bad_ones_are_explained() {
        assert_eq!(DeviceChoice::parse("cpu").unwrap(), DeviceChoice::Cpu);
        assert_eq!(
            DeviceChoice::parse("cuda:1").unwrap(),
            DeviceChoice::Cuda(1)
        );
        assert_eq!(DeviceChoice::parse("auto").unwrap(), DeviceChoice::Auto);
        let e = DeviceChoice::parse("gpu").unwrap_err().to_string();
        assert!(e.contains("`gpu`") && e.contains("cuda:N"), "{e}");
        assert!(DeviceChoice::Auto.open().is_ok());
        assert_eq!(DeviceChoice::Cpu.open_named().unwrap().1, "cpu");
        let (device, name) = DeviceChoice::Auto.open_named().unwrap();
        if device.is_cpu() {
            assert!(name.starts_with("cpu (auto: "), "{name}");
        } else {
            assert_eq!(name, "cuda:0 (auto)");
        }
        if !cfg!(feature = "cuda") {
            let e = DeviceChoice::Cuda(0).open().unwrap_err().to_string();
            assert!(e.contains("--features cuda"), "{e}");
            assert_eq!(name, "cpu (auto: this build has no CUDA support)");
        }
    }
}
