//! Direct paging means the guest's page-table frames are mapped read-only. Since
//! ABI 1.0 a store to one of them is trapped and validated by the hypervisor
//! (docs/abi/mmu.md): an invalid entry (here: a reserved bit set) must take
//! `#PF` with the error code of a supervisor write to a present page and CR2 =
//! the address, and change nothing; a valid one (the entry's own value) is
//! emulated and completes.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::PAGE_SIZE;
use keel_guest::fault::{pf, read_u64, rewrite_u64, write_u64};
use keel_guest::pagetable;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Stores to page-table frames: invalid entries fault #PF[P|W], valid ones are emulated",
    category: Security,
    main: test_main,
}

fn test_main() {
    let (lo, hi) = pagetable::pt_region();
    let want_ec = pf::PRESENT | pf::WRITE;
    let mut va = lo;
    while va < hi {
        // First, last and a middle entry of every table frame.
        for off in [0u64, 8 * 256, PAGE_SIZE - 8] {
            let p = GuestVirt::new(va.get() + off);
            let before = read_u64(p);
            // Bit 52 is refused in every entry; P makes it a real mapping attempt.
            let bad = before.as_ref().map_or(1, |b| b | 1) | 1 << 52;
            let r = write_u64(p, bad);
            if fault::expect_fault(
                format_args!("invalid store to page-table frame at {:#x}", p.get()),
                r,
                Vector::PF,
                Some(want_ec),
            ) {
                if let Err(f) = r {
                    check_eq!(f.cr2, p.get(), "CR2 of the #PF");
                }
            }
            fault::expect_no_fault(
                format_args!("emulated store of an entry's own value at {:#x}", p.get()),
                rewrite_u64(p),
            );
            check_eq!(
                read_u64(p),
                before,
                "entry at {:#x} after the refused write",
                p.get()
            );
        }
        va = GuestVirt::new(va.get() + PAGE_SIZE);
    }

    // The positive control: a writable page of our own takes the same probe fine,
    // so the faults above are about the mappings.
    static OWN_DATA: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(7);
    let own = GuestVirt::new(&OWN_DATA as *const _ as u64);
    fault::expect_no_fault(
        format_args!("write to own data at {:#x}", own.get()),
        rewrite_u64(own),
    );
    success();
}
