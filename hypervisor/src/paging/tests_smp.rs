//! Host tests of the frame table under several CPUs: threads racing
//! references, type references, pins and type changes on a few shared frames
//! (the stress test), and a property test over deterministic interleavings of
//! the same operations, where every machine-memory access is a step that a
//! generated schedule hands to one thread at a time.
//!
//! Both must fail when the atomic update is a plain load and store: build the
//! tests with `KEEL_RACY_CMPXCHG=1` in the environment and
//! [`SharedMem::cmpxchg_u64`] becomes a read, a pause (another thread's turn)
//! and a write.

extern crate std;

use super::*;
use crate::addr::{MachineAddr, Pfn, PAGE_SIZE};
use crate::mem::fake::FakeFrames;
use crate::mem::PhysMem;
use crate::paging::entry::{entry_addr, Level, Pte, PteFlags};
use crate::paging::frame_table::{FrameTable, PageType};
use proptest::prelude::*;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::vec::Vec;

/// The compare-and-exchange replaced by a load and a store (the check that
/// the tests catch the race they are about).
const RACY: bool = option_env!("KEEL_RACY_CMPXCHG").is_some();

/// First machine frame of the shared memory, and how many.
const FIRST: u64 = 0x100;
const COUNT: u64 = 24;
/// Domain frames: PFN 0 an L2 whose entries 0 and 1 reference PFNs 1 and 2;
/// PFN 3 an L1 mapping PFN 4 writable; PFNs 5..8 empty.
const NR_PAGES: u64 = 8;

/// Machine memory several threads share as CPUs do: every thread holds its
/// own handle (a clone, as every CPU its own `DirectMap`), the words are
/// atomics. With a schedule, every access first waits for the thread's turn.
#[derive(Clone)]
struct SharedMem {
    words: Arc<Vec<AtomicU64>>,
    sched: Option<(Arc<Sched>, usize)>,
}

impl SharedMem {
    fn new() -> SharedMem {
        SharedMem {
            words: Arc::new((0..COUNT * 512).map(|_| AtomicU64::new(0)).collect()),
            sched: None,
        }
    }
    fn word(&self, at: u64) -> &AtomicU64 {
        let i = at
            .checked_sub(FIRST * PAGE_SIZE)
            .expect("below the shared memory")
            / 8;
        &self.words[i as usize]
    }
    /// A step of a deterministic interleaving: wait for this thread's turn.
    fn step(&self) {
        if let Some((s, me)) = &self.sched {
            s.step(*me);
        }
    }
}

impl PhysMem for SharedMem {
    fn read(&self, at: MachineAddr, out: &mut [u8]) {
        self.step();
        for (k, b) in out.iter_mut().enumerate() {
            let a = at.get() + k as u64;
            *b = (self.word(a).load(Ordering::SeqCst) >> ((a % 8) * 8)) as u8;
        }
    }
    fn write(&mut self, at: MachineAddr, data: &[u8]) {
        self.step();
        for (k, &b) in data.iter().enumerate() {
            let a = at.get() + k as u64;
            let shift = (a % 8) * 8;
            let _ = self
                .word(a)
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                    Some(w & !(0xff << shift) | u64::from(b) << shift)
                });
        }
    }
    fn read_u64(&self, at: MachineAddr) -> u64 {
        assert_eq!(at.get() % 8, 0);
        self.step();
        self.word(at.get()).load(Ordering::SeqCst)
    }
    fn write_u64(&mut self, at: MachineAddr, v: u64) {
        assert_eq!(at.get() % 8, 0);
        self.step();
        self.word(at.get()).store(v, Ordering::SeqCst)
    }
    fn cmpxchg_u64(&mut self, at: MachineAddr, old: u64, new: u64) -> u64 {
        if RACY {
            let found = self.read_u64(at);
            std::thread::yield_now();
            if found == old {
                self.write_u64(at, new);
            }
            return found;
        }
        self.step();
        match self
            .word(at.get())
            .compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(v) | Err(v) => v,
        }
    }
}

/// A schedule of the threads' steps: at every step the next thread to run
/// is the generated choice among those not finished.
struct Sched {
    state: Mutex<SchedState>,
    turn_changed: Condvar,
}

struct SchedState {
    turn: usize,
    done: Vec<bool>,
    choices: Vec<u8>,
    pos: usize,
}

impl Sched {
    fn new(threads: usize, choices: Vec<u8>) -> Arc<Sched> {
        let mut st = SchedState {
            turn: 0,
            done: std::vec![false; threads],
            choices,
            pos: 0,
        };
        st.turn = st.pick();
        Arc::new(Sched {
            state: Mutex::new(st),
            turn_changed: Condvar::new(),
        })
    }
    /// Hand the turn on (by the schedule), then wait for `me`'s.
    fn step(&self, me: usize) {
        let mut st = self.state.lock().unwrap();
        st.turn = st.pick();
        self.turn_changed.notify_all();
        while st.turn != me {
            st = self.turn_changed.wait(st).unwrap();
        }
    }
    fn start(&self, me: usize) {
        let mut st = self.state.lock().unwrap();
        while st.turn != me {
            st = self.turn_changed.wait(st).unwrap();
        }
    }
    fn finish(&self, me: usize) {
        let mut st = self.state.lock().unwrap();
        st.done[me] = true;
        if st.done.iter().any(|d| !d) {
            st.turn = st.pick();
        }
        self.turn_changed.notify_all();
    }
}

impl SchedState {
    fn pick(&mut self) -> usize {
        let alive: Vec<usize> = (0..self.done.len()).filter(|&t| !self.done[t]).collect();
        let c = match self.choices.get(self.pos) {
            Some(&c) => usize::from(c),
            // Past the schedule: the lowest thread left runs to its end.
            None => 0,
        };
        self.pos += 1;
        alive[c % alive.len()]
    }
}

/// The shared frame table, set up on one thread.
fn setup() -> (SharedMem, FrameTable) {
    let mut mem = SharedMem::new();
    let mut frames = FakeFrames::new(FIRST, COUNT);
    let ft = FrameTable::alloc(NR_PAGES, &mut mem, &mut frames).unwrap();
    let mfn = |mem: &SharedMem, p: u64| ft.mfn(mem, Pfn::new(p)).unwrap();
    let upper = PteFlags::PRESENT | PteFlags::WRITABLE | PteFlags::USER;
    let [l2, l1a, l1b, l1, data] = [0, 1, 2, 3, 4].map(|p| mfn(&mem, p));
    mem.write_u64(entry_addr(l2, 0), Pte::new(l1a, upper).raw());
    mem.write_u64(entry_addr(l2, 1), Pte::new(l1b, upper).raw());
    mem.write_u64(entry_addr(l1, 7), Pte::new(data, upper).raw());
    (mem, ft)
}

/// What one thread does with one frame.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// A plain reference (a grant map's), taken and dropped.
    Ref,
    /// A writable type reference (an L1 entry's, a grant map's), with its
    /// plain reference.
    Writable,
    /// A table type reference of the frame's own level (an upper entry's),
    /// with its plain reference.
    Table,
    /// Pin, then unpin (another thread may unpin it first).
    PinUnpin,
}

/// The table level each frame is used at by [`Op::Table`] and
/// [`Op::PinUnpin`].
fn level_of(pfn: u64) -> Level {
    if pfn == 0 {
        Level::L2
    } else {
        Level::L1
    }
}

/// Which of the per-frame holder counters a type is.
fn kind(t: PageType) -> usize {
    match t {
        PageType::Writable => 0,
        PageType::Table(Level::L1) => 1,
        _ => 2,
    }
}

/// Holders per frame and kind of type reference, kept by the threads
/// themselves: a thread counts itself after it has the reference and
/// uncounts itself before it drops it.
struct Holders([[AtomicU32; 3]; NR_PAGES as usize]);

impl Holders {
    fn new() -> Holders {
        Holders(core::array::from_fn(|_| {
            core::array::from_fn(|_| AtomicU32::new(0))
        }))
    }
}

/// While a type reference of `want` on `pfn` is held: the frame has that
/// type, counted, validated if a table (and then so are the tables it
/// references), and no thread holds another type on it.
fn check_held(mm: &Mm<'_, SharedMem>, h: &Holders, pfn: u64, want: PageType) {
    let i = mm.ft.info(&*mm.mem, Pfn::new(pfn)).unwrap();
    assert_eq!(
        i.ty, want,
        "frame {pfn} held as {want:?} has type {:?}",
        i.ty
    );
    assert!(i.type_count >= 1, "frame {pfn} held as {want:?}: {i:?}");
    assert!(i.ref_count >= 1, "frame {pfn} held as {want:?}: {i:?}");
    for k in 0..3 {
        if k != kind(want) {
            let n = h.0[pfn as usize][k].load(Ordering::SeqCst);
            assert_eq!(n, 0, "frame {pfn} held as {want:?} and as kind {k}");
        }
    }
    if let Some(level) = want.level() {
        assert!(i.validated, "frame {pfn} held as {want:?}, not validated");
        if level == Level::L2 {
            for child in [1, 2] {
                let c = mm.ft.info(&*mm.mem, Pfn::new(child)).unwrap();
                assert!(
                    c.ty == PageType::Table(Level::L1) && c.type_count >= 1 && c.validated,
                    "L2 held while its L1 {child} is {c:?}"
                );
            }
        }
    }
}

/// Do `op` on `pfn`, checking what is held while it is.
fn run_op(mm: &mut Mm<'_, SharedMem>, h: &Holders, op: Op, pfn: u64) {
    let mfn = mm.ft.mfn(&*mm.mem, Pfn::new(pfn)).unwrap();
    match op {
        Op::Ref => {
            mm.get_page(mfn).unwrap();
            let refs = mm.ft.ref_count(&*mm.mem, Pfn::new(pfn)).unwrap();
            assert!(refs >= 1, "frame {pfn}: a reference held, count {refs}");
            mm.put_page(mfn);
        }
        Op::Writable | Op::Table => {
            let want = match op {
                Op::Writable => PageType::Writable,
                _ => PageType::Table(level_of(pfn)),
            };
            mm.get_page(mfn).unwrap();
            match mm.get_type(mfn, want) {
                Ok(()) => {
                    h.0[pfn as usize][kind(want)].fetch_add(1, Ordering::SeqCst);
                    check_held(mm, h, pfn, want);
                    std::thread::yield_now();
                    check_held(mm, h, pfn, want);
                    h.0[pfn as usize][kind(want)].fetch_sub(1, Ordering::SeqCst);
                    mm.put_type(mfn);
                }
                // In use as another type, or being (de)validated by another
                // thread; a table whose entries meet such a frame (frame 3's
                // frame 4, the L2's L1s) is refused the same way.
                Err(MmError::TypeConflict { .. } | MmError::Recursive(_)) => {}
                Err(e) => panic!("frame {pfn} as {want:?}: {e:?}"),
            }
            mm.put_page(mfn);
        }
        Op::PinUnpin => {
            match mm.pin(mfn, level_of(pfn)) {
                Ok(())
                | Err(
                    MmError::AlreadyPinned(_)
                    | MmError::TypeConflict { .. }
                    | MmError::Recursive(_),
                ) => {}
                Err(e) => panic!("pin frame {pfn}: {e:?}"),
            }
            match mm.unpin(mfn) {
                Ok(()) | Err(MmError::NotPinned(_)) => {}
                Err(e) => panic!("unpin frame {pfn}: {e:?}"),
            }
        }
    }
}

/// After every thread ended: every count back at zero.
fn check_quiet(ft: &FrameTable, mem: &SharedMem) {
    for p in 0..NR_PAGES {
        let i = ft.info(mem, Pfn::new(p)).unwrap();
        assert!(
            i.type_count == 0 && i.ref_count == 0 && !i.pinned && !i.validated,
            "frame {p} after every thread ended: {i:?}"
        );
    }
}

/// A small deterministic generator per thread (no shared state).
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn threads_racing_references_types_and_pins_leave_every_count_at_zero() {
    let (mem, ft) = setup();
    let holders = Holders::new();
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 8;
    const OPS: u64 = 3000;
    for round in 0..ROUNDS {
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let (ft, h) = (&ft, &holders);
                let mut mem = mem.clone();
                s.spawn(move || {
                    let mut mm = Mm {
                        ft,
                        mem: &mut mem,
                        nx: false,
                    };
                    let mut seed = 0x9e37_79b9_7f4a_7c15
                        ^ ((round << 8 | t) + 1).wrapping_mul(0x1234_5678_9abc_def1);
                    for _ in 0..OPS {
                        let r = next(&mut seed);
                        let op = [Op::Ref, Op::Writable, Op::Table, Op::PinUnpin][(r % 4) as usize];
                        // Most operations on two frames, so that they meet.
                        let pfn = if r & 0x30 != 0 {
                            5 + (r >> 6) % 2
                        } else {
                            (r >> 6) % NR_PAGES
                        };
                        run_op(&mut mm, h, op, pfn);
                    }
                });
            }
        });
        check_quiet(&ft, &mem);
    }
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Ref),
        Just(Op::Writable),
        Just(Op::Table),
        Just(Op::PinUnpin)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Two or three threads, each a few operations on frames 5 and 6 (or
    /// the L2 and its L1s), interleaved step by step as `choices` says:
    /// every interleaving keeps one type per frame, the type held while
    /// counted, and every count back at zero.
    #[test]
    fn every_interleaving_keeps_the_counts(
        threads in proptest::collection::vec(
            proptest::collection::vec((op_strategy(), prop_oneof![Just(0u64), Just(1), Just(5), Just(6)]), 1..4),
            2..4,
        ),
        choices in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let (mem, ft) = setup();
        let holders = Holders::new();
        let sched = Sched::new(threads.len(), choices);
        std::thread::scope(|s| {
            for (t, ops) in threads.iter().enumerate() {
                let (ft, h) = (&ft, &holders);
                let mut mem = SharedMem { sched: Some((sched.clone(), t)), ..mem.clone() };
                let sched = sched.clone();
                s.spawn(move || {
                    sched.start(t);
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let mut mm = Mm { ft, mem: &mut mem, nx: false };
                        for &(op, pfn) in ops {
                            run_op(&mut mm, h, op, pfn);
                        }
                    }));
                    sched.finish(t);
                    if let Err(p) = r {
                        std::panic::resume_unwind(p);
                    }
                });
            }
        });
        check_quiet(&ft, &mem);
    }
}
