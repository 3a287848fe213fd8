//! The event and timer hypercalls: `event_channel_op`, `hvm_op(HVMOP_set_param)`,
//! `sched_op` block and poll, `set_timer_op`, `vcpu_op` timers. The state they
//! change is [`crate::event::EventState`]; blocking is carried out by the VMX
//! code after the handler returns [`Outcome::Block`].

use super::{Ctx, HcResult, HypercallArgs, Outcome};
use crate::addr::GuestVirt;
use crate::event::interdomain::{self, Endpoint, Handled};
use crate::event::{need_delivery, on_page, Blocked, EventBits, Page, Poll};
use crate::mem::PhysMem;
use crate::paging::guest_mem;
use crate::peers::Ports;
use keel_abi::event::{
    EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindVcpu, EvtchnBindVirq,
    EvtchnPort, EvtchnStatus, Pod, XenHvmParam, HVM_PARAM_CALLBACK_IRQ,
    HVM_PARAM_CALLBACK_TYPE_SHIFT, HVM_PARAM_CALLBACK_TYPE_VECTOR,
};
use keel_abi::sched::{SchedPoll, SCHED_POLL_MAX_PORTS};
use keel_abi::time::{
    VcpuSetPeriodicTimer, VcpuSetSingleshotTimer, PERIODIC_TIMER_MIN_NS, VCPU_SSHOTTMR_FUTURE,
};
use keel_abi::version::AbiVersion;
use keel_abi::Errno;

/// The ABI version of interdomain event channels: `EVTCHNOP_bind_interdomain`,
/// and the interdomain answers of `alloc_unbound`, `send`, `close` and `status`.
/// A domain whose image knows only 1.0 keeps 1.0's answers (`Domain::serves`).
const INTERDOMAIN: AbiVersion = AbiVersion::V1_1;

/// Xen's `ETIME` (timer expired), returned by `VCPUOP_set_singleshot_timer`
/// with `VCPU_SSHOTTMR_future` for a past deadline.
pub const ETIME: Errno = Errno::ETIME;

/// Read a `T` from the guest at `va`, through the argument cache
/// ([`Ctx::read_arg`]).
fn read<T: Pod, M: PhysMem>(ctx: &mut Ctx<'_, M>, va: u64) -> Result<T, Errno> {
    let mut b = [0u8; 32];
    let buf = b.get_mut(..T::SIZE).ok_or(Errno::EFAULT)?;
    ctx.read_arg(GuestVirt::new(va), buf)?;
    Ok(T::decode(buf))
}

/// Write a `T` back to the guest at `va`.
fn write<T: Pod, M: PhysMem>(ctx: &mut Ctx<'_, M>, va: u64, v: &T) -> Result<(), Errno> {
    let mut b = [0u8; 32];
    let buf = b.get_mut(..T::SIZE).ok_or(Errno::EFAULT)?;
    v.encode(buf);
    ctx.copy_to(GuestVirt::new(va), buf)
}

/// The shared_info page (events need it: without one, `-ENOSYS`).
fn page<'m, M: PhysMem>(
    ev: &crate::event::EventState,
    dom: &'m crate::domain::Domain,
    mem: &'m mut M,
) -> Result<Page<'m, M>, Errno> {
    ev.page(dom, mem).ok_or(Errno::ENOSYS)
}

/// Run `f` with the page and the channel table; map to an outcome.
macro_rules! with_page {
    ($ctx:ident, |$c:ident, $p:ident| $body:expr) => {{
        // The closure is where the body's `?` returns to.
        #[allow(clippy::redundant_closure_call)]
        let r: Result<_, Errno> = (|| {
            crate::event::with_page!($ctx.ev, &*$ctx.dom, &mut *$ctx.mem, |$p| {
                let $c = &mut $ctx.ev.chans;
                $body
            }, else Err(Errno::ENOSYS))
        })();
        r
    }};
}

/// Run `f` with the interdomain rules' view of the caller's ports and its
/// peers' (`crate::peers::Ports`), and the caller's id.
macro_rules! with_ports {
    ($ctx:ident, |$w:ident, $me:ident| $body:expr) => {{
        // The closure is where the body's `?` returns to.
        #[allow(clippy::redundant_closure_call)]
        let r: Result<_, Errno> = (|| {
            crate::event::with_page!($ctx.ev, &*$ctx.dom, &mut *$ctx.mem, |page| {
                let $me = $ctx.dom.id;
                let $w = &mut Ports {
                    me: $me,
                    chans: &mut $ctx.ev.chans,
                    bits: &mut page,
                    peers: &mut *$ctx.peers,
                };
                $body
            }, else Err(Errno::ENOSYS))
        })();
        r
    }};
}

/// No pending bits: `status` reads ports only.
struct NoBits;

impl EventBits for NoBits {
    fn test_and_set_pending(&mut self, _: u32) -> bool {
        true
    }
    fn clear_pending(&mut self, _: u32) {}
    fn is_pending(&self, _: u32) -> bool {
        false
    }
    fn is_masked(&self, _: u32) -> bool {
        true
    }
    fn test_and_clear_mask(&mut self, _: u32) -> bool {
        false
    }
    fn test_and_set_sel(&mut self, _: u32, _: u32) -> bool {
        true
    }
    fn set_upcall_pending(&mut self, _: u32) {}
    fn upcall_pending(&self) -> bool {
        false
    }
    fn upcall_mask(&self) -> bool {
        true
    }
    fn set_upcall_mask(&mut self, _: bool) {}
}

/// A handler's `Ok(value)`: the value in RAX.
fn ret(r: Result<i64, Errno>) -> HcResult {
    r.map(Outcome::Return)
}

pub(super) fn evtchn_alloc_unbound<M: PhysMem>(
    ctx: &mut Ctx<'_, M>,
    a: &HypercallArgs,
) -> HcResult {
    let va = a.args[1];
    ret((|| {
        let mut s: EvtchnAllocUnbound = read(ctx, va)?;
        s.port = if ctx.dom.serves(INTERDOMAIN) {
            with_ports!(ctx, |w, me| interdomain::alloc_unbound(
                w,
                me,
                s.dom,
                s.remote_dom
            ))?
        } else {
            with_page!(ctx, |c, p| c.alloc_unbound(s.dom, s.remote_dom, &mut p))?
        };
        write(ctx, va, &s).map(|()| 0)
    })())
}

/// `EVTCHNOP_bind_interdomain` (ABI 1.1: `-ENOSYS` to a domain whose image
/// knows only an older version, which was promised that answer).
#[inline(never)]
pub(super) fn evtchn_bind_interdomain<M: PhysMem>(
    ctx: &mut Ctx<'_, M>,
    a: &HypercallArgs,
) -> HcResult {
    if !ctx.dom.serves(INTERDOMAIN) {
        return Err(Errno::ENOSYS);
    }
    let va = a.args[1];
    ret((|| {
        let mut s: EvtchnBindInterdomain = read(ctx, va)?;
        s.local_port = with_ports!(ctx, |w, me| interdomain::bind_interdomain(
            w,
            me,
            s.remote_dom,
            s.remote_port
        ))?;
        write(ctx, va, &s).map(|()| 0)
    })())
}

#[inline(never)]
pub(super) fn evtchn_bind_virq<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    let va = a.args[1];
    ret((|| {
        let mut s: EvtchnBindVirq = read(ctx, va)?;
        s.port = with_page!(ctx, |c, p| c.bind_virq(s.virq, s.vcpu, &mut p))?;
        write(ctx, va, &s).map(|()| 0)
    })())
}

#[inline(never)]
pub(super) fn evtchn_bind_ipi<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    let va = a.args[1];
    ret((|| {
        let mut s: EvtchnBindIpi = read(ctx, va)?;
        s.port = with_page!(ctx, |c, p| c.bind_ipi(s.vcpu, &mut p))?;
        write(ctx, va, &s).map(|()| 0)
    })())
}

#[inline(never)]
pub(super) fn evtchn_send<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    ret((|| {
        let s: EvtchnPort = read(ctx, a.args[1])?;
        // A port of this domain's own (a VIRQ, an IPI) goes straight to the
        // local path: the interdomain rules would only say so, after the
        // peers' view of the ports is built.
        let local = matches!(ctx.ev.chans.endpoint(s.port), Some(Endpoint::Local));
        if !local && ctx.dom.serves(INTERDOMAIN) {
            let r = with_ports!(ctx, |w, me| interdomain::send(w, me, s.port))?;
            if let Handled::Done(_) = r {
                return Ok(0);
            }
        }
        with_page!(ctx, |c, p| c.send(s.port, &mut p))?;
        wake_notified(ctx, s.port);
        Ok(0)
    })())
}

/// A sibling vCPU that port `p` notifies may be blocked: the scheduler wakes
/// it (it looks at its events when picked). Nothing for the caller's own,
/// nor in a domain of one vCPU (no port read).
#[inline(always)]
fn wake_notified<M: PhysMem>(ctx: &mut Ctx<'_, M>, p: u32) {
    if ctx.ev.chans.nr_vcpus() == 1 {
        return;
    }
    let v = ctx.ev.chans.notify_vcpu(p);
    if v != ctx.ev.vcpu {
        ctx.peers.wake_vcpu(ctx.dom.id, v);
    }
}

#[inline(never)]
pub(super) fn evtchn_close<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    ret((|| {
        let s: EvtchnPort = read(ctx, a.args[1])?;
        if ctx.dom.serves(INTERDOMAIN) {
            let r = with_ports!(ctx, |w, me| interdomain::close(w, me, s.port))?;
            if let Handled::Done(()) = r {
                return Ok(0);
            }
        }
        with_page!(ctx, |c, p| c.close(s.port, &mut p)).map(|()| 0)
    })())
}

#[inline(never)]
pub(super) fn evtchn_unmask<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    ret((|| {
        let s: EvtchnPort = read(ctx, a.args[1])?;
        with_page!(ctx, |c, p| c.unmask(s.port, &mut p))?;
        wake_notified(ctx, s.port);
        Ok(0)
    })())
}

#[inline(never)]
pub(super) fn evtchn_status<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    let va = a.args[1];
    ret((|| {
        let mut s: EvtchnStatus = read(ctx, va)?;
        if ctx.dom.serves(INTERDOMAIN) {
            let me = ctx.dom.id;
            let world = Ports {
                me,
                chans: &mut ctx.ev.chans,
                bits: &mut NoBits,
                peers: &mut *ctx.peers,
            };
            if let Handled::Done(st) = interdomain::status(&world, me, s.dom, s.port)? {
                s.status = st.status;
                s.vcpu = 0;
                s.u = st.u;
                return write(ctx, va, &s).map(|()| 0);
            }
        }
        if !ctx.ev.chans.is_self(s.dom) {
            return Err(Errno::ESRCH);
        }
        let st = ctx.ev.chans.status(s.port)?;
        s.status = st.status;
        s.vcpu = st.vcpu;
        s.u = [st.u, 0];
        write(ctx, va, &s).map(|()| 0)
    })())
}

#[inline(never)]
pub(super) fn evtchn_bind_vcpu<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    ret((|| {
        let s: EvtchnBindVcpu = read(ctx, a.args[1])?;
        ctx.ev.chans.bind_vcpu(s.port, s.vcpu).map(|()| 0)
    })())
}

#[inline(never)]
pub(super) fn hvm_set_param<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    ret((|| {
        let s: XenHvmParam = read(ctx, a.args[1])?;
        if !ctx.ev.chans.is_self(s.domid) {
            return Err(Errno::ESRCH);
        }
        if s.index != HVM_PARAM_CALLBACK_IRQ {
            return Err(Errno::EINVAL);
        }
        if s.value == 0 {
            ctx.ev.callback_vector = None;
            return Ok(0);
        }
        let ty = s.value >> HVM_PARAM_CALLBACK_TYPE_SHIFT;
        let vector = (s.value & 0xff) as u8;
        let rest = s.value & ((1 << HVM_PARAM_CALLBACK_TYPE_SHIFT) - 1) & !0xff;
        if ty != HVM_PARAM_CALLBACK_TYPE_VECTOR || rest != 0 || vector < 0x10 {
            return Err(Errno::EINVAL);
        }
        ctx.ev.callback_vector = Some(vector);
        Ok(0)
    })())
}

/// `SCHEDOP_block`: enable events and block, atomically (Xen's
/// `vcpu_block_enable_events`): with an event already pending, return at once.
#[inline(never)]
pub(super) fn sched_block<M: PhysMem>(ctx: &mut Ctx<'_, M>, _: &HypercallArgs) -> HcResult {
    let pending = crate::event::with_page!(ctx.ev, &*ctx.dom, &mut *ctx.mem, |p| {
        p.set_upcall_mask(false);
        Ok(need_delivery(&p))
    }, else Err(Errno::ENOSYS))?;
    if pending {
        return Ok(Outcome::Return(0));
    }
    ctx.ev.blocked = Some(Blocked::Block);
    Ok(Outcome::Block)
}

/// `evtchn_upcall_mask` now (`None` without a shared_info page): what a
/// `multicall` restores if it refuses a `SCHEDOP_block` that would block.
pub(super) fn upcall_mask<M: PhysMem>(ctx: &mut Ctx<'_, M>) -> Option<bool> {
    page(&*ctx.ev, &*ctx.dom, &mut *ctx.mem)
        .ok()
        .map(|p| on_page!(p, |p| p.upcall_mask()))
}

/// Undo a blocking call a `multicall` refuses: the vCPU does not block, and
/// `evtchn_upcall_mask` (which `SCHEDOP_block` clears before deciding to
/// block) is what it was before the call (`mask`, from [`upcall_mask`]).
pub(super) fn refuse_block<M: PhysMem>(ctx: &mut Ctx<'_, M>, mask: Option<bool>) {
    ctx.ev.blocked = None;
    if let (Some(m), Ok(p)) = (mask, page(&*ctx.ev, &*ctx.dom, &mut *ctx.mem)) {
        on_page!(p, |p| p.set_upcall_mask(m));
    }
}

/// `SCHEDOP_poll`.
#[inline(never)]
pub(super) fn sched_poll<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    let r = (|| -> Result<bool, Errno> {
        let b: [u8; SchedPoll::SIZE] =
            guest_mem::read_bytes(ctx.dom, ctx.mem, GuestVirt::new(a.args[1]))?;
        let sp = SchedPoll::decode(&b);
        if sp.nr_ports > SCHED_POLL_MAX_PORTS {
            return Err(Errno::EINVAL);
        }
        let mut poll = Poll {
            ports: [0; crate::event::state::POLL_MAX],
            n: sp.nr_ports as usize,
            timeout: (sp.timeout != 0).then_some(sp.timeout),
        };
        for i in 0..poll.n {
            let va = sp.ports.wrapping_add(4 * i as u64);
            let w: [u8; 4] = guest_mem::read_bytes(ctx.dom, ctx.mem, GuestVirt::new(va))?;
            let port = u32::from_le_bytes(w);
            if !ctx.ev.chans.valid(port) {
                return Err(Errno::EINVAL);
            }
            if let Some(s) = poll.ports.get_mut(i) {
                *s = port;
            }
        }
        let ready = crate::event::with_page!(ctx.ev, &*ctx.dom, &mut *ctx.mem, |p| {
            Ok(need_delivery(&p) || poll.ports.iter().take(poll.n).any(|&x| p.is_pending(x)))
        }, else Err(Errno::ENOSYS))?
            || poll
                .timeout
                .is_some_and(|t| ctx.ev.clock.ns_at(ctx.tsc()) >= t);
        if !ready {
            ctx.ev.blocked = Some(Blocked::Poll(poll));
        }
        Ok(!ready)
    })();
    Ok(if r? {
        Outcome::Block
    } else {
        Outcome::Return(0)
    })
}

/// Xen's horizon for `set_timer_op`: a deadline more than 2^50 ns (about 13
/// days) ahead is taken for a guest's wrapped jiffies arithmetic.
pub const SET_TIMER_OP_HORIZON_SHIFT: u32 = 50;
/// What such a deadline (or a negative one) becomes: 100 ms from now.
pub const SET_TIMER_OP_FALLBACK_NS: u64 = 100_000_000;
/// Xen's `STIME_DELTA_MAX` (2^62 - 1): the longest period `now + period`
/// cannot overflow with.
pub const PERIODIC_TIMER_MAX_NS: u64 = (1 << 62) - 1;

/// The single-shot deadline `set_timer_op(timeout)` arms at system time
/// `now`, by Xen's rule (`do_set_timer_op`): 0 stops the timer (`None`); a
/// timeout negative as a signed 64-bit time, or more than 2^50 ns in the
/// future, fires [`SET_TIMER_OP_FALLBACK_NS`] from now; anything else is
/// the deadline itself (one in the past fires at once).
pub fn set_timer_op_deadline(timeout: u64, now: u64) -> Option<u64> {
    if timeout == 0 {
        return None;
    }
    let offset = (timeout as i64).wrapping_sub(now as i64);
    if (timeout as i64) < 0 || (offset > 0 && (offset >> SET_TIMER_OP_HORIZON_SHIFT) != 0) {
        return Some(now.saturating_add(SET_TIMER_OP_FALLBACK_NS));
    }
    Some(timeout)
}

/// `set_timer_op(timeout)`: the single-shot timer, absolute ns
/// ([`set_timer_op_deadline`]).
#[inline(never)]
pub(super) fn set_timer_op<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    match a.args[0] {
        0 => ctx.ev.timers.stop_oneshot(),
        t => {
            let now = ctx.ev.clock.ns_at(ctx.tsc());
            ctx.ev.timers.oneshot = set_timer_op_deadline(t, now);
        }
    }
    Ok(Outcome::Return(0))
}

/// The vCPU a timer operation names: `-ENOENT` beyond the domain's count,
/// `-EINVAL` for another than the caller (Xen's `v != current`: a vCPU sets
/// its own timers).
fn vcpu_check<M: PhysMem>(ctx: &Ctx<'_, M>, a: &HypercallArgs) -> Result<(), Errno> {
    if a.args[1] >= u64::from(ctx.dom.vcpus.count()) {
        return Err(Errno::ENOENT);
    }
    if a.args[1] != u64::from(ctx.ev.vcpu) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

#[inline(never)]
pub(super) fn vcpu_set_periodic<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    ret((|| {
        vcpu_check(ctx, a)?;
        let s: VcpuSetPeriodicTimer = read(ctx, a.args[2])?;
        if !(PERIODIC_TIMER_MIN_NS..=PERIODIC_TIMER_MAX_NS).contains(&s.period_ns) {
            return Err(Errno::EINVAL);
        }
        let now = ctx.ev.clock.ns_at(ctx.tsc());
        ctx.ev.timers.set_periodic(now, s.period_ns);
        Ok(0)
    })())
}

#[inline(never)]
pub(super) fn vcpu_stop_periodic<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    ret(vcpu_check(ctx, a).map(|()| {
        ctx.ev.timers.stop_periodic();
        0
    }))
}

#[inline(never)]
pub(super) fn vcpu_set_singleshot<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    ret((|| {
        vcpu_check(ctx, a)?;
        let s: VcpuSetSingleshotTimer = read(ctx, a.args[2])?;
        let now = ctx.ev.clock.ns_at(ctx.tsc());
        if s.flags & VCPU_SSHOTTMR_FUTURE != 0 && s.timeout_abs_ns < now {
            return Err(ETIME);
        }
        // A deadline of 0 is in the past: it fires at once (unlike set_timer_op,
        // where 0 means "stop").
        ctx.ev.timers.oneshot = Some(s.timeout_abs_ns);
        Ok(0)
    })())
}

pub(super) fn vcpu_stop_singleshot<M: PhysMem>(
    ctx: &mut Ctx<'_, M>,
    a: &HypercallArgs,
) -> HcResult {
    ret(vcpu_check(ctx, a).map(|()| {
        ctx.ev.timers.stop_oneshot();
        0
    }))
}
