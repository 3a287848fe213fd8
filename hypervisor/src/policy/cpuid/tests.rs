//! The CPUID policy against hosts that report everything, little, or odd leaves.

use super::*;
use keel_abi::version::{features, AbiVersion};
use proptest::prelude::*;

const ALL: CpuidResult = CpuidResult {
    eax: !0,
    ebx: !0,
    ecx: !0,
    edx: !0,
};

fn bit(n: u32) -> u32 {
    1 << n
}

/// A host whose every leaf is all ones, except the max leaves and leaf 0xD,
/// which say something plausible.
fn ones_host(leaf: u32, sub: u32) -> CpuidResult {
    match (leaf, sub) {
        (0, _) => CpuidResult { eax: 0x16, ..ALL },
        (0x8000_0000, _) => CpuidResult {
            eax: 0x8000_0008,
            ..ALL
        },
        (0xd, 0) => CpuidResult {
            eax: 0x2ff,
            ebx: 0x340,
            ecx: 0xa80,
            edx: 0,
        },
        (0xd, 1) => CpuidResult {
            eax: 0x1f,
            ebx: 0x340,
            ecx: 0x1_0000,
            edx: 0,
        },
        (0xd, 2) => CpuidResult {
            eax: 256,
            ebx: 576,
            ecx: 0,
            edx: 0,
        },
        (0xd, _) => CpuidResult {
            eax: 64,
            ebx: 1024,
            ecx: 0,
            edx: 0,
        },
        _ => ALL,
    }
}

fn policy(feat: GuestCpuFeatures) -> CpuidPolicy {
    CpuidPolicy::new(&ones_host, feat)
}

fn q(p: &CpuidPolicy, leaf: u32, sub: u32) -> CpuidResult {
    p.guest_cpuid(leaf, sub, &ones_host)
}

#[test]
fn leaf1() {
    let p = policy(GuestCpuFeatures::default());
    let r = q(&p, 1, 0);
    assert_eq!(r.ecx & bit(5), 0, "VMX");
    assert_eq!(r.ecx & bit(6), 0, "SMX");
    assert_eq!(r.ecx & bit(3), 0, "MONITOR");
    assert_eq!(r.ecx & bit(15), 0, "PDCM");
    assert_eq!(r.ecx & bit(21), 0, "x2APIC");
    assert_eq!(r.ecx & (bit(26) | bit(27) | bit(28)), 0, "XSAVE off");
    assert_ne!(r.ecx & bit(31), 0, "hypervisor bit");
    assert_eq!(r.edx & bit(9), 0, "APIC");
    assert_eq!(r.edx & bit(28), 0, "HTT");
    assert_ne!(r.edx & bit(0), 0, "FPU");
    assert_eq!(r.eax, !0, "signature passes");
    assert_eq!(r.ebx, 0x0001_ffff, "one logical processor, APIC id 0");
    let zero = |_: u32, _: u32| CpuidResult {
        eax: 0x16,
        ..CpuidResult::default()
    };
    let p0 = CpuidPolicy::new(&zero, GuestCpuFeatures::default());
    assert_eq!(p0.guest_cpuid(1, 0, &zero).ecx, bit(31));
}

#[test]
fn hidden_leaves_are_zero() {
    let p = policy(GuestCpuFeatures::default());
    for leaf in [
        3,
        5,
        6,
        8,
        9,
        0xa,
        0xc,
        0xd,
        0xe,
        0xf,
        0x10,
        0x12,
        0x14,
        0x8000_0005,
    ] {
        assert_eq!(q(&p, leaf, 0), CpuidResult::default(), "leaf {leaf:#x}");
        assert_eq!(q(&p, leaf, 3), CpuidResult::default(), "leaf {leaf:#x}");
    }
}

#[test]
fn hypervisor_leaves() {
    let p = policy(GuestCpuFeatures::default());
    let r = q(&p, 0x4000_0000, 0);
    assert_eq!(r.eax, 0x4000_0001);
    let mut sig = [0u8; 12];
    sig[0..4].copy_from_slice(&r.ebx.to_le_bytes());
    sig[4..8].copy_from_slice(&r.ecx.to_le_bytes());
    sig[8..12].copy_from_slice(&r.edx.to_le_bytes());
    assert_eq!(&sig, b"KeelKeelKeel");
    let r = q(&p, 0x4000_0001, 0);
    assert_eq!(r.eax, AbiVersion::CURRENT.encode());
    assert_eq!(r.ebx, features::SUBMAP0);
    // What a guest built before 1.0 is told (as XENVER_version tells it).
    let old = policy(GuestCpuFeatures::default()).presenting(AbiVersion::PRE_1_0_PRESENTED);
    let r = q(&old, 0x4000_0001, 0);
    assert_eq!(r.eax, 0x0000_0002);
    assert_eq!(r.ebx, features::SUBMAP0);
    assert_eq!(q(&p, 0x4000_0002, 0), CpuidResult::default());
    assert_eq!(q(&p, 0x4000_00ff, 0), CpuidResult::default());
    // Just outside the range: beyond every maximum, so the highest basic leaf.
    assert_eq!(q(&p, 0x4000_0100, 0), q(&p, 0x16, 0));
}

#[test]
fn beyond_max_is_highest_basic() {
    let p = policy(GuestCpuFeatures::default());
    let top = q(&p, 0x16, 0);
    assert_eq!(top, ALL, "leaf 0x16 is host");
    for leaf in [0x17, 0x1f, 0x20, 0x3fff_ffff, 0x8000_0009, 0xffff_ffff] {
        assert_eq!(q(&p, leaf, 0), top, "leaf {leaf:#x}");
    }
    assert_eq!(q(&p, 0, 0).eax, 0x16);
    assert_eq!(q(&p, 0x8000_0000, 0).eax, 0x8000_0008);
    // A host with more leaves than Keel knows: capped.
    let big = |l: u32, s: u32| match l {
        0 => CpuidResult { eax: 0x23, ..ALL },
        0x8000_0000 => CpuidResult {
            eax: 0x8000_0021,
            ..ALL
        },
        _ => ones_host(l, s),
    };
    let p = CpuidPolicy::new(&big, GuestCpuFeatures::default());
    assert_eq!(p.guest_cpuid(0, 0, &big).eax, MAX_BASIC);
    assert_eq!(p.guest_cpuid(0x8000_0000, 0, &big).eax, MAX_EXTENDED);
    assert_eq!(p.guest_cpuid(0x20, 0, &big), topology(0));
    assert_eq!(p.guest_cpuid(0x8000_0021, 2, &big), topology(2));
}

#[test]
fn topology_is_one_vcpu() {
    let p = policy(GuestCpuFeatures::default());
    let (s0, s1, s2) = (q(&p, 0xb, 0), q(&p, 0xb, 1), q(&p, 0xb, 2));
    assert_eq!((s0.ebx, (s0.ecx >> 8) & 0xff, s0.edx), (1, 1, 0));
    assert_eq!((s1.ebx, (s1.ecx >> 8) & 0xff, s1.ecx & 0xff), (1, 2, 1));
    assert_eq!(((s2.ecx >> 8) & 0xff, s2.ecx & 0xff, s2.ebx), (0, 2, 0));
    let c = q(&p, 4, 1);
    assert_eq!(c.eax >> 14, 0, "leaf 4: one core, one thread per cache");
    assert_eq!(c.eax & 0x3fff, 0x3fff);
}

#[test]
fn leaf7() {
    let p = policy(GuestCpuFeatures::default());
    let r0 = q(&p, 7, 0);
    assert_eq!(r0.eax, 0, "no further subleaves");
    assert_eq!(r0.ebx & bit(10), 0, "INVPCID");
    assert_eq!(
        r0.ebx & (bit(0) | bit(7) | bit(20)),
        0,
        "FSGSBASE SMEP SMAP"
    );
    assert_eq!(r0.ebx & bit(5), 0, "AVX2 without XSAVE");
    assert_ne!(r0.ebx & bit(3), 0, "BMI1");
    assert_eq!(r0.ecx & bit(16), 0, "LA57");
    assert_eq!(r0.ecx & bit(22), 0, "RDPID without RDTSCP");
    assert_eq!(r0.edx & (bit(26) | bit(29)), 0, "speculation MSRs");
    assert_eq!(q(&p, 7, 1), CpuidResult::default());
}

#[test]
fn rdtscp_follows_the_control() {
    let off = policy(GuestCpuFeatures::default());
    assert_eq!(q(&off, 0x8000_0001, 0).edx & bit(27), 0);
    let on = policy(GuestCpuFeatures {
        rdtscp: true,
        ..Default::default()
    });
    assert_ne!(q(&on, 0x8000_0001, 0).edx & bit(27), 0);
    assert_ne!(q(&on, 7, 0).ecx & bit(22), 0, "RDPID");
}

#[test]
fn xsave_consistent_with_xcr0() {
    let allowed = xcr0_supported(&ones_host);
    assert_eq!(allowed, XCR0_POLICY);
    let mut p = policy(GuestCpuFeatures {
        xcr0_allowed: allowed,
        ..Default::default()
    });
    let l1 = q(&p, 1, 0);
    assert_ne!(l1.ecx & bit(26), 0, "XSAVE");
    assert_ne!(l1.ecx & bit(28), 0, "AVX");
    assert_eq!(l1.ecx & bit(27), 0, "OSXSAVE follows CR4, clear");
    p.set_osxsave(true);
    assert_ne!(q(&p, 1, 0).ecx & bit(27), 0, "OSXSAVE");
    let d0 = q(&p, 0xd, 0);
    assert_eq!(u64::from(d0.eax) | u64::from(d0.edx) << 32, allowed.bits());
    assert_eq!(d0.ecx, 832, "576 + AVX's 256");
    let d1 = q(&p, 0xd, 1);
    assert_eq!(
        (d1.eax, d1.ecx),
        (XSAVE_SUBLEAF1_EAX, 0),
        "XSAVES/XFD hidden"
    );
    assert_eq!(q(&p, 0xd, 2).eax, 256, "AVX component");
    for c in [3, 5, 9, 63, 64, 0xffff_ffff] {
        assert_eq!(q(&p, 0xd, c), CpuidResult::default(), "component {c}");
    }
    // Only x87|SSE on the host: no AVX anywhere.
    let no_avx = |l: u32, s: u32| match (l, s) {
        (0xd, 0) => CpuidResult {
            eax: 3,
            ..ones_host(l, s)
        },
        _ => ones_host(l, s),
    };
    let a = xcr0_supported(&no_avx);
    assert_eq!(a, Xcr0::X87 | Xcr0::SSE);
    let p = CpuidPolicy::new(
        &no_avx,
        GuestCpuFeatures {
            xcr0_allowed: a,
            ..Default::default()
        },
    );
    assert_eq!(p.guest_cpuid(1, 0, &no_avx).ecx & (bit(28) | bit(12)), 0);
    assert_eq!(p.guest_cpuid(7, 0, &no_avx).ebx & bit(5), 0);
    assert_eq!(p.guest_cpuid(0xd, 0, &no_avx).ecx, 576);
    // No XSAVE on the host.
    let none = |l: u32, s: u32| match l {
        1 => CpuidResult {
            ecx: !bit(26),
            ..ALL
        },
        _ => ones_host(l, s),
    };
    assert_eq!(xcr0_supported(&none), Xcr0::empty());
}

/// A host whose highest basic leaf is below 0xD (Nehalem/Westmere: 0xB):
/// the beyond-max rule wins over the XSAVE rule, because for this guest leaf
/// 0xD does not exist; XSAVE is hidden, so no XCR0 value can disagree with it.
#[test]
fn below_leaf_0xd_the_beyond_max_rule_wins() {
    let westmere = |l: u32, s: u32| match l {
        0 => CpuidResult { eax: 0xb, ..ALL },
        _ => ones_host(l, s),
    };
    assert_eq!(
        xcr0_supported(&westmere),
        Xcr0::empty(),
        "no leaf 0xD: no XSAVE"
    );
    let p = CpuidPolicy::new(&westmere, GuestCpuFeatures::default());
    let top = p.guest_cpuid(0xb, 0, &westmere);
    assert_eq!(top, topology(0));
    assert_eq!(
        p.guest_cpuid(0xd, 0, &westmere),
        top,
        "leaf 0xD is beyond max"
    );
    assert_ne!(p.guest_cpuid(0xd, 0, &westmere), CpuidResult::default());
    assert_eq!(p.guest_cpuid(1, 0, &westmere).ecx & (bit(26) | bit(27)), 0);
    assert_eq!(p.guest_cpuid(0x16, 0, &westmere), top);
}

/// A host that lists no cache in leaf 4 (its first subleaf has type 0):
/// the guest sees none either; Keel does not invent caches.
#[test]
fn no_host_cache_leaf_means_no_guest_cache() {
    let no_caches = |l: u32, s: u32| match l {
        4 => CpuidResult::default(),
        _ => ones_host(l, s),
    };
    let p = CpuidPolicy::new(&no_caches, GuestCpuFeatures::default());
    for sub in [0, 1, 7] {
        assert_eq!(p.guest_cpuid(4, sub, &no_caches), CpuidResult::default());
    }
    // Highest basic leaf below 4 (leaf 4 beyond max): leaf 4 answers like the
    // highest basic leaf.
    let tiny = |l: u32, s: u32| match l {
        0 => CpuidResult { eax: 2, ..ALL },
        _ => ones_host(l, s),
    };
    let p = CpuidPolicy::new(&tiny, GuestCpuFeatures::default());
    assert_eq!(p.guest_cpuid(4, 0, &tiny), p.guest_cpuid(2, 0, &tiny));
}

#[test]
fn tables_are_consistent() {
    // Every allow-listed bit belongs to a masked register, once.
    for (i, a) in FEATURES.iter().enumerate() {
        assert!(
            MASKED.contains(&(a.leaf, a.subleaf, a.reg)),
            "{} is not in a masked register",
            a.name
        );
        assert!(a.bit < 32);
        for b in &FEATURES[i + 1..] {
            assert!(
                !(a.leaf == b.leaf && a.reg == b.reg && a.bit == b.bit),
                "{} twice",
                a.name
            );
        }
    }
    // Leaves are sorted, unique and within Keel's maxima; masked registers
    // belong to masked leaves.
    for w in LEAVES.windows(2) {
        assert!(w[0].leaf < w[1].leaf);
    }
    for l in LEAVES {
        assert!(l.leaf <= MAX_BASIC || (0x8000_0000..=MAX_EXTENDED).contains(&l.leaf));
    }
    for &(l, _, _) in MASKED {
        let k = LEAVES.iter().find(|x| x.leaf == l).map(|x| x.kind);
        assert!(matches!(
            k,
            Some(LeafKind::Masked | LeafKind::Leaf1 | LeafKind::Leaf7)
        ));
    }
}

#[test]
fn docs_page_mentions_every_row() {
    let page = markdown::page();
    for ft in FEATURES {
        assert!(page.contains(ft.name), "{}", ft.name);
    }
    for l in LEAVES {
        assert!(page.contains(l.name), "{}", l.name);
    }
}

proptest! {
    /// Whatever the host says: VMX/SMX/MONITOR/PDCM/x2APIC hidden, the
    /// hypervisor bit set, PMU and MONITOR leaves zero, each masked register a
    /// subset of its allow-list, and no input panics.
    #[test]
    fn invariants(eax in any::<u32>(), ebx in any::<u32>(), ecx in any::<u32>(), edx in any::<u32>(),
                  leaf in any::<u32>(), sub in any::<u32>(), rdtscp in any::<bool>(), xcr0 in any::<u64>(), osx in any::<bool>()) {
        let host = move |l: u32, _s: u32| match l {
            0 => CpuidResult { eax: eax % 0x40, ebx, ecx, edx },
            0x8000_0000 => CpuidResult { eax: 0x8000_0000 | (eax % 0x40), ebx, ecx, edx },
            _ => CpuidResult { eax, ebx, ecx, edx },
        };
        let feat = GuestCpuFeatures { rdtscp, xcr0_allowed: Xcr0::from_bits_retain(xcr0) & XCR0_POLICY, osxsave: osx };
        let p = CpuidPolicy::new(&host, feat);
        let r1 = p.guest_cpuid(1, sub, &host);
        if p.max_basic() >= 1 {
            prop_assert_eq!(r1.ecx & (bit(3) | bit(5) | bit(6) | bit(15) | bit(21)), 0);
            prop_assert_ne!(r1.ecx & bit(31), 0);
        }
        if p.max_basic() >= 0xa {
            prop_assert_eq!(p.guest_cpuid(0xa, sub, &host), CpuidResult::default());
            prop_assert_eq!(p.guest_cpuid(5, sub, &host), CpuidResult::default());
        }
        // Every masked register shows only allow-listed bits.
        for &(l, s, reg) in MASKED {
            let allowed = FEATURES
                .iter()
                .filter(|f| f.leaf == l && f.subleaf == s && f.reg == reg)
                .fold(0u32, |m, f| m | 1 << f.bit);
            let in_range = if l >= 0x8000_0000 {
                l <= p.guest_cpuid(0x8000_0000, 0, &host).eax
            } else {
                l <= p.max_basic()
            };
            if in_range {
                let r = p.guest_cpuid(l, s, &host);
                let v = match reg { Reg::Eax => r.eax, Reg::Ebx => r.ebx, Reg::Ecx => r.ecx, Reg::Edx => r.edx };
                prop_assert_eq!(v & !allowed, 0, "leaf {:#x} {}", l, reg.name());
            }
        }
        let r = p.guest_cpuid(leaf, sub, &host);
        if leaf == 0x8000_0001 && p.guest_cpuid(0x8000_0000, 0, &host).eax >= leaf {
            prop_assert_eq!(r.edx & !(bit(11) | bit(20) | bit(27) | bit(29)), 0);
        }
    }
}
