//! A hypercall must not write where the guest itself cannot: asking `xen_version`
//! to store its output into a page-table frame (through the read-only bootstrap
//! mapping of the tables) must fail with `-EFAULT` and leave the table unchanged.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::guest::hypercall_scalar;
use keel_guest::abi::version::{XENVER_EXTRAVERSION, XENVER_GET_FEATURES};
use keel_guest::abi::PAGE_SIZE;
use keel_guest::pagetable;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "A hypercall writing into a page-table frame returns -EFAULT and leaves the table unchanged",
    category: Security,
    main: test_main,
}

fn test_main() {
    let (lo, hi) = pagetable::pt_region();
    let mut va = lo;
    let mut frames = 0;
    while va < hi {
        let before = match pagetable::page_hash(va) {
            Ok(h) => h,
            Err(f) => {
                failure!("reading page-table frame at {:#x} took {f}", va.get());
                return;
            }
        };
        // extraversion writes 16 bytes, get_features 8: aim both at the first
        // entries (the L4's low half maps the guest) and at the end of the frame.
        for off in [0, 8 * 256, PAGE_SIZE - 16] {
            let p = va.get() + off;
            let r = hypercall_scalar(Hypercall::XEN_VERSION, [XENVER_EXTRAVERSION, p, 0, 0, 0]);
            check_eq!(
                r,
                Errno::EFAULT.as_return(),
                "XENVER_extraversion into page-table frame at {p:#x}"
            );
        }
        // get_features reads its struct first (Xen semantics): the "submap index"
        // is then whatever the table entry holds, and a non-zero one is -EINVAL
        // before any write. Either way nothing may be written.
        for off in [0u64, 8, PAGE_SIZE - 8] {
            let p = va.get() + off;
            let r = hypercall_scalar(Hypercall::XEN_VERSION, [XENVER_GET_FEATURES, p, 0, 0, 0]);
            check!(
                r == Errno::EFAULT.as_return() || r == Errno::EINVAL.as_return(),
                "XENVER_get_features on page-table frame at {p:#x} returned {r}, want -EFAULT (or -EINVAL)"
            );
        }
        match pagetable::page_hash(va) {
            Ok(h) => {
                check!(
                    h == before,
                    "page-table frame at {:#x} changed after refused hypercalls",
                    va.get()
                );
            }
            Err(f) => failure!("re-reading page-table frame at {:#x} took {f}", va.get()),
        }
        frames += 1;
        va = GuestVirt::new(va.get() + PAGE_SIZE);
    }
    println!("{frames} page-table frames probed");

    // The positive control: the same call into our own buffer succeeds.
    let mut buf = [0u8; 16];
    check_eq!(
        hypercall_scalar(
            Hypercall::XEN_VERSION,
            [XENVER_EXTRAVERSION, buf.as_mut_ptr() as u64, 0, 0, 0]
        ),
        0,
        "XENVER_extraversion into a stack buffer"
    );
    check!(buf[0] != 0, "XENVER_extraversion wrote nothing");
    success();
}
