//! Host tests of validation and devalidation in pieces ([`super::job`]): a
//! tree pinned, unpinned, installed or removed in pieces of every size ends
//! exactly as in one go; a job abandoned part way is undone; the tables on a
//! job's path refuse every other use; a refusal deep in the tree leaves
//! nothing behind; every count returns to zero.

extern crate std;

use super::job::{Entries, Job, Meter, Unbounded};
use super::tests::{audit, World};
use super::*;
use crate::addr::Mfn;
use crate::paging::entry::*;
use crate::paging::frame_table::{PageInfo, PageType};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::vec::Vec;

/// Frames of the tree: L4 at 0, L3s at 1..=2, L2s at 3..=6, L1s at 7..=22;
/// data frames from 40.
const L3S: [u64; 2] = [1, 2];
const FRAMES: u64 = 120;

/// A four-level tree of 23 tables (each L3 two L2s, each L2 four L1s, each
/// L1 mapping 20 data frames, alternately writable and read-only), written
/// raw: nothing is validated yet. Returns the number of entries a
/// validation of the whole tree looks at.
fn tree(w: &mut World) -> u64 {
    let rw = PteFlags::PRESENT | PteFlags::WRITABLE;
    let mut l2 = 3;
    let mut l1 = 7;
    for (k, &l3) in L3S.iter().enumerate() {
        let v = w.e(l3, rw);
        w.poke(0, 3 + 100 * k, v);
        for j in 0..2 {
            let v = w.e(l2, rw);
            w.poke(l3, 7 * j, v);
            for i in 0..4 {
                let v = w.e(l1, rw);
                w.poke(l2, 50 * i + 1, v);
                for d in 0..20u64 {
                    let flags = if d % 2 == 0 { rw } else { PteFlags::PRESENT };
                    let v = w.e(40 + (l1 * 20 + d) % 80, flags);
                    w.poke(l1, (d * 25) as usize, v);
                }
                l1 += 1;
            }
            l2 += 1;
        }
    }
    23 * ENTRIES as u64
}

/// Everything the rules keep: memory and every frame's accounting. (The
/// type of a frame whose type count is zero means nothing: any type may be
/// taken next, and the rules leave the last one there.)
fn snapshot(w: &World) -> (BTreeMap<u64, Vec<u8>>, Vec<PageInfo>) {
    let info = |p| {
        let mut i = w.info(p);
        if i.type_count == 0 {
            i.ty = PageType::None;
        }
        i
    };
    // The domain's frames (the frame table's own frames hold the type words,
    // compared as `PageInfo`s).
    let frames = (0..FRAMES)
        .filter_map(|p| {
            let m = w.mfn(p).get();
            w.mem.frames.get(&m).map(|f| (m, f.clone()))
        })
        .collect();
    (frames, (0..FRAMES).map(info).collect())
}

/// Run `op` as a guest re-executing a preempted request: with a meter of
/// `piece` entries each time, until it finishes. Its result and the number of
/// pieces.
fn in_pieces(
    w: &mut World,
    job: &mut Job,
    piece: u64,
    mut op: impl FnMut(
        &mut Mm<'_, crate::mem::fake::FakeMem>,
        &mut Job,
        &mut Entries,
    ) -> Option<Result<(), MmError>>,
) -> (Result<(), MmError>, u64) {
    let mut pieces = 1;
    loop {
        let mut meter = Entries(piece);
        if let Some(r) = op(&mut w.mm(), job, &mut meter) {
            assert!(!job.busy(), "a finished request left a job");
            return (r, pieces);
        }
        assert!(job.busy(), "stopped without a job");
        pieces += 1;
        assert!(pieces < 1_000_000, "never finished");
    }
}

fn pin_l4(w: &mut World, job: &mut Job, piece: u64) -> (Result<(), MmError>, u64) {
    let root = w.mfn(0);
    in_pieces(w, job, piece, |mm, job, m| {
        mm.pin_in(job, root, Level::L4, m)
    })
}

fn unpin_l4(w: &mut World, job: &mut Job, piece: u64) -> (Result<(), MmError>, u64) {
    let root = w.mfn(0);
    in_pieces(w, job, piece, |mm, job, m| mm.unpin_in(job, root, m))
}

fn all_free(w: &World) {
    for p in 0..FRAMES {
        let i = w.info(p);
        assert_eq!(
            (i.type_count, i.ref_count, i.validated, i.pinned),
            (0, 0, false, false),
            "pfn {p}: {i:?}"
        );
    }
}

#[test]
fn a_tree_pinned_and_unpinned_in_pieces_ends_as_in_one_go() {
    let mut whole = World::new(FRAMES);
    let entries = tree(&mut whole);
    let mut job = Job::IDLE;
    assert_eq!(pin_l4(&mut whole, &mut job, u64::MAX), (Ok(()), 1));
    audit(&whole).unwrap();
    let pinned = snapshot(&whole);
    assert_eq!(unpin_l4(&mut whole, &mut job, u64::MAX), (Ok(()), 1));
    let unpinned = snapshot(&whole);
    all_free(&whole);
    for piece in [1, 2, 3, 7, 64, 511, 512, 513, 1024, 4000] {
        let mut w = World::new(FRAMES);
        tree(&mut w);
        let (r, pieces) = pin_l4(&mut w, &mut job, piece);
        assert_eq!(r, Ok(()), "piece {piece}");
        // It really stopped: one piece per `piece` entries.
        assert_eq!(pieces, entries.div_ceil(piece), "piece {piece}");
        assert!(snapshot(&w) == pinned, "pin in pieces of {piece} differs");
        audit(&w).unwrap();
        let (r, pieces) = unpin_l4(&mut w, &mut job, piece);
        assert_eq!(r, Ok(()));
        assert_eq!(pieces, entries.div_ceil(piece), "unpin piece {piece}");
        assert!(
            snapshot(&w) == unpinned,
            "unpin in pieces of {piece} differs"
        );
        all_free(&w);
        w.teardown();
    }
    whole.teardown();
}

#[test]
fn the_tables_on_a_jobs_path_refuse_every_other_use() {
    let mut w = World::new(FRAMES);
    tree(&mut w);
    let before = snapshot(&w);
    let mut job = Job::IDLE;
    let root = w.mfn(0);
    // Stop deep inside: the L4, the first L3, its first L2 and an L1 are on
    // the path.
    assert_eq!(
        w.mm().pin_in(&mut job, root, Level::L4, &mut Entries(600)),
        None
    );
    assert!(job.validating());
    for (p, level) in [(0, Level::L4), (1, Level::L3), (3, Level::L2)] {
        let i = w.info(p);
        assert_eq!(
            (i.ty, i.type_count, i.validated),
            (PageType::Table(level), 1, false),
            "{p}"
        );
    }
    // Another reference to a table on the path, an update of one, a pin of
    // one, the base on one: refused by the ordinary rules.
    let l3 = w.e(1, PteFlags::PRESENT | PteFlags::WRITABLE);
    w.poke(30, 0, l3);
    assert_eq!(w.pin(30, Level::L4), Err(MmError::Recursive(w.mfn(1))));
    let v = w.e(50, PteFlags::PRESENT);
    assert!(w.update(1, 9, v).is_err());
    assert!(w.update(0, 9, v).is_err());
    assert_eq!(w.pin(1, Level::L3), Err(MmError::Recursive(w.mfn(1))));
    assert_eq!(w.set_base(0), Err(MmError::NotPinnedL4(w.mfn(0))));
    w.poke(30, 0, Pte::EMPTY);
    // Abandoned: another request settles the job first, which undoes it.
    let l4b = w.mfn(31);
    assert_eq!(
        w.mm().pin_in(&mut job, l4b, Level::L4, &mut Unbounded),
        Some(Ok(()))
    );
    assert!(!job.busy());
    assert_eq!(w.unpin(31), Ok(()));
    assert!(
        snapshot(&w) == before,
        "an abandoned pin left something behind"
    );
    all_free(&w);
    w.teardown();
}

#[test]
fn an_abandoned_job_is_undone_in_pieces_too() {
    for (stop, piece) in [(1, 1), (700, 5), (5000, 512), (11000, 100)] {
        let mut w = World::new(FRAMES);
        tree(&mut w);
        let before = snapshot(&w);
        let mut job = Job::IDLE;
        let root = w.mfn(0);
        assert_eq!(
            w.mm().pin_in(&mut job, root, Level::L4, &mut Entries(stop)),
            None
        );
        let mut pieces = 0;
        while !w.mm().settle(&mut job, &mut Entries(piece)) {
            pieces += 1;
            assert!(job.busy());
        }
        // Undoing costs what was done, in pieces of the same bound.
        assert!(
            pieces + 1 >= stop / piece / 2,
            "stop {stop}: {pieces} pieces"
        );
        assert!(snapshot(&w) == before, "stop {stop}");
        w.teardown();
    }
}

#[test]
fn a_refusal_deep_in_the_tree_leaves_nothing_behind_in_any_pieces() {
    for piece in [1, 13, 512, 3000, u64::MAX] {
        let mut w = World::new(FRAMES);
        tree(&mut w);
        // The last L1's last entry maps a frame the domain does not own.
        w.poke(22, 500, Pte::new(Mfn::new(0x10), PteFlags::PRESENT));
        let before = snapshot(&w);
        let mut job = Job::IDLE;
        let (r, pieces) = pin_l4(&mut w, &mut job, piece);
        assert_eq!(r, Err(MmError::NotOwned(Mfn::new(0x10))), "piece {piece}");
        assert!(piece == u64::MAX || pieces > 1);
        assert!(snapshot(&w) == before, "piece {piece}");
        w.teardown();
    }
}

#[test]
fn an_update_installing_or_removing_a_tree_in_pieces_ends_as_in_one_go() {
    let rw = PteFlags::PRESENT | PteFlags::WRITABLE;
    let setup = || {
        let mut w = World::new(FRAMES);
        tree(&mut w);
        // Only the first L3 in the L4 at first; the second comes by update.
        w.poke(0, 103, Pte::EMPTY);
        w.pin(0, Level::L4).unwrap();
        w
    };
    let entry = |w: &World| entry_addr(w.mfn(0), 103);
    let install = |w: &mut World, job: &mut Job, piece: u64| {
        let (t, v) = (w.mfn(0), w.e(2, rw));
        let mut last = LastTable::default();
        let mut f = Flush::None;
        in_pieces(w, job, piece, |mm, job, m| {
            mm.mod_entry_in(job, &mut last, t, 103, v, &mut f, m)
        })
    };
    let remove = |w: &mut World, job: &mut Job, piece: u64| {
        let t = w.mfn(0);
        let mut last = LastTable::default();
        let mut f = Flush::None;
        in_pieces(w, job, piece, |mm, job, m| {
            mm.mod_entry_in(job, &mut last, t, 103, Pte::EMPTY, &mut f, m)
        })
    };
    let mut job = Job::IDLE;
    let mut whole = setup();
    let start = snapshot(&whole);
    assert_eq!(install(&mut whole, &mut job, u64::MAX), (Ok(()), 1));
    audit(&whole).unwrap();
    let installed = snapshot(&whole);
    assert_eq!(whole.mem.read_pte(entry(&whole)), whole.e(2, rw));
    for piece in [1, 9, 512, 2000] {
        let mut w = setup();
        let (r, pieces) = install(&mut w, &mut job, piece);
        assert_eq!(r, Ok(()));
        assert!(pieces > 1 || piece > 11 * 512);
        assert!(snapshot(&w) == installed, "install in pieces of {piece}");
        let (r, _) = remove(&mut w, &mut job, piece);
        assert_eq!(r, Ok(()));
        assert!(snapshot(&w) == start, "remove in pieces of {piece}");
        audit(&w).unwrap();
        w.teardown();
    }
    whole.teardown();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Pin, then unpin, with pieces of random sizes, and an unrelated request
    /// (which settles the job) at a random point: the end is always a
    /// consistent state whose counts return to zero, and without the
    /// interruption it is the one-go state.
    #[test]
    fn random_pieces_and_interruptions_keep_the_invariants(
        pieces in proptest::collection::vec(1u64..3000, 1..40),
        interrupt_at in proptest::option::of(0usize..40),
    ) {
        let mut w = World::new(FRAMES);
        tree(&mut w);
        let mut job = Job::IDLE;
        let root = w.mfn(0);
        let mut k = 0;
        let mut interrupted = false;
        let r = loop {
            let piece = pieces.get(k).copied().unwrap_or(u64::MAX);
            if Some(k) == interrupt_at && job.busy() {
                interrupted = true;
                let other = w.mfn(31);
                prop_assert_eq!(w.mm().pin_in(&mut job, other, Level::L1, &mut Unbounded), Some(Ok(())));
                prop_assert!(!job.busy());
                prop_assert_eq!(w.unpin(31), Ok(()));
                audit(&w).unwrap();
            }
            if let Some(r) = w.mm().pin_in(&mut job, root, Level::L4, &mut Entries(piece)) {
                break r;
            }
            k += 1;
        };
        prop_assert_eq!(r, Ok(()));
        audit(&w).unwrap();
        let _ = interrupted;
        let mut k = 0;
        loop {
            let piece = pieces.get(k).copied().unwrap_or(u64::MAX);
            if let Some(r) = w.mm().unpin_in(&mut job, root, &mut Entries(piece)) {
                prop_assert_eq!(r, Ok(()));
                break;
            }
            k += 1;
        }
        all_free(&w);
        w.teardown();
    }
}

/// The meter is asked once an entry, never before the first: every piece
/// makes progress.
#[test]
fn every_piece_handles_at_least_one_entry() {
    struct Always(u64);
    impl Meter for Always {
        fn tick(&mut self, n: u32) -> bool {
            assert_eq!(n, 1, "more than the quota");
            self.0 += 1;
            true
        }
    }
    let mut w = World::new(FRAMES);
    let entries = tree(&mut w);
    let mut job = Job::IDLE;
    let root = w.mfn(0);
    let mut m = Always(0);
    let mut pieces = 1;
    while w.mm().pin_in(&mut job, root, Level::L4, &mut m).is_none() {
        pieces += 1;
    }
    assert_eq!((m.0, pieces), (entries, entries));
    w.teardown();
}
