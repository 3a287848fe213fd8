//! The framework's own machinery on real hardware: expected faults come back as
//! the right vector, error code and CR2 and the test carries on; traps resume
//! after the instruction; RDTSC advances; the PRNG is deterministic.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::fault::{insn, pf, read_u64, Insn};
use keel_guest::prelude::*;
use keel_guest::rand::Rng;
use keel_guest::{targets, tsc};

keel_guest::test! {
    title: "Framework self-test: exception table, fault details, TSC, PRNG",
    category: Functional,
    needs: Nothing,
    main: test_main,
}

fn test_main() {
    fault::expect_fault(format_args!("UD2"), insn(Insn::Ud2), Vector::UD, None);
    fault::expect_fault(format_args!("INT3"), insn(Insn::Int3), Vector::BP, None);
    // The same probe many times: the handler and the fixup are reusable.
    for i in 0..100 {
        if !fault::expect_fault(format_args!("UD2 #{i}"), insn(Insn::Ud2), Vector::UD, None) {
            break;
        }
    }

    // A read of an unmapped page: #PF, not-present read (error code 0), CR2 = the
    // address.
    let unmapped = targets::region_end();
    let r = read_u64(unmapped);
    if fault::expect_fault(
        format_args!("read of unmapped {:#x}", unmapped.get()),
        r,
        Vector::PF,
        Some(0),
    ) {
        if let Err(f) = r {
            check_eq!(f.cr2, unmapped.get(), "CR2 after the #PF");
        }
    }
    // A non-canonical address: #GP(0) (no CR2 involved).
    fault::expect_fault(
        format_args!("read of non-canonical address"),
        read_u64(GuestVirt::new(0x8000_0000_0000_0000)),
        Vector::GP,
        Some(0),
    );
    // A mapped, readable address: no fault, and the value is right.
    static WORD: u64 = 0x1234_5678_9abc_def0;
    check_eq!(
        read_u64(GuestVirt::new(&WORD as *const u64 as u64)),
        Ok(0x1234_5678_9abc_def0),
        "read of a static through the probe"
    );
    // A supervisor write to a read-only page of the image (its text), if the
    // builder maps text read-only: #PF with P|W.
    let text = keel_guest::start::boot().virt_base;
    match keel_guest::pagetable::translate(text) {
        Ok(t) if !t.writable() => {
            fault::expect_fault(
                format_args!("write to read-only text"),
                fault::rewrite_u64(text),
                Vector::PF,
                Some(pf::PRESENT | pf::WRITE),
            );
        }
        Ok(_) => println!("note: the image text is mapped writable; write probe not checked"),
        Err(e) => failure!("walking the image text: {e}"),
    }

    let t0 = tsc::rdtsc();
    let t1 = tsc::rdtsc_ordered();
    check!(t1 > t0, "the TSC did not advance ({t0} then {t1})");

    let mut a = Rng::new(5);
    let mut b = Rng::new(5);
    check!(
        (0..100).all(|_| a.next_u64() == b.next_u64()),
        "two PRNGs with one seed diverged"
    );
    success();
}
