//! `mmu_update` (MMU_NORMAL_PT_UPDATE) on the live page tables: map, remap and
//! unmap a page and see the effect through the new mapping; then every rule of
//! docs/abi/mmu.md, each attempted and refused with `-EINVAL` and no change:
//! foreign frames, writable mappings of page tables, superpages, reserved bits,
//! wrong levels, linear entries. Also `success_count`, other commands
//! (`-ENOSYS`), a foreign domain (`-ESRCH`) and unreadable or page-table
//! pointers (`-EFAULT`).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::guest::{hypercall_scalar, mmu_update};
use keel_guest::abi::mmu::*;
use keel_guest::mmu::*;
use keel_guest::pagetable::{self, cr3_mfn, read_entry, Pte, PteFlags};
use keel_guest::prelude::*;

keel_guest::test! {
    title: "mmu_update: validated page-table updates, success counts, and every refusal",
    category: Security,
    main: test_main,
}

fn test_main() {
    // Two data frames with recognisable contents; the second one's mapping is
    // the entry this test rewrites.
    let a = take_frame();
    let b = take_frame();
    let _ = fault::write_u64(a.va, 0xaaaa_aaaa);
    let _ = fault::write_u64(b.va, 0xbbbb_bbbb);
    let (l1, i) = l1_of(b.va);
    let ptr = slot(l1, i);
    let orig = leaf(b.va);

    // Remap b's address to frame a, read-only: the next read sees a's data.
    expect_ok(
        format_args!("remap to another frame"),
        update(ptr, entry(a.mfn, PteFlags::PRESENT)),
    );
    check_eq!(
        fault::read_u64(b.va),
        Ok(0xaaaa_aaaa),
        "read through the remapped entry"
    );
    fault::expect_fault(
        format_args!("write through the read-only remap"),
        fault::write_u64(b.va, 1),
        Vector::PF,
        Some(fault::pf::PRESENT | fault::pf::WRITE),
    );
    // Unmap: the read faults (not-present).
    expect_ok(format_args!("unmap"), update(ptr, Pte::EMPTY));
    fault::expect_fault(
        format_args!("read of the unmapped page"),
        fault::read_u64(b.va),
        Vector::PF,
        Some(0),
    );
    // Restore.
    expect_ok(format_args!("restore"), update(ptr, orig));
    check_eq!(
        fault::read_u64(b.va),
        Ok(0xbbbb_bbbb),
        "read after restoring"
    );

    // Refusals: each leaves the entry as it was.
    let (pt_lo, _) = pagetable::pt_region();
    let l4 = cr3_mfn();
    let some_l1 = l1;
    let l2 = read_entry(
        read_entry(l4, b.va.table_index(4))
            .unwrap_or(Pte::EMPTY)
            .frame(),
        b.va.table_index(3),
    )
    .unwrap_or(Pte::EMPTY)
    .frame();
    // EFER.NXE (bit 11): without it NX is a reserved bit.
    let nxe = fault::rdmsr(0xc000_0080).is_ok_and(|v| v & (1 << 11) != 0);
    let nx = if nxe {
        PteFlags::empty()
    } else {
        PteFlags::NO_EXECUTE
    };
    let cases: [(&str, u64, Pte); 9] = [
        (
            "map the L4 writable",
            ptr,
            entry(l4, PteFlags::PRESENT | PteFlags::WRITABLE),
        ),
        (
            "map an L1 writable",
            ptr,
            entry(some_l1, PteFlags::PRESENT | PteFlags::WRITABLE),
        ),
        (
            "map a foreign frame (MFN 1)",
            ptr,
            entry(Mfn::new(1), PteFlags::PRESENT),
        ),
        (
            "map a frame past the top of RAM",
            ptr,
            entry(Mfn::new(0xff_ffff), PteFlags::PRESENT),
        ),
        (
            "PAT bit in an L1 entry",
            ptr,
            entry(a.mfn, PteFlags::PRESENT | PteFlags::PAGE_SIZE),
        ),
        (
            "reserved bit 52",
            ptr,
            entry(
                a.mfn,
                PteFlags::PRESENT | PteFlags::from_bits_retain(1 << 52),
            ),
        ),
        (
            "a superpage in the L2",
            slot(l2, (b.va.table_index(2) + 1) % 512),
            entry(a.mfn, PteFlags::PRESENT | PteFlags::PAGE_SIZE),
        ),
        (
            "an L4 entry pointing at the L4 (linear)",
            slot(l4, 300),
            entry(l4, PteFlags::PRESENT),
        ),
        (
            "an L2 entry pointing at a data frame that is mapped writable",
            slot(l2, 400),
            entry(a.mfn, PteFlags::PRESENT | PteFlags::WRITABLE),
        ),
    ];
    for (what, p, v) in cases {
        let before = read_at(p);
        expect_err(format_args!("{what}"), update(p, v), Errno::EINVAL);
        check_eq!(
            read_at(p),
            before,
            "entry after the refused attempt to {what}"
        );
    }
    if !nx.is_empty() {
        expect_err(
            format_args!("NX without EFER.NXE"),
            update(ptr, entry(a.mfn, PteFlags::PRESENT | nx)),
            Errno::EINVAL,
        );
    }
    // The table frame must be the domain's; the address must be aligned.
    expect_err(
        format_args!("update in a foreign frame"),
        update(slot(Mfn::new(1), 0), Pte::EMPTY),
        Errno::EINVAL,
    );
    expect_err(
        format_args!("misaligned entry address"),
        update(ptr | 4, orig),
        Errno::EINVAL,
    );

    // A batch: three good, one bad, one good: stops at the bad one; done = 3.
    let req = |ptr, val: Pte| MmuUpdate {
        ptr,
        val: val.raw(),
    };
    let (done, r) = mmu_update(&[
        req(ptr, entry(a.mfn, PteFlags::PRESENT)),
        req(ptr, Pte::EMPTY),
        req(ptr, orig),
        req(ptr, entry(l4, PteFlags::PRESENT | PteFlags::WRITABLE)),
        req(ptr, Pte::EMPTY),
    ]);
    check!(
        (done, r) == (3, Err(Errno::EINVAL)),
        "batch: done {done}, {r:?}; expected 3, -EINVAL"
    );
    check_eq!(leaf(b.va), orig, "entry after the batch");
    // Other commands.
    for cmd in [
        MMU_MACHPHYS_UPDATE,
        MMU_PT_UPDATE_PRESERVE_AD,
        MMU_PT_UPDATE_NO_TRANSLATE,
    ] {
        let (done, r) = mmu_update(&[req(ptr | cmd, orig)]);
        check!(
            (done, r) == (0, Err(Errno::ENOSYS)),
            "command {cmd}: done {done}, {r:?}; expected -ENOSYS"
        );
    }
    // Pointers: unreadable requests, success_count in a page table, foreign domain.
    let e = |x: Errno| x.as_return();
    let reqs = [req(ptr, orig)];
    let rp = reqs.as_ptr() as u64;
    check_eq!(
        hypercall_scalar(Hypercall::MMU_UPDATE, [0x10, 1, 0, DOMID_SELF, 0]),
        e(Errno::EFAULT),
        "unreadable request list"
    );
    check_eq!(
        hypercall_scalar(Hypercall::MMU_UPDATE, [rp, 1, pt_lo.get(), DOMID_SELF, 0]),
        e(Errno::EFAULT),
        "success_count pointing into a page-table frame"
    );
    check_eq!(
        hypercall_scalar(Hypercall::MMU_UPDATE, [rp, 1, 0, 0, 0]),
        e(Errno::ESRCH),
        "foreigndom 0"
    );
    check_eq!(
        hypercall_scalar(Hypercall::MMU_UPDATE, [rp, 1 << 31, 0, DOMID_SELF, 0]),
        e(Errno::EINVAL),
        "count with bit 31"
    );
    check_eq!(
        hypercall_scalar(Hypercall::MMU_UPDATE, [rp, 1, 0, DOMID_SELF, 0]),
        0,
        "one good request, NULL success_count"
    );
    check_eq!(leaf(b.va), orig, "entry at the end");
    success();
}

/// The entry at machine address `p`, read through the bootstrap mapping.
fn read_at(p: u64) -> Pte {
    read_entry(Mfn::new(p >> 12), ((p & 0xfff) / 8) as usize).unwrap_or(Pte(u64::MAX))
}
