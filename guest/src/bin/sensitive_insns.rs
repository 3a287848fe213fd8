//! The sensitive-instruction table (docs/abi/insns.md), one check per action:
//! MONITOR/MWAIT and GETSEC raise #UD, RDPMC #GP(0), INVD and WBINVD complete,
//! MOV DR works natively and survives exits, RDTSC/RDTSCP behave as CPUID says.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::cpu::cpuid;
use keel_guest::fault::{insn, write_read_dr, Insn};
use keel_guest::prelude::*;
use keel_guest::tsc::rdtsc;

keel_guest::test! {
    title: "Sensitive instructions: MONITOR/MWAIT/GETSEC #UD, RDPMC #GP(0), INVD/WBINVD complete, MOV DR, RDTSC(P)",
    category: Security,
    main: test_main,
}

fn test_main() {
    fault::expect_fault(
        format_args!("MONITOR"),
        insn(Insn::Monitor),
        Vector::UD,
        None,
    );
    fault::expect_fault(format_args!("MWAIT"), insn(Insn::Mwait), Vector::UD, None);
    fault::expect_fault(format_args!("GETSEC"), insn(Insn::Getsec), Vector::UD, None);
    fault::expect_fault(
        format_args!("RDPMC 0"),
        insn(Insn::Rdpmc),
        Vector::GP,
        Some(0),
    );
    fault::expect_no_fault(format_args!("INVD"), insn(Insn::Invd));
    fault::expect_no_fault(format_args!("WBINVD"), insn(Insn::Wbinvd));

    // MOV DR: native; DR0 keeps the guest's value across an exit.
    if let Some(v) =
        fault::expect_no_fault(format_args!("MOV DR0"), write_read_dr(false, 0x40_1000))
    {
        check_eq!(v, 0x40_1000, "DR0 read back");
        let _ = cpuid(0, 0);
        check_eq!(
            write_read_dr(false, 0x40_1000).ok(),
            Some(0x40_1000),
            "DR0 after an exit"
        );
    }
    // DR7 with nothing enabled (bit 10 reads as 1).
    check_eq!(write_read_dr(true, 0x400).ok(), Some(0x400), "DR7");

    // RDTSC: native, monotonic: never backwards, and it advances. Two reads
    // back to back may be equal where the counter moves in steps (Bochs with
    // several CPUs: 5 ticks; docs/platforms.md), so the advance is checked
    // across a stretch of 64 dependent additions, longer than any such step.
    let (a, b) = (rdtsc(), rdtsc());
    check!(b >= a, "RDTSC went backwards: {a} then {b}");
    let mut x = a;
    for i in 0..64u64 {
        x = core::hint::black_box(x.wrapping_add(i));
    }
    let c = rdtsc();
    check!(
        c > a,
        "RDTSC not advancing: {a}, then {c} after 64 additions ({x})"
    );
    // RDTSCP: works exactly when CPUID says so.
    let rdtscp = cpuid(0x8000_0001, 0).edx & (1 << 27) != 0;
    let r = insn(Insn::Rdtscp);
    if rdtscp {
        fault::expect_no_fault(format_args!("RDTSCP (CPUID shows it)"), r);
    } else {
        fault::expect_fault(format_args!("RDTSCP (CPUID hides it)"), r, Vector::UD, None);
    }
    success();
}
