//! Continuations (`crate::preempt`) at the hypercall level: a batch split
//! anywhere ends exactly as one uninterrupted call; a due timer or the bound
//! stops a call with work left; a multicall resumes inside a preempted entry.

extern crate std;

#[allow(unused_imports)]
use super::tests::imports::*;
use super::tests::{World, DATA};
use super::*;
use crate::addr::Pfn;
use crate::paging::entry::{entry_addr, Pte, PteFlags};
use crate::paging::walk::walk;
use crate::preempt::MMU_UPDATE_PREEMPTED;
use crate::preempt::{Budget, CHECK_EVERY, UNITS_PER_EXIT};
use keel_abi::mmu::{MmuUpdate, MmuextOp, DOMID_SELF};
use keel_abi::sched::SCHEDOP_BLOCK;
use proptest::prelude::*;
use std::vec::Vec;

/// Run a call to the end as a guest does (re-executing it after every
/// preemption), giving the exits `rooms[k]` units of room in turn (then the
/// full bound). The outcome as the guest sees it at the end, and the pieces.
fn run_split(w: &mut World, nr: Hypercall, args: [u64; 5], rooms: &[u32]) -> (Outcome, usize) {
    let mut a = args;
    let mut pieces = 0;
    loop {
        let room = rooms.get(pieces).copied().unwrap_or(UNITS_PER_EXIT);
        let out = w.call_with(nr, a, Budget::with_room(room));
        pieces += 1;
        match out {
            Outcome::Preempted(word) => {
                assert!(word & MMU_UPDATE_PREEMPTED != 0, "{word:#x}");
                assert!(pieces < 1_000_000, "never finished");
                a[1] = word;
            }
            Outcome::Resumed { ret, count } => {
                // The guest's count register is given back.
                assert_eq!(u64::from(count), args[1] & keel_abi::mmu::MMU_BATCH_MAX);
                assert!(pieces > 1);
                return (Outcome::Return(i64::from(ret)), pieces);
            }
            o => return (o, pieces),
        }
    }
}

fn mfn_of_pfn(w: &World, p: u64) -> Mfn {
    w.dom.mfn_of(&w.mem, Pfn::new(p)).unwrap()
}

/// The L1 table that maps the image's first page.
fn image_l1(w: &World) -> Mfn {
    let va = w.dom.layout().virt_base;
    walk(&w.mem, w.dom.base(), va, false, |_, _| true)
        .unwrap()
        .tables[3]
}

/// Where request lists go: free pages after the builder's.
fn list_va(w: &World) -> u64 {
    let l = w.dom.layout();
    l.va(Pfn::new(l.first_free.get() + 2)).get()
}

/// One request of a random batch: an update of one of 64 spare entries of the
/// image's L1 (read-only or writable mapping of a domain frame, or a removal),
/// or one the rules refuse (a foreign frame; a page table mapped writable),
/// which ends the batch there.
#[derive(Clone, Copy, Debug)]
enum Req {
    Map { slot: usize, pfn: u64, rw: bool },
    Unmap { slot: usize },
    Foreign { slot: usize },
    TableWritable { slot: usize },
}

fn req() -> impl Strategy<Value = Req> {
    prop_oneof![
        8 => (0usize..64, 0u64..64, any::<bool>()).prop_map(|(slot, pfn, rw)| Req::Map { slot, pfn, rw }),
        4 => (0usize..64).prop_map(|slot| Req::Unmap { slot }),
        1 => (0usize..64).prop_map(|slot| Req::Foreign { slot }),
        1 => (0usize..64).prop_map(|slot| Req::TableWritable { slot }),
    ]
}

fn encode_reqs(w: &World, reqs: &[Req]) -> Vec<u8> {
    let l1 = image_l1(w);
    let l = *w.dom.layout();
    let pt = l.page_tables.get();
    // Ordinary frames (past the builder's, before the shared_info page).
    let free = |pfn: u64| l.first_free.get() + pfn % (l.nr_pages - 1 - l.first_free.get());
    let mut bytes = Vec::new();
    for r in reqs {
        let (slot, val) = match *r {
            Req::Map { slot, pfn, rw } => (
                slot,
                Pte::new(
                    mfn_of_pfn(w, free(pfn)),
                    PteFlags::PRESENT
                        | if rw {
                            PteFlags::WRITABLE
                        } else {
                            PteFlags::empty()
                        },
                )
                .raw(),
            ),
            Req::Unmap { slot } => (slot, 0),
            Req::Foreign { slot } => (slot, Pte::new(Mfn::new(0x10), PteFlags::PRESENT).raw()),
            Req::TableWritable { slot } => (
                slot,
                Pte::new(mfn_of_pfn(w, pt), PteFlags::PRESENT | PteFlags::WRITABLE).raw(),
            ),
        };
        let ptr = entry_addr(l1, 200 + slot).get();
        bytes.extend_from_slice(&MmuUpdate { ptr, val }.encode());
    }
    bytes
}

/// Everything the guest could observe, and the accounting.
fn state(
    w: &World,
) -> (
    std::collections::BTreeMap<u64, Vec<u8>>,
    Option<crate::event::Blocked>,
) {
    (w.mem.frames.clone(), w.ev.blocked)
}

fn entry(op: u64, args: [u64; 6]) -> Vec<u8> {
    MulticallEntry {
        op,
        result: 0x5555,
        args,
    }
    .encode()
    .to_vec()
}

/// A multicall of `batches` (each an `mmu_update` of its own list, with
/// `success_count` in DATA) with an `xen_version` between them.
fn multicall_of(w: &mut World, batches: &[Vec<Req>]) -> (u64, u64) {
    let base = list_va(w);
    let mut entries = Vec::new();
    let mut at = base + 0x1000;
    for (k, b) in batches.iter().enumerate() {
        let bytes = encode_reqs(w, b);
        w.poke(at, &bytes);
        entries.extend(entry(
            Hypercall::MMU_UPDATE.0,
            [
                at,
                b.len() as u64,
                DATA + 0x800 + 4 * k as u64,
                DOMID_SELF,
                0,
                0,
            ],
        ));
        entries.extend(entry(
            Hypercall::XEN_VERSION.0,
            [keel_abi::version::XENVER_VERSION, 0, 0, 0, 0, 0],
        ));
        at += bytes.len() as u64 + 16;
    }
    w.poke(base, &entries);
    (base, 2 * batches.len() as u64)
}

#[test]
fn every_split_point_gives_the_uninterrupted_result() {
    // 40 requests, the 31st refused: 30 done, -EINVAL.
    let mut reqs: Vec<Req> = (0..40)
        .map(|k| Req::Map {
            slot: k % 17,
            pfn: k as u64,
            rw: k % 3 == 0,
        })
        .collect();
    reqs[30] = Req::Foreign { slot: 3 };
    let run = |rooms: &[u32]| {
        let mut w = World::new();
        let list = list_va(&w);
        let bytes = encode_reqs(&w, &reqs);
        w.poke(list, &bytes);
        let args = [list, reqs.len() as u64, DATA + 0x800, DOMID_SELF, 0];
        let (out, pieces) = run_split(&mut w, Hypercall::MMU_UPDATE, args, rooms);
        let done = u32::from_le_bytes(w.peek(DATA + 0x800));
        (out, done, state(&w), pieces)
    };
    let (out, done, whole, pieces) = run(&[]);
    assert_eq!(
        (out, done, pieces),
        (Outcome::Return(Errno::EINVAL.as_return()), 30, 1)
    );
    for k in 1..40 {
        let (o, d, s, p) = run(&[k]);
        assert_eq!((o, d), (out, done), "split after {k}");
        assert!(s == whole, "split after {k}: memory differs");
        assert_eq!(p, if k <= 30 { 2 } else { 1 }, "split after {k}");
    }
    // One request a piece.
    let (o, d, s, p) = run(&[1; 64]);
    assert_eq!((o, d, p), (out, done, 31));
    assert!(s == whole);
}

#[test]
fn a_due_timer_stops_a_batch_at_the_next_check_point() {
    let mut w = World::new();
    let list = list_va(&w);
    let reqs: Vec<Req> = (0..50).map(|k| Req::Unmap { slot: k % 64 }).collect();
    let bytes = encode_reqs(&w, &reqs);
    w.poke(list, &bytes);
    let args = [list, 50, DATA + 0x800, DOMID_SELF, 0];
    // A single-shot deadline already past.
    w.ev.timers.set_oneshot(1);
    w.tsc += 1_000_000;
    let out = w.call(Hypercall::MMU_UPDATE, args);
    let want = crate::preempt::Progress {
        count: 50,
        done: CHECK_EVERY,
        in_entry: false,
    };
    assert_eq!(out, Outcome::Preempted(want.encode()));
    // Without the timer (the guest took its upcall) it completes.
    w.ev.timers.stop_oneshot();
    let mut a = args;
    a[1] = want.encode();
    assert_eq!(
        w.call(Hypercall::MMU_UPDATE, a),
        Outcome::Resumed { ret: 0, count: 50 }
    );
    assert_eq!(u32::from_le_bytes(w.peek(DATA + 0x800)), 50);
}

#[test]
fn the_bound_stops_a_long_batch_without_a_timer() {
    let mut w = World::new();
    let list = list_va(&w);
    let n = UNITS_PER_EXIT as usize + 100;
    let reqs: Vec<Req> = (0..n)
        .map(|k| Req::Map {
            slot: k % 64,
            pfn: (k % 50) as u64,
            rw: false,
        })
        .collect();
    let bytes = encode_reqs(&w, &reqs);
    w.poke(list, &bytes);
    let args = [list, n as u64, DATA + 0x800, DOMID_SELF, 0];
    let out = w.call(Hypercall::MMU_UPDATE, args);
    let want = crate::preempt::Progress {
        count: n as u32,
        done: UNITS_PER_EXIT,
        in_entry: false,
    };
    assert_eq!(out, Outcome::Preempted(want.encode()));
    let mut a = args;
    a[1] = want.encode();
    assert_eq!(
        w.call(Hypercall::MMU_UPDATE, a),
        Outcome::Resumed {
            ret: 0,
            count: n as u32
        }
    );
    assert_eq!(u32::from_le_bytes(w.peek(DATA + 0x800)) as usize, n);
}

#[test]
fn a_multicall_resumes_inside_a_preempted_batch() {
    let batch: Vec<Req> = (0..20)
        .map(|k| Req::Map {
            slot: k,
            pfn: k as u64,
            rw: true,
        })
        .collect();
    let mut whole = World::new();
    let (list, n) = multicall_of(&mut whole, &[batch.clone(), batch.clone()]);
    assert_eq!(
        whole.call(Hypercall::MULTICALL, [list, n, 0, 0, 0]),
        Outcome::Return(0)
    );
    let mut w = World::new();
    multicall_of(&mut w, &[batch.clone(), batch]);
    // Room for the first entry and 5 of its requests.
    let out = w.call_with(
        Hypercall::MULTICALL,
        [list, n, 0, 0, 0],
        Budget::with_room(6),
    );
    let inner = crate::preempt::Progress {
        count: 20,
        done: 5,
        in_entry: false,
    };
    let outer = crate::preempt::Progress {
        count: n as u32,
        done: 0,
        in_entry: true,
    };
    assert_eq!(out, Outcome::Preempted(outer.encode()));
    // The entry's progress word is where its result goes; its arguments are
    // as the guest wrote them.
    assert_eq!(u64::from_le_bytes(w.peek(list + 8)), inner.encode());
    assert_eq!(u64::from_le_bytes(w.peek(list + 24)), 20);
    let (o, _) = run_split(
        &mut w,
        Hypercall::MULTICALL,
        [list, outer.encode(), 0, 0, 0],
        &[3, 1, 7, 2],
    );
    assert_eq!(o, Outcome::Return(0));
    assert!(state(&w) == state(&whole));
}

#[test]
fn blocking_in_a_multicall_is_refused_and_changes_nothing() {
    let mut w = World::new();
    // Upcalls start masked and nothing is pending: SCHEDOP_block would unmask
    // and block.
    use crate::event::EventBits;
    assert!(w.ev.page(&w.dom, &mut w.mem).unwrap().upcall_mask());
    let list = list_va(&w);
    let mut e = entry(Hypercall::SCHED_OP.0, [SCHEDOP_BLOCK, 0, 0, 0, 0, 0]);
    e.extend(entry(Hypercall::SCHED_OP.0, [SCHEDOP_BLOCK, 0, 0, 0, 0, 0]));
    w.poke(list, &e);
    let before = state(&w);
    assert_eq!(
        w.call(Hypercall::MULTICALL, [list, 2, 0, 0, 0]),
        Outcome::Return(0)
    );
    assert_eq!(
        i64::from_le_bytes(w.peek(list + 8)),
        Errno::EINVAL.as_return()
    );
    assert_eq!(
        i64::from_le_bytes(w.peek(list + 64 + 8)),
        Errno::EINVAL.as_return()
    );
    let p = w.ev.page(&w.dom, &mut w.mem).unwrap();
    assert!(
        p.upcall_mask(),
        "evtchn_upcall_mask cleared by a refused call"
    );
    // Only the results changed.
    let (mut after, blocked) = state(&w);
    assert_eq!(blocked, None);
    let list_frame = walk(&w.mem, w.dom.base(), GuestVirt::new(list), false, |_, _| {
        true
    })
    .unwrap()
    .frame;
    after.insert(list_frame.get(), before.0[&list_frame.get()].clone());
    assert!(after == before.0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A batch split at random points (one unit a piece up to the whole bound)
    /// ends with the same memory, result and done count as one call.
    #[test]
    fn split_batches_equal_one_call(
        reqs in proptest::collection::vec(req(), 0..80),
        rooms in proptest::collection::vec(1u32..12, 0..40),
    ) {
        let run = |rooms: &[u32]| {
            let mut w = World::new();
            let list = list_va(&w);
            let bytes = encode_reqs(&w, &reqs);
            w.poke(list, &bytes);
            let args = [list, reqs.len() as u64, DATA + 0x800, DOMID_SELF, 0];
            let (out, _) = run_split(&mut w, Hypercall::MMU_UPDATE, args, rooms);
            let done = u32::from_le_bytes(w.peek(DATA + 0x800));
            let counts = w.dom.release_mm(&mut w.mem);
            (out, done, state(&w), counts)
        };
        let whole = run(&[]);
        let split = run(&rooms);
        prop_assert_eq!(whole.0, split.0);
        prop_assert_eq!(whole.1, split.1);
        prop_assert!(whole.2 == split.2, "memory differs");
        prop_assert_eq!(whole.3, 0);
        prop_assert_eq!(split.3, 0);
    }

    /// The same for `mmuext_op` (pins of fresh L1s, unpins, flushes) and for
    /// a multicall of batches.
    #[test]
    fn split_mmuext_and_multicalls_equal_one_call(
        ops in proptest::collection::vec((0u32..8, 0u64..6), 0..30),
        batches in proptest::collection::vec(proptest::collection::vec(req(), 0..12), 0..5),
        rooms in proptest::collection::vec(1u32..9, 0..30),
    ) {
        let run = |rooms: &[u32]| {
            let mut w = World::new();
            let free = w.dom.layout().first_free.get() + 8;
            let list = list_va(&w);
            let mut bytes = Vec::new();
            for &(cmd, k) in &ops {
                let cmd = match cmd {
                    0..=2 => keel_abi::mmu::MMUEXT_PIN_L1_TABLE,
                    3..=4 => keel_abi::mmu::MMUEXT_UNPIN_TABLE,
                    5 => keel_abi::mmu::MMUEXT_TLB_FLUSH_LOCAL,
                    6 => keel_abi::mmu::MMUEXT_INVLPG_LOCAL,
                    _ => 99,
                };
                let arg1 = mfn_of_pfn(&w, free + k).get();
                bytes.extend_from_slice(&MmuextOp { cmd, pad: 0, arg1, arg2: 0 }.encode());
            }
            w.poke(list + 0x3000, &bytes);
            let args = [list + 0x3000, ops.len() as u64, DATA + 0x900, DOMID_SELF, 0];
            let (ext, _) = run_split(&mut w, Hypercall::MMUEXT_OP, args, rooms);
            let ext_done = u32::from_le_bytes(w.peek(DATA + 0x900));
            let (mlist, n) = multicall_of(&mut w, &batches);
            let (mc, _) = run_split(&mut w, Hypercall::MULTICALL, [mlist, n, 0, 0, 0], rooms);
            let counts = w.dom.release_mm(&mut w.mem);
            (ext, ext_done, mc, state(&w), counts)
        };
        let whole = run(&[]);
        let split = run(&rooms);
        prop_assert_eq!(whole.0, split.0);
        prop_assert_eq!(whole.1, split.1);
        prop_assert_eq!(whole.2, split.2);
        prop_assert!(whole.3 == split.3, "memory differs");
        prop_assert_eq!(whole.4, 0);
        prop_assert_eq!(split.4, 0);
    }
}
