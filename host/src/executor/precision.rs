//! The numeric precision a model runs in, which ones a device runs natively, and the
//! choice `auto` makes among those a task has validated.
//!
//! A reduced-precision model is a copy of the module with its floating parameters and
//! buffers cast (LibTorch's CPU autocast is not reachable through tch, so one mechanism
//! serves both devices); its floating inputs are cast on the way in and its floating
//! outputs back to f32 on the way out, so plugins see f32 either way.

use std::fmt;
use tch::{Device, Kind};

/// A model's precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Precision {
    /// 32-bit floats (every model's own precision).
    Fp32,
    /// bfloat16: f32's range, 8 bits of mantissa.
    Bf16,
    /// IEEE half: 10 bits of mantissa, range to 65504.
    Fp16,
}

impl Precision {
    /// Parses `fp32`, `bf16` or `fp16` (and the `float32`, `bfloat16`, `float16`, `half`
    /// spellings); `None` for anything else.
    pub fn parse(name: &str) -> Option<Precision> {
        match name.trim().to_ascii_lowercase().as_str() {
            "fp32" | "float32" | "float" => Some(Precision::Fp32),
            "bf16" | "bfloat16" => Some(Precision::Bf16),
            "fp16" | "float16" | "half" => Some(Precision::Fp16),
            _ => None,
        }
    }

    /// The tensor kind of the model's weights and inputs.
    pub fn kind(self) -> Kind {
        match self {
            Precision::Fp32 => Kind::Float,
            Precision::Bf16 => Kind::BFloat16,
            Precision::Fp16 => Kind::Half,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        })
    }
}

/// The CPU's feature flags (Linux `/proc/cpuinfo`, read once; empty elsewhere).
fn cpu_flags() -> &'static [String] {
    static FLAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    FLAGS.get_or_init(|| {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        info.lines()
            .find(|l| l.starts_with("flags"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, f)| f.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    })
}

/// The precisions `device` runs at full speed: every one on CUDA; on a CPU, fp32, plus
/// bf16 with AVX-512 BF16 or AMX-BF16 and fp16 with AVX-512 FP16 or AMX-FP16. Without
/// them LibTorch emulates the type (deepbet's 256³ pass in bf16 on an AVX2-only EPYC:
/// 168 s against 2.3 s in fp32).
pub(super) fn native(device: Device) -> Vec<Precision> {
    native_with(device, cpu_flags())
}

fn native_with(device: Device, flags: &[String]) -> Vec<Precision> {
    if matches!(device, Device::Cuda(_)) {
        return vec![Precision::Fp32, Precision::Fp16, Precision::Bf16];
    }
    let has = |names: &[&str]| names.iter().any(|n| flags.iter().any(|f| f == n));
    let mut out = vec![Precision::Fp32];
    if has(&["avx512_bf16", "amx_bf16"]) {
        out.push(Precision::Bf16);
    }
    if has(&["avx512_fp16", "amx_fp16"]) {
        out.push(Precision::Fp16);
    }
    out
}

/// The precision to run: `requested` (`auto` or a name) among the task's `allowed` ones
/// (those it validated against fp32; fp32 is always allowed) on a device running
/// `native`. `auto` takes bf16, then fp16, on a CPU that runs them natively and fp32
/// otherwise, CUDA included: deepbet's 256³ pass on an H100 took 26 ms in fp32 and 53 ms
/// under fp16 autocast (shared/reference/gpu.md), so reduced precision on a GPU is asked
/// for by name until measured faster. A named precision the task did not validate, or the
/// device would emulate, is refused with the reason.
pub(super) fn resolve(
    requested: &str,
    allowed: &[Precision],
    native: &[Precision],
    device: Device,
) -> Result<Precision, String> {
    let usable = |p: &Precision| *p == Precision::Fp32 || allowed.contains(p) && native.contains(p);
    if requested.trim().eq_ignore_ascii_case("auto") || requested.trim().is_empty() {
        if matches!(device, Device::Cuda(_)) {
            return Ok(Precision::Fp32);
        }
        return Ok([Precision::Bf16, Precision::Fp16]
            .into_iter()
            .find(|p| usable(p))
            .unwrap_or(Precision::Fp32));
    }
    let p = Precision::parse(requested)
        .ok_or_else(|| format!("precision '{requested}' is not one of auto, fp32, bf16, fp16"))?;
    if p != Precision::Fp32 && !allowed.contains(&p) {
        let names: Vec<String> = allowed.iter().map(ToString::to_string).collect();
        return Err(format!(
            "precision {p} is not validated for this task (validated: fp32 {})",
            names.join(" ")
        ));
    }
    if !native.contains(&p) {
        return Err(format!(
            "precision {p} is not native on {} (it would be emulated, many times slower \
             than fp32): the CPU lacks AVX-512/AMX {p} support",
            super::device_name(device)
        ));
    }
    Ok(p)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ALL: [Precision; 3] = [Precision::Fp32, Precision::Bf16, Precision::Fp16];

    #[test]
    fn auto_takes_the_fastest_native_validated_precision() {
        let avx2: Vec<String> = ["avx2", "fma"].map(String::from).to_vec();
        let spr: Vec<String> = ["avx512f", "avx512_bf16", "amx_bf16"]
            .map(String::from)
            .to_vec();
        let cpu = native_with(Device::Cpu, &avx2);
        assert_eq!(cpu, vec![Precision::Fp32]);
        assert_eq!(
            resolve("auto", &ALL, &cpu, Device::Cpu),
            Ok(Precision::Fp32)
        );
        let cpu = native_with(Device::Cpu, &spr);
        assert_eq!(
            resolve("auto", &ALL, &cpu, Device::Cpu),
            Ok(Precision::Bf16)
        );
        assert_eq!(resolve("", &[], &cpu, Device::Cpu), Ok(Precision::Fp32));
        let gpu = native_with(Device::Cuda(0), &[]);
        assert_eq!(
            resolve("auto", &ALL, &gpu, Device::Cuda(0)),
            Ok(Precision::Fp32)
        );
        let fp16_only = native_with(Device::Cpu, &["amx_fp16".to_owned()]);
        let fp16 = [Precision::Fp16];
        assert_eq!(
            resolve("AUTO", &fp16, &fp16_only, Device::Cpu),
            Ok(Precision::Fp16)
        );
    }

    #[test]
    fn named_precisions_need_validation_and_native_support() {
        let cpu = native_with(Device::Cpu, &[]);
        let e = resolve("bf16", &ALL, &cpu, Device::Cpu).unwrap_err();
        assert!(e.contains("not native on cpu"), "{e}");
        let gpu = native_with(Device::Cuda(0), &[]);
        let e = resolve("fp16", &[Precision::Bf16], &gpu, Device::Cuda(0)).unwrap_err();
        assert!(e.contains("not validated"), "{e}");
        assert!(resolve("int8", &ALL, &gpu, Device::Cuda(0)).is_err());
        assert_eq!(
            resolve("half", &ALL, &gpu, Device::Cuda(0)),
            Ok(Precision::Fp16)
        );
        assert_eq!(resolve("fp32", &[], &cpu, Device::Cpu), Ok(Precision::Fp32));
    }
}
