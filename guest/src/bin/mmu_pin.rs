//! `mmuext_op` pinning: fresh L1..L4 tables built from free frames pin, type
//! their frames (a pinned table cannot be mapped writable; a writable-mapped
//! frame cannot be pinned), unpin, and every refusal is `-EINVAL` with nothing
//! done (`success_count` says how far a batch got).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::guest::mmuext_op;
use keel_guest::abi::mmu::*;
use keel_guest::mmu::*;
use keel_guest::pagetable::{Pte, PteFlags};
use keel_guest::prelude::*;

keel_guest::test! {
    title: "mmuext_op: pin/unpin L1..L4 tables, and every pinning refusal",
    category: Security,
    main: test_main,
}

fn test_main() {
    // A four-level chain of fresh tables, mapping one data frame read-only.
    let (l4, l3, l2, l1) = (table_frame(), table_frame(), table_frame(), table_frame());
    let data = take_frame();
    let ok = fill(&l1, 0, entry(data.mfn, PteFlags::PRESENT)).is_ok()
        && fill(
            &l2,
            0,
            entry(l1.mfn, PteFlags::PRESENT | PteFlags::WRITABLE),
        )
        .is_ok()
        && fill(
            &l3,
            0,
            entry(l2.mfn, PteFlags::PRESENT | PteFlags::WRITABLE),
        )
        .is_ok()
        && fill(
            &l4,
            0,
            entry(l3.mfn, PteFlags::PRESENT | PteFlags::WRITABLE),
        )
        .is_ok();
    if !check!(ok, "filling fresh (unpinned) frames with mmu_update") {
        return;
    }

    // Bottom up: each level pins on its own.
    expect_ok(format_args!("PIN_L1_TABLE"), pin(1, l1.mfn));
    expect_ok(format_args!("PIN_L2_TABLE"), pin(2, l2.mfn));
    expect_ok(format_args!("PIN_L3_TABLE"), pin(3, l3.mfn));
    expect_ok(format_args!("PIN_L4_TABLE"), pin(4, l4.mfn));
    println!("pinned a fresh L4/L3/L2/L1 chain");

    // Pinned twice; pinned at another level; unpinned twice.
    expect_err(
        format_args!("pinning the L4 again"),
        pin(4, l4.mfn),
        Errno::EINVAL,
    );
    expect_err(
        format_args!("pinning the L1 as an L2"),
        pin(2, l1.mfn),
        Errno::EINVAL,
    );
    expect_err(
        format_args!("pinning the L3 as an L4"),
        pin(4, l3.mfn),
        Errno::EINVAL,
    );

    // A pinned table cannot be mapped writable (its bootstrap mapping is read-only).
    expect_err(
        format_args!("mapping the pinned L2 writable"),
        make_writable(l2.va),
        Errno::EINVAL,
    );
    check!(
        !leaf(l2.va).contains(PteFlags::WRITABLE),
        "the refused update changed the mapping"
    );

    // A frame mapped writable cannot be pinned.
    let w = take_frame();
    expect_err(
        format_args!("pinning a writable-mapped frame"),
        pin(1, w.mfn),
        Errno::EINVAL,
    );
    // A frame that is not the domain's cannot be pinned.
    for m in [Mfn::new(0), Mfn::new(1), Mfn::new(0xf_ffff_ffff)] {
        expect_err(
            format_args!("pinning foreign frame {:#x}", m.get()),
            pin(1, m),
            Errno::EINVAL,
        );
    }

    // Tables whose entries break a rule do not pin, and leave no trace.
    let bad = table_frame();
    for (what, e, level) in [
        (
            "an L1 mapping a page table writable",
            entry(l2.mfn, PteFlags::PRESENT | PteFlags::WRITABLE),
            1,
        ),
        (
            "an L1 mapping a foreign frame",
            entry(Mfn::new(1), PteFlags::PRESENT),
            1,
        ),
        (
            "an L2 with a superpage",
            entry(data.mfn, PteFlags::PRESENT | PteFlags::PAGE_SIZE),
            2,
        ),
        (
            "an L3 with a superpage",
            entry(data.mfn, PteFlags::PRESENT | PteFlags::PAGE_SIZE),
            3,
        ),
        (
            "an L1 with a reserved bit (52)",
            entry(
                data.mfn,
                PteFlags::PRESENT | PteFlags::from_bits_retain(1 << 52),
            ),
            1,
        ),
        (
            "an L2 pointing at an L2",
            entry(l2.mfn, PteFlags::PRESENT),
            2,
        ),
        (
            "an L4 pointing at an L4 (linear)",
            entry(l4.mfn, PteFlags::PRESENT),
            4,
        ),
        (
            "an L3 pointing at itself",
            entry(bad.mfn, PteFlags::PRESENT),
            3,
        ),
    ] {
        if fill(&bad, 7, e).is_err() {
            failure!("could not prepare {what}");
            continue;
        }
        expect_err(
            format_args!("pinning {what}"),
            pin(level, bad.mfn),
            Errno::EINVAL,
        );
        let _ = fill(&bad, 7, Pte::EMPTY);
    }
    // The same frame, now clean, pins (the failures left no count behind).
    expect_ok(format_args!("pinning the cleaned frame"), pin(1, bad.mfn));
    expect_ok(format_args!("unpinning it"), unpin(bad.mfn));

    // A batch stops at the first failure and reports how far it got.
    let op = |cmd, arg1| MmuextOp {
        cmd,
        pad: 0,
        arg1,
        arg2: 0,
    };
    let (done, r) = mmuext_op(&[
        op(MMUEXT_TLB_FLUSH_LOCAL, 0),
        op(MMUEXT_UNPIN_TABLE, l4.mfn.get()),
        op(MMUEXT_UNPIN_TABLE, l4.mfn.get()),
        op(MMUEXT_TLB_FLUSH_LOCAL, 0),
    ]);
    check!(
        (done, r) == (2, Err(Errno::EINVAL)),
        "batch with a double unpin: done {done}, {r:?}; expected 2, EINVAL"
    );
    // Unknown and unimplemented commands.
    for cmd in [
        MMUEXT_FLUSH_CACHE,
        MMUEXT_SET_LDT,
        MMUEXT_NEW_USER_BASEPTR,
        MMUEXT_COPY_PAGE,
        MMUEXT_MARK_SUPER,
        14,
        21,
        0xffff_ffff,
    ] {
        let (done, r) = mmuext_op(&[op(cmd, 0)]);
        check!(
            (done, r) == (0, Err(Errno::ENOSYS)),
            "mmuext_op cmd {cmd}: done {done}, {r:?}, expected -ENOSYS"
        );
    }

    // Unpin the rest top down; afterwards the frames are ordinary memory again and
    // may be mapped writable.
    for (what, f) in [("L3", &l3), ("L2", &l2), ("L1", &l1)] {
        expect_ok(format_args!("unpinning the {what}"), unpin(f.mfn));
    }
    expect_err(
        format_args!("unpinning an unpinned frame"),
        unpin(l1.mfn),
        Errno::EINVAL,
    );
    for (what, f) in [("L4", &l4), ("L3", &l3), ("L2", &l2), ("L1", &l1)] {
        expect_ok(
            format_args!("mapping the unpinned {what} writable"),
            make_writable(f.va),
        );
    }
    success();
}
