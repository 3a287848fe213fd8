//! Exceptions reach the guest's own IDT as on bare metal — right vector, right
//! error code, right RIP for faults and traps — including the ones a hypervisor
//! may intercept and must re-inject (`#DB` from ICEBP, `#PF`, `#GP`), and `#NM`
//! from CR0.TS, a bit the guest owns.
//!
//! It runs natively too. On QEMU's TCG two answers differ from hardware
//! (`keel_guest::tcg`): ICEBP is `#UD` there and a non-canonical stack reference
//! `#GP(0)`; the test names each and expects what TCG does, and the hardware's
//! answer everywhere else (Keel, and bare hardware that is not TCG).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::fault::{insn, read_cr, read_u64, write_cr, Cr, Insn};
use keel_guest::prelude::*;
use keel_guest::tcg;

keel_guest::test! {
    title: "Exceptions are delivered to the guest IDT: #DE #DB #BP #UD #NM #SS #GP #PF",
    category: Functional,
    needs: Nothing,
    main: test_main,
}

const CR0_TS: u64 = 1 << 3;

fn test_main() {
    let expect = |what: &str, i: Insn, v: Vector, ec: Option<u32>| {
        fault::expect_fault(format_args!("{what}"), insn(i), v, ec)
    };
    let on_tcg = tcg::detected();
    // ICEBP: a trap-like #DB, or TCG's #UD at the instruction.
    let icebp = || {
        if on_tcg {
            expect("ICEBP (TCG)", Insn::IcebpFaulting, Vector::UD, None)
        } else {
            expect("ICEBP", Insn::Icebp, Vector::DB, None)
        }
    };
    if on_tcg {
        tcg::note(&tcg::ICEBP);
        tcg::note(&tcg::STACK_NON_CANONICAL);
    }
    expect("DIV by zero", Insn::DivideByZero, Vector::DE, None);
    icebp();
    expect("INT3", Insn::Int3, Vector::BP, None);
    expect("UD2", Insn::Ud2, Vector::UD, None);
    expect(
        "load via RSP + non-canonical offset",
        Insn::StackNonCanonical,
        if on_tcg { Vector::GP } else { Vector::SS },
        Some(0),
    );
    fault::expect_fault(
        format_args!("load from a non-canonical address"),
        read_u64(GuestVirt::new(0xdead_0000_0000_0000)),
        Vector::GP,
        Some(0),
    );
    let unmapped = keel_guest::targets::region_end();
    fault::expect_fault(
        format_args!("load from unmapped {:#x}", unmapped.get()),
        read_u64(unmapped),
        Vector::PF,
        Some(0),
    );

    // CR0.TS belongs to the guest: setting it makes the next x87 instruction #NM,
    // clearing it lets it run.
    let cr0 = read_cr(Cr::Cr0);
    if fault::expect_no_fault(format_args!("set CR0.TS"), write_cr(Cr::Cr0, cr0 | CR0_TS)).is_some()
    {
        check!(
            read_cr(Cr::Cr0) & CR0_TS != 0,
            "CR0.TS reads back clear after setting it"
        );
        expect("FNOP with CR0.TS set", Insn::Fnop, Vector::NM, None);
        fault::expect_no_fault(
            format_args!("clear CR0.TS"),
            write_cr(Cr::Cr0, cr0 & !CR0_TS),
        );
        fault::expect_no_fault(format_args!("FNOP with CR0.TS clear"), insn(Insn::Fnop));
    }
    check_eq!(read_cr(Cr::Cr0), cr0 & !CR0_TS, "CR0 at the end");

    // The same vectors again, many times: delivery has no state that wears out.
    for _ in 0..50 {
        if !icebp() || !expect("DIV by zero (repeat)", Insn::DivideByZero, Vector::DE, None) {
            break;
        }
    }
    success();
}
