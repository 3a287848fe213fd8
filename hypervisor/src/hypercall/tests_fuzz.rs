//! A fuzzer of the whole hypercall layer on a built domain in fake memory:
//! every row of the table (and numbers and sub-commands past it), with
//! arguments drawn from valid pointers, pointers Keel must refuse (unmapped,
//! read-only page tables, non-canonical, wrapping), small integers and random
//! words, over argument memory filled with random bytes or with well-formed
//! request structures (`mmu_update` / `mmuext_op` requests, multicall entries
//! that call back into the table). Many calls per case; after each one the
//! page-table invariants of the mm property test must hold (every table
//! reachable from CR3 owned, typed and validated, no foreign frame mapped, no
//! page table mapped writable), and the domain must tear down to zero counts.
//! Nothing may panic. The cases are seeded by proptest and bounded, so `cargo
//! test` runs a fixed number of them.

extern crate std;

#[allow(unused_imports)]
use super::tests::imports::*;
use super::tests::mmu_fuzz::audit;
use super::tests::{World, DATA};
use super::*;
use crate::addr::Pfn;
use crate::paging::entry::{entry_addr, Pte, PteFlags};
use keel_abi::mmu::{MmuUpdate, MmuextOp, DOMID_SELF};
use proptest::prelude::*;
use std::vec::Vec;

/// Where argument structures go: four pages from DATA.
const ARENA: u64 = DATA;
const ARENA_LEN: u64 = 4 * 4096;

/// One argument register.
#[derive(Clone, Copy, Debug)]
enum Arg {
    /// A small integer (counts, ports, vCPU numbers, commands).
    Small(u64),
    /// A pointer into the arena.
    Arena(u64),
    /// A pointer Keel must refuse or fault on.
    Bad(u8),
    /// Any word.
    Word(u64),
}

fn arg() -> impl Strategy<Value = Arg> {
    prop_oneof![
        3 => (0u64..16).prop_map(Arg::Small),
        3 => (0u64..ARENA_LEN).prop_map(Arg::Arena),
        2 => (0u8..6).prop_map(Arg::Bad),
        1 => any::<u64>().prop_map(Arg::Word),
    ]
}

/// What the arena holds before a call.
#[derive(Clone, Debug)]
enum Fill {
    /// Leave it as the last call left it.
    Keep,
    /// Random bytes at an offset.
    Bytes(u64, Vec<u8>),
    /// `mmu_update` requests: (table pfn, index, target pfn, flags).
    Updates(Vec<(u64, usize, u64, u64)>),
    /// `mmuext_op` requests: (command, pfn).
    Ext(Vec<(u32, u64)>),
    /// Multicall entries: (table row, three argument words).
    Multi(Vec<(usize, [u64; 3])>),
}

fn fill() -> impl Strategy<Value = Fill> {
    let flags = prop_oneof![
        Just(PteFlags::PRESENT.bits()),
        Just((PteFlags::PRESENT | PteFlags::WRITABLE).bits()),
        Just(0u64),
        any::<u64>().prop_map(|f| f & 0xfff0_0000_0000_0fff),
    ];
    prop_oneof![
        2 => Just(Fill::Keep),
        2 => (0u64..ARENA_LEN, proptest::collection::vec(any::<u8>(), 0..256))
            .prop_map(|(o, b)| Fill::Bytes(o, b)),
        2 => proptest::collection::vec((prop_oneof![0u64..66, 1000u64..2000], 0usize..512, 0u64..66, flags), 1..8)
            .prop_map(Fill::Updates),
        1 => proptest::collection::vec((0u32..24, 0u64..66), 1..6).prop_map(Fill::Ext),
        1 => proptest::collection::vec((0usize..TABLE.len() + 4, any::<[u64; 3]>()), 1..6)
            .prop_map(Fill::Multi),
    ]
}

#[derive(Clone, Debug)]
struct Call {
    /// A table row, or past the end: a number with no row.
    row: usize,
    /// Replace the row's sub-command with a random one.
    sub: Option<u64>,
    args: [Arg; 4],
    fill: Fill,
    /// System time moves on by this many TSC ticks first.
    ticks: u64,
}

fn call() -> impl Strategy<Value = Call> {
    (
        0usize..TABLE.len() + 6,
        proptest::option::weighted(0.2, any::<u64>()),
        [arg(), arg(), arg(), arg()],
        fill(),
        0u64..5_000_000,
    )
        .prop_map(|(row, sub, args, fill, ticks)| Call {
            row,
            sub,
            args,
            fill,
            ticks,
        })
}

/// The machine frame of `pfn`, or a stand-in foreign frame past the domain.
fn mfn(w: &World, p: u64) -> Mfn {
    w.dom
        .mfn_of(&w.mem, Pfn::new(p))
        .unwrap_or(Mfn::new(0x10 + p))
}

fn value(w: &World, a: Arg) -> u64 {
    let end = w.dom.layout().virt_base.get() + 64 * 4096;
    match a {
        Arg::Small(v) => v,
        Arg::Arena(o) => ARENA + o,
        Arg::Bad(0) => 0x10,
        Arg::Bad(1) => end - 8,
        Arg::Bad(2) => w.dom.layout().virt_base.get() + w.dom.layout().page_tables.get() * 4096,
        Arg::Bad(3) => 0x0000_8000_0000_0000,
        Arg::Bad(4) => u64::MAX - 7,
        Arg::Bad(_) => end,
        Arg::Word(v) => v,
    }
}

/// Write the arena's contents for `f` (where the guest can: a call may have
/// unmapped or write-protected part of it, and then its pointer faults).
fn write_fill(w: &mut World, f: &Fill) {
    let put = |w: &mut World, at: u64, bytes: &[u8]| {
        let _ = guest_mem::copy_to_guest(&w.dom, &mut w.mem, GuestVirt::new(at), bytes);
    };
    match f {
        Fill::Keep => {}
        Fill::Bytes(o, b) => put(w, ARENA + o, b),
        Fill::Updates(reqs) => {
            let l = *w.dom.layout();
            for (k, &(table, idx, target, flags)) in reqs.iter().enumerate() {
                let table = if table >= 1000 {
                    l.page_tables.get() + table % l.nr_pt_frames()
                } else {
                    table
                };
                let req = MmuUpdate {
                    ptr: entry_addr(mfn(w, table), idx).get(),
                    val: Pte::new(mfn(w, target), PteFlags::from_bits_retain(flags)).raw(),
                };
                put(w, ARENA + 16 * k as u64, &req.encode());
            }
        }
        Fill::Ext(ops) => {
            for (k, &(cmd, pfn)) in ops.iter().enumerate() {
                let op = MmuextOp {
                    cmd,
                    pad: 0,
                    arg1: mfn(w, pfn).get(),
                    arg2: ARENA + 0x800,
                };
                put(w, ARENA + 32 * k as u64, &op.encode());
            }
        }
        Fill::Multi(entries) => {
            // multicall_entry: op, result, args[6] (64 bytes each).
            for (k, &(row, a)) in entries.iter().enumerate() {
                let (nr, sub) = match TABLE.get(row) {
                    Some(r) => (r.nr.0, if r.whole { ARENA + 0x1000 } else { r.sub }),
                    None => (40 + row as u64, 0),
                };
                let mut e = [0u8; 64];
                e[0..8].copy_from_slice(&nr.to_le_bytes());
                e[16..24].copy_from_slice(&sub.to_le_bytes());
                for (j, v) in a.iter().enumerate() {
                    let v = if v % 3 == 0 {
                        ARENA + 0x1000 + v % 0x800
                    } else {
                        *v % 64
                    };
                    e[24 + 8 * j..32 + 8 * j].copy_from_slice(&v.to_le_bytes());
                }
                put(w, ARENA + 64 * k as u64, &e);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_hypercalls_keep_the_invariants(calls in proptest::collection::vec(call(), 1..60)) {
        let mut w = World::new();
        for c in &calls {
            w.tsc = w.tsc.saturating_add(c.ticks);
            write_fill(&mut w, &c.fill);
            // The first argument: the row's sub-command, or for the calls
            // whose first argument is a request list, the arena (sometimes a
            // random word instead).
            let (nr, sub) = match TABLE.get(c.row) {
                Some(r) if r.whole => (r.nr, c.sub.unwrap_or(ARENA)),
                Some(r) => (r.nr, c.sub.unwrap_or(r.sub)),
                None => (Hypercall(40 + (c.row - TABLE.len()) as u64), c.sub.unwrap_or(0)),
            };
            let mut args = [sub, 0, 0, 0, 0];
            for (slot, a) in args[1..].iter_mut().zip(c.args) {
                *slot = value(&w, a);
            }
            // mmu_update / mmuext_op: the domain argument is usually ours.
            if matches!(nr, Hypercall::MMU_UPDATE | Hypercall::MMUEXT_OP) && c.args[3].is_small() {
                args[3] = DOMID_SELF;
            }
            // A preempted call is executed again with its progress word, as
            // the guest does; the invariants hold between the pieces too.
            let mut a = args;
            let mut pieces = 0u32;
            let shutdown = loop {
                let out = w.call(nr, a);
                if let Err(e) = audit(&w) {
                    prop_assert!(false, "after {:?} ({:?}): {}", c, a, e);
                }
                match out {
                    Outcome::Shutdown(_) => break true,
                    Outcome::Block => {
                        w.ev.blocked = None;
                        break false;
                    }
                    Outcome::Preempted(word) => {
                        pieces += 1;
                        prop_assert!(pieces < 100_000, "{:?} never finished", c);
                        a[1] = word;
                    }
                    Outcome::PreemptedRdx(word) => {
                        pieces += 1;
                        prop_assert!(pieces < 100_000, "{:?} never finished", c);
                        a[2] = word;
                    }
                    Outcome::Return(_)
                    | Outcome::Resumed { .. }
                    | Outcome::ResumedRdx { .. }
                    | Outcome::Yield => break false,
                }
            };
            if shutdown {
                break;
            }
        }
        prop_assert_eq!(w.dom.release_mm(&mut w.mem), 0, "counts left");
    }
}

impl Arg {
    fn is_small(&self) -> bool {
        matches!(self, Arg::Small(_))
    }
}
