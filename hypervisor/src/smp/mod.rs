//! # Several CPUs: the decisions of bring-up
//!
//! Bringing up the application processors (the CPUs other than the boot CPU)
//! is hardware work (`arch::smp`: the real-mode trampoline, INIT-SIPI-SIPI) and
//! a sequence (`bringup`, bare metal only); what that sequence decides is here,
//! pure and host-tested:
//!
//! - where the trampoline goes ([`choose_trampoline`]): a page of usable RAM
//!   below 1 MiB (a start-up IPI names a page below 1 MiB) that holds no boot
//!   data or module;
//! - whether an application processor's VMX capabilities agree with the boot
//!   CPU's ([`caps_mismatch`]): a vCPU must be able to run on any CPU with the
//!   controls derived once, so a CPU that differs is left out; and its CPUID
//!   features ([`features_mismatch`]), from which a guest's CPUID is built;
//! - whether its TSC is synchronised with the boot CPU's ([`tsc_check`]): the
//!   guest's time (`vcpu_time_info`) is computed from the TSC of the CPU it
//!   runs on.
//!
//! [`tlb`] decides which CPUs a TLB flush must reach, for when vCPUs run on
//! several CPUs.
//!
//! Until vCPUs are placed on them, the application processors that come up
//! park in `cli; hlt` and take no guest work.

#[cfg(target_os = "none")]
pub mod bringup;
pub mod remote;
pub mod tlb;

use crate::addr::{MachineAddr, PAGE_SIZE};
use crate::boot::{MachineRange, MemRegion, RegionKind};
use crate::vmx::caps::VmxCaps;
use core::fmt;

/// The lowest page the trampoline may use: below it are the real-mode IVT,
/// the BIOS data area and the boot sector's area, which firmware reports as
/// usable but which some loaders still hold.
pub const TRAMPOLINE_LOW: u64 = 0x8000;
/// The end of conventional memory: a start-up IPI's vector is a page number
/// below 1 MiB, and the EBDA and the BIOS live from here up.
pub const TRAMPOLINE_HIGH: u64 = 0xa_0000;

/// The page for the real-mode trampoline: the lowest page in
/// `[TRAMPOLINE_LOW, TRAMPOLINE_HIGH)` that lies inside one usable region of
/// the memory map and overlaps none of `reserved` (boot data, modules).
pub fn choose_trampoline(regions: &[MemRegion], reserved: &[MachineRange]) -> Option<MachineAddr> {
    let mut page = TRAMPOLINE_LOW;
    while page + PAGE_SIZE <= TRAMPOLINE_HIGH {
        let r = MachineRange::from_len(page, PAGE_SIZE);
        let usable = regions.iter().any(|m| {
            m.kind == RegionKind::Usable
                && m.range.start.get() <= page
                && page + PAGE_SIZE <= m.range.end.get()
        });
        if usable && !reserved.iter().any(|x| x.overlaps(&r)) {
            return Some(MachineAddr::new(page));
        }
        page += PAGE_SIZE;
    }
    None
}

/// Where a domain runs (`index`: its place in boot order, from 0): the CPU its
/// `keel.cpu=` names if that one is online; otherwise, with `place=spread`, the
/// online CPUs in turn by `index`, else `run_cpu` if online, else CPU 0.
/// `online` lists the online CPUs (CPU 0 always among them). With a reason
/// when a request could not be met.
pub fn place(
    requested: Option<usize>,
    index: usize,
    online: &[usize],
    run_cpu: usize,
    spread: bool,
) -> (usize, Option<&'static str>) {
    let up = |c: usize| online.contains(&c);
    let mut why = None;
    if let Some(c) = requested {
        if up(c) {
            return (c, None);
        }
        why = Some("its keel.cpu= names a CPU that is not online");
    }
    if spread && !online.is_empty() {
        if let Some(&c) = online.get(index % online.len()) {
            return (c, why);
        }
    }
    if up(run_cpu) {
        (run_cpu, why)
    } else {
        (0, why.or(Some("run_cpu= names a CPU that is not online")))
    }
}

/// The first VMX capability in which an application processor differs from the
/// boot CPU, by name; None when they agree in every capability MSR Keel reads.
pub fn caps_mismatch(boot: &VmxCaps, ap: &VmxCaps) -> Option<&'static str> {
    let checks: [(&'static str, bool); 14] = [
        ("IA32_VMX_BASIC", boot.basic == ap.basic),
        ("pin-based controls", boot.pin == ap.pin),
        ("primary processor-based controls", boot.proc == ap.proc),
        ("secondary processor-based controls", boot.proc2 == ap.proc2),
        ("VM-exit controls", boot.exit == ap.exit),
        ("VM-entry controls", boot.entry == ap.entry),
        ("IA32_VMX_MISC", boot.misc == ap.misc),
        ("IA32_VMX_EPT_VPID_CAP", boot.ept_vpid == ap.ept_vpid),
        ("IA32_VMX_CR0_FIXED0", boot.cr0_fixed0 == ap.cr0_fixed0),
        ("IA32_VMX_CR0_FIXED1", boot.cr0_fixed1 == ap.cr0_fixed1),
        ("IA32_VMX_CR4_FIXED0", boot.cr4_fixed0 == ap.cr4_fixed0),
        ("IA32_VMX_CR4_FIXED1", boot.cr4_fixed1 == ap.cr4_fixed1),
        (
            "IA32_VMX_VMCS_ENUM",
            boot.vmcs_max_index == ap.vmcs_max_index,
        ),
        ("the rest of the decoded capabilities", boot == ap),
    ];
    checks.into_iter().find(|(_, same)| !same).map(|(n, _)| n)
}

/// The CPUID words a guest's CPUID is built from (`policy::cpuid` filters
/// these feature bits of the CPU it runs on): an application processor must
/// report the same, or a vCPU would see its features change as it moves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    /// Leaf 0 EAX and leaf 0x8000_0000 EAX: the highest basic and extended leaf.
    pub max_leaves: [u32; 2],
    /// Leaf 1 EAX: family, model, stepping.
    pub signature: u32,
    /// Leaf 1 ECX and EDX.
    pub leaf1: [u32; 2],
    /// Leaf 7 subleaf 0 EBX, ECX and EDX.
    pub leaf7: [u32; 3],
    /// Leaf 0x8000_0001 ECX and EDX.
    pub ext1: [u32; 2],
}

/// Bits that reflect a CPU's current state, not what it can do: leaf 1
/// ECX.OSXSAVE (CR4.OSXSAVE) and EDX.APIC (the local APIC's global enable),
/// leaf 7 ECX.OSPKE (CR4.PKE). The boot CPU has set them by the time an
/// application processor compares; the comparison ignores them.
pub const STATE_BITS_LEAF1: [u32; 2] = [1 << 27, 1 << 9];
/// Leaf 7 ECX.OSPKE.
pub const STATE_BITS_LEAF7_ECX: u32 = 1 << 4;

/// The first CPUID word in which an application processor differs from the
/// boot CPU (the state bits above aside), by name; None when they agree.
pub fn features_mismatch(boot: &CpuFeatures, ap: &CpuFeatures) -> Option<&'static str> {
    let l1 = |f: &CpuFeatures| {
        [
            f.leaf1[0] & !STATE_BITS_LEAF1[0],
            f.leaf1[1] & !STATE_BITS_LEAF1[1],
        ]
    };
    let l7 = |f: &CpuFeatures| [f.leaf7[0], f.leaf7[1] & !STATE_BITS_LEAF7_ECX, f.leaf7[2]];
    let checks: [(&'static str, bool); 5] = [
        ("the highest CPUID leaves", boot.max_leaves == ap.max_leaves),
        (
            "CPUID.1:EAX (family, model, stepping)",
            boot.signature == ap.signature,
        ),
        ("CPUID.1 feature bits", l1(boot) == l1(ap)),
        ("CPUID.7.0 feature bits", l7(boot) == l7(ap)),
        ("CPUID.80000001h feature bits", boot.ext1 == ap.ext1),
    ];
    checks.into_iter().find(|(_, same)| !same).map(|(n, _)| n)
}

/// How long to wait between INIT and the first start-up IPI, in microseconds,
/// for a CPU with CPUID.1:EAX `signature`. The SDM's sequence waits 10 ms;
/// that delay is for the external APICs of old processors, and Intel
/// processors from family 6 model 0xF (Core 2) on leave wait-for-SIPI
/// without it (Linux drops it on them too). Older or unknown ones wait.
pub fn init_wait_us(signature: u32) -> u64 {
    let family = (signature >> 8) & 0xf;
    let ext_family = (signature >> 20) & 0xff;
    let model = ((signature >> 4) & 0xf) | (((signature >> 16) & 0xf) << 4);
    let modern = match family {
        6 => model >= 0xf,
        0xf => ext_family > 0,
        _ => false,
    };
    if modern {
        0
    } else {
        10_000
    }
}

/// One TSC handshake: the boot CPU reads `before`, tells the application
/// processor to read its TSC (`ap`), and reads `after` once it has the answer.
/// With synchronised TSCs the application processor's read happened between the
/// two, so `before <= ap <= after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscSample {
    /// The boot CPU's TSC before it asked.
    pub before: u64,
    /// The application processor's TSC.
    pub ap: u64,
    /// The boot CPU's TSC after the answer arrived.
    pub after: u64,
}

/// What a TSC handshake shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TscSync {
    /// The application processor's TSC lay within the boot CPU's window (the
    /// handshake's round trip, in TSC ticks: the precision of the check).
    InSync {
        /// `after - before`.
        window: u64,
    },
    /// Its TSC was behind the boot CPU's by at least this many ticks.
    Behind(u64),
    /// Its TSC was ahead of the boot CPU's by at least this many ticks.
    Ahead(u64),
}

/// The verdict over several handshakes: the worst one (any skew beats being in
/// sync; a larger skew beats a smaller one; in sync, the widest window).
pub fn tsc_check(samples: &[TscSample]) -> Option<TscSync> {
    let one = |s: &TscSample| {
        if s.ap < s.before {
            TscSync::Behind(s.before - s.ap)
        } else if s.ap > s.after {
            TscSync::Ahead(s.ap - s.after)
        } else {
            TscSync::InSync {
                window: s.after.saturating_sub(s.before),
            }
        }
    };
    let rank = |v: &TscSync| match *v {
        TscSync::InSync { window } => (0, window),
        TscSync::Behind(d) | TscSync::Ahead(d) => (1, d),
    };
    samples.iter().map(one).max_by_key(rank)
}

impl fmt::Display for TscSync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TscSync::InSync { window } => {
                write!(f, "TSC in sync with CPU 0 (within a {window}-tick handshake)")
            }
            TscSync::Behind(d) => write!(
                f,
                "TSC NOT in sync: at least {d} ticks behind CPU 0 (guest time on this CPU would jump)"
            ),
            TscSync::Ahead(d) => write!(
                f,
                "TSC NOT in sync: at least {d} ticks ahead of CPU 0 (guest time on this CPU would jump)"
            ),
        }
    }
}

#[cfg(test)]
mod tests;
