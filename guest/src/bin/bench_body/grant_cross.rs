//! The body of `bench_grant_cross` and `bench_grant_cross_2cpu` (ABI 1.1):
//! grants across domains, beside `grant_peer mode=bench` (domain 2, the runner's companion,
//! which grants its frame A as reference 1 and then blocks). On the TSC
//! (under Bochs one tick is one emulated instruction), medians:
//!
//! - `map_unmap`: `GNTTABOP_map_grant_ref` of the other domain's grant
//!   (writable, at an address whose L1 entry is free) and
//!   `GNTTABOP_unmap_grant_ref` of it, one call each: a pair (Xen's
//!   `grant_map_unmap_pair` in `/work/shared/peers/figures.json`);
//! - `copy_4k_cross`: one `GNTTABOP_copy` of 4 KiB from the other domain's
//!   grant into our frame (Xen's `grant_copy_4k`).
//!
//! The two programs differ only in where the companion runs: on this
//! domain's CPU, or on another (`loader/src/runner.rs`'s `TEST_CPUS`), where
//! a grant operation is handled on the caller's CPU alone, the other CPU's
//! domain reached through the registry (`hypervisor/src/peers/registry.rs`).
//!
//! With two domains on one CPU the CPU is time-sliced (1 ms, which is 2,000 emulated
//! instructions on Bochs): the figures include the slice ends that fall in an
//! operation (the exits/op column shows them); `docs/performance.md` says
//! what that costs.
use keel_guest::abi::grant_table::*;
use keel_guest::abi::guest::gnttab_copy;
use keel_guest::bench::{copy_4k as copy, Bench};
use keel_guest::mmu::*;
use keel_guest::prelude::*;

/// The program: both figures, then its verdict.
pub fn run() {
    let mut bench = Bench::new();
    let dst = take_frame();
    cross(&mut bench, dst.mfn);
    success();
}

/// The granting domain (the first companion).
const PEER: u16 = 2;

/// The figures across domains: map + unmap, and a copy from the peer.
fn cross(bench: &mut Bench, dst: Mfn) {
    use keel_guest::abi::guest::{gnttab_map, gnttab_unmap, sched_yield};
    let slot = take_frame();
    if set_leaf(slot.va, keel_guest::pagetable::Pte::EMPTY).is_err() {
        failure!("freeing an L1 entry for the mappings");
        return;
    }
    let mut m = [GnttabMapGrantRef {
        host_addr: slot.va.get(),
        flags: GNTMAP_HOST_MAP,
        gref: 1,
        dom: PEER,
        ..Default::default()
    }];
    let mut u = [GnttabUnmapGrantRef {
        host_addr: slot.va.get(),
        ..Default::default()
    }];
    // The peer starts after us: wait for its grant.
    let mut found = false;
    for _ in 0..200_000 {
        if gnttab_map(&mut m).is_ok() && m[0].status == GNTST_OKAY {
            u[0].handle = m[0].handle;
            found = gnttab_unmap(&mut u).is_ok() && u[0].status == GNTST_OKAY;
            break;
        }
        let _ = sched_yield();
    }
    if !found {
        for name in ["map_unmap", "copy_4k_cross"] {
            bench.missing(
                name,
                format_args!("no granting domain (runs with grant_peer)"),
            );
        }
        return;
    }
    let mut ok = true;
    let mut samples = [0u64; 32];
    bench.measure("map_unmap", 1, &mut samples, || {
        ok &= gnttab_map(&mut m).is_ok() && m[0].status == GNTST_OKAY;
        u[0].handle = m[0].handle;
        ok &= gnttab_unmap(&mut u).is_ok() && u[0].status == GNTST_OKAY;
    });
    bench.measure("copy_4k_cross", 1, &mut samples, || {
        let mut ops = [copy((1, PEER), dst.get(), GNTCOPY_SOURCE_GREF)];
        ok &= gnttab_copy(&mut ops).is_ok() && ops[0].status == GNTST_OKAY;
    });
    check!(ok, "every map, unmap and copy across domains succeeded");
}
