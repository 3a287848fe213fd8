extern crate std;

use std::vec;
use std::vec::Vec;

use super::*;
use proptest::prelude::*;

const Q: u64 = 1_000_000;

fn d(n: u16) -> DomainId {
    DomainId(n)
}

/// Run spinning vCPUs (none blocks) from `now` to `end`; the order of the
/// domains that ran.
fn spin<const N: usize>(s: &mut Scheduler<N>, mut now: u64, end: u64) -> (u64, Vec<u16>) {
    let mut ran = Vec::new();
    while now < end {
        match s.schedule(now) {
            Next::Run { dom, until } => {
                assert!(until > now, "a slice that ends before it starts");
                if ran.last() != Some(&dom.0) {
                    ran.push(dom.0);
                }
                now = until.min(end);
            }
            Next::Idle { until } => now = until.unwrap_or(end).min(end),
        }
    }
    (now, ran)
}

#[test]
fn round_robin_with_preemption_at_the_end_of_the_slice() {
    let mut s = Scheduler::<8>::new(Q);
    for n in 1..=3 {
        assert!(s.add(d(n), DEFAULT_WEIGHT));
    }
    assert!(!s.add(d(1), DEFAULT_WEIGHT), "added twice");
    assert_eq!(
        s.schedule(0),
        Next::Run {
            dom: d(1),
            until: Q
        }
    );
    // Not yet at the end of the slice: no switch.
    assert_eq!(
        s.schedule(Q / 2),
        Next::Run {
            dom: d(1),
            until: Q
        }
    );
    assert_eq!(
        s.schedule(Q),
        Next::Run {
            dom: d(2),
            until: 2 * Q
        }
    );
    let (_, ran) = spin(&mut s, 2 * Q, 8 * Q);
    assert_eq!(ran, vec![3, 1, 2, 3, 1, 2]);
    // Alone, a domain runs on in fresh slices without a switch.
    let mut s = Scheduler::<8>::new(Q);
    s.add(d(5), DEFAULT_WEIGHT);
    assert_eq!(spin(&mut s, 0, 10 * Q).1, vec![5]);
}

#[test]
fn cpu_time_follows_the_weights() {
    let mut s = Scheduler::<8>::new(Q);
    s.add(d(1), 256);
    s.add(d(2), 512);
    s.add(d(3), 128);
    spin(&mut s, 0, 700 * Q);
    let t = |n| s.vcpu(d(n)).unwrap().cpu_time;
    // 2 : 4 : 1, to within one slice each.
    assert!(t(1).abs_diff(200 * Q) <= 2 * Q, "{}", t(1));
    assert!(t(2).abs_diff(400 * Q) <= 2 * Q, "{}", t(2));
    assert!(t(3).abs_diff(100 * Q) <= 2 * Q, "{}", t(3));
    assert_eq!(s.slice(1), Q / 16, "the shortest slice");
}

#[test]
fn block_wake_deadlines_and_idle() {
    let mut s = Scheduler::<8>::new(Q);
    s.add(d(1), DEFAULT_WEIGHT);
    s.add(d(2), DEFAULT_WEIGHT);
    assert_eq!(
        s.schedule(0),
        Next::Run {
            dom: d(1),
            until: Q
        }
    );
    s.block(None, 10);
    // 2 runs alone, and nobody's deadline bounds it: no slice to end.
    assert_eq!(
        s.schedule(10),
        Next::Run {
            dom: d(2),
            until: UNBOUNDED
        }
    );
    s.block(Some(500), 20);
    // Both blocked: idle until 2's deadline.
    assert_eq!(s.schedule(20), Next::Idle { until: Some(500) });
    assert_eq!(s.vcpu(d(1)).unwrap().state, State::Blocked);
    // 1 is woken by an event; 2's deadline bounds 1's slice.
    s.wake(d(1));
    assert_eq!(
        s.schedule(30),
        Next::Run {
            dom: d(1),
            until: 500
        }
    );
    // The deadline passes: 2 is runnable and 1 keeps its slice.
    assert_eq!(
        s.schedule(500),
        Next::Run {
            dom: d(1),
            until: 30 + Q
        }
    );
    assert_eq!(s.vcpu(d(2)).unwrap().state, State::Runnable);
    assert_eq!(
        s.schedule(30 + Q),
        Next::Run {
            dom: d(2),
            until: 30 + 2 * Q
        }
    );
    // Waking a vCPU that is not blocked does nothing.
    s.wake(d(1));
    assert_eq!(s.queue().collect::<Vec<_>>(), vec![d(1)]);
    // A woken vCPU forgets its deadline.
    s.block(Some(10 * Q), 40 + Q);
    s.wake(d(2));
    assert_eq!(
        s.schedule(50 + Q),
        Next::Run {
            dom: d(1),
            until: 50 + 2 * Q
        }
    );
    s.block(None, 60 + Q);
    s.schedule(60 + Q);
    assert_eq!(s.current(), Some(d(2)));
    s.block(None, 70 + Q);
    assert_eq!(s.schedule(70 + Q), Next::Idle { until: None });
}

#[test]
fn yield_gives_the_rest_of_the_slice_away() {
    let mut s = Scheduler::<8>::new(Q);
    s.add(d(1), DEFAULT_WEIGHT);
    assert_eq!(
        s.schedule(0),
        Next::Run {
            dom: d(1),
            until: UNBOUNDED
        }
    );
    // Alone: it continues at once, still without a slice.
    s.yield_now(5);
    assert_eq!(
        s.schedule(5),
        Next::Run {
            dom: d(1),
            until: UNBOUNDED
        }
    );
    s.add(d(2), DEFAULT_WEIGHT);
    s.yield_now(6);
    assert_eq!(
        s.schedule(6),
        Next::Run {
            dom: d(2),
            until: 6 + Q
        }
    );
    assert_eq!(s.queue().collect::<Vec<_>>(), vec![d(1)]);
}

#[test]
fn pauses_nest_and_hold_whatever_the_vcpu_does() {
    let mut s = Scheduler::<8>::new(Q);
    s.add(d(1), DEFAULT_WEIGHT);
    s.add(d(2), DEFAULT_WEIGHT);
    assert_eq!(
        s.schedule(0),
        Next::Run {
            dom: d(1),
            until: Q
        }
    );
    s.pause(d(1), 10);
    s.pause(d(1), 10);
    assert_eq!(
        s.schedule(10),
        Next::Run {
            dom: d(2),
            until: UNBOUNDED
        }
    );
    s.unpause(d(1));
    assert_eq!(spin(&mut s, 10, 10 * Q).1, vec![2]);
    s.unpause(d(1));
    assert_eq!(s.queue().collect::<Vec<_>>(), vec![d(1)]);
    // A blocked vCPU paused and woken stays off the queue until unpaused.
    let mut s = Scheduler::<8>::new(Q);
    s.add(d(3), DEFAULT_WEIGHT);
    s.schedule(0);
    s.block(None, 1);
    s.pause(d(3), 1);
    s.wake(d(3));
    assert_eq!(s.schedule(2), Next::Idle { until: None });
    s.unpause(d(3));
    assert_eq!(
        s.schedule(3),
        Next::Run {
            dom: d(3),
            until: UNBOUNDED
        }
    );
    // A removed domain is gone from everything.
    s.remove(d(3));
    assert_eq!(s.schedule(4), Next::Idle { until: None });
    assert_eq!(s.vcpu(d(3)).unwrap().state, State::Offline);
}

#[test]
fn a_vcpu_alone_has_no_slice_until_another_wakes() {
    let mut s = Scheduler::<8>::new(Q);
    s.add(d(1), DEFAULT_WEIGHT);
    s.add(d(2), DEFAULT_WEIGHT);
    s.schedule(0);
    s.block(None, 0);
    // 2 runs alone from 10: no slice, nothing to re-arm.
    assert_eq!(
        s.schedule(10),
        Next::Run {
            dom: d(2),
            until: UNBOUNDED
        }
    );
    assert_eq!(s.rearm(20), None);
    // 2 wakes 1 at Q/2 (an event): 2's slice counts from when it was picked.
    s.wake(d(1));
    assert_eq!(s.rearm(Q / 2), Some(10 + Q));
    assert_eq!(s.rearm(Q / 2), None, "armed once");
    // 2 blocks; 1 runs alone.
    s.block(None, 3 * Q / 4);
    assert_eq!(
        s.schedule(3 * Q / 4),
        Next::Run {
            dom: d(1),
            until: UNBOUNDED
        }
    );
    // 1 has run alone for longer than a slice when it wakes 2: its run ends
    // now, and 2 runs, with 1 queued behind it.
    s.wake(d(2));
    assert_eq!(s.rearm(5 * Q), Some(5 * Q));
    assert_eq!(
        s.schedule(5 * Q),
        Next::Run {
            dom: d(2),
            until: 6 * Q
        }
    );
    // A deadline bounds the re-armed slice as any other.
    let mut s = Scheduler::<8>::new(Q);
    s.add(d(1), DEFAULT_WEIGHT);
    s.add(d(2), DEFAULT_WEIGHT);
    s.add(d(3), DEFAULT_WEIGHT);
    s.schedule(0);
    s.block(Some(Q / 4), 0);
    s.schedule(0);
    s.block(None, 0);
    assert_eq!(
        s.schedule(0),
        Next::Run {
            dom: d(3),
            until: Q / 4
        }
    );
    s.wake(d(2));
    assert_eq!(s.rearm(1), Some(Q / 4));
}

/// The steps of one preemption (schedule at the end of a slice) with `n`
/// spinning domains and `n` blocked ones with deadlines far away.
fn switch_steps(n: u16) -> u64 {
    let mut s = Scheduler::<70>::new(Q);
    for i in 0..n {
        s.add(d(i), DEFAULT_WEIGHT);
    }
    for i in 0..n {
        s.add(d(35 + i), DEFAULT_WEIGHT);
    }
    // Let the second half block with far deadlines.
    let mut now = 0;
    loop {
        match s.schedule(now) {
            Next::Run { dom, .. } if dom.0 >= 35 => s.block(Some(1 << 60), now),
            Next::Run { dom, until } => {
                if s.queue().all(|q| q.0 < 35) {
                    now = until;
                    break;
                }
                let _ = dom;
                now = until;
            }
            Next::Idle { .. } => unreachable!(),
        }
    }
    let before = s.steps();
    let next = s.schedule(now);
    assert!(matches!(next, Next::Run { .. }));
    s.steps() - before
}

#[test]
fn a_domain_switch_costs_the_same_with_2_8_and_32_domains() {
    let costs: Vec<u64> = [2u16, 8, 32].iter().map(|&n| switch_steps(n)).collect();
    assert!(costs[0] > 0);
    assert_eq!(
        costs,
        vec![costs[0]; 3],
        "steps per switch grow with the number of domains"
    );
}

#[test]
fn deadlines_cost_logarithmic_steps() {
    let mut worst = Vec::new();
    for n in [2u16, 8, 32, 64] {
        let mut s = Scheduler::<64>::new(Q);
        for i in 0..n {
            s.add(d(i), DEFAULT_WEIGHT);
        }
        let mut max = 0;
        for i in 0..n {
            s.schedule(u64::from(i));
            let before = s.steps();
            // Descending deadlines: every insert climbs to the root.
            s.block(Some(1_000_000 - u64::from(i)), u64::from(i));
            max = max.max(s.steps() - before);
        }
        worst.push(max);
    }
    // log2(64) = 6 levels, plus the constant part.
    assert!(worst[3] <= worst[0] + 7, "{worst:?}");
}

#[derive(Clone, Debug)]
enum Op {
    Add(u16, u16),
    Remove(u16),
    Block(Option<u64>),
    Wake(u16),
    Yield,
    Pause(u16),
    Unpause(u16),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u16..6, 1u16..1024).prop_map(|(d, w)| Op::Add(d, w)),
        (0u16..6).prop_map(Op::Remove),
        proptest::option::of(0u64..4 * Q).prop_map(Op::Block),
        (0u16..6).prop_map(Op::Wake),
        Just(Op::Yield),
        (0u16..6).prop_map(Op::Pause),
        (0u16..6).prop_map(Op::Unpause),
        (0u64..3 * Q).prop_map(Op::Advance),
    ]
}

proptest! {
    /// Whatever happens: the queue holds exactly the runnable, unpaused vCPUs
    /// that are not on the CPU, each once; the CPU runs a running vCPU or
    /// none; a due deadline never stays unserved; and a runnable vCPU is
    /// picked within the slices of those ahead of it.
    #[test]
    fn the_queue_is_exactly_the_runnable_vcpus(ops in proptest::collection::vec(op(), 1..120)) {
        let mut s = Scheduler::<6>::new(Q);
        let mut now = 0u64;
        let mut deadline: [Option<u64>; 6] = [None; 6];
        for o in ops {
            match o {
                Op::Add(n, w) => { s.add(d(n), w); }
                Op::Remove(n) => { s.remove(d(n)); deadline[n as usize] = None; }
                Op::Block(dl) => {
                    if let Some(c) = s.current() {
                        let at = dl.map(|x| now + x);
                        s.block(at, now);
                        deadline[c.0 as usize] = at;
                    }
                }
                Op::Wake(n) => {
                    s.wake(d(n));
                    deadline[n as usize] = None;
                    // What the run loop does after a wake from a hypercall.
                    if let Some(until) = s.rearm(now) {
                        prop_assert!(until >= now);
                        prop_assert!(s.current().is_some() && s.queue().next().is_some());
                    }
                }
                Op::Yield => s.yield_now(now),
                Op::Pause(n) => s.pause(d(n), now),
                Op::Unpause(n) => {
                    s.unpause(d(n));
                    if let Some(until) = s.rearm(now) {
                        prop_assert!(until >= now);
                    }
                }
                Op::Advance(t) => now += t,
            }
            let next = s.schedule(now);
            for (i, dl) in deadline.iter_mut().enumerate() {
                if dl.is_some_and(|at| at <= now) {
                    prop_assert_ne!(s.vcpu(d(i as u16)).unwrap().state, State::Blocked);
                    *dl = None;
                }
            }
            let queued: Vec<DomainId> = s.queue().collect();
            for i in 0..6u16 {
                let v = *s.vcpu(d(i)).unwrap();
                let n = queued.iter().filter(|q| q.0 == i).count();
                let should = v.state == State::Runnable && v.pauses == 0;
                prop_assert_eq!(n, usize::from(should), "vcpu {} {:?}", i, v);
                if s.current() == Some(d(i)) {
                    prop_assert_eq!(v.state, State::Running);
                    prop_assert_eq!(v.pauses, 0);
                }
            }
            match next {
                Next::Run { dom, until } => {
                    prop_assert_eq!(s.current(), Some(dom));
                    prop_assert!(until > now);
                }
                Next::Idle { until } => {
                    prop_assert!(queued.is_empty() && s.current().is_none());
                    prop_assert!(until.is_none_or(|u| u > now));
                }
            }
        }
        // No starvation: from here, with everyone spinning, every queued vCPU
        // runs within the sum of the slices ahead of it plus the current one's.
        let queued: Vec<DomainId> = s.queue().collect();
        let mut bound = now;
        if let Some(c) = s.current() {
            bound += s.slice(s.vcpu(c).unwrap().weight);
        }
        let mut expected = Vec::new();
        for q in &queued {
            expected.push((*q, bound));
            bound += s.slice(s.vcpu(*q).unwrap().weight);
        }
        let mut t = now;
        let mut seen: Vec<DomainId> = Vec::new();
        while t < bound && seen.len() < queued.len() {
            match s.schedule(t) {
                Next::Run { dom, until } => {
                    if queued.contains(&dom) && !seen.contains(&dom) {
                        let limit = expected.iter().find(|e| e.0 == dom).unwrap().1;
                        prop_assert!(t <= limit, "{:?} waited until {} > {}", dom, t, limit);
                        seen.push(dom);
                    }
                    t = until;
                }
                Next::Idle { until } => t = until.unwrap_or(bound),
            }
        }
        prop_assert_eq!(seen.len(), queued.len());
    }
}

/// The scheduler with interdomain channels: each side notifies the other and
/// blocks, and the send wakes the blocked peer, which runs next: 50 turns of
/// the front end with the back end's 49 answers between them are exactly 99
/// switches, and the CPU is never idle meanwhile.
#[test]
fn an_interdomain_send_wakes_the_blocked_peer() {
    use crate::event::interdomain::{self, Endpoint, Handled, PortWorld, Sent};
    use keel_abi::errno::Errno;
    use keel_abi::event::DOMID_SELF;

    struct Ports(Vec<Vec<Endpoint>>, Vec<Vec<bool>>);
    impl PortWorld for Ports {
        fn alive(&self, d: DomainId) -> bool {
            (d.0 as usize) < self.0.len()
        }
        fn endpoint(&self, d: DomainId, p: u32) -> Option<Endpoint> {
            self.0.get(d.0 as usize)?.get(p as usize).copied()
        }
        fn set_endpoint(&mut self, d: DomainId, p: u32, e: Endpoint) {
            self.0[d.0 as usize][p as usize] = e;
        }
        fn free_port(&self, d: DomainId) -> Result<u32, Errno> {
            self.0[d.0 as usize]
                .iter()
                .position(|e| *e == Endpoint::Free)
                .map(|p| p as u32)
                .ok_or(Errno::ENOSPC)
        }
        fn set_pending(&mut self, d: DomainId, p: u32) -> bool {
            !core::mem::replace(&mut self.1[d.0 as usize][p as usize], true)
        }
        fn clear_pending(&mut self, d: DomainId, p: u32) {
            self.1[d.0 as usize][p as usize] = false;
        }
        fn nr_ports(&self) -> u32 {
            4
        }
    }
    let mut ports = Ports(vec![vec![Endpoint::Free; 4]; 2], vec![vec![false; 4]; 2]);
    let (front, back) = (d(0), d(1));
    let pb = interdomain::alloc_unbound(&mut ports, back, DOMID_SELF, front.0).unwrap();
    let pf = interdomain::bind_interdomain(&mut ports, front, back.0, pb).unwrap();
    ports.clear_pending(front, pf);

    let mut s = Scheduler::<4>::new(Q);
    s.add(front, DEFAULT_WEIGHT);
    s.add(back, DEFAULT_WEIGHT);
    let mut now = 0;
    let mut switches = 0;
    let mut last = None;
    let mut trips = 0;
    while trips < 50 {
        let Next::Run { dom, .. } = s.schedule(now) else {
            panic!("idle with a round trip in flight")
        };
        if last != Some(dom) {
            switches += 1;
            last = Some(dom);
        }
        now += 1000;
        // Each side: consume its pending port, notify the peer, block.
        let (me, port) = if dom == front {
            (front, pf)
        } else {
            (back, pb)
        };
        if ports.1[me.0 as usize][port as usize] || (dom == front && trips == 0 && switches == 1) {
            ports.clear_pending(me, port);
            if dom == front {
                trips += 1;
            }
            match interdomain::send(&mut ports, me, port) {
                Ok(Handled::Done(Sent::To {
                    dom: peer,
                    upcall: true,
                    ..
                })) => s.wake(peer),
                other => panic!("{other:?}"),
            }
        }
        s.block(None, now);
    }
    assert_eq!(switches, 99);
}
