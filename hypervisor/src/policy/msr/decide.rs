//! One RDMSR or WRMSR decided by the table, and the MSR bitmap derived from it.

use super::table::{Check, DebugCtl, Efer, Kind, Msr, Needs, Value, VmcsMsr, Write, MSRS};
use crate::vmx::checks::is_canonical;

/// Facts about this vCPU the policy depends on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsrEnv {
    /// "Enable RDTSCP" is set (TSC_AUX exists).
    pub rdtscp: bool,
    /// EFER is switched by the VMCS; otherwise the guest runs on the host's EFER
    /// and a write may change only SCE, in the host's register.
    pub load_efer: bool,
    /// PAT is switched by the VMCS; otherwise no write may change it.
    pub load_pat: bool,
    /// DEBUGCTL is switched by the VMCS ("save/load debug controls"); otherwise
    /// only 0 may be written.
    pub debug_controls: bool,
    /// What MSR_PLATFORM_INFO reads.
    pub platform_info: u64,
}

impl MsrEnv {
    /// MSR_PLATFORM_INFO from the host's CPUID leaf 0x16 EAX (base frequency in
    /// MHz; 0 if the leaf does not exist): ratio = MHz / 100 in bits 15:8.
    pub fn platform_info_from_base_mhz(mhz: u32) -> u64 {
        u64::from((mhz / 100).min(0xff)) << 8
    }
}

/// The refusal: #GP(0) in the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpFault;

/// What the exit handler does for an RDMSR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOp {
    /// Return this value.
    Value(u64),
    /// Return this VMCS guest field.
    Vmcs(VmcsMsr),
    /// Return the host MSR of the same index (a pass-through MSR, on a CPU where
    /// the access exited anyway, or EFER/PAT without VMCS switching).
    Host,
}

/// What the exit handler does for a WRMSR the policy accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOp {
    /// Store into this VMCS guest field.
    Vmcs(VmcsMsr, u64),
    /// Write the host MSR of the same index (pass-through MSR whose access exited).
    Host(u64),
    /// Nothing to do.
    Ignore,
}

/// The row for `index`, if the guest's CPU has that MSR.
pub fn lookup(index: u32, env: &MsrEnv) -> Option<&'static Msr> {
    let i = MSRS.binary_search_by_key(&index, |m| m.index).ok()?;
    let m = MSRS.get(i)?;
    match m.needs {
        Needs::Always => Some(m),
        Needs::Rdtscp if env.rdtscp => Some(m),
        Needs::Rdtscp => None,
    }
}

/// The RDMSR policy.
pub fn read(index: u32, env: &MsrEnv) -> Result<ReadOp, GpFault> {
    let m = lookup(index, env).ok_or(GpFault)?;
    Ok(match m.kind {
        Kind::PassThrough { .. } | Kind::WriteChecked { .. } | Kind::ReadThrough => ReadOp::Host,
        Kind::VmcsPassThrough(f, _) => ReadOp::Vmcs(f),
        Kind::Vmcs(VmcsMsr::Efer, _) if !env.load_efer => ReadOp::Host,
        Kind::Vmcs(VmcsMsr::Pat, _) if !env.load_pat => ReadOp::Host,
        Kind::Vmcs(VmcsMsr::DebugCtl, _) if !env.debug_controls => ReadOp::Value(0),
        Kind::Vmcs(f, _) => ReadOp::Vmcs(f),
        Kind::Emulated(Value::Const(v), _) => ReadOp::Value(v),
        Kind::Emulated(Value::PlatformInfo, _) => ReadOp::Value(env.platform_info),
    })
}

/// Whether `value` passes `check` for a write over `current`.
fn valid(check: Check, value: u64, current: u64) -> bool {
    match check {
        Check::Any => true,
        Check::Canonical => is_canonical(value),
        Check::Low32 => value >> 32 == 0,
        Check::Efer => {
            // Every bit known, and the paging mode (LME, NXE) unchanged: only SCE
            // may change, and LMA is the CPU's.
            let (Some(new), old) = (Efer::from_bits(value), Efer::from_bits_retain(current)) else {
                return false;
            };
            let fixed = Efer::LME | Efer::NXE;
            new & fixed == old & fixed
        }
        Check::Pat => value
            .to_le_bytes()
            .iter()
            .all(|&t| matches!(t, 0 | 1 | 4 | 5 | 6 | 7)),
        Check::DebugCtl => DebugCtl::from_bits(value).is_some(),
    }
}

/// The WRMSR policy. `current` gives the value the guest would read now (called
/// only when the decision depends on it).
pub fn write(
    index: u32,
    value: u64,
    current: impl FnOnce() -> u64,
    env: &MsrEnv,
) -> Result<WriteOp, GpFault> {
    let m = lookup(index, env).ok_or(GpFault)?;
    match m.kind {
        Kind::PassThrough { check, .. } | Kind::WriteChecked { check, .. } => {
            if valid(check, value, 0) {
                Ok(WriteOp::Host(value))
            } else {
                Err(GpFault)
            }
        }
        Kind::ReadThrough => Err(GpFault),
        Kind::VmcsPassThrough(f, check) | Kind::Vmcs(f, check) => {
            let cur = current();
            if !valid(check, value, cur) {
                return Err(GpFault);
            }
            // LMA is read-only: keep the current one.
            let value = match f {
                VmcsMsr::Efer => (value & !Efer::LMA.bits()) | (cur & Efer::LMA.bits()),
                _ => value,
            };
            let switched = match f {
                VmcsMsr::Efer => env.load_efer,
                VmcsMsr::Pat => env.load_pat,
                VmcsMsr::DebugCtl => env.debug_controls,
                _ => true,
            };
            if switched {
                Ok(WriteOp::Vmcs(f, value))
            } else if f == VmcsMsr::Efer {
                // The guest runs on the host's EFER. The check above leaves only
                // SCE free to change, and the host never executes SYSCALL, so the
                // guest may flip it in the shared register.
                Ok(WriteOp::Host(value))
            } else if value == cur {
                // The guest shares the host's register: only a no-op write is safe.
                Ok(WriteOp::Ignore)
            } else {
                Err(GpFault)
            }
        }
        Kind::Emulated(v, w) => match w {
            Write::Refuse => Err(GpFault),
            Write::Ignore => Ok(WriteOp::Ignore),
            Write::SameValue => {
                let cur = match v {
                    Value::Const(c) => c,
                    Value::PlatformInfo => env.platform_info,
                };
                if value == cur {
                    Ok(WriteOp::Ignore)
                } else {
                    Err(GpFault)
                }
            }
        },
    }
}

/// For the MSR bitmap: every `(index, read passes, write passes)` whose access
/// does not exit. Every other bit of the bitmap is 1.
pub fn bitmap_passes(env: &MsrEnv) -> impl Iterator<Item = (u32, bool, bool)> + '_ {
    MSRS.iter().filter_map(move |m| {
        lookup(m.index, env)?;
        match m.kind {
            Kind::PassThrough { .. } | Kind::VmcsPassThrough(..) => Some((m.index, true, true)),
            Kind::ReadThrough | Kind::WriteChecked { .. } => Some((m.index, true, false)),
            _ => None,
        }
    })
}

/// Where `index`'s bit is in the 4-KiB MSR bitmap (SDM 25.6.9): `(byte, bit)`, or
/// `None` for an index outside the two ranges the bitmap covers (such accesses
/// always exit).
pub fn bitmap_position(index: u32, write: bool) -> Option<(usize, u8)> {
    let (base, off) = match index {
        0..=0x1fff => (0, index),
        0xc000_0000..=0xc000_1fff => (1024, index - 0xc000_0000),
        _ => return None,
    };
    let base = base + if write { 2048 } else { 0 };
    Some((base + (off / 8) as usize, (off % 8) as u8))
}

/// The pass-through MSRs to reset before a domain's first instruction, with their
/// initial values (they keep whatever was last written otherwise).
pub fn initial_values(env: &MsrEnv) -> impl Iterator<Item = (u32, u64)> + '_ {
    MSRS.iter().filter_map(move |m| match m.kind {
        Kind::PassThrough { initial, .. } | Kind::WriteChecked { initial, .. } => {
            lookup(m.index, env).map(|_| (m.index, initial))
        }
        _ => None,
    })
}
