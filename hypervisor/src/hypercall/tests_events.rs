//! The issue-6 rows on a built domain in fake memory: event channels through the
//! shared_info page, block/poll outcomes, timers, the callback vector.

extern crate std;

#[allow(unused_imports)]
use super::tests::imports::*;
use super::tests::{World, DATA};
use super::*;
use crate::event::EventBits;
use keel_abi::event::DOMID_SELF;
use keel_abi::event::*;
use keel_abi::sched::SchedPoll;
use keel_abi::time::*;

fn ret(e: Errno) -> Outcome {
    Outcome::Return(e.as_return())
}

impl World {
    fn evtchn<T: Pod>(&mut self, cmd: u64, s: T) -> (Outcome, T) {
        let mut b = [0u8; 32];
        s.encode(&mut b);
        self.poke(DATA, &b[..T::SIZE]);
        let r = self.call(Hypercall::EVENT_CHANNEL_OP, [cmd, DATA, 0, 0, 0]);
        let back: [u8; 32] = self.peek(DATA);
        (r, T::decode(&back[..T::SIZE]))
    }
    fn page(&mut self) -> crate::event::Page<'_, crate::mem::fake::FakeMem> {
        self.ev.page(&self.dom, &mut self.mem).unwrap()
    }
}

#[test]
fn shared_info_is_published() {
    let mut w = World::new();
    let mfn = w.ev.shared.unwrap();
    // start_info.shared_info holds its machine address; it is the last frame.
    let si = w.dom.mfn_of(&w.mem, w.dom.layout().start_info).unwrap();
    let addr = w
        .mem
        .read_u64(crate::addr::MachineAddr::new(si.addr().get() + 40));
    assert_eq!(addr, mfn.addr().get());
    let last = crate::addr::Pfn::new(w.dom.nr_pages() - 1);
    assert_eq!(w.dom.mfn_of(&w.mem, last), Some(mfn));
    let p = w.page();
    let t = p.time_info();
    assert_eq!(t.version % 2, 0);
    assert!(t.version > 0);
    assert_eq!(t.flags, XEN_PVCLOCK_TSC_STABLE_BIT);
    assert!(p.upcall_mask(), "upcalls start masked");
    // Wall clock: 2000-01-01.
    let mut b = [0u8; 4];
    w.mem.read(
        crate::addr::MachineAddr::new(mfn.addr().get() + 3076),
        &mut b,
    );
    assert_eq!(u32::from_le_bytes(b), 946_684_800);
}

#[test]
fn event_channel_rows() {
    let mut w = World::new();
    let (r, s) = w.evtchn(EVTCHNOP_BIND_IPI, EvtchnBindIpi { vcpu: 0, port: 0 });
    assert_eq!(r, Outcome::Return(0));
    let ipi = s.port;
    assert_eq!(ipi, 1);
    let (r, _) = w.evtchn(EVTCHNOP_SEND, EvtchnPort { port: ipi });
    assert_eq!(r, Outcome::Return(0));
    assert!(w.page().is_pending(ipi) && w.page().upcall_pending());
    let (r, s) = w.evtchn(
        EVTCHNOP_STATUS,
        EvtchnStatus {
            dom: DOMID_SELF,
            port: ipi,
            ..Default::default()
        },
    );
    assert_eq!((r, s.status), (Outcome::Return(0), EVTCHNSTAT_IPI));
    let (r, _) = w.evtchn(
        EVTCHNOP_STATUS,
        EvtchnStatus {
            dom: 5,
            port: ipi,
            ..Default::default()
        },
    );
    assert_eq!(r, ret(Errno::ESRCH));
    let (r, s) = w.evtchn(
        EVTCHNOP_BIND_VIRQ,
        EvtchnBindVirq {
            virq: VIRQ_TIMER,
            vcpu: 0,
            port: 0,
        },
    );
    assert_eq!((r, s.port), (Outcome::Return(0), 2));
    let (r, _) = w.evtchn(
        EVTCHNOP_BIND_VIRQ,
        EvtchnBindVirq {
            virq: VIRQ_TIMER,
            vcpu: 0,
            port: 0,
        },
    );
    assert_eq!(r, ret(Errno::EEXIST));
    let (r, s) = w.evtchn(
        EVTCHNOP_ALLOC_UNBOUND,
        EvtchnAllocUnbound {
            dom: DOMID_SELF,
            remote_dom: DOMID_SELF,
            port: 0,
        },
    );
    assert_eq!((r, s.port), (Outcome::Return(0), 3));
    let (r, _) = w.evtchn(EVTCHNOP_BIND_VCPU, EvtchnBindVcpu { port: 3, vcpu: 0 });
    assert_eq!(r, Outcome::Return(0));
    let (r, _) = w.evtchn(EVTCHNOP_CLOSE, EvtchnPort { port: 3 });
    assert_eq!(r, Outcome::Return(0));
    let (r, _) = w.evtchn(EVTCHNOP_CLOSE, EvtchnPort { port: 3 });
    assert_eq!(r, ret(Errno::EINVAL));
    let (r, _) = w.evtchn(EVTCHNOP_UNMASK, EvtchnPort { port: 99_999 });
    assert_eq!(r, ret(Errno::EINVAL));
    // Bad pointer.
    assert_eq!(
        w.call(Hypercall::EVENT_CHANNEL_OP, [EVTCHNOP_SEND, 0, 0, 0, 0]),
        ret(Errno::EFAULT)
    );
    // Unknown sub-command.
    assert_eq!(
        w.call(Hypercall::EVENT_CHANNEL_OP, [0, DATA, 0, 0, 0]),
        ret(Errno::ENOSYS)
    );
}

#[test]
fn block_returns_at_once_when_pending() {
    let mut w = World::new();
    let (_, s) = w.evtchn(EVTCHNOP_BIND_IPI, EvtchnBindIpi::default());
    w.evtchn(EVTCHNOP_SEND, EvtchnPort { port: s.port });
    assert_eq!(
        w.call(
            Hypercall::SCHED_OP,
            [keel_abi::sched::SCHEDOP_BLOCK, 0, 0, 0, 0]
        ),
        Outcome::Return(0)
    );
    assert!(!w.page().upcall_mask(), "block enables events");
    assert_eq!(w.ev.blocked, None);
}

#[test]
fn poll_rows() {
    let mut w = World::new();
    let (_, s) = w.evtchn(EVTCHNOP_BIND_IPI, EvtchnBindIpi::default());
    let port = s.port;
    // Ports array at DATA + 64, sched_poll at DATA + 128.
    w.poke(DATA + 64, &port.to_le_bytes());
    let sp = SchedPoll {
        ports: DATA + 64,
        nr_ports: 1,
        timeout: 0,
    };
    w.poke(DATA + 128, &sp.encode());
    let poll = |w: &mut World| {
        w.call(
            Hypercall::SCHED_OP,
            [keel_abi::sched::SCHEDOP_POLL, DATA + 128, 0, 0, 0],
        )
    };
    assert_eq!(poll(&mut w), Outcome::Block);
    assert!(matches!(w.ev.blocked, Some(crate::event::Blocked::Poll(_))));
    w.ev.blocked = None;
    w.evtchn(EVTCHNOP_SEND, EvtchnPort { port });
    assert_eq!(poll(&mut w), Outcome::Return(0));
    // Too many ports, a bad port, a bad pointer.
    w.poke(
        DATA + 128,
        &SchedPoll {
            nr_ports: 129,
            ..sp
        }
        .encode(),
    );
    assert_eq!(poll(&mut w), ret(Errno::EINVAL));
    w.poke(DATA + 64, &5000u32.to_le_bytes());
    w.poke(DATA + 128, &sp.encode());
    assert_eq!(poll(&mut w), ret(Errno::EINVAL));
    w.poke(DATA + 128, &SchedPoll { ports: 0, ..sp }.encode());
    assert_eq!(poll(&mut w), ret(Errno::EFAULT));
    // A timeout already past returns at once.
    w.poke(DATA + 64, &port.to_le_bytes());
    w.page().clear_pending(port);
    w.poke(DATA + 128, &SchedPoll { timeout: 1, ..sp }.encode());
    w.tsc = 1_000_000;
    assert_eq!(poll(&mut w), Outcome::Return(0));
}

#[test]
fn timer_rows() {
    let mut w = World::new();
    assert_eq!(
        w.call(Hypercall::SET_TIMER_OP, [5_000, 0, 0, 0, 0]),
        Outcome::Return(0)
    );
    assert_eq!(w.ev.timers.oneshot, Some(5_000));
    assert_eq!(
        w.call(Hypercall::SET_TIMER_OP, [0, 0, 0, 0, 0]),
        Outcome::Return(0)
    );
    assert_eq!(w.ev.timers.oneshot, None);
    // vcpu_op: periodic >= 1 ms.
    w.poke(
        DATA,
        &VcpuSetPeriodicTimer { period_ns: 999_999 }
            .period_ns
            .to_le_bytes(),
    );
    assert_eq!(
        w.call(
            Hypercall::VCPU_OP,
            [VCPUOP_SET_PERIODIC_TIMER, 0, DATA, 0, 0]
        ),
        ret(Errno::EINVAL)
    );
    w.poke(DATA, &1_000_000u64.to_le_bytes());
    assert_eq!(
        w.call(
            Hypercall::VCPU_OP,
            [VCPUOP_SET_PERIODIC_TIMER, 1, DATA, 0, 0]
        ),
        ret(Errno::ENOENT)
    );
    assert_eq!(
        w.call(
            Hypercall::VCPU_OP,
            [VCPUOP_SET_PERIODIC_TIMER, 0, DATA, 0, 0]
        ),
        Outcome::Return(0)
    );
    assert_eq!(w.ev.timers.periodic, Some((1_000_000, 1_000_000)));
    assert_eq!(
        w.call(Hypercall::VCPU_OP, [VCPUOP_STOP_PERIODIC_TIMER, 0, 0, 0, 0]),
        Outcome::Return(0)
    );
    assert_eq!(w.ev.timers.periodic, None);
    // Xen's upper bound, STIME_DELTA_MAX = 2^62 - 1.
    for (period, want) in [
        ((1u64 << 62) - 1, Outcome::Return(0)),
        (1 << 62, ret(Errno::EINVAL)),
        (u64::MAX, ret(Errno::EINVAL)),
    ] {
        w.poke(DATA, &period.to_le_bytes());
        assert_eq!(
            w.call(
                Hypercall::VCPU_OP,
                [VCPUOP_SET_PERIODIC_TIMER, 0, DATA, 0, 0]
            ),
            want,
            "period {period:#x}"
        );
    }
    w.call(Hypercall::VCPU_OP, [VCPUOP_STOP_PERIODIC_TIMER, 0, 0, 0, 0]);
    // set_timer_op far in the future or negative: 100 ms from now (Xen).
    for t in [1u64 << 63, u64::MAX, 5_000 + (1 << 50) + 1] {
        assert_eq!(
            w.call(Hypercall::SET_TIMER_OP, [t, 0, 0, 0, 0]),
            Outcome::Return(0)
        );
        let now = w.ev.clock.ns_at(w.tsc);
        assert_eq!(
            w.ev.timers.oneshot,
            Some(now + 100_000_000),
            "timeout {t:#x}"
        );
    }
    w.call(Hypercall::SET_TIMER_OP, [0, 0, 0, 0, 0]);
    // Single-shot with VCPU_SSHOTTMR_future in the past: -ETIME.
    w.tsc = 1000 + 2_000_000; // system time 1 s
    let mut b = [0u8; 16];
    VcpuSetSingleshotTimer {
        timeout_abs_ns: 10,
        flags: VCPU_SSHOTTMR_FUTURE,
    }
    .encode(&mut b);
    w.poke(DATA, &b);
    assert_eq!(
        w.call(
            Hypercall::VCPU_OP,
            [VCPUOP_SET_SINGLESHOT_TIMER, 0, DATA, 0, 0]
        ),
        ret(events::ETIME)
    );
    VcpuSetSingleshotTimer {
        timeout_abs_ns: 10,
        flags: 0,
    }
    .encode(&mut b);
    w.poke(DATA, &b);
    assert_eq!(
        w.call(
            Hypercall::VCPU_OP,
            [VCPUOP_SET_SINGLESHOT_TIMER, 0, DATA, 0, 0]
        ),
        Outcome::Return(0)
    );
    // Past deadline: fires on the next expiry check, raising VIRQ_TIMER.
    let (_, s) = w.evtchn(
        EVTCHNOP_BIND_VIRQ,
        EvtchnBindVirq {
            virq: VIRQ_TIMER,
            vcpu: 0,
            port: 0,
        },
    );
    let (tsc, dom) = (w.tsc, &w.dom);
    w.ev.expire_timers(dom, &mut w.mem, tsc);
    assert!(w.page().is_pending(s.port));
    assert_eq!(w.ev.timers.oneshot, None);
    assert_eq!(
        w.call(
            Hypercall::VCPU_OP,
            [VCPUOP_STOP_SINGLESHOT_TIMER, 0, 0, 0, 0]
        ),
        Outcome::Return(0)
    );
}

#[test]
fn callback_vector_param() {
    let mut w = World::new();
    let set = |w: &mut World, domid: u16, index: u32, value: u64| {
        let mut b = [0u8; 16];
        XenHvmParam {
            domid,
            index,
            value,
        }
        .encode(&mut b);
        w.poke(DATA, &b);
        w.call(Hypercall::HVM_OP, [HVMOP_SET_PARAM, DATA, 0, 0, 0])
    };
    assert_eq!(
        set(
            &mut w,
            DOMID_SELF,
            HVM_PARAM_CALLBACK_IRQ,
            callback_vector(0xf3)
        ),
        Outcome::Return(0)
    );
    assert_eq!(w.ev.callback_vector, Some(0xf3));
    // The lowest vector accepted is the ABI's HVM_CALLBACK_VECTOR_MIN.
    assert_eq!(
        set(
            &mut w,
            DOMID_SELF,
            HVM_PARAM_CALLBACK_IRQ,
            callback_vector(HVM_CALLBACK_VECTOR_MIN - 1)
        ),
        ret(Errno::EINVAL)
    );
    assert_eq!(
        set(
            &mut w,
            DOMID_SELF,
            HVM_PARAM_CALLBACK_IRQ,
            callback_vector(HVM_CALLBACK_VECTOR_MIN)
        ),
        Outcome::Return(0)
    );
    assert_eq!(w.ev.callback_vector, Some(HVM_CALLBACK_VECTOR_MIN));
    assert_eq!(
        set(&mut w, DOMID_SELF, HVM_PARAM_CALLBACK_IRQ, 1 << 56 | 5),
        ret(Errno::EINVAL)
    );
    assert_eq!(
        set(&mut w, 3, HVM_PARAM_CALLBACK_IRQ, callback_vector(0xf3)),
        ret(Errno::ESRCH)
    );
    assert_eq!(set(&mut w, DOMID_SELF, 1, 0), ret(Errno::EINVAL));
    assert_eq!(
        set(&mut w, 1, HVM_PARAM_CALLBACK_IRQ, 0),
        Outcome::Return(0)
    );
    assert_eq!(w.ev.callback_vector, None);
    assert_eq!(
        w.call(Hypercall::HVM_OP, [HVMOP_GET_PARAM, DATA, 0, 0, 0]),
        ret(Errno::ENOSYS)
    );
}

/// Xen's `do_set_timer_op` rule, cell by cell.
#[test]
fn set_timer_op_deadline_follows_xen() {
    use super::events::set_timer_op_deadline as d;
    let now = 1_000_000_000u64;
    assert_eq!(d(0, now), None, "0 stops");
    assert_eq!(d(1, now), Some(1), "the past fires at once");
    assert_eq!(d(now, now), Some(now));
    assert_eq!(d(now + 1_000, now), Some(now + 1_000));
    // Exactly 2^50 - 1 ahead is kept; 2^50 ahead is not.
    assert_eq!(d(now + (1 << 50) - 1, now), Some(now + (1 << 50) - 1));
    assert_eq!(d(now + (1 << 50), now), Some(now + 100_000_000));
    // Negative as a signed time.
    assert_eq!(d(1 << 63, now), Some(now + 100_000_000));
    assert_eq!(d(u64::MAX, now), Some(now + 100_000_000));
}

/// The interdomain rows answer an image that knows only 1.0 as 1.0 did, and
/// serve an image that knows 1.1: here a loopback channel of one domain (the
/// cross-domain cases are `crate::peers`' tests and the guest test
/// `evtchn_interdomain`).
#[test]
fn interdomain_rows_are_served_only_to_a_1_1_image() {
    use crate::domain::elf::testimg::typical_declaring;
    use crate::domain::DomainId;
    use keel_abi::version::AbiVersion;

    let mut old = World::new();
    assert!(!old.dom.serves(AbiVersion::V1_1));
    let (r, _) = old.evtchn(
        EVTCHNOP_BIND_INTERDOMAIN,
        EvtchnBindInterdomain {
            remote_dom: DOMID_SELF,
            remote_port: 1,
            local_port: 0,
        },
    );
    assert_eq!(r, ret(Errno::ENOSYS));
    let (r, _) = old.evtchn(
        EVTCHNOP_ALLOC_UNBOUND,
        EvtchnAllocUnbound {
            dom: DOMID_SELF,
            remote_dom: 5,
            port: 0,
        },
    );
    assert_eq!(r, ret(Errno::ESRCH), "1.0: only the caller as remote_dom");

    let mut w = World::with_image_id(
        typical_declaring(AbiVersion::V1_1, Some(AbiVersion::V1_0)),
        DomainId(9),
    );
    assert!(w.dom.serves(AbiVersion::V1_1));
    // An offer to a domain that does not exist yet is allowed (Xen).
    let (r, s) = w.evtchn(
        EVTCHNOP_ALLOC_UNBOUND,
        EvtchnAllocUnbound {
            dom: DOMID_SELF,
            remote_dom: 5,
            port: 0,
        },
    );
    assert_eq!((r, s.port), (Outcome::Return(0), 1));
    // Not ours to bind: it waits for domain 5.
    let bind = |w: &mut World, port| {
        w.evtchn(
            EVTCHNOP_BIND_INTERDOMAIN,
            EvtchnBindInterdomain {
                remote_dom: DOMID_SELF,
                remote_port: port,
                local_port: 0,
            },
        )
    };
    assert_eq!(bind(&mut w, 1).0, ret(Errno::EINVAL));
    // Another live domain's ports, or an unknown domain's.
    let (r, _) = w.evtchn(
        EVTCHNOP_BIND_INTERDOMAIN,
        EvtchnBindInterdomain {
            remote_dom: 5,
            remote_port: 1,
            local_port: 0,
        },
    );
    assert_eq!(r, ret(Errno::ESRCH));
    // A loopback: an offer to ourselves, bound by ourselves.
    let (_, s) = w.evtchn(
        EVTCHNOP_ALLOC_UNBOUND,
        EvtchnAllocUnbound {
            dom: DOMID_SELF,
            remote_dom: DOMID_SELF,
            port: 0,
        },
    );
    assert_eq!(s.port, 2);
    let (r, b) = bind(&mut w, 2);
    assert_eq!((r, b.local_port), (Outcome::Return(0), 3));
    assert!(w.page().is_pending(3), "a port that binds starts pending");
    w.page().clear_pending(3);
    let status = |w: &mut World, port| {
        w.evtchn(
            EVTCHNOP_STATUS,
            EvtchnStatus {
                dom: DOMID_SELF,
                port,
                ..Default::default()
            },
        )
        .1
    };
    let s = status(&mut w, 2);
    assert_eq!((s.status, s.u), (EVTCHNSTAT_INTERDOMAIN, [9, 3]));
    let (r, _) = w.evtchn(EVTCHNOP_SEND, EvtchnPort { port: 2 });
    assert_eq!(r, Outcome::Return(0));
    assert!(w.page().is_pending(3), "a send reaches the other end");
    let (r, _) = w.evtchn(EVTCHNOP_CLOSE, EvtchnPort { port: 3 });
    assert_eq!(r, Outcome::Return(0));
    let s = status(&mut w, 2);
    assert_eq!((s.status, s.u), (EVTCHNSTAT_UNBOUND, [9, 0]));
    // The local kinds still follow their own rules.
    let (r, _) = w.evtchn(EVTCHNOP_SEND, EvtchnPort { port: 3 });
    assert_eq!(r, ret(Errno::EINVAL), "a closed port");
}
