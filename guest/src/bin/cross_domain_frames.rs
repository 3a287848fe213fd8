//! Another domain's frames are out of reach without a grant (runs with
//! `sleeper`, domain 2, whose frames the allocator hands out next to this
//! domain's): for machine frames around this domain's own, none of them its
//! own (so among them the other domain's), an L1 entry that maps one is
//! refused, read-only or writable; pinning one as a page table of any level
//! is refused; using one as the table an `mmu_update` writes is refused; and
//! the probed L1 entry is left as it was.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::mmu::MMU_NORMAL_PT_UPDATE;
use keel_guest::mmu::{self, expect_err};
use keel_guest::pagetable::{Pte, PteFlags};
use keel_guest::prelude::*;
use keel_guest::start::pfn_to_mfn;

keel_guest::test! {
    title: "Cross-domain: mapping, pinning or writing another domain's frames without a grant is refused",
    category: Security,
    main: test_main,
}

/// How far beyond this domain's lowest and highest machine frame to probe.
const REACH: u64 = 4096;
/// Frames probed on each side (spread over `REACH`).
const PROBES: u64 = 64;

fn test_main() {
    let n = start_info().nr_pages;
    let (mut lo, mut hi) = (u64::MAX, 0);
    for p in 0..n {
        match pfn_to_mfn(Pfn::new(p)) {
            Ok(m) => {
                lo = lo.min(m.get());
                hi = hi.max(m.get());
            }
            Err(f) => {
                failure!("frame list unreadable at pfn {p}: {f}");
                return;
            }
        }
    }
    let own = |m: u64| (0..n).any(|p| pfn_to_mfn(Pfn::new(p)).map(|x| x.get()) == Ok(m));
    // A scratch page whose L1 entry the probes try to point elsewhere.
    let f = mmu::take_frame();
    let before = mmu::leaf(f.va);
    let (l1, idx) = mmu::l1_of(f.va);
    let slot = l1.get() * 4096 + idx as u64 * 8;
    let mut probed = 0;
    let candidates = (1..=PROBES)
        .map(|i| hi + i * (REACH / PROBES))
        .chain((1..=PROBES).filter_map(|i| lo.checked_sub(i * (REACH / PROBES))));
    for m in candidates {
        if m == 0 || own(m) {
            continue;
        }
        probed += 1;
        let mfn = Mfn::new(m);
        for (flags, what) in [
            (PteFlags::PRESENT, "read-only"),
            (PteFlags::PRESENT | PteFlags::WRITABLE, "writable"),
        ] {
            expect_err(
                format_args!("mapping foreign frame {m:#x} {what}"),
                mmu::update(slot | MMU_NORMAL_PT_UPDATE, Pte::new(mfn, flags)),
                Errno::EINVAL,
            );
        }
        for level in 1..=4 {
            expect_err(
                format_args!("pinning foreign frame {m:#x} as an L{level}"),
                mmu::pin(level, mfn),
                Errno::EINVAL,
            );
        }
        expect_err(
            format_args!("mmu_update writing into foreign frame {m:#x}"),
            mmu::update(m << 12 | MMU_NORMAL_PT_UPDATE, Pte::EMPTY),
            Errno::EINVAL,
        );
    }
    check_eq!(mmu::leaf(f.va), before, "the probed L1 entry");
    check!(probed >= PROBES, "only {probed} foreign frames probed");
    println!(
        "{probed} frames around this domain's [{lo:#x}, {hi:#x}] refused: mapping, pinning, writing"
    );
    success();
}
