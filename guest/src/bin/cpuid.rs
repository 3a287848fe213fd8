//! CPUID as Keel presents it: the hypervisor bit set, VMX/SMX/MONITOR hidden, and
//! the hypervisor leaves at 0x4000_0000 with the "KeelKeelKeel" signature and the
//! ABI version that `xen_version` reports.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::guest;
use keel_guest::abi::version::{CPUID_LEAF_BASE, CPUID_LEAF_VERSION, CPUID_SIGNATURE};
use keel_guest::cpu::{cpuid, signature, LEAF1_ECX_HYPERVISOR, LEAF1_ECX_SMX, LEAF1_ECX_VMX};
use keel_guest::prelude::*;

keel_guest::test! {
    title: "CPUID: hypervisor bit, KeelKeelKeel leaves, version matches xen_version, VMX hidden",
    category: Abi,
    main: test_main,
}

/// Leaf 1 ECX bit 3: MONITOR/MWAIT.
const LEAF1_ECX_MONITOR: u32 = 1 << 3;

fn test_main() {
    let l1 = cpuid(1, 0);
    println!(
        "leaf 1: eax {:#010x} ecx {:#010x} edx {:#010x}",
        l1.eax, l1.ecx, l1.edx
    );
    check!(
        l1.ecx & LEAF1_ECX_HYPERVISOR != 0,
        "CPUID.1:ECX[31] (hypervisor present) is clear"
    );
    check!(
        l1.ecx & LEAF1_ECX_VMX == 0,
        "CPUID.1:ECX[5] (VMX) is visible"
    );
    check!(
        l1.ecx & LEAF1_ECX_SMX == 0,
        "CPUID.1:ECX[6] (SMX) is visible"
    );
    check!(
        l1.ecx & LEAF1_ECX_MONITOR == 0,
        "CPUID.1:ECX[3] (MONITOR) is visible"
    );

    let base = cpuid(CPUID_LEAF_BASE, 0);
    let sig = signature(&base);
    println!(
        "leaf {CPUID_LEAF_BASE:#x}: max leaf {:#x}, signature \"{}\"",
        base.eax,
        core::str::from_utf8(&sig).unwrap_or("<not ASCII>")
    );
    check_eq!(&sig, CPUID_SIGNATURE, "hypervisor CPUID signature");
    check!(
        base.eax >= CPUID_LEAF_VERSION && base.eax < CPUID_LEAF_BASE + 0x100,
        "max hypervisor leaf {:#x} is implausible",
        base.eax
    );

    let ver = cpuid(CPUID_LEAF_VERSION, 0);
    let xv = guest::xen_version();
    check_eq!(
        ver.eax,
        xv.encode(),
        "CPUID {CPUID_LEAF_VERSION:#x}.EAX vs xen_version(XENVER_version) ({xv})"
    );
    match guest::xen_get_features(0) {
        Ok(m) => {
            check_eq!(
                ver.ebx,
                m,
                "CPUID {CPUID_LEAF_VERSION:#x}.EBX vs feature submap 0"
            );
        }
        Err(e) => failure!("XENVER_get_features(0) returned {e}"),
    }

    // The basic leaves keep working: leaf 0 names a vendor and a max leaf >= 1.
    let l0 = cpuid(0, 0);
    check!(l0.eax >= 1, "CPUID.0:EAX (max basic leaf) is {}", l0.eax);
    // Architectural PMU hidden: leaf 0xA reports version 0.
    if l0.eax >= 0xa {
        check_eq!(
            cpuid(0xa, 0).eax & 0xff,
            0,
            "CPUID.0xA:EAX[7:0] (PMU version)"
        );
    }
    success();
}
