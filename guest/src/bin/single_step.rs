//! An instruction Keel completes for the guest ends as the CPU ends one
//! (docs/abi/insns.md): with RFLAGS.TF set, exactly one single-step #DB comes
//! right after it, with DR6.BS set, for every kind of exiting instruction:
//! VMCALL, CPUID, RDMSR, OUT, IN, REP OUTSB, MOV to CR3 and an emulated
//! page-table store. The #DB must not come one instruction late: an emulated
//! instruction that moves RIP must also deliver the trap.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::fault::{read_cr, single_step, Cr, StepInsn, DR6_BS};
use keel_guest::pagetable::Pte;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Single-stepping exiting instructions: one #DB right after each, DR6.BS",
    category: Functional,
    main: test_main,
}

fn test_main() {
    let buf = [0u8; 4];
    let cr3 = read_cr(Cr::Cr3);
    // A page-table entry to rewrite with its own value: the L1 entry that maps
    // a free frame (a supervisor 8-byte store to a read-only page table, which
    // Keel emulates).
    let f = keel_guest::mmu::take_frame();
    let (l1, i) = keel_guest::mmu::l1_of(f.va);
    let entry = keel_guest::mmu::leaf(f.va);
    let slot_va = match keel_guest::pagetable::frame_va(l1) {
        Ok(v) => v.get() + i as u64 * 8,
        Err(e) => keel_guest::report::crash(format_args!("L1 not mapped: {e:?}")),
    };
    let cases = [
        ("VMCALL", StepInsn::Vmcall, 0, 0),
        ("CPUID", StepInsn::Cpuid, 0, 0),
        ("RDMSR", StepInsn::Rdmsr, 0, 0),
        ("OUT", StepInsn::Out, 0, 0),
        ("IN", StepInsn::In, 0, 0),
        ("REP OUTSB", StepInsn::RepOutsb, buf.as_ptr() as u64, 0),
        ("MOV CR3", StepInsn::MovCr3, cr3, 0),
        ("page-table store", StepInsn::Store, slot_va, entry.raw()),
    ];
    for (name, insn, a, b) in cases {
        let s = single_step(insn, a, b);
        match s.db {
            Some(f) if f.vector == Vector::DB => {
                check!(!s.late, "{name}: the #DB came one instruction late");
                check!(s.dr6 & DR6_BS != 0, "{name}: DR6 {:#x} without BS", s.dr6);
            }
            other => keel_guest::failure!("{name}: no single-step #DB ({other:?})"),
        }
    }
    check_eq!(keel_guest::mmu::leaf(f.va), entry, "the page-table entry");
    check_eq!(
        read_cr(Cr::Cr3) & Pte::addr_mask(),
        cr3 & Pte::addr_mask(),
        "CR3"
    );
    success();
}
