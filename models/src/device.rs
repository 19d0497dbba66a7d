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
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(n) => {
                if !cfg!(feature = "cuda") {
                    return Err(Error::Config(format!(
                        "device cuda:{n}: this build has no CUDA support (build with `--features cuda`)"
                    )));
                }
                Device::new_cuda(n)
                    .map_err(|e| Error::Config(format!("device cuda:{n} cannot be opened: {e}")))
            }
            Self::Auto => {
                if cfg!(feature = "cuda")
                    && candle_core::utils::cuda_is_available()
                    && let Ok(d) = Device::new_cuda(0)
                {
                    return Ok(d);
                }
                Ok(Device::Cpu)
            }
        }
    }
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
        if !cfg!(feature = "cuda") {
            let e = DeviceChoice::Cuda(0).open().unwrap_err().to_string();
            assert!(e.contains("--features cuda"), "{e}");
        }
    }
}
