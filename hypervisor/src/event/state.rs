//! A domain's event, time and timer state, and how it meets the domain's memory.

use super::timer::Timers;
use super::{need_delivery, Channels, EventBits, SharedPage};
use crate::addr::{Mfn, Pfn};
use crate::domain::{Domain, FrameKind};
use crate::mem::PhysMem;
use crate::time::Clock;
use keel_abi::event::VIRQ_TIMER;
use keel_abi::sched::SCHED_POLL_MAX_PORTS;
use keel_abi::start_info::StartInfo;

/// Ports a `SCHEDOP_poll` may wait on.
pub const POLL_MAX: usize = SCHED_POLL_MAX_PORTS as usize;

/// A vCPU blocked in `SCHEDOP_poll`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Poll {
    /// The ports.
    pub ports: [u32; POLL_MAX],
    /// How many of `ports` are used.
    pub n: usize,
    /// Absolute system time to give up at, if any.
    pub timeout: Option<u64>,
}

/// Why the vCPU is blocked. (The poll variant is large, but there is one per
/// domain, held inline so the hypervisor needs no heap.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum Blocked {
    /// `SCHEDOP_block` or HLT: until an event needs delivery.
    Block,
    /// `SCHEDOP_poll`.
    Poll(Poll),
}

/// Everything about events and time one domain (one vCPU) has.
#[derive(Clone, Debug)]
pub struct EventState {
    /// The event-channel table.
    pub chans: Channels,
    /// The timers.
    pub timers: Timers,
    /// The calibrated clock.
    pub clock: Clock,
    /// The `shared_info` frame, if the domain has one.
    pub shared: Option<Mfn>,
    /// The upcall vector (`HVM_PARAM_CALLBACK_IRQ`), if registered.
    pub callback_vector: Option<u8>,
    /// What a pending block waits for (set by the hypercall, consumed by the
    /// VMX code).
    pub blocked: Option<Blocked>,
}

impl EventState {
    /// Event state for `dom`: takes the domain's last frame as its `shared_info`
    /// page (when the builder left it free), zeroes it, masks upcalls (the guest
    /// enables them when it is ready, as a Xen PV kernel does), publishes the
    /// pvclock and the wall clock (`wall_sec` seconds since the epoch at system
    /// time 0), and stores its machine address in `start_info.shared_info`.
    pub fn new<M: PhysMem + ?Sized>(
        dom: &Domain,
        mem: &mut M,
        clock: Clock,
        wall_sec: u64,
    ) -> Self {
        let mut st = EventState {
            chans: Channels::new(dom.id.0),
            timers: Timers::default(),
            clock,
            shared: None,
            callback_vector: None,
            blocked: None,
        };
        let layout = dom.layout();
        let last = Pfn::new(layout.nr_pages.saturating_sub(1));
        if layout.first_free.get() > last.get() {
            return st;
        }
        let Some(mfn) = dom.mfn_of(&*mem, last) else {
            return st;
        };
        if dom.frame_kind(&*mem, mfn) != FrameKind::Writable {
            return st;
        }
        st.shared = Some(mfn);
        {
            let mut page = SharedPage::new(&mut *mem, mfn);
            page.clear();
            page.set_upcall_mask(true);
            page.publish_time(&clock.time_info());
            page.publish_wallclock(wall_sec, 0);
        }
        if let Some(si) = dom.mfn_of(&*mem, layout.start_info) {
            let off = core::mem::offset_of!(StartInfo, shared_info) as u64;
            mem.write_u64(
                crate::addr::MachineAddr::new(si.addr().get() + off),
                mfn.addr().get(),
            );
        }
        st
    }

    /// The shared page, if the domain has one and its frame is still an ordinary
    /// writable frame of the domain (never write a frame that became a page table),
    /// with vCPU 0's `vcpu_info` where the guest placed it, if it did
    /// (`VCPUOP_register_vcpu_info`), that frame checked the same way.
    pub fn page<'m, M: PhysMem + ?Sized>(
        &self,
        dom: &Domain,
        mem: &'m mut M,
    ) -> Option<SharedPage<'m, M>> {
        let mfn = self.shared?;
        if dom.frame_kind(&*mem, mfn) != FrameKind::Writable {
            return None;
        }
        match dom.vcpus.boot_vcpu().vcpu_info {
            None => Some(SharedPage::new(mem, mfn)),
            Some(p) if dom.frame_kind(&*mem, p.mfn) == FrameKind::Writable => {
                let vi = crate::addr::MachineAddr::new(p.mfn.addr().get() + p.offset);
                Some(SharedPage::with_vcpu_info(mem, mfn, vi))
            }
            Some(_) => None,
        }
    }

    /// Fire the timers due at TSC `tsc`: raise `VIRQ_TIMER` for each.
    pub fn expire_timers<M: PhysMem + ?Sized>(&mut self, dom: &Domain, mem: &mut M, tsc: u64) {
        let now = self.clock.ns_at(tsc);
        let n = self.timers.expire(now);
        if n == 0 {
            return;
        }
        if let Some(mut page) = self.page(dom, mem) {
            self.chans.raise_virq(VIRQ_TIMER, &mut page);
        }
    }

    /// Whether an upcall should be injected now (pending, unmasked, a vector).
    ///
    /// This runs before every VM entry, so it skips the frame-kind lookup that
    /// guards writes: it only *reads* two bytes of the frame, which the domain
    /// owns for its whole life (Keel has no way to give a frame back), and a
    /// read of a frame that became a page table reveals nothing and changes
    /// nothing. The frame is type-checked whenever an event is made pending.
    /// The same holds for the frame vCPU 0's `vcpu_info` was placed in.
    pub fn upcall_wanted<M: PhysMem + ?Sized>(&self, dom: &Domain, mem: &mut M) -> Option<u8> {
        let v = self.callback_vector?;
        let shared = self.shared?;
        let page = match dom.vcpus.boot_vcpu().vcpu_info {
            None => SharedPage::new(mem, shared),
            Some(p) => SharedPage::with_vcpu_info(
                mem,
                shared,
                crate::addr::MachineAddr::new(p.mfn.addr().get() + p.offset),
            ),
        };
        need_delivery(&page).then_some(v)
    }

    /// Whether a blocked vCPU should wake at TSC `tsc` (after the timers were
    /// expired): an event needs delivery, or for a poll a polled port is pending
    /// or the timeout passed.
    pub fn should_wake<M: PhysMem + ?Sized>(&self, dom: &Domain, mem: &mut M, tsc: u64) -> bool {
        let Some(page) = self.page(dom, mem) else {
            return true;
        };
        if need_delivery(&page) {
            return true;
        }
        match self.blocked {
            None | Some(Blocked::Block) => false,
            Some(Blocked::Poll(p)) => {
                p.ports.iter().take(p.n).any(|&x| page.is_pending(x))
                    || p.timeout.is_some_and(|t| self.clock.ns_at(tsc) >= t)
            }
        }
    }

    /// The TSC at which the blocked vCPU must be looked at again (the nearest
    /// timer or poll timeout), or `None` if nothing could ever wake it.
    pub fn wake_deadline_tsc(&self) -> Option<u64> {
        let poll = match self.blocked {
            Some(Blocked::Poll(p)) => p.timeout,
            _ => None,
        };
        let ns = match (self.timers.next_deadline(), poll) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        Some(self.clock.tsc_at(ns))
    }
}
