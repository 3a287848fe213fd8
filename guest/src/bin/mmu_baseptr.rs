//! Switching address spaces: `MMUEXT_NEW_BASEPTR` and MOV to CR3 succeed only
//! for a pinned, validated L4 of the domain (docs/abi/mmu.md); anything else is
//! `-EINVAL` or `#GP(0)` and leaves CR3 as it was. The bootstrap L4 starts
//! pinned. Unpinning the running L4 is allowed (the base keeps its own
//! reference) but it cannot be loaded again until re-pinned.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::mmu::MMUEXT_NEW_BASEPTR;
use keel_guest::fault::Cr;
use keel_guest::mmu::*;
use keel_guest::pagetable::{cr3_mfn, read_entry, Pte};
use keel_guest::prelude::*;

keel_guest::test! {
    title: "NEW_BASEPTR and MOV to CR3: only pinned, validated L4s",
    category: Security,
    main: test_main,
}

fn mov_cr3(m: Mfn) -> Result<(), Fault> {
    fault::write_cr(Cr::Cr3, m.get() << 12)
}

fn expect_gp(what: core::fmt::Arguments<'_>, r: Result<(), Fault>) {
    fault::expect_fault(what, r, Vector::GP, Some(0));
}

fn test_main() {
    let orig = cr3_mfn();
    expect_err(
        format_args!("pinning the bootstrap L4 (already pinned at build)"),
        pin(4, orig),
        Errno::EINVAL,
    );
    let copy = copy_of_l4();
    let l3 = read_entry(orig, GuestVirt::new(0x40_0000).table_index(4))
        .unwrap_or(Pte::EMPTY)
        .frame();
    let data = take_frame();

    // Not pinned yet: refused both ways.
    expect_err(
        format_args!("NEW_BASEPTR of an unpinned L4"),
        ext(MMUEXT_NEW_BASEPTR, copy.mfn),
        Errno::EINVAL,
    );
    expect_gp(format_args!("MOV CR3 of an unpinned L4"), mov_cr3(copy.mfn));
    check_eq!(cr3_mfn(), orig, "CR3 after the refusals");

    // Other frames: an L3, a data frame, the frame list, foreign frames.
    for (what, m) in [
        ("an L3", l3),
        ("a writable data frame", data.mfn),
        ("MFN 1 (not the domain's)", Mfn::new(1)),
        ("MFN 0xfffff (not the domain's)", Mfn::new(0xf_ffff)),
    ] {
        expect_err(
            format_args!("NEW_BASEPTR of {what}"),
            ext(MMUEXT_NEW_BASEPTR, m),
            Errno::EINVAL,
        );
        expect_gp(format_args!("MOV CR3 of {what}"), mov_cr3(m));
    }
    check_eq!(cr3_mfn(), orig, "CR3 after the refusals");

    // Pinned: both work, and the guest keeps running on the copy.
    expect_ok(format_args!("pinning the copy"), pin(4, copy.mfn));
    expect_ok(
        format_args!("NEW_BASEPTR of the pinned copy"),
        ext(MMUEXT_NEW_BASEPTR, copy.mfn),
    );
    check_eq!(cr3_mfn(), copy.mfn, "CR3 after NEW_BASEPTR");
    println!("running on the copy of the L4 ({:#x})", copy.mfn.get());
    fault::expect_no_fault(
        format_args!("MOV CR3 back to the bootstrap L4"),
        mov_cr3(orig),
    );
    check_eq!(cr3_mfn(), orig, "CR3 after MOV CR3");
    fault::expect_no_fault(
        format_args!("MOV CR3 to the pinned copy"),
        mov_cr3(copy.mfn),
    );
    check_eq!(cr3_mfn(), copy.mfn, "CR3 after MOV CR3");
    // Reloading the current CR3 (a TLB flush on bare metal) works.
    fault::expect_no_fault(format_args!("MOV CR3 of the current L4"), mov_cr3(copy.mfn));

    // Unpin the running copy: allowed; the guest keeps running on it.
    expect_ok(format_args!("unpinning the running L4"), unpin(copy.mfn));
    check_eq!(
        fault::read_u64(data.va),
        Ok(0),
        "a read after unpinning the running L4"
    );
    // While it is the base it is still a validated table: no writable mapping.
    expect_err(
        format_args!("mapping the running (unpinned) L4 writable"),
        make_writable(copy.va),
        Errno::EINVAL,
    );
    fault::expect_no_fault(
        format_args!("MOV CR3 back to the bootstrap L4"),
        mov_cr3(orig),
    );
    expect_gp(
        format_args!("MOV CR3 of the now unpinned copy"),
        mov_cr3(copy.mfn),
    );
    expect_err(
        format_args!("NEW_BASEPTR of the now unpinned copy"),
        ext(MMUEXT_NEW_BASEPTR, copy.mfn),
        Errno::EINVAL,
    );
    // No longer in use at all: it is ordinary memory again.
    expect_ok(
        format_args!("mapping the released copy writable"),
        make_writable(copy.va),
    );
    check_eq!(cr3_mfn(), orig, "CR3 at the end");
    success();
}
