//! Direct paging means the guest's page-table frames are mapped read-only: a
//! write to any of them through the bootstrap mapping must take `#PF` with the
//! error code of a supervisor write to a present page, and change nothing.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::PAGE_SIZE;
use keel_guest::fault::{pf, read_u64, rewrite_u64};
use keel_guest::pagetable;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Writing a page-table frame through its read-only mapping faults #PF[P|W]",
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
            let p = GuestVirt(va.0 + off);
            let before = read_u64(p);
            let r = rewrite_u64(p);
            if fault::expect_fault(
                format_args!("write to page-table frame at {:#x}", p.0),
                r,
                Vector::PF,
                Some(want_ec),
            ) {
                if let Err(f) = r {
                    check_eq!(f.cr2, p.0, "CR2 of the #PF");
                }
            }
            check_eq!(
                read_u64(p),
                before,
                "entry at {:#x} after the refused write",
                p.0
            );
        }
        va = GuestVirt(va.0 + PAGE_SIZE);
    }

    // The positive control: a writable page of our own takes the same probe fine,
    // so the faults above are about the mappings.
    static OWN_DATA: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(7);
    let own = GuestVirt(&OWN_DATA as *const _ as u64);
    fault::expect_no_fault(
        format_args!("write to own data at {:#x}", own.0),
        rewrite_u64(own),
    );
    success();
}
