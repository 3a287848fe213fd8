//! The CPUID tables folded for one vCPU ([`CpuidPolicy`]) and the answer to one
//! CPUID exit.

use super::table::{LeafKind, Reg, When, FEATURES, LEAVES, MASKED, MAX_BASIC, MAX_EXTENDED};
use super::table::{Xcr0, XCR0_POLICY, XSAVE_SUBLEAF1_EAX};
use super::CpuidResult;
use keel_abi::cpuid::Leaf1Ecx;
use keel_abi::version::{
    features, AbiVersion, CPUID_LEAF_BASE, CPUID_LEAF_VERSION, CPUID_SIGNATURE,
};

/// What the guest's CPU can do beyond the fixed policy: facts derived from the
/// VMX controls, the CR policy and the guest's own state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestCpuFeatures {
    /// "Enable RDTSCP" is set (else RDTSCP and RDPID raise #UD).
    pub rdtscp: bool,
    /// The XCR0 bits the guest may set with XSETBV; 0 when XSAVE is hidden (the
    /// CR policy refuses CR4.OSXSAVE, so XSETBV cannot even be executed).
    pub xcr0_allowed: Xcr0,
    /// The guest's CR4.OSXSAVE as it sees it (CPUID.1:ECX bit 27 mirrors it).
    pub osxsave: bool,
}

/// Whether `leaf` is in the hypervisor range, which Keel answers entirely itself.
pub const fn is_hypervisor_leaf(leaf: u32) -> bool {
    leaf >= CPUID_LEAF_BASE && leaf <= CPUID_LEAF_BASE + 0xff
}

fn sig_word(i: usize) -> u32 {
    let s = CPUID_SIGNATURE;
    u32::from_le_bytes([s[i * 4], s[i * 4 + 1], s[i * 4 + 2], s[i * 4 + 3]])
}

/// Keel's own leaves.
fn hypervisor_leaf(leaf: u32, abi: AbiVersion) -> CpuidResult {
    match leaf {
        CPUID_LEAF_BASE => CpuidResult {
            eax: CPUID_LEAF_VERSION,
            ebx: sig_word(0),
            ecx: sig_word(1),
            edx: sig_word(2),
        },
        CPUID_LEAF_VERSION => CpuidResult {
            eax: abi.encode(),
            ebx: features::SUBMAP0,
            ecx: 0,
            edx: 0,
        },
        _ => CpuidResult::default(),
    }
}

/// The XCR0 bits a guest may set on this host: [`XCR0_POLICY`] intersected with
/// what the host's leaf 0xD reports, or 0 if the host has no XSAVE. `host` is the
/// host's CPUID.
pub fn xcr0_supported(host: &impl Fn(u32, u32) -> CpuidResult) -> Xcr0 {
    let leaf1_ecx = host(1, 0).leaf1_ecx();
    if host(0, 0).eax < 0xd || !leaf1_ecx.contains(Leaf1Ecx::XSAVE) {
        return Xcr0::empty();
    }
    let d = host(0xd, 0);
    let sup = Xcr0::from_bits_retain(u64::from(d.eax) | (u64::from(d.edx) << 32));
    let v = sup & XCR0_POLICY;
    // x87 and SSE are architecturally required for XSAVE; AVX needs SSE.
    if !v.contains(Xcr0::X87 | Xcr0::SSE) {
        return Xcr0::empty();
    }
    v
}

/// How many masked registers there are ([`MASKED`]).
const NMASKED: usize = MASKED.len();

/// The tables, folded for one vCPU. Build it once ([`CpuidPolicy::new`]); answer
/// exits with [`CpuidPolicy::guest_cpuid`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuidPolicy {
    feat: GuestCpuFeatures,
    /// The guest's highest basic and extended leaf.
    max_basic: u32,
    max_ext: u32,
    basic: [LeafKind; MAX_BASIC as usize + 1],
    ext: [LeafKind; (MAX_EXTENDED - 0x8000_0000) as usize + 1],
    /// Per masked register: bits kept from the host, bits forced on. The OSXSAVE
    /// bit is left out of both and decided per exit (it follows the guest's CR4).
    keep: [u32; NMASKED],
    set: [u32; NMASKED],
    /// Leaf 0xD subleaf 0 ECX: the XSAVE area size for every allowed component.
    xsave_max_size: u32,
    /// The ABI version leaf `0x4000_0001` reports ([`Self::presenting`]).
    abi: AbiVersion,
}

impl CpuidPolicy {
    /// The same policy, reporting ABI version `v` in leaf `0x4000_0001` (the
    /// domain's `Domain::abi_version`: 0.2 to a guest built before 1.0, as
    /// `XENVER_version` does).
    pub const fn presenting(mut self, v: AbiVersion) -> Self {
        self.abi = v;
        self
    }

    /// Fold the tables for a vCPU with `feat` on a host whose CPUID is `host`.
    pub fn new(host: &impl Fn(u32, u32) -> CpuidResult, feat: GuestCpuFeatures) -> Self {
        let mut basic = [LeafKind::Zero; MAX_BASIC as usize + 1];
        let mut ext = [LeafKind::Zero; (MAX_EXTENDED - 0x8000_0000) as usize + 1];
        for l in LEAVES {
            let slot = if l.leaf >= 0x8000_0000 {
                ext.get_mut((l.leaf - 0x8000_0000) as usize)
            } else {
                basic.get_mut(l.leaf as usize)
            };
            if let Some(s) = slot {
                *s = l.kind;
            }
        }
        let mut keep = [0u32; NMASKED];
        let mut set = [0u32; NMASKED];
        let avx = feat.xcr0_allowed.contains(Xcr0::AVX);
        let xsave = !feat.xcr0_allowed.is_empty();
        for ft in FEATURES {
            let Some(i) = MASKED
                .iter()
                .position(|&(l, s, r)| l == ft.leaf && s == ft.subleaf && r == ft.reg)
            else {
                continue;
            };
            let b = 1u32 << ft.bit;
            match ft.when {
                When::Host => keep[i] |= b,
                When::Xsave if xsave => keep[i] |= b,
                When::Avx if avx => keep[i] |= b,
                When::Rdtscp if feat.rdtscp => keep[i] |= b,
                When::Set => set[i] |= b,
                // OSXSAVE is decided per exit; the others are off.
                _ => {}
            }
        }
        // The XSAVE area for every allowed component: the legacy area and header
        // (576 bytes) or the end of the furthest allowed component.
        let mut xsave_max_size = 0;
        if xsave {
            xsave_max_size = 576;
            for c in 2..64u32 {
                if feat.xcr0_allowed.bits() & (1 << c) != 0 {
                    let r = host(0xd, c);
                    xsave_max_size = xsave_max_size.max(r.eax.saturating_add(r.ebx));
                }
            }
        }
        CpuidPolicy {
            feat,
            max_basic: host(0, 0).eax.min(MAX_BASIC),
            max_ext: host(0x8000_0000, 0).eax.clamp(0x8000_0000, MAX_EXTENDED),
            basic,
            ext,
            keep,
            set,
            xsave_max_size,
            abi: AbiVersion::CURRENT,
        }
    }

    /// The features this policy was built for.
    pub fn features(&self) -> GuestCpuFeatures {
        self.feat
    }

    /// Record the guest's CR4.OSXSAVE (CPUID.1:ECX.OSXSAVE follows it).
    pub fn set_osxsave(&mut self, on: bool) {
        self.feat.osxsave = on;
    }

    /// The guest's highest basic leaf.
    pub fn max_basic(&self) -> u32 {
        self.max_basic
    }

    fn mask(&self, i: usize, v: u32) -> u32 {
        match (self.keep.get(i), self.set.get(i)) {
            (Some(k), Some(s)) => (v & k) | s,
            _ => 0,
        }
    }

    /// Apply the allow-list to the masked registers of `(leaf, sub)`.
    fn masked(&self, leaf: u32, sub: u32, mut r: CpuidResult) -> CpuidResult {
        for (i, &(l, s, reg)) in MASKED.iter().enumerate() {
            if l != leaf || s != sub {
                continue;
            }
            let v = match reg {
                Reg::Eax => &mut r.eax,
                Reg::Ebx => &mut r.ebx,
                Reg::Ecx => &mut r.ecx,
                Reg::Edx => &mut r.edx,
            };
            *v = self.mask(i, *v);
        }
        r
    }

    /// The guest's CPUID for `(leaf, subleaf)`. `host` executes CPUID on the host;
    /// it is called once for most leaves. Pure apart from `host`.
    pub fn guest_cpuid(
        &self,
        leaf: u32,
        subleaf: u32,
        host: &impl Fn(u32, u32) -> CpuidResult,
    ) -> CpuidResult {
        if is_hypervisor_leaf(leaf) {
            return hypervisor_leaf(leaf, self.abi);
        }
        let kind = if leaf <= self.max_basic {
            self.basic.get(leaf as usize).copied()
        } else if leaf >= 0x8000_0000 && leaf <= self.max_ext {
            self.ext.get((leaf - 0x8000_0000) as usize).copied()
        } else {
            None
        };
        let Some(kind) = kind else {
            // Beyond the highest leaf: Intel returns the highest basic leaf's data.
            // `max_basic` is always in the table's range, so this recursion ends.
            return self.guest_cpuid(self.max_basic, subleaf, host);
        };
        let r = match kind {
            LeafKind::Zero => return CpuidResult::default(),
            _ => host(leaf, subleaf),
        };
        match kind {
            LeafKind::Zero | LeafKind::Host => r,
            LeafKind::Masked => self.masked(leaf, 0, r),
            LeafKind::Max => CpuidResult {
                eax: if leaf == 0 {
                    self.max_basic
                } else {
                    self.max_ext
                },
                // Intel reports EBX/ECX/EDX of 0x8000_0000 as reserved (0).
                ..if leaf == 0 { r } else { CpuidResult::default() }
            },
            LeafKind::Leaf1 => {
                let mut r = self.masked(1, 0, r);
                // EBX: keep brand index and CLFLUSH line size; one logical
                // processor (bits 23:16), initial APIC id 0 (bits 31:24).
                r.ebx = (r.ebx & 0xffff) | (1 << 16);
                if self.feat.osxsave && !self.feat.xcr0_allowed.is_empty() {
                    r.ecx |= Leaf1Ecx::OSXSAVE.bits();
                }
                r
            }
            LeafKind::Caches => {
                // EAX[31:26]: cores per package - 1; EAX[25:14]: logical processors
                // sharing this cache - 1. One vCPU: both 0. A null cache type (no
                // more caches) stays as the host says (all zeroes).
                CpuidResult {
                    eax: r.eax & 0x3fff,
                    ..r
                }
            }
            LeafKind::Leaf7 => {
                if subleaf != 0 {
                    return CpuidResult::default();
                }
                CpuidResult {
                    eax: 0,
                    ..self.masked(7, 0, r)
                }
            }
            LeafKind::Topology => topology(subleaf),
            LeafKind::Xsave => self.xsave(subleaf, r),
        }
    }

    /// Leaf 0xD (SDM 13.2) for the XCR0 values the guest may set.
    fn xsave(&self, subleaf: u32, host: CpuidResult) -> CpuidResult {
        let allowed = self.feat.xcr0_allowed.bits();
        if allowed == 0 {
            return CpuidResult::default();
        }
        match subleaf {
            // EAX/EDX: the components XCR0 may hold. EBX: the size for the
            // components enabled now; XCR0 is not switched on VM exit, so the
            // host's answer already describes the guest's XCR0. ECX: the size for
            // every allowed component.
            0 => CpuidResult {
                eax: host.eax & allowed as u32,
                ebx: host.ebx,
                ecx: self.xsave_max_size,
                edx: host.edx & (allowed >> 32) as u32,
            },
            // EBX: size of XCR0 | IA32_XSS state; IA32_XSS is never set (XSAVES
            // hidden), so the host's value holds. ECX/EDX: no IA32_XSS components.
            1 => CpuidResult {
                eax: host.eax & XSAVE_SUBLEAF1_EAX,
                ebx: host.ebx,
                ecx: 0,
                edx: 0,
            },
            c if c < 64 && allowed & (1 << c) != 0 => host,
            _ => CpuidResult::default(),
        }
    }
}

/// Leaves 0xB/0x1F (SDM vol. 2A, CPUID): level 0 is SMT, level 1 is core, each
/// with one logical processor and a shift of 0; the x2APIC id is 0; levels beyond
/// are invalid (type 0, ECX bits 7:0 echoes the level).
pub fn topology(subleaf: u32) -> CpuidResult {
    match subleaf {
        0 => CpuidResult {
            eax: 0,
            ebx: 1,
            ecx: 1 << 8,
            edx: 0,
        },
        1 => CpuidResult {
            eax: 0,
            ebx: 1,
            ecx: (2 << 8) | 1,
            edx: 0,
        },
        n => CpuidResult {
            eax: 0,
            ebx: 0,
            ecx: n & 0xff,
            edx: 0,
        },
    }
}
