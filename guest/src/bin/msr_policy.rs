//! The MSR policy table, one check per class of row (docs/abi/msr.md): pass-through
//! MSRs keep the guest's value (and the CPU checks them: non-canonical is #GP(0)),
//! write-checked MSRs refuse reserved bits with #GP(0) on every platform,
//! VMCS-managed MSRs round-trip and refuse reserved bits, emulated MSRs read Keel's
//! values and refuse changes, the TSC is readable but not writable, and every
//! other MSR raises #GP(0).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::cpu::cpuid;
use keel_guest::fault::{rdmsr, wrmsr};
use keel_guest::prelude::*;

keel_guest::test! {
    title: "MSR policy: pass-through, VMCS-managed, emulated, read-through TSC, #GP for the rest (vector and error code)",
    category: Security,
    main: test_main,
}

const TSC: u32 = 0x10;
const APIC_BASE: u32 = 0x1b;
const FEATURE_CONTROL: u32 = 0x3a;
const BIOS_SIGN_ID: u32 = 0x8b;
const PLATFORM_INFO: u32 = 0xce;
const MTRRCAP: u32 = 0xfe;
const SYSENTER_CS: u32 = 0x174;
const SYSENTER_EIP: u32 = 0x176;
const MISC_ENABLE: u32 = 0x1a0;
const DEBUGCTL: u32 = 0x1d9;
const MTRR_FIX64K: u32 = 0x250;
const PAT: u32 = 0x277;
const MTRR_DEF_TYPE: u32 = 0x2ff;
const EFER: u32 = 0xc000_0080;
const STAR: u32 = 0xc000_0081;
const LSTAR: u32 = 0xc000_0082;
const CSTAR: u32 = 0xc000_0083;
const SFMASK: u32 = 0xc000_0084;
const FS_BASE: u32 = 0xc000_0100;
const KERNEL_GS_BASE: u32 = 0xc000_0102;
const TSC_AUX: u32 = 0xc000_0103;

fn gp(what: core::fmt::Arguments<'_>, r: Result<impl core::fmt::Debug, Fault>) {
    fault::expect_fault(what, r, Vector::GP, Some(0));
}

fn read(msr: u32) -> Option<u64> {
    fault::expect_no_fault(format_args!("RDMSR {msr:#x}"), rdmsr(msr))
}

fn roundtrip(msr: u32, v: u64) {
    if fault::expect_no_fault(format_args!("WRMSR {msr:#x} <- {v:#x}"), wrmsr(msr, v)).is_some() {
        check_eq!(read(msr), Some(v), "MSR {msr:#x} read back");
    }
}

/// A write-checked MSR whose bits 63:32 are reserved (FMASK, TSC_AUX): Keel
/// checks the write itself, so it is #GP(0) on every platform (hardware, Bochs,
/// nested KVM) and the MSR keeps its value.
fn reserved_high(msr: u32) {
    let before = read(msr);
    gp(
        format_args!("WRMSR {msr:#x} with bit 32"),
        wrmsr(msr, (1 << 32) | 0x100),
    );
    check_eq!(read(msr), before, "MSR {msr:#x} after a refused write");
}

fn test_main() {
    // --- Pass-through: the guest's value survives exits (a CPUID between the
    // write and the read forces one).
    for (msr, v) in [
        (STAR, 0x0023_0010_0000_0000u64),
        (LSTAR, 0xffff_8000_1234_5000),
        (CSTAR, 0x40_1000),
        (SFMASK, 0x4700),
        (KERNEL_GS_BASE, 0xffff_8880_0000_0000),
        (FS_BASE, 0x7000_1000),
    ] {
        check_eq!(read(msr), Some(0), "MSR {msr:#x} initial value");
        if fault::expect_no_fault(format_args!("WRMSR {msr:#x}"), wrmsr(msr, v)).is_some() {
            let _ = cpuid(0, 0);
            check_eq!(read(msr), Some(v), "MSR {msr:#x} after an exit");
        }
    }
    gp(
        format_args!("WRMSR LSTAR non-canonical"),
        wrmsr(LSTAR, 1 << 47),
    );
    reserved_high(SFMASK);
    let _ = wrmsr(FS_BASE, 0);
    if cpuid(0x8000_0001, 0).edx & (1 << 27) != 0 {
        roundtrip(TSC_AUX, 7);
        reserved_high(TSC_AUX);
    } else {
        gp(format_args!("RDMSR TSC_AUX without RDTSCP"), rdmsr(TSC_AUX));
    }

    // --- Read-through: the TSC.
    if let Some(t) = read(TSC) {
        check!(t > 0, "IA32_TSC reads 0");
    }
    gp(format_args!("WRMSR IA32_TSC"), wrmsr(TSC, 0));

    // --- VMCS-managed.
    roundtrip(SYSENTER_EIP, 0xffff_ffff_8000_0000);
    roundtrip(SYSENTER_CS, 0x10);
    gp(
        format_args!("WRMSR SYSENTER_EIP non-canonical"),
        wrmsr(SYSENTER_EIP, 0x0000_8000_0000_0000),
    );
    gp(
        format_args!("WRMSR SYSENTER_CS bit 32"),
        wrmsr(SYSENTER_CS, 1 << 32),
    );
    let pat = 0x0007_0406_0007_0406u64;
    check_eq!(read(PAT), Some(pat), "IA32_PAT at reset");
    // A valid change round-trips where the VMCS switches PAT; on a CPU without
    // PAT switching the guest shares the host's PAT and only a no-op write is
    // accepted (#GP(0) otherwise, value unchanged).
    match wrmsr(PAT, 0x0007_0406_0007_0106) {
        Ok(()) => {
            check_eq!(read(PAT), Some(0x0007_0406_0007_0106), "PAT read back");
        }
        Err(f) => {
            println!("PAT change refused ({f}): no PAT switching on this CPU");
            check!(
                f.vector == Vector::GP && f.error_code == 0,
                "PAT change: {f}"
            );
            check_eq!(read(PAT), Some(pat), "PAT after a refused change");
        }
    };
    gp(
        format_args!("WRMSR PAT type 2"),
        wrmsr(PAT, 0x0007_0406_0007_0402),
    );
    roundtrip(PAT, pat);
    roundtrip(DEBUGCTL, 2);
    roundtrip(DEBUGCTL, 0);
    gp(format_args!("WRMSR DEBUGCTL.LBR"), wrmsr(DEBUGCTL, 1));
    if let Some(efer) = read(EFER) {
        check_eq!(efer & 0x500, 0x500, "EFER.LME|LMA");
        roundtrip(EFER, efer & !1);
        roundtrip(EFER, efer);
        gp(
            format_args!("WRMSR EFER reserved bit 1"),
            wrmsr(EFER, efer | 2),
        );
        gp(
            format_args!("WRMSR EFER clearing LME"),
            wrmsr(EFER, efer & !0x100),
        );
        // LMA is read-only: a write without it is accepted and leaves it set.
        if fault::expect_no_fault(
            format_args!("WRMSR EFER without LMA"),
            wrmsr(EFER, efer & !0x400),
        )
        .is_some()
        {
            check_eq!(read(EFER), Some(efer), "EFER.LMA kept");
        }
    }

    // --- Emulated.
    check_eq!(
        read(FEATURE_CONTROL),
        Some(1),
        "FEATURE_CONTROL (locked, VMX off)"
    );
    gp(
        format_args!("WRMSR FEATURE_CONTROL (locked)"),
        wrmsr(FEATURE_CONTROL, 1),
    );
    check_eq!(read(APIC_BASE), Some(0xfee0_0100), "APIC_BASE");
    gp(
        format_args!("WRMSR APIC_BASE enabling the APIC"),
        wrmsr(APIC_BASE, 0xfee0_0900),
    );
    if let Some(m) = read(MISC_ENABLE) {
        check_eq!(m & 1, 1, "MISC_ENABLE fast strings");
        fault::expect_no_fault(
            format_args!("WRMSR MISC_ENABLE same value"),
            wrmsr(MISC_ENABLE, m),
        );
        gp(
            format_args!("WRMSR MISC_ENABLE change"),
            wrmsr(MISC_ENABLE, m | 1 << 18),
        );
    }
    fault::expect_no_fault(format_args!("WRMSR BIOS_SIGN_ID 0"), wrmsr(BIOS_SIGN_ID, 0));
    let _ = cpuid(1, 0);
    check_eq!(
        read(BIOS_SIGN_ID).map(|v| v >> 32),
        Some(1),
        "microcode revision"
    );
    check_eq!(read(MTRRCAP), Some(0x100), "MTRRCAP");
    check_eq!(read(MTRR_DEF_TYPE), Some(0xc06), "MTRR_DEF_TYPE");
    check_eq!(
        read(MTRR_FIX64K),
        Some(0x0606_0606_0606_0606),
        "MTRR_FIX64K_00000"
    );
    gp(format_args!("WRMSR MTRR_FIX64K"), wrmsr(MTRR_FIX64K, 0));
    gp(format_args!("WRMSR MTRRCAP"), wrmsr(MTRRCAP, 0x100));
    if let Some(p) = read(PLATFORM_INFO) {
        println!("PLATFORM_INFO {p:#x}");
        check_eq!(p & !0xff00, 0, "PLATFORM_INFO has only the ratio");
    }

    // --- Everything else.
    for msr in [
        0x0u32,
        0x3b,
        0x48,
        0x1a2,
        0x200,
        0x480,
        0x48b,
        0xc000_0104,
        0x4000_0000,
        0xffff_ffff,
    ] {
        gp(format_args!("RDMSR {msr:#x}"), rdmsr(msr));
        gp(format_args!("WRMSR {msr:#x}"), wrmsr(msr, 0));
    }
    success();
}
