//! Both ends of a ring, each on its own thread, against a model of x86 memory
//! (total store order: each CPU's stores wait in a FIFO store buffer, a load
//! sees its own CPU's newest buffered store first, a fence drains the buffer;
//! an event-channel hypercall is serializing, so it drains it too). A
//! schedule chosen by proptest decides, step by step, which end does its next
//! index access and when a buffered store reaches memory; then the ends run
//! to completion. Every request must be answered in order (no lost
//! notification: both ends asleep with work left is a failure), and no end is
//! notified more often than it asked (each notification answers one write of
//! the sleeper's event index: no spurious need).

use super::*;
use proptest::prelude::*;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

const FRONT: usize = 0;
const BACK: usize = 1;
/// Steps after which a run is taken for a livelock.
const STEP_LIMIT: u32 = 200_000;

/// A 500-byte entry: 8 of them in a page, so the ring fills and wraps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Msg {
    id: u32,
    tail: u32,
}

impl Pod for Msg {
    const SIZE: usize = 500;
    fn decode(b: &[u8]) -> Self {
        let w = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        Msg {
            id: w(0),
            tail: w(496),
        }
    }
    fn encode(&self, o: &mut [u8]) {
        o[0..4].copy_from_slice(&self.id.to_le_bytes());
        o[496..500].copy_from_slice(&self.tail.to_le_bytes());
    }
}

#[derive(Default)]
struct World {
    mem: Vec<u32>,
    buf: [VecDeque<(usize, u32)>; 2],
    /// Which end may do its next step (the scheduler hands it out).
    turn: Option<usize>,
    /// The end is parked at a step, waiting for its turn.
    parked: [bool; 2],
    /// The end sleeps in `wait` and is runnable only once notified.
    asleep: [bool; 2],
    pending: [bool; 2],
    finished: [bool; 2],
    /// Writes of each end's event index (`req_event` by the back end,
    /// `rsp_event` by the front end), the initial one included.
    arms: [u32; 2],
    notifies: [u32; 2],
    abort: bool,
}

impl World {
    fn load(&self, me: usize, i: usize) -> u32 {
        self.buf[me]
            .iter()
            .rev()
            .find(|(a, _)| *a == i)
            .map_or(self.mem[i], |&(_, v)| v)
    }
    fn drain(&mut self, me: usize) {
        while let Some((a, v)) = self.buf[me].pop_front() {
            self.mem[a] = v;
        }
    }
    fn runnable(&self, e: usize) -> bool {
        self.parked[e] && !self.finished[e] && (!self.asleep[e] || self.pending[e])
    }
}

struct Shared {
    w: Mutex<World>,
    cv: Condvar,
}

/// One end's view: its page accesses and its channel are steps of the model.
#[derive(Clone)]
struct End {
    me: usize,
    s: Arc<Shared>,
    /// Fences removed (a mutation the tests must catch).
    no_fence: bool,
}

struct Aborted;

impl End {
    /// One step: park, wait for the turn, act, give the turn back.
    fn step<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let mut w = self.s.w.lock().unwrap();
        w.parked[self.me] = true;
        self.s.cv.notify_all();
        while w.turn != Some(self.me) {
            if w.abort {
                drop(w);
                std::panic::panic_any(Aborted);
            }
            w = self.s.cv.wait(w).unwrap();
        }
        w.parked[self.me] = false;
        let r = f(&mut w);
        w.turn = None;
        self.s.cv.notify_all();
        r
    }
    /// Work that is no interleaving point (entry words): done under the
    /// lock at once, but still through the store buffer.
    fn quiet<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut self.s.w.lock().unwrap())
    }
}

fn is_index(i: usize) -> bool {
    i < 4
}

impl Page for End {
    fn load(&self, i: usize) -> u32 {
        let me = self.me;
        if is_index(i) {
            self.step(|w| w.load(me, i))
        } else {
            self.quiet(|w| w.load(me, i))
        }
    }
    fn store(&self, i: usize, v: u32) {
        let me = self.me;
        let arm = (me == BACK && i == REQ_EVENT) || (me == FRONT && i == RSP_EVENT);
        let f = move |w: &mut World| {
            w.buf[me].push_back((i, v));
            if arm {
                w.arms[me] += 1;
            }
        };
        if is_index(i) {
            self.step(f)
        } else {
            self.quiet(f)
        }
    }
    fn fence(&self) {
        if !self.no_fence {
            let me = self.me;
            self.step(|w| w.drain(me))
        }
    }
}

impl Channel for End {
    fn notify(&mut self) {
        let me = self.me;
        self.step(|w| {
            w.drain(me);
            w.pending[1 - me] = true;
            w.notifies[me] += 1;
        })
    }
    fn wait(&mut self) {
        let me = self.me;
        loop {
            let woken = self.step(|w| {
                w.drain(me);
                if w.pending[me] {
                    w.pending[me] = false;
                    w.asleep[me] = false;
                    true
                } else {
                    w.asleep[me] = true;
                    false
                }
            });
            if woken {
                return;
            }
        }
    }
}

#[derive(Debug)]
struct Run {
    answered: u32,
    in_order: bool,
    stuck: bool,
    arms: [u32; 2],
    notifies: [u32; 2],
}

/// Run `total` requests through a ring that starts at index `start`, the
/// front end keeping at most `window` outstanding, in the interleaving
/// `schedule` begins (0: the front end steps, 1: the back end, 2 and 3: one
/// store of the front's or the back's buffer reaches memory), fairly after.
fn run(start: u32, total: u32, window: u32, schedule: &[u8], no_fence: [bool; 2]) -> Run {
    let s = Arc::new(Shared {
        w: Mutex::new(World {
            mem: vec![0; PAGE_WORDS],
            ..Default::default()
        }),
        cv: Condvar::new(),
    });
    let end = |me| End {
        me,
        s: s.clone(),
        no_fence: no_fence[me],
    };
    // The front end initialises the page before the back end attaches (in
    // the demo the grant is made after the initialisation).
    {
        let mut w = s.w.lock().unwrap();
        for (i, v) in [
            (REQ_PROD, start),
            (RSP_PROD, start),
            (REQ_EVENT, start.wrapping_add(1)),
            (RSP_EVENT, start.wrapping_add(1)),
        ] {
            w.mem[i] = v;
        }
        w.arms = [1, 1];
    }
    let mut front = Front::<End, Msg, Msg> {
        page: end(FRONT),
        idx: FrontRing {
            req_prod_pvt: start,
            rsp_cons: start,
            nr_ents: Geometry::<Msg, Msg>::SIZE,
        },
        _t: PhantomData,
    };
    let mut back = Back::<End, Msg, Msg> {
        page: end(BACK),
        idx: BackRing {
            rsp_prod_pvt: start,
            req_cons: start,
            nr_ents: Geometry::<Msg, Msg>::SIZE,
        },
        _t: PhantomData,
    };

    let mut in_order = true;
    let mut answered = 0;
    let mut stuck = false;
    std::thread::scope(|sc| {
        let mut fc = end(FRONT);
        let fs = s.clone();
        let f = sc.spawn(move || {
            let mut seen = 0;
            let r = run_front(
                &mut front,
                &mut fc,
                total,
                window,
                |n| Msg { id: n, tail: !n },
                |n, r| {
                    seen += 1;
                    r.id == n + 1000 && r.tail == !(n + 1000)
                },
            );
            fs.w.lock().unwrap().finished[FRONT] = true;
            fs.cv.notify_all();
            (r.is_ok(), seen)
        });
        let mut bc = end(BACK);
        let bs = s.clone();
        let b = sc.spawn(move || {
            let mut n = 0;
            serve(&mut back, &mut bc, |q: &Msg| {
                n += 1;
                let flow = if n == total { Flow::Stop } else { Flow::More };
                (
                    Msg {
                        id: q.id + 1000,
                        tail: !(q.id + 1000),
                    },
                    flow,
                )
            });
            bs.w.lock().unwrap().finished[BACK] = true;
            bs.cv.notify_all();
        });

        // The scheduler.
        let mut plan = schedule.iter().copied();
        let mut rr = 0u8;
        let mut steps = 0;
        loop {
            let mut w = s.w.lock().unwrap();
            // Wait until every end that has not finished is parked at a step.
            while !(0..2).all(|e| w.finished[e] || w.parked[e]) {
                w = s.cv.wait(w).unwrap();
            }
            if w.finished == [true, true] {
                break;
            }
            steps += 1;
            let runnable = [w.runnable(FRONT), w.runnable(BACK)];
            let buffered = [!w.buf[FRONT].is_empty(), !w.buf[BACK].is_empty()];
            if steps > STEP_LIMIT || (runnable == [false, false] && buffered == [false, false]) {
                stuck = true;
                w.abort = true;
                s.cv.notify_all();
                break;
            }
            let choice = plan.next().unwrap_or_else(|| {
                rr = rr.wrapping_add(1);
                rr % 4
            });
            match choice {
                e @ (0 | 1) if runnable[e as usize] => w.turn = Some(e as usize),
                e @ (2 | 3) if buffered[e as usize - 2] => {
                    let e = e as usize - 2;
                    if let Some((a, v)) = w.buf[e].pop_front() {
                        w.mem[a] = v;
                    }
                    continue;
                }
                _ => continue,
            }
            s.cv.notify_all();
            while w.turn.is_some() {
                w = s.cv.wait(w).unwrap();
            }
        }
        match f.join() {
            Ok((ok, seen)) => {
                in_order = ok;
                answered = seen;
            }
            Err(p) => {
                assert!(p.is::<Aborted>(), "the front end panicked");
            }
        }
        if let Err(p) = b.join() {
            assert!(p.is::<Aborted>(), "the back end panicked");
        }
    });
    let w = s.w.lock().unwrap();
    Run {
        answered,
        in_order,
        stuck,
        arms: w.arms,
        notifies: w.notifies,
    }
}

fn quiet_aborts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let old = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |i| {
            if !i.payload().is::<Aborted>() {
                old(i)
            }
        }));
    });
}

#[test]
fn geometry_of_the_test_entry_and_of_small_ones() {
    assert_eq!(Geometry::<Msg, Msg>::SIZE, 8);
    assert_eq!(Geometry::<Msg, Msg>::entry_word(9), (64 + 500) / 4);
    #[derive(Clone, Copy)]
    struct W(u64);
    impl Pod for W {
        const SIZE: usize = 8;
        fn decode(b: &[u8]) -> Self {
            W(b[0] as u64)
        }
        fn encode(&self, o: &mut [u8]) {
            o[0] = self.0 as u8;
        }
    }
    assert_eq!(Geometry::<W, W>::SIZE, 256);
}

#[test]
fn in_a_fair_interleaving_every_request_is_answered() {
    quiet_aborts();
    let r = run(0, 50, 8, &[], [false, false]);
    assert!(!r.stuck && r.in_order, "{r:?}");
    assert_eq!(r.answered, 50);
}

/// Schedules from a seed, each step drawn with `weights` (front step, back
/// step, front store reaches memory, back store reaches memory).
fn schedule(seed: u64, weights: [u64; 4]) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let sum: u64 = weights.iter().sum();
    (0..400)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut r = x % sum;
            let mut k = 0;
            while r >= weights[k] {
                r -= weights[k];
                k += 1;
            }
            k as u8
        })
        .collect()
}

/// Without the back end's fence in its final check, its write of
/// `req_event` can wait in its store buffer while it reads `req_prod`
/// (nothing new) and the front end publishes a request and reads the old
/// `req_event`: neither notifies, both sleep. The model finds such a
/// schedule (the back end's buffer drained only by its own steps).
#[test]
fn without_the_final_checks_fence_a_notification_is_lost() {
    quiet_aborts();
    let found =
        (0..3000).any(|seed| run(0, 6, 2, &schedule(seed, [6, 2, 2, 0]), [false, true]).stuck);
    assert!(
        found,
        "no schedule lost a notification without the back end's fence"
    );
}

/// The same for the fence between publishing `req_prod` and reading
/// `req_event`.
#[test]
fn without_the_push_fence_a_notification_is_lost() {
    quiet_aborts();
    let found =
        (0..3000).any(|seed| run(0, 6, 1, &schedule(seed, [1, 1, 1, 1]), [true, false]).stuck);
    assert!(
        found,
        "no schedule lost a notification without the front end's fence"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Any interleaving: every request answered, in order, and no end
    /// notified more often than it asked.
    #[test]
    fn no_lost_notification_and_no_spurious_need(
        start in prop_oneof![Just(0u32), Just(u32::MAX - 3), any::<u32>()],
        total in 1u32..30,
        window in 1u32..10,
        schedule in proptest::collection::vec(0u8..4, 0..400),
    ) {
        quiet_aborts();
        let r = run(start, total, window, &schedule, [false, false]);
        prop_assert!(!r.stuck, "both ends asleep with work left: {:?}", r);
        prop_assert!(r.in_order, "{:?}", r);
        prop_assert_eq!(r.answered, total);
        // Notifications the front end sent went to the back end, which asked
        // `arms[BACK]` times; and the reverse.
        prop_assert!(r.notifies[FRONT] <= r.arms[BACK], "{:?}", r);
        prop_assert!(r.notifies[BACK] <= r.arms[FRONT], "{:?}", r);
    }

    /// A hostile front end that publishes any `req_prod`: the back end
    /// consumes at most the ring's size beyond the responses it produced.
    #[test]
    fn a_hostile_req_prod_is_bounded_by_the_ring(req_prod in any::<u32>(), start in any::<u32>()) {
        let page = Local::new();
        (&page).store(RSP_PROD, start);
        (&page).store(REQ_PROD, req_prod);
        let mut back = Back::<&Local, Msg, Msg>::attach(&page);
        let mut n = 0;
        while back.request().is_some() {
            n += 1;
            prop_assert!(n <= 8);
        }
        prop_assert_eq!(n, req_prod.wrapping_sub(start).min(8));
    }
}

/// A page on one thread (no other end).
struct Local(Vec<std::sync::atomic::AtomicU32>);

impl Local {
    fn new() -> Self {
        Local((0..PAGE_WORDS).map(|_| Default::default()).collect())
    }
}

impl Page for &Local {
    fn load(&self, i: usize) -> u32 {
        self.0[i].load(Ordering::SeqCst)
    }
    fn store(&self, i: usize, v: u32) {
        self.0[i].store(v, Ordering::SeqCst)
    }
    fn fence(&self) {}
}

#[test]
fn a_response_is_a_snapshot_of_its_slot() {
    let page = Local::new();
    let mut front = Front::<&Local, Msg, Msg>::init(&page);
    let mut back = Back::<&Local, Msg, Msg>::attach(&page);
    assert!(front.request(&Msg { id: 7, tail: 9 }));
    assert!(
        front.push_requests(),
        "the back end asked for the first request"
    );
    assert_eq!(back.request(), Some(Msg { id: 7, tail: 9 }));
    assert!(back.respond(&Msg { id: 8, tail: 10 }));
    assert!(
        !back.respond(&Msg { id: 0, tail: 0 }),
        "one request, one response"
    );
    assert!(
        back.push_responses(),
        "the front end asked for the first response"
    );
    assert_eq!(front.response(), Ok(Some(Msg { id: 8, tail: 10 })));
    assert_eq!(front.response(), Ok(None));
    // Nobody asked for the second request until the back end's final check.
    assert!(front.request(&Msg { id: 1, tail: 1 }));
    assert!(!front.push_requests());
    assert!(back.final_check_for_requests());
}

/// A back end that publishes a `rsp_prod` far beyond the requests: the front
/// end consumes nothing and says so, whatever the slots hold.
#[test]
fn a_hostile_rsp_prod_is_refused() {
    let page = Local::new();
    let mut front = Front::<&Local, Msg, Msg>::init(&page);
    assert!(front.request(&Msg { id: 1, tail: 1 }));
    assert!(front.request(&Msg { id: 2, tail: 2 }));
    front.push_requests();
    (&page).store(RSP_PROD, 0x1000);
    assert_eq!(
        front.response(),
        Err(ResponseOverflow {
            rsp_prod: 0x1000,
            rsp_cons: 0,
            req_prod: 2
        })
    );
    assert_eq!(front.consumed(), 0);
    // One response for two requests is honest.
    (&page).store(RSP_PROD, 1);
    assert!(front.response().is_ok_and(|r| r.is_some()));
    assert_eq!(front.consumed(), 1);
    // Behind what was consumed is as impossible as far ahead.
    (&page).store(RSP_PROD, 0);
    assert!(front.response().is_err());
}

#[test]
fn run_front_stops_at_a_hostile_rsp_prod() {
    struct Evil<'a>(&'a Local);
    impl Channel for Evil<'_> {
        fn notify(&mut self) {
            // The "back end" answers any request with an impossible index.
            (&self.0).store(RSP_PROD, (&self.0).load(REQ_PROD).wrapping_add(0x1000));
        }
        fn wait(&mut self) {}
    }
    let page = Local::new();
    let mut front = Front::<&Local, Msg, Msg>::init(&page);
    let r = run_front(
        &mut front,
        &mut Evil(&page),
        4,
        4,
        |n| Msg { id: n, tail: n },
        |_, _| true,
    );
    assert!(matches!(r, Err(FrontError::Overflow(o)) if o.rsp_prod == 0x1004 && o.req_prod == 4));
    assert_eq!(front.consumed(), 0);
}
