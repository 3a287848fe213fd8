//! A fault raised while the CPU delivers an event ends by the SDM's double-fault
//! rule (docs/abi/README.md, "Exceptions"; SDM vol. 3, "Interrupt 8"): the
//! benign / contributory / page-fault classes decide between delivering the new
//! fault, `#DF`, and a triple fault. Keel sees these faults when the delivery
//! writes a read-only page (a write-protection `#PF` exits to it, with the
//! event being delivered in the IDT-vectoring information), so each case points
//! one vector's stack (an IST) at a read-only page and raises that vector:
//!
//! - benign (`#UD`) then `#PF`: the `#PF` is delivered;
//! - contributory (`#GP(0)` from Keel's MSR policy, `#DE` from the CPU) then
//!   `#PF`: the `#PF` is delivered;
//! - `#PF` (from the CPU, and from Keel's string-I/O emulation) then `#PF`: `#DF`;
//! - with the argument `triple`: `#DF` then `#PF`, a triple fault, which must
//!   crash the domain with its diagnostic (`loader/tests/exceptions.rs` checks
//!   that run), not loop for ever reflecting `#PF`s.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::arch::{set_df_stack, set_vector_stack};
use keel_guest::fault::{expect_fault, insn, pf, rdmsr, read_u64, rep_insb, Insn};
use keel_guest::prelude::*;
use keel_guest::targets::region_end;

keel_guest::test! {
    title: "Exception delivery: benign/contributory/page-fault classes, #DF, triple fault",
    category: Functional,
    main: test_main,
}

/// An empty port (reads all ones).
const PORT: u16 = 0x2e8;
/// An MSR Keel's policy refuses with #GP(0).
const NO_SUCH_MSR: u32 = 0xdead_0000;

fn test_main() {
    let ro = keel_guest::mmu::take_frame();
    if let Err(e) = keel_guest::mmu::make_readonly(ro.va) {
        keel_guest::report::crash(format_args!("making the stack page read-only: {e}"));
    }
    let top = ro.va.get() + PAGE_SIZE;
    let on_ro = |f: &Fault| (ro.va.get()..top).contains(&f.cr2);

    if keel_guest::start::cmdline_value(cmdline(), "case") == Some("triple") {
        // #PF (not present) whose delivery writes the read-only page: #DF,
        // whose delivery writes it too: a triple fault.
        println!("provoking a #PF while #DF is delivered: the domain must crash");
        set_vector_stack(Vector::PF.0, Some(top));
        set_df_stack(Some(top));
        let r = read_u64(region_end());
        set_df_stack(None);
        set_vector_stack(Vector::PF.0, None);
        keel_guest::failure!("the triple fault returned: {r:?}");
        return;
    }

    // Benign then #PF: delivered serially, the #PF reports the stack write.
    set_vector_stack(Vector::UD.0, Some(top));
    let r = insn(Insn::Ud2);
    set_vector_stack(Vector::UD.0, None);
    if expect_fault(
        format_args!("#UD delivered on a read-only stack"),
        r,
        Vector::PF,
        Some(pf::PRESENT | pf::WRITE),
    ) {
        check!(
            on_ro(&r.unwrap_err()),
            "CR2 {:#x} on the read-only stack",
            r.unwrap_err().cr2
        );
    }

    // Contributory then #PF: serially. #GP(0) injected by Keel's MSR policy.
    set_vector_stack(Vector::GP.0, Some(top));
    let r = rdmsr(NO_SUCH_MSR);
    set_vector_stack(Vector::GP.0, None);
    if expect_fault(
        format_args!("Keel's #GP(0) delivered on a read-only stack"),
        r,
        Vector::PF,
        Some(pf::PRESENT | pf::WRITE),
    ) {
        check!(
            on_ro(&r.unwrap_err()),
            "CR2 {:#x} on the read-only stack",
            r.unwrap_err().cr2
        );
    }
    // And #DE from the CPU.
    set_vector_stack(Vector::DE.0, Some(top));
    let r = insn(Insn::DivideByZero);
    set_vector_stack(Vector::DE.0, None);
    expect_fault(
        format_args!("#DE delivered on a read-only stack"),
        r,
        Vector::PF,
        Some(pf::PRESENT | pf::WRITE),
    );

    // #PF then #PF: #DF (its own stack is fine), error code 0.
    set_vector_stack(Vector::PF.0, Some(top));
    let r = read_u64(region_end());
    set_vector_stack(Vector::PF.0, None);
    expect_fault(
        format_args!("#PF delivered on a read-only stack"),
        r,
        Vector::DF,
        Some(0),
    );
    // The same with the #PF Keel raises for string I/O into an unmapped page.
    set_vector_stack(Vector::PF.0, Some(top));
    let (_, r) = rep_insb(PORT, region_end(), 4);
    set_vector_stack(Vector::PF.0, None);
    expect_fault(
        format_args!("Keel's string-I/O #PF delivered on a read-only stack"),
        r,
        Vector::DF,
        Some(0),
    );

    // Everything is back to normal.
    expect_fault(
        format_args!("#PF with its normal stack"),
        read_u64(region_end()),
        Vector::PF,
        Some(0),
    );
    success();
}
