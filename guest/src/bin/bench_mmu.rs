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
//! Each figure is printed in the `cargo keel bench` line format
//! (`keel_guest::bench`) with `per` set to the unit (tables, entries, switches),
//! so the tool reports the cost, exits and VMCS accesses per unit.
//!
//! It fails if any measured operation fails (the number would measure an error
//! path).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::guest::mmu_update;
use keel_guest::abi::mmu::{MmuUpdate, MMUEXT_NEW_BASEPTR};
use keel_guest::bench::Bench;
use keel_guest::fault::Cr;
use keel_guest::mmu::*;
use keel_guest::pagetable::{cr3_mfn, Pte, PteFlags};
use keel_guest::prelude::*;
use keel_guest::start::pfn_to_mfn;

keel_guest::test! {
    title: "Benchmark: pinning 4 MiB, 512-entry mmu_update, 512 emulated PTE stores, NEW_BASEPTR",
    category: Bench,
    main: test_main,
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
    let mut mfns = [Mfn::new(0); 1024];
    for (k, m) in mfns.iter_mut().enumerate() {
        match pfn_to_mfn(Pfn::new(k as u64)) {
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
                val: entry(mfns[base + k], PteFlags::PRESENT).raw(),
            };
        }
        let (done, r) = mmu_update(&reqs);
        count(r);
        check_eq!(done, 512, "filling an L1 of the 4 MiB space");
    }
    count(fill(
        &l2,
        0,
        entry(l1a.mfn, PteFlags::PRESENT | PteFlags::WRITABLE),
    ));
    count(fill(
        &l2,
        1,
        entry(l1b.mfn, PteFlags::PRESENT | PteFlags::WRITABLE),
    ));
    count(fill(
        &l3,
        0,
        entry(l2.mfn, PteFlags::PRESENT | PteFlags::WRITABLE),
    ));
    count(fill(
        &l4,
        0,
        entry(l3.mfn, PteFlags::PRESENT | PteFlags::WRITABLE),
    ));

    let mut bench = Bench::new();

    // 1. Pin (validating 5 tables, 1027 entries) and unpin (devalidating): each
    //    measured from the state the other leaves.
    let pinned = core::cell::Cell::new(false);
    let do_pin = || {
        count(pin(4, l4.mfn));
        pinned.set(true);
    };
    let do_unpin = || {
        count(unpin(l4.mfn));
        pinned.set(false);
    };
    let mut samples = [0u64; 16];
    bench.measure_with_setup(
        "pin_l4_4mib_5_tables",
        5,
        &mut samples,
        || {
            if pinned.get() {
                do_unpin()
            }
        },
        do_pin,
    );
    bench.measure_with_setup(
        "unpin_l4_4mib_5_tables",
        5,
        &mut samples,
        || {
            if !pinned.get() {
                do_pin()
            }
        },
        do_unpin,
    );
    if pinned.get() {
        do_unpin();
    }

    // 2. 512 updates in one mmu_update, on a pinned L1.
    let u = table_frame();
    count(pin(1, u.mfn));
    // Each list is page-aligned (8 KiB: two pages, two translations), so the
    // figure does not move with the stack's layout (a list across three pages
    // costs the batch one more walk, about 3 per entry).
    #[repr(C, align(4096))]
    struct List([MmuUpdate; 512]);
    let mut set = List([MmuUpdate::default(); 512]);
    let mut clear = List([MmuUpdate::default(); 512]);
    for (k, (s, c)) in set.0.iter_mut().zip(clear.0.iter_mut()).enumerate() {
        *s = MmuUpdate {
            ptr: slot(u.mfn, k),
            val: entry(mfns[k], PteFlags::PRESENT).raw(),
        };
        *c = MmuUpdate {
            ptr: slot(u.mfn, k),
            val: 0,
        };
    }
    let batch = |reqs: &[MmuUpdate]| {
        let (d, r) = mmu_update(reqs);
        count(r);
        if d != 512 {
            fail();
        }
    };
    bench.measure_with_setup(
        "mmu_update_512_install",
        512,
        &mut samples,
        || batch(&clear.0),
        || batch(&set.0),
    );
    bench.measure_with_setup(
        "mmu_update_512_remove",
        512,
        &mut samples,
        || batch(&set.0),
        || batch(&clear.0),
    );
    batch(&clear.0);

    // 3. The same, as direct stores through the read-only mapping (each one a #PF
    // exit, decoded, validated and emulated).
    let stores = |install: bool| {
        for (j, m) in mfns.iter().take(512).enumerate() {
            let v = if install {
                entry(*m, PteFlags::PRESENT)
            } else {
                Pte::EMPTY
            };
            if fault::write_u64(GuestVirt::new(u.va.get() + 8 * j as u64), v.raw()).is_err() {
                fail();
            }
        }
    };
    let mut few = [0u64; 8];
    bench.measure_with_setup(
        "pte_store_512_install",
        512,
        &mut few,
        || stores(false),
        || stores(true),
    );
    bench.measure_with_setup(
        "pte_store_512_remove",
        512,
        &mut few,
        || stores(true),
        || stores(false),
    );
    stores(false);
    count(unpin(u.mfn));

    // 4. Switching between two pinned L4s.
    let orig = cr3_mfn();
    let copy = copy_of_l4();
    count(pin(4, copy.mfn));
    let mut s_switch = [0u64; 64];
    bench.measure("new_baseptr_switch", 2, &mut s_switch, || {
        let a = ext(MMUEXT_NEW_BASEPTR, copy.mfn);
        let b = ext(MMUEXT_NEW_BASEPTR, orig);
        if a.is_err() || b.is_err() {
            fail();
        }
    });
    bench.measure("mov_cr3_switch", 2, &mut s_switch, || {
        let a = fault::write_cr(Cr::Cr3, copy.mfn.get() << 12);
        let b = fault::write_cr(Cr::Cr3, orig.get() << 12);
        if a.is_err() || b.is_err() {
            fail();
        }
    });
    count(unpin(copy.mfn));
    check_eq!(cr3_mfn(), orig, "CR3 at the end");
    check_eq!(errors.get(), 0, "failed operations while measuring");
    success();
}
