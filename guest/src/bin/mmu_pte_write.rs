//! Trap-and-emulate of direct page-table writes (docs/abi/mmu.md): an 8-byte
//! `MOV` store into an entry of a validated table, through its read-only
//! mapping, is validated and applied by the hypervisor, and the instruction
//! completes; an invalid entry, a misaligned store, or a store to a read-only
//! page that is not a page table gets the `#PF` reflected unchanged (error code
//! P|W, CR2 = the address), and nothing changes.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::fault::pf;
use keel_guest::mmu::*;
use keel_guest::pagetable::{cr3_mfn, frame_va, read_entry, Pte, PteFlags};
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Direct PTE stores: valid ones emulated, invalid ones reflected as #PF",
    category: Security,
    main: test_main,
}

fn expect_reflected(what: core::fmt::Arguments<'_>, va: GuestVirt, v: Pte) {
    let before = fault::read_u64(GuestVirt::new(va.get() & !7));
    let r = fault::write_u64(va, v.raw());
    if fault::expect_fault(what, r, Vector::PF, Some(pf::PRESENT | pf::WRITE)) {
        if let Err(f) = r {
            check_eq!(f.cr2, va.get(), "CR2 of the reflected #PF");
        }
    }
    check_eq!(
        fault::read_u64(GuestVirt::new(va.get() & !7)),
        before,
        "memory after the refused store"
    );
}

fn test_main() {
    let a = take_frame();
    let b = take_frame();
    let _ = fault::write_u64(a.va, 0xaaaa);
    let _ = fault::write_u64(b.va, 0xbbbb);
    let (l1, i) = l1_of(b.va);
    let Ok(l1va) = frame_va(l1) else {
        failure!("b's L1 is not in the bootstrap region");
        return;
    };
    let pte = GuestVirt::new(l1va.get() + i as u64 * 8);
    let orig = leaf(b.va);

    // Valid stores: remap, unmap, restore. Each completes without a fault.
    fault::expect_no_fault(
        format_args!("store remapping b's address to a (read-only)"),
        fault::write_u64(pte, entry(a.mfn, PteFlags::PRESENT).raw()),
    );
    check_eq!(
        fault::read_u64(b.va),
        Ok(0xaaaa),
        "read through the emulated remap"
    );
    fault::expect_no_fault(format_args!("store unmapping"), fault::write_u64(pte, 0));
    fault::expect_fault(
        format_args!("read after the emulated unmap"),
        fault::read_u64(b.va),
        Vector::PF,
        Some(0),
    );
    fault::expect_no_fault(
        format_args!("store restoring"),
        fault::write_u64(pte, orig.raw()),
    );
    check_eq!(
        fault::read_u64(b.va),
        Ok(0xbbbb),
        "read after the emulated restore"
    );

    // Invalid entries are reflected.
    let l4 = cr3_mfn();
    expect_reflected(
        format_args!("store mapping the L4 writable"),
        pte,
        entry(l4, PteFlags::PRESENT | PteFlags::WRITABLE),
    );
    expect_reflected(
        format_args!("store mapping its own L1 writable"),
        pte,
        entry(l1, PteFlags::PRESENT | PteFlags::WRITABLE),
    );
    expect_reflected(
        format_args!("store mapping a foreign frame"),
        pte,
        entry(Mfn::new(1), PteFlags::PRESENT),
    );
    expect_reflected(
        format_args!("store with reserved bit 52"),
        pte,
        orig.with(PteFlags::from_bits_retain(1 << 52)),
    );
    // The same flags-only change (XSA-182 class): RW on a read-only mapping of a
    // page table, written directly.
    let (pl1, pi) = l1_of(l1va);
    if let Ok(pl1va) = frame_va(pl1) {
        let ro = read_entry(pl1, pi).unwrap_or(Pte::EMPTY);
        expect_reflected(
            format_args!("store adding RW to the mapping of an L1"),
            GuestVirt::new(pl1va.get() + pi as u64 * 8),
            ro.with(PteFlags::WRITABLE),
        );
    }
    // Into the L4: a linear (recursive) entry, read-only.
    if let Ok(l4va) = frame_va(l4) {
        expect_reflected(
            format_args!("store of a linear L4 entry"),
            GuestVirt::new(l4va.get() + 8 * 300),
            entry(l4, PteFlags::PRESENT),
        );
    }
    // A misaligned store into a table.
    expect_reflected(
        format_args!("misaligned store into an L1"),
        GuestVirt::new(pte.get() + 4),
        Pte::EMPTY,
    );
    // A read-only page that is not a page table: the guest's own code.
    let code = GuestVirt::new(test_main as fn() as *const () as u64 & !7);
    let r = fault::rewrite_u64(code);
    if fault::expect_fault(
        format_args!("store to the guest's read-only code"),
        r,
        Vector::PF,
        Some(pf::PRESENT | pf::WRITE),
    ) {
        if let Err(f) = r {
            check_eq!(f.cr2, code.get(), "CR2 for the code page");
        }
    }
    check_eq!(leaf(b.va), orig, "entry at the end");
    success();
}
