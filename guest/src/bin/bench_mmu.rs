//! Benchmarks of the PV MMU (guest TSC; under Bochs one tick is one emulated
//! instruction, a VM exit and entry a few):
//!
//! - pinning a fresh address space that maps 4 MiB (L4, L3, L2 and two full L1s:
//!   5 tables, 1027 entries validated), per validated table;
//! - 512 PTE updates in one `mmu_update` (installing, then removing, which
//!   also flushes the TLB), per entry;
//! - the same 512 updates as direct stores, each trapped and emulated, per entry;
//! - `MMUEXT_NEW_BASEPTR` and MOV to CR3 between two pinned L4s, per switch.
//!
//! It fails if any measured operation fails (the number would measure an error
//! path).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

#[path = "../mmu_util.rs"]
mod mmu_util;

use keel_guest::abi::guest::mmu_update;
use keel_guest::abi::mmu::{MmuUpdate, MMUEXT_NEW_BASEPTR};
use keel_guest::fault::Cr;
use keel_guest::pagetable::{cr3_mfn, PTE_P, PTE_RW};
use keel_guest::prelude::*;
use keel_guest::start::pfn_to_mfn;
use keel_guest::tsc::{self, Stats};
use mmu_util::*;

keel_guest::test! {
    title: "Benchmark: pinning 4 MiB, 512-entry mmu_update, 512 emulated PTE stores, NEW_BASEPTR",
    category: Bench,
    main: test_main,
}

fn report(name: &str, s: Option<Stats>, per: u64, unit: &str) {
    match s {
        Some(s) => {
            println!(
                "bench {name:<34} median {:>9} min {:>9} max {:>9} ticks (n={}); {:>6} ticks per {unit}",
                s.median,
                s.min,
                s.max,
                s.count,
                s.median / per.max(1)
            );
            check!(s.min > 0, "{name}: measured 0 ticks");
        }
        None => keel_guest::error!("{name}: no samples"),
    }
}

fn test_main() {
    let errors = core::cell::Cell::new(0u32);
    let fail = || errors.set(errors.get() + 1);
    let count = |r: Result<(), Errno>| {
        if r.is_err() {
            fail();
        }
    };
    // The machine frames of PFNs 0..1024 (4 MiB), mapped read-only by the new space.
    let mut mfns = [Mfn(0); 1024];
    for (k, m) in mfns.iter_mut().enumerate() {
        match pfn_to_mfn(Pfn(k as u64)) {
            Ok(x) => *m = x,
            Err(f) => {
                failure!("frame list: {f}");
                return;
            }
        }
    }
    let (l4, l3, l2, l1a, l1b) = (
        table_frame(),
        table_frame(),
        table_frame(),
        table_frame(),
        table_frame(),
    );
    let mut reqs = [MmuUpdate::default(); 512];
    for (t, base) in [(&l1a, 0usize), (&l1b, 512)] {
        for (k, r) in reqs.iter_mut().enumerate() {
            *r = MmuUpdate {
                ptr: slot(t.mfn, k),
                val: entry(mfns[base + k], PTE_P),
            };
        }
        let (done, r) = mmu_update(&reqs);
        count(r);
        check_eq!(done, 512, "filling an L1 of the 4 MiB space");
    }
    count(fill(&l2, 0, entry(l1a.mfn, PTE_P | PTE_RW)));
    count(fill(&l2, 1, entry(l1b.mfn, PTE_P | PTE_RW)));
    count(fill(&l3, 0, entry(l2.mfn, PTE_P | PTE_RW)));
    count(fill(&l4, 0, entry(l3.mfn, PTE_P | PTE_RW)));

    // 1. Pin (validating 5 tables, 1027 entries) and unpin (devalidating).
    let mut samples = [0u64; 16];
    let mut unpin_samples = [0u64; 16];
    for k in 0..samples.len() {
        let t0 = tsc::rdtsc_ordered();
        count(pin(4, l4.mfn));
        let t1 = tsc::rdtsc_ordered();
        count(unpin(l4.mfn));
        let t2 = tsc::rdtsc_ordered();
        samples[k] = t1 - t0;
        unpin_samples[k] = t2 - t1;
    }
    report(
        "pin L4 of a 4 MiB space (5 tables)",
        Stats::of(&mut samples),
        5,
        "table",
    );
    report(
        "unpin it (devalidate 5 tables)",
        Stats::of(&mut unpin_samples),
        5,
        "table",
    );

    // 2. 512 updates in one mmu_update, on a pinned L1.
    let u = table_frame();
    count(pin(1, u.mfn));
    let mut set = [MmuUpdate::default(); 512];
    let mut clear = [MmuUpdate::default(); 512];
    for k in 0..512 {
        set[k] = MmuUpdate {
            ptr: slot(u.mfn, k),
            val: entry(mfns[k], PTE_P),
        };
        clear[k] = MmuUpdate {
            ptr: slot(u.mfn, k),
            val: 0,
        };
    }
    let mut s_set = [0u64; 16];
    let mut s_clear = [0u64; 16];
    for k in 0..s_set.len() {
        let t0 = tsc::rdtsc_ordered();
        let (d1, r1) = mmu_update(&set);
        let t1 = tsc::rdtsc_ordered();
        let (d2, r2) = mmu_update(&clear);
        let t2 = tsc::rdtsc_ordered();
        count(r1);
        count(r2);
        if d1 != 512 || d2 != 512 {
            fail();
        }
        s_set[k] = t1 - t0;
        s_clear[k] = t2 - t1;
    }
    report(
        "mmu_update 512 entries (install)",
        Stats::of(&mut s_set),
        512,
        "entry",
    );
    report(
        "mmu_update 512 entries (remove)",
        Stats::of(&mut s_clear),
        512,
        "entry",
    );

    // 3. The same, as direct stores through the read-only mapping (each one a #PF
    // exit, decoded, validated and emulated).
    let mut e_set = [0u64; 8];
    let mut e_clear = [0u64; 8];
    for k in 0..e_set.len() {
        let t0 = tsc::rdtsc_ordered();
        for (j, m) in mfns.iter().take(512).enumerate() {
            if fault::write_u64(GuestVirt(u.va.0 + 8 * j as u64), entry(*m, PTE_P)).is_err() {
                fail();
            }
        }
        let t1 = tsc::rdtsc_ordered();
        for j in 0..512 {
            if fault::write_u64(GuestVirt(u.va.0 + 8 * j as u64), 0).is_err() {
                fail();
            }
        }
        let t2 = tsc::rdtsc_ordered();
        e_set[k] = t1 - t0;
        e_clear[k] = t2 - t1;
    }
    report(
        "512 emulated PTE stores (install)",
        Stats::of(&mut e_set),
        512,
        "entry",
    );
    report(
        "512 emulated PTE stores (remove)",
        Stats::of(&mut e_clear),
        512,
        "entry",
    );
    count(unpin(u.mfn));

    // 4. Switching between two pinned L4s.
    let orig = cr3_mfn();
    let copy = copy_of_l4();
    count(pin(4, copy.mfn));
    let mut s_base = [0u64; 64];
    let r = tsc::measure(&mut s_base, || {
        let a = ext(MMUEXT_NEW_BASEPTR, copy.mfn);
        let b = ext(MMUEXT_NEW_BASEPTR, orig);
        if a.is_err() || b.is_err() {
            fail();
        }
    });
    report("NEW_BASEPTR (there and back)", r, 2, "switch");
    let mut s_cr3 = [0u64; 64];
    let r = tsc::measure(&mut s_cr3, || {
        let a = fault::write_cr(Cr::Cr3, copy.mfn.0 << 12);
        let b = fault::write_cr(Cr::Cr3, orig.0 << 12);
        if a.is_err() || b.is_err() {
            fail();
        }
    });
    report("MOV CR3 (there and back)", r, 2, "switch");
    count(unpin(copy.mfn));
    check_eq!(cr3_mfn(), orig, "CR3 at the end");
    check_eq!(errors.get(), 0, "failed operations while measuring");
    success();
}
