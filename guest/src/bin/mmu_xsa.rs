//! An adversarial set modelled on Xen's page-table advisories:
//!
//! - XSA-182 (a "flag-only" fast path that skipped checks): flipping RW on an
//!   existing read-only mapping of a page table, by `mmu_update` and by a direct
//!   store, in an L1 and via upper levels; re-validation of every flag change.
//! - XSA-240 (linear page tables and unbounded recursion): self-references at
//!   every level, chains of L4s and L3s pointing at each other, an upward
//!   reference (L2 -> L3), and a wide but legal fan-in (512 L2 entries sharing
//!   one L1) that must pin, count and unpin cleanly; nothing may hang or crash
//!   the hypervisor.
//! - XSA-286 (stale translations): a writable mapping that is removed and the
//!   frame immediately pinned as a table in the same batch; the old writable
//!   translation must be gone before the guest runs again.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::guest::{mmu_update, mmuext_op, multicall};
use keel_guest::abi::mmu::*;
use keel_guest::fault::pf;
use keel_guest::mmu::*;
use keel_guest::pagetable::{frame_va, read_entry, Pte, PteFlags};
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Adversarial page-table sequences modelled on XSA-182, XSA-240 and XSA-286",
    category: Security,
    main: test_main,
}

fn test_main() {
    xsa182();
    xsa240();
    xsa286();
    success();
}

fn xsa182() {
    // The bootstrap maps every page-table frame read-only: take the mapping of
    // the L1 that maps the page tables themselves.
    let (pt_lo, _) = keel_guest::pagetable::pt_region();
    let (l1, i) = l1_of(pt_lo);
    let ro = read_entry(l1, i).unwrap_or(Pte::EMPTY);
    check!(
        ro.contains(PteFlags::PRESENT) && !ro.contains(PteFlags::WRITABLE),
        "page-table mapping {ro:#x} is not read-only"
    );
    expect_err(
        format_args!("XSA-182: mmu_update adding only RW to a page-table mapping"),
        update(slot(l1, i), ro.with(PteFlags::WRITABLE)),
        Errno::EINVAL,
    );
    // Accessed/dirty-only changes are fine and change nothing else.
    expect_ok(
        format_args!("A/D-only update"),
        update(slot(l1, i), ro.with(PteFlags::ACCESSED | PteFlags::DIRTY)),
    );
    if let Ok(l1va) = frame_va(l1) {
        let r = fault::write_u64(
            GuestVirt::new(l1va.get() + i as u64 * 8),
            ro.with(PteFlags::WRITABLE).raw(),
        );
        fault::expect_fault(
            format_args!("XSA-182: direct store adding only RW"),
            r,
            Vector::PF,
            Some(pf::PRESENT | pf::WRITE),
        );
    }
    check!(
        read_entry(l1, !i)
            .unwrap_or(Pte::EMPTY)
            .contains(PteFlags::WRITABLE),
        "the mapping became writable"
    );

    // A fresh L2 -> L1 where the L1 maps a page table read-only: pins; the RW flip
    // on the pinned L1 is refused; and the same L1 cannot be pinned with RW set.
    let (l2f, l1f) = (table_frame(), table_frame());
    let _ = fill(&l1f, 0, entry(l1, PteFlags::PRESENT));
    let _ = fill(
        &l2f,
        0,
        entry(l1f.mfn, PteFlags::PRESENT | PteFlags::WRITABLE),
    );
    expect_ok(
        format_args!("pinning an L2 whose L1 maps a table read-only"),
        pin(2, l2f.mfn),
    );
    expect_err(
        format_args!("XSA-182: RW flip in the pinned L1"),
        update(
            slot(l1f.mfn, 0),
            entry(l1, PteFlags::PRESENT | PteFlags::WRITABLE),
        ),
        Errno::EINVAL,
    );
    // Clearing RW at the L2 and setting it again goes through validation each time.
    expect_ok(
        format_args!("RW off at L2"),
        update(slot(l2f.mfn, 0), entry(l1f.mfn, PteFlags::PRESENT)),
    );
    expect_ok(
        format_args!("RW on at L2"),
        update(
            slot(l2f.mfn, 0),
            entry(l1f.mfn, PteFlags::PRESENT | PteFlags::WRITABLE),
        ),
    );
    expect_ok(format_args!("unpinning"), unpin(l2f.mfn));
    let _ = fill(&l1f, 0, entry(l1, PteFlags::PRESENT | PteFlags::WRITABLE));
    expect_err(
        format_args!("pinning an L1 that maps a table writable"),
        pin(1, l1f.mfn),
        Errno::EINVAL,
    );
    let _ = fill(&l1f, 0, Pte::EMPTY);
}

fn xsa240() {
    // Self-references at each level.
    for level in 2..=4u32 {
        let t = table_frame();
        let _ = fill(&t, 5, entry(t.mfn, PteFlags::PRESENT));
        expect_err(
            format_args!("XSA-240: L{level} pointing at itself"),
            pin(level, t.mfn),
            Errno::EINVAL,
        );
        let _ = fill(&t, 5, Pte::EMPTY);
        expect_ok(format_args!("the cleaned L{level}"), pin(level, t.mfn));
        expect_err(
            format_args!("XSA-240: adding the self-reference to the pinned L{level}"),
            update(slot(t.mfn, 5), entry(t.mfn, PteFlags::PRESENT)),
            Errno::EINVAL,
        );
        let _ = unpin(t.mfn);
    }
    // A ring of four tables, each pointing at the next (read-only, as Xen's
    // linear tables were), the last at the first. Read as linear L4s it is a
    // cycle; under one type per frame it can only be the plain hierarchy
    // L4 -> L3 -> L2 -> L1 whose L1 maps the L4 read-only, which is legal:
    // pinning link 0 types the others, and none of them can then be an L4.
    let ring = [table_frame(), table_frame(), table_frame(), table_frame()];
    for k in 0..4 {
        let _ = fill(&ring[k], 1, entry(ring[(k + 1) % 4].mfn, PteFlags::PRESENT));
    }
    expect_ok(
        format_args!("pinning link 0 of the ring as an L4"),
        pin(4, ring[0].mfn),
    );
    for (k, f) in ring.iter().enumerate().skip(1) {
        expect_err(
            format_args!("XSA-240: ring link {k} as a second L4"),
            pin(4, f.mfn),
            Errno::EINVAL,
        );
    }
    expect_err(
        format_args!("the ring's L1 (in use) mapped writable"),
        make_writable(ring[3].va),
        Errno::EINVAL,
    );
    expect_ok(format_args!("unpinning the ring"), unpin(ring[0].mfn));
    expect_ok(
        format_args!("the released ring's L1 mapped writable"),
        make_writable(ring[3].va),
    );
    // Two pinned L4s: linking one into the other (an L4 where an L3 belongs) fails.
    let (p4, q4) = (table_frame(), table_frame());
    expect_ok(format_args!("pinning an empty L4"), pin(4, p4.mfn));
    expect_ok(format_args!("pinning another empty L4"), pin(4, q4.mfn));
    expect_err(
        format_args!("XSA-240: L4 entry pointing at another pinned L4"),
        update(slot(p4.mfn, 1), entry(q4.mfn, PteFlags::PRESENT)),
        Errno::EINVAL,
    );
    let _ = unpin(p4.mfn);
    let _ = unpin(q4.mfn);
    // An upward reference: an L2 entry pointing at a pinned L3.
    let (l3, l2) = (table_frame(), table_frame());
    let _ = pin(3, l3.mfn);
    let _ = fill(&l2, 0, entry(l3.mfn, PteFlags::PRESENT));
    expect_err(
        format_args!("XSA-240: L2 pointing up at an L3"),
        pin(2, l2.mfn),
        Errno::EINVAL,
    );
    let _ = fill(&l2, 0, Pte::EMPTY);
    let _ = unpin(l3.mfn);

    // Wide fan-in, legal: 512 L2 entries share one L1 (batched in one call).
    let shared = table_frame();
    let mut reqs = [MmuUpdate::default(); 512];
    for (k, r) in reqs.iter_mut().enumerate() {
        *r = MmuUpdate {
            ptr: slot(l2.mfn, k),
            val: entry(shared.mfn, PteFlags::PRESENT | PteFlags::WRITABLE).raw(),
        };
    }
    let (done, r) = mmu_update(&reqs);
    check!(
        (done, r) == (512, Ok(())),
        "filling 512 L2 entries: {done}, {r:?}"
    );
    expect_ok(
        format_args!("pinning the L2 with 512 references to one L1"),
        pin(2, l2.mfn),
    );
    expect_err(
        format_args!("the shared L1 (type count 512) mapped writable"),
        make_writable(shared.va),
        Errno::EINVAL,
    );
    expect_ok(format_args!("unpinning the fan-in L2"), unpin(l2.mfn));
    expect_ok(
        format_args!("the shared L1, released, mapped writable"),
        make_writable(shared.va),
    );
}

fn xsa286() {
    // The guest writes a page (caching a writable translation), then in ONE
    // multicall drops the writable mapping and pins the frame as an L1. If the
    // stale translation survived, the next store would write into a pinned table.
    let f = take_frame();
    let _ = fault::write_u64(f.va, 0);
    let (l1, i) = l1_of(f.va);
    let rw = leaf(f.va);
    let drop_rw = [MmuUpdate {
        ptr: slot(l1, i),
        val: rw.without(PteFlags::WRITABLE).raw(),
    }];
    let pin1 = [MmuextOp {
        cmd: MMUEXT_PIN_L1_TABLE,
        pad: 0,
        arg1: f.mfn.get(),
        arg2: 0,
    }];
    let mut calls = [
        MulticallEntry {
            op: Hypercall::MMU_UPDATE.0,
            result: 1,
            args: [drop_rw.as_ptr() as u64, 1, 0, DOMID_SELF, 0, 0],
        },
        MulticallEntry {
            op: Hypercall::MMUEXT_OP.0,
            result: 1,
            args: [pin1.as_ptr() as u64, 1, 0, DOMID_SELF, 0, 0],
        },
    ];
    check_eq!(multicall(&mut calls), Ok(()), "multicall");
    check!(
        calls[0].result == 0 && calls[1].result == 0,
        "drop RW + pin results {} {}",
        calls[0].result as i64,
        calls[1].result as i64
    );
    // A present, reserved-bit entry: if this store landed, the pinned L1 would
    // hold an unvalidated entry.
    let r = fault::write_u64(
        f.va,
        entry(Mfn::new(1), PteFlags::PRESENT | PteFlags::WRITABLE).raw(),
    );
    fault::expect_fault(
        format_args!("XSA-286: store through the dropped writable mapping"),
        r,
        Vector::PF,
        Some(pf::PRESENT | pf::WRITE),
    );
    check_eq!(fault::read_u64(f.va), Ok(0), "the pinned L1's entry 0");
    let (done, r) = mmuext_op(&[MmuextOp {
        cmd: MMUEXT_UNPIN_TABLE,
        pad: 0,
        arg1: f.mfn.get(),
        arg2: 0,
    }]);
    check!((done, r) == (1, Ok(())), "unpin: {done} {r:?}");
}
