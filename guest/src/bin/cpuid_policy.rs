//! The CPUID policy tables, row class by row class (docs/abi/cpuid.md): one vCPU's
//! topology, hidden leaves that read as zeroes, the allow-list on leaf 1 and 7,
//! leaves beyond the highest answering like the highest basic leaf (which wins
//! for leaf 4 and leaf 0xD on models whose highest basic leaf is below them), the
//! host's caches (none on a model without a cache leaf), and leaf 0xD agreeing
//! with the XCR0 values XSETBV accepts (#GP(0) for the rest).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::cpu::{cpuid, CpuidResult};
use keel_guest::fault::{read_cr, write_cr, xgetbv, xsetbv, Cr};
use keel_guest::prelude::*;

keel_guest::test! {
    title: "CPUID policy: topology of one vCPU, hidden leaves zero, allow-list, beyond-max, leaf 0xD vs XSETBV",
    category: Abi,
    main: test_main,
}

const ZERO: CpuidResult = CpuidResult {
    eax: 0,
    ebx: 0,
    ecx: 0,
    edx: 0,
};
const CR4_OSXSAVE: u64 = 1 << 18;

fn gp(what: core::fmt::Arguments<'_>, r: Result<(), Fault>) {
    fault::expect_fault(what, r, Vector::GP, Some(0));
}

fn test_main() {
    let max = cpuid(0, 0).eax;
    let max_ext = cpuid(0x8000_0000, 0).eax;
    println!("max basic leaf {max:#x}, max extended leaf {max_ext:#x}");

    // Topology: one logical processor, APIC id 0.
    let l1 = cpuid(1, 0);
    check_eq!(
        (l1.ebx >> 16) & 0xff,
        1,
        "CPUID.1:EBX[23:16] logical processors"
    );
    check_eq!(l1.ebx >> 24, 0, "CPUID.1:EBX[31:24] initial APIC id");
    check_eq!(l1.edx & (1 << 28), 0, "CPUID.1:EDX.HTT");
    check_eq!(l1.edx & (1 << 9), 0, "CPUID.1:EDX.APIC (no reachable APIC)");
    for (bit, name) in [
        (3, "MONITOR"),
        (5, "VMX"),
        (6, "SMX"),
        (15, "PDCM"),
        (17, "PCID"),
        (21, "x2APIC"),
        (24, "TSC-deadline"),
    ] {
        check_eq!(l1.ecx & (1 << bit), 0, "CPUID.1:ECX.{name}");
    }
    check!(l1.ecx & (1 << 31) != 0, "hypervisor bit clear");
    check!(
        l1.edx & 1 != 0,
        "CPUID.1:EDX.FPU hidden (allow-list too strict)"
    );
    // Leaf 4 lists the host's caches (possibly none: bx_generic has no cache
    // leaf), each shared by one core and one thread, up to a null type; when the
    // highest basic leaf is below 4 it answers like the highest basic leaf.
    let top = cpuid(max, 0);
    if max >= 4 {
        let mut i = 0;
        loop {
            let c = cpuid(4, i);
            if c.eax & 0x1f == 0 {
                break;
            }
            check_eq!(
                c.eax >> 14,
                0,
                "CPUID.4.{i}:EAX[31:14] (cores/threads sharing)"
            );
            i += 1;
            if i > 16 {
                check!(false, "leaf 4 has no null cache type in 16 subleaves");
                break;
            }
        }
        println!("leaf 4 lists {i} cache(s)");
    } else {
        check_eq!(cpuid(4, 0), top, "leaf 4 above the highest basic leaf");
    }
    if max >= 0xb {
        let s0 = cpuid(0xb, 0);
        let s1 = cpuid(0xb, 1);
        let s2 = cpuid(0xb, 2);
        check_eq!(
            (s0.ebx & 0xffff, (s0.ecx >> 8) & 0xff, s0.edx),
            (1, 1, 0),
            "leaf 0xB.0 (SMT)"
        );
        check_eq!(
            (s1.ebx & 0xffff, (s1.ecx >> 8) & 0xff),
            (1, 2),
            "leaf 0xB.1 (core)"
        );
        check_eq!((s2.ecx >> 8) & 0xff, 0, "leaf 0xB.2 (invalid level)");
    }

    // Hidden leaves read as zeroes.
    for leaf in [3u32, 5, 6, 0xa] {
        if leaf <= max {
            check_eq!(cpuid(leaf, 0), ZERO, "leaf {leaf:#x}");
        }
    }
    let l7 = cpuid(7, 0);
    check_eq!(l7.eax, 0, "CPUID.7.0:EAX (no further subleaves)");
    for (bit, name) in [
        (0, "FSGSBASE"),
        (7, "SMEP"),
        (10, "INVPCID"),
        (20, "SMAP"),
        (16, "AVX512F"),
    ] {
        check_eq!(l7.ebx & (1 << bit), 0, "CPUID.7.0:EBX.{name}");
    }
    check_eq!(cpuid(7, 1), ZERO, "CPUID.7.1");
    check_eq!(cpuid(0x4000_0005, 0), ZERO, "hypervisor leaf 0x4000_0005");

    // Beyond the highest leaf: the highest basic leaf's data (Intel).
    check_eq!(cpuid(max + 1, 0), top, "leaf max+1");
    check_eq!(cpuid(0x3000_0000, 0), top, "leaf 0x3000_0000");
    check_eq!(cpuid(max_ext + 1, 0), top, "leaf max_ext+1");
    check_eq!(cpuid(0xffff_ffff, 0), top, "leaf 0xffff_ffff");

    // XSAVE: leaf 0xD agrees with what XSETBV accepts. When the highest basic
    // leaf is below 0xD the beyond-max rule wins (leaf 0xD does not exist for
    // this guest, as on the hardware) and XSAVE is hidden.
    let xsave = l1.ecx & (1 << 26) != 0;
    let d0 = cpuid(0xd, 0);
    if max < 0xd {
        check!(
            !xsave,
            "XSAVE offered without leaf 0xD (highest basic leaf {max:#x})"
        );
        check_eq!(d0, top, "leaf 0xD above the highest basic leaf");
        println!("XSAVE not offered: no leaf 0xD");
        return success();
    }
    if !xsave {
        check_eq!(d0, ZERO, "leaf 0xD without XSAVE");
        println!("XSAVE not offered");
        return success();
    }
    let allowed = u64::from(d0.eax) | (u64::from(d0.edx) << 32);
    println!(
        "XSAVE offered: XCR0 may hold {allowed:#x}, max size {}",
        d0.ecx
    );
    check!(allowed & 3 == 3, "leaf 0xD.0 lacks x87/SSE: {allowed:#x}");
    check_eq!(l1.ecx & (1 << 27), 0, "OSXSAVE before CR4.OSXSAVE");
    let cr4 = read_cr(Cr::Cr4);
    if fault::expect_no_fault(
        format_args!("MOV CR4 |= OSXSAVE"),
        write_cr(Cr::Cr4, cr4 | CR4_OSXSAVE),
    )
    .is_none()
    {
        return;
    }
    check!(
        cpuid(1, 0).ecx & (1 << 27) != 0,
        "CPUID.1:ECX.OSXSAVE does not follow CR4"
    );
    check_eq!(xgetbv(0).ok(), Some(1), "XCR0 at start");
    // Every allowed value is accepted and reads back.
    let mut v = 1u64;
    for c in [1u64, 2] {
        if allowed & (1 << c) != 0 {
            v |= 1 << c;
            fault::expect_no_fault(format_args!("XSETBV {v:#x}"), xsetbv(0, v));
            check_eq!(xgetbv(0).ok(), Some(v), "XCR0 after XSETBV {v:#x}");
        }
    }
    if allowed & 4 != 0 {
        check!(
            l1.ecx & (1 << 28) != 0,
            "AVX state allowed but CPUID.1:ECX.AVX clear"
        );
        check_eq!(cpuid(0xd, 2).eax, 256, "leaf 0xD.2 (AVX) size");
        check_eq!(cpuid(0xd, 0).ebx, 832, "leaf 0xD.0 EBX with x87|SSE|AVX on");
    }
    // Everything else is refused with #GP(0).
    gp(format_args!("XSETBV 0 (x87 clear)"), xsetbv(0, 0));
    gp(format_args!("XSETBV XCR1"), xsetbv(1, 1));
    gp(format_args!("XSETBV AVX without SSE"), xsetbv(0, 5));
    gp(format_args!("XSETBV AVX-512 opmask"), xsetbv(0, 0x27));
    gp(format_args!("XSETBV bit 62"), xsetbv(0, 1 | 1 << 62));
    check_eq!(xgetbv(0).ok(), Some(v), "XCR0 unchanged by refused writes");
    fault::expect_no_fault(format_args!("XSETBV 1"), xsetbv(0, 1));
    fault::expect_no_fault(format_args!("MOV CR4 back"), write_cr(Cr::Cr4, cr4));
    check_eq!(
        cpuid(1, 0).ecx & (1 << 27),
        0,
        "OSXSAVE after clearing CR4.OSXSAVE"
    );
    fault::expect_fault(
        format_args!("XSETBV with CR4.OSXSAVE clear"),
        xsetbv(0, 1),
        Vector::UD,
        None,
    );
    success();
}
