//! MSRs behave as on a CPU without VMX: the VMX capability MSRs and
//! IA32_FEATURE_CONTROL are not the guest's to read or write, and an MSR that does
//! not exist raises `#GP(0)`, as on hardware. EFER reads back long mode.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::fault::{rdmsr, wrmsr};
use keel_guest::prelude::*;

keel_guest::test! {
    title: "MSRs: VMX capability MSRs and FEATURE_CONTROL refused, unknown MSRs #GP, EFER readable",
    category: Security,
    main: test_main,
}

const IA32_FEATURE_CONTROL: u32 = 0x3a;
const IA32_VMX_BASIC: u32 = 0x480;
const IA32_VMX_PROCBASED_CTLS2: u32 = 0x48b;
const IA32_EFER: u32 = 0xc000_0080;
const EFER_LMA: u64 = 1 << 10;

fn gp<T: core::fmt::Debug>(what: core::fmt::Arguments<'_>, r: Result<T, Fault>) {
    fault::expect_fault(what, r, Vector::GP, Some(0));
}

fn test_main() {
    // Positive control first: a plain architectural MSR reads fine.
    if let Some(efer) = fault::expect_no_fault(format_args!("RDMSR IA32_EFER"), rdmsr(IA32_EFER)) {
        check!(
            efer & EFER_LMA != 0,
            "EFER {efer:#x} without LMA in a 64-bit guest"
        );
    }

    for msr in [IA32_VMX_BASIC, IA32_VMX_PROCBASED_CTLS2] {
        gp(format_args!("RDMSR {msr:#x} (VMX capability)"), rdmsr(msr));
        gp(
            format_args!("WRMSR {msr:#x} (VMX capability)"),
            wrmsr(msr, 0),
        );
    }
    // Locking FEATURE_CONTROL with VMX off, or unlocking it: neither is the guest's.
    gp(
        format_args!("WRMSR IA32_FEATURE_CONTROL <- 1 (lock, VMX off)"),
        wrmsr(IA32_FEATURE_CONTROL, 1),
    );
    for msr in [0x0000_2fffu32, 0x4000_ffff, 0xdead_0000, 0xffff_ffff] {
        gp(format_args!("RDMSR {msr:#x} (does not exist)"), rdmsr(msr));
        gp(
            format_args!("WRMSR {msr:#x} (does not exist)"),
            wrmsr(msr, 0),
        );
    }
    success();
}
