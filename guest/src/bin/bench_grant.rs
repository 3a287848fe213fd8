//! Benchmark (ABI 1.1: this image declares 1.1): grant tables as
//! the guest sees them on the TSC (under Bochs one tick is one emulated
//! instruction). Medians over many runs:
//!
//! - `copy_4k_frame`: one `GNTTABOP_copy` of 4 KiB between two of our frames;
//! - `copy_4k_gref`: the same with the source named by a grant of our own table
//!   (the entry checked and its `GTF_reading` set and cleared, the frame's
//!   reference and writable type taken and dropped);
//! - `copy_4k_batch16`: sixteen such grant copies in one call, per copy.
//!
//! The figures across domains (map + unmap, a copy from another domain's
//! grant) are `bench_grant_cross`'s, and a split-driver ring round trip is
//! `bench_ring`'s: they run beside a second domain, whose time slices would
//! count in these.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::event::DOMID_SELF;
use keel_guest::abi::grant_table::*;
use keel_guest::abi::guest::{evtchn_alloc_unbound, evtchn_close, evtchn_status};
use keel_guest::abi::guest::{gnttab_copy, gnttab_setup_table};
use keel_guest::bench::{copy_4k as copy, Bench};
use keel_guest::mmu::*;
use keel_guest::pagetable::PteFlags;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Benchmark: GNTTABOP_copy of 4 KiB, by frame and through a grant (TSC ticks)",
    category: Bench,
    abi: keel_guest::abi::version::AbiVersion::V1_1,
    main: test_main,
}

fn test_main() {
    let me = match evtchn_alloc_unbound().and_then(|p| {
        let s = evtchn_status(p);
        let _ = evtchn_close(p);
        s
    }) {
        Ok(s) => s.u[0] as u16,
        Err(e) => {
            failure!("our domain id: {e:?}");
            return;
        }
    };
    let mut list = [0u64; 1];
    if !check_eq!(gnttab_setup_table(&mut list), Ok(GNTST_OKAY), "setup_table") {
        return;
    }
    let t = take_frame();
    let table = Mfn::new(list[0]);
    if !expect_ok(
        format_args!("map the table frame"),
        set_leaf(t.va, entry(table, PteFlags::PRESENT | PteFlags::WRITABLE)),
    ) {
        return;
    }
    let (a, b) = (take_frame(), take_frame());
    let e = u64::from(GTF_PERMIT_ACCESS | GTF_READONLY) | u64::from(me) << 16 | a.mfn.get() << 32;
    let _ = fault::write_u64(t.va, e);

    let mut bench = Bench::new();
    let mut samples = [0u64; 32];
    let mut ok = true;
    let mut one = |op: GnttabCopy| {
        let mut ops = [op];
        ok &= gnttab_copy(&mut ops).is_ok() && ops[0].status == GNTST_OKAY;
    };
    bench.measure("copy_4k_frame", 1, &mut samples, || {
        one(copy((a.mfn.get(), DOMID_SELF), b.mfn.get(), 0))
    });
    bench.measure("copy_4k_gref", 1, &mut samples, || {
        one(copy((0, DOMID_SELF), b.mfn.get(), GNTCOPY_SOURCE_GREF))
    });
    let mut batch = [copy((0, DOMID_SELF), b.mfn.get(), GNTCOPY_SOURCE_GREF); 16];
    let mut samples = [0u64; 8];
    bench.measure("copy_4k_batch16", 16, &mut samples, || {
        ok &= gnttab_copy(&mut batch).is_ok() && batch.iter().all(|o| o.status == GNTST_OKAY);
    });
    check!(ok, "every copy succeeded");
    let _ = set_leaf(t.va, entry(t.mfn, PteFlags::PRESENT | PteFlags::WRITABLE));
    success();
}
