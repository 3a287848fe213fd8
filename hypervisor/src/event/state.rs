//! A domain's event, time and timer state, and how it meets the domain's memory.

use super::shared::Placed;
use super::timer::Timers;
use super::{need_delivery, Channels, EventBits, SharedPage};
use crate::addr::{MachineAddr, Mfn, Pfn};
use crate::domain::vcpus::VcpuInfoPlace;
use crate::domain::{Domain, FrameKind};
use crate::mem::PhysMem;
use crate::paging::read_cache::ReadCache;
use crate::time::Clock;
use keel_abi::event::VIRQ_TIMER;
use keel_abi::sched::SCHED_POLL_MAX_PORTS;
use keel_abi::start_info::StartInfo;
use keel_abi::time::offsets;

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

/// A vCPU's own event state, as Xen's `struct vcpu` has it: its timers
/// (`VCPUOP_set_singleshot_timer`, `set_timer_op`, the periodic timer) and
/// what it blocks on. The loaded vCPU's is in [`EventState`]; the others'
/// wait in the run loop until their vCPU is loaded ([`EventState::load_vcpu`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuEvents {
    /// The timers.
    pub timers: Timers,
    /// What a pending block waits for.
    pub blocked: Option<Blocked>,
}

/// Everything about events and time a domain has (per domain: the channel
/// table, the clock, `shared_info`, the upcall vector), with the loaded
/// vCPU's own part (its timers, what it blocks on: [`VcpuEvents`]).
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
    /// `shared` while vCPU 0's `vcpu_info` is entry 0 of it, else `None`.
    /// The paths every domain takes (each event, each entry) test only
    /// this, where they tested `shared` before a record could move, so a
    /// domain that never moves its record pays nothing for the possibility;
    /// `None` sends them to the out-of-line code for a moved record (or for
    /// no page at all).
    entry0: Option<Mfn>,
    /// Where vCPU 0's `vcpu_info` was moved (`VCPUOP_register_vcpu_info`,
    /// ABI 1.2; [`Self::place_vcpu_info`]), if it was.
    vcpu_info: Option<VcpuInfoPlace>,
    /// The upcall vector (`HVM_PARAM_CALLBACK_IRQ`), if registered.
    pub callback_vector: Option<u8>,
    /// What a pending block waits for (set by the hypercall, consumed by the
    /// VMX code).
    pub blocked: Option<Blocked>,
    /// The loaded vCPU: the one whose `vcpu_info` [`Self::page`] opens and
    /// whose `VIRQ_TIMER` its timers raise.
    pub vcpu: u32,
    /// The translation of the page an event-channel or timer operation
    /// (`hypercall/events.rs`) last read its argument from, checked before
    /// each use ([`crate::hypercall::Ctx::read_arg`]): a guest passes its
    /// argument structures from the same place, call after call.
    pub arg_cache: ReadCache,
}

/// The shared page ([`EventState::page`]), typed by where vCPU 0's
/// `vcpu_info` is ([`crate::event::shared::VcpuInfoAt`]): `on_page!`
/// compiles its user once for each, so a record that never moved costs what
/// a fixed offset in the page costs.
pub enum Page<'m, M: PhysMem + ?Sized> {
    /// The record is entry 0 of the `shared_info` page.
    InShared(SharedPage<'m, M>),
    /// The guest moved it (`VCPUOP_register_vcpu_info`).
    Placed(SharedPage<'m, M, Placed>),
}

impl<M: PhysMem + ?Sized> Page<'_, M> {
    /// vCPU 0's published pvclock record.
    pub fn time_info(&self) -> keel_abi::time::VcpuTimeInfo {
        on_page_ref!(self, |b| b.time_info())
    }
}

/// Each bit through the page of its kind (for the code that is not on a
/// path every domain takes, and the tests; those paths use `with_page!`).
impl<M: PhysMem + ?Sized> EventBits for Page<'_, M> {
    fn test_and_set_pending(&mut self, p: u32) -> bool {
        on_page_ref!(self, |b| b.test_and_set_pending(p))
    }
    fn clear_pending(&mut self, p: u32) {
        on_page_ref!(self, |b| b.clear_pending(p))
    }
    fn is_pending(&self, p: u32) -> bool {
        on_page_ref!(self, |b| b.is_pending(p))
    }
    fn is_masked(&self, p: u32) -> bool {
        on_page_ref!(self, |b| b.is_masked(p))
    }
    fn test_and_clear_mask(&mut self, p: u32) -> bool {
        on_page_ref!(self, |b| b.test_and_clear_mask(p))
    }
    fn test_and_set_sel(&mut self, vcpu: u32, w: u32) -> bool {
        on_page_ref!(self, |b| b.test_and_set_sel(vcpu, w))
    }
    fn set_upcall_pending(&mut self, vcpu: u32) {
        on_page_ref!(self, |b| b.set_upcall_pending(vcpu))
    }
    fn upcall_pending(&self) -> bool {
        on_page_ref!(self, |b| b.upcall_pending())
    }
    fn upcall_mask(&self) -> bool {
        on_page_ref!(self, |b| b.upcall_mask())
    }
    fn set_upcall_mask(&mut self, masked: bool) {
        on_page_ref!(self, |b| b.set_upcall_mask(masked))
    }
}

/// `on_page!(page, |p| body)`: `body` with `p` the [`SharedPage`] (bound
/// `mut`) inside the [`Page`] `page`, compiled once for each kind: in line
/// for a record in `shared_info`, out of line (a closure: a `return` in
/// `body` leaves only it) for a moved one, so the code every domain runs
/// is what it was before records could move.
macro_rules! on_page {
    ($page:expr, |$p:ident| $body:expr) => {
        match $page {
            $crate::event::state::Page::InShared(page) => {
                #[allow(unused_mut)]
                let mut $p = page;
                $body
            }
            $crate::event::state::Page::Placed(page) => {
                #[allow(unused_mut)]
                let mut $p = page;
                $body
            }
        }
    };
}
pub(crate) use on_page;

/// `on_page!` through a reference to the [`Page`].
macro_rules! on_page_ref {
    ($page:expr, |$p:ident| $body:expr) => {
        match $page {
            Page::InShared($p) => $body,
            Page::Placed($p) => $body,
        }
    };
}
use on_page_ref;

/// `with_page!(ev, dom, mem, |p| body, else none)`: `body` with `p` the
/// [`SharedPage`] of the [`EventState`] `ev` (bound `mut`), or `none`
/// without one ([`EventState::page`]'s checks). The paths every domain
/// takes use this rather than `on_page!`: the test and the page for a
/// record in `shared_info` are made in line, from the frame, so the code is
/// what it was before a record could move (nothing is returned through
/// memory); a moved record goes out of line.
macro_rules! with_page {
    ($ev:expr, $dom:expr, $mem:expr, |$p:ident| $body:expr, else $none:expr) => {
        match $ev.entry0() {
            Some(mfn) => {
                if $dom.frame_kind(&*$mem, mfn) == $crate::domain::FrameKind::Writable {
                    #[allow(unused_mut)]
                    let mut $p = $crate::event::SharedPage::of_domain($mem, mfn, $dom);
                    $body
                } else {
                    $none
                }
            }
            None => match $ev.placed($dom, $mem) {
                Some($crate::event::state::Page::Placed(page)) => {
                    #[allow(unused_mut)]
                    let mut $p = page;
                    $body
                }
                _ => $none,
            },
        }
    };
}
pub(crate) use with_page;

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
            chans: {
                let mut c = Channels::new(dom.id.0);
                c.set_vcpus(u32::from(dom.vcpus.count()));
                c
            },
            timers: Timers::default(),
            clock,
            shared: None,
            entry0: None,
            vcpu_info: None,
            callback_vector: None,
            blocked: None,
            vcpu: 0,
            arg_cache: ReadCache::new(),
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
        st.entry0 = Some(mfn);
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
    /// (`VCPUOP_register_vcpu_info`), that frame checked the same way. Used
    /// through `on_page!`.
    #[inline(always)]
    pub fn page<'m, M: PhysMem + ?Sized>(
        &self,
        dom: &'m Domain,
        mem: &'m mut M,
    ) -> Option<Page<'m, M>> {
        let Some(mfn) = self.entry0 else {
            return self.placed(dom, mem);
        };
        (dom.frame_kind(&*mem, mfn) == FrameKind::Writable)
            .then(|| Page::InShared(SharedPage::of_domain(mem, mfn, dom)))
    }

    /// [`Self::page`] for a loaded vCPU other than vCPU 0 or a moved
    /// `vcpu_info` (or without a page), out of line: both frames must still
    /// be ordinary writable frames of the domain.
    #[cold]
    #[inline(never)]
    pub fn placed<'m, M: PhysMem + ?Sized>(
        &self,
        dom: &'m Domain,
        mem: &'m mut M,
    ) -> Option<Page<'m, M>> {
        let mfn = self.shared?;
        let writable = |m| dom.frame_kind(&*mem, m) == FrameKind::Writable;
        if !writable(mfn) || self.vcpu_info.is_some_and(|p| !writable(p.mfn)) {
            return None;
        }
        let vi = self.vi_addr(mfn);
        Some(Page::Placed(SharedPage::for_domain(
            mem,
            mfn,
            Some(dom),
            self.vcpu,
            vi,
        )))
    }

    /// The loaded vCPU's `vcpu_info` for `shared_info` at `mfn`: where it
    /// was placed, or its entry of the page.
    fn vi_addr(&self, mfn: Mfn) -> MachineAddr {
        match self.vcpu_info {
            Some(p) => p.addr(),
            None => {
                MachineAddr::new(mfn.addr().get() + offsets::vcpu_info(self.vcpu as usize) as u64)
            }
        }
    }

    /// The `shared_info` frame while vCPU 0 is loaded and its `vcpu_info`
    /// is in it (what `with_page!` tests).
    #[inline(always)]
    pub fn entry0(&self) -> Option<Mfn> {
        self.entry0
    }

    /// Where the loaded vCPU's `vcpu_info` is, if the guest moved it.
    pub fn vcpu_info(&self) -> Option<VcpuInfoPlace> {
        self.vcpu_info
    }

    /// The loaded vCPU's `vcpu_info` is at `p` from now on (the caller
    /// checked the place and the frame, `VcpuTable::register_vcpu_info`,
    /// and keeps it in the domain's vCPU table for the next
    /// [`Self::load_vcpu`]): events and time go only there.
    pub fn place_vcpu_info(&mut self, p: VcpuInfoPlace) {
        self.vcpu_info = Some(p);
        self.entry0 = None;
    }

    /// Load vCPU `vcpu` of `dom` with its own state `next`; the state of
    /// the vCPU loaded until now is returned (to keep until it is loaded
    /// again). Its `vcpu_info` is where `dom`'s vCPU table says.
    pub fn load_vcpu(&mut self, dom: &Domain, vcpu: u32, next: VcpuEvents) -> VcpuEvents {
        let prev = VcpuEvents {
            timers: self.timers,
            blocked: self.blocked,
        };
        self.timers = next.timers;
        self.blocked = next.blocked;
        self.vcpu = vcpu;
        self.vcpu_info = dom
            .vcpus
            .get(u64::from(vcpu))
            .ok()
            .and_then(|s| s.vcpu_info);
        self.entry0 = self
            .shared
            .filter(|_| vcpu == 0 && self.vcpu_info.is_none());
        prev
    }

    /// Fire the timers due at TSC `tsc`: raise `VIRQ_TIMER` for each.
    pub fn expire_timers<M: PhysMem + ?Sized>(&mut self, dom: &Domain, mem: &mut M, tsc: u64) {
        let now = self.clock.ns_at(tsc);
        let n = self.timers.expire(now);
        if n == 0 {
            return;
        }
        // The page is opened for the loaded vCPU: its own VIRQ_TIMER, with
        // vCPU 0 known at compile time where its record is in the page.
        with_page!(self, dom, mem, |page| {
            let v = page.vcpu();
            self.chans.raise_vcpu_virq(VIRQ_TIMER, v, &mut page);
        }, else ());
    }

    /// Whether an upcall should be injected now (pending, unmasked, a vector).
    ///
    /// This runs before every VM entry, so it skips the frame-kind lookup that
    /// guards writes: it only *reads* two bytes of the frame, which the domain
    /// owns for its whole life (Keel has no way to give a frame back), and a
    /// read of a frame that became a page table reveals nothing and changes
    /// nothing. The frame is type-checked whenever an event is made pending.
    /// The same holds for the frame vCPU 0's `vcpu_info` was placed in.
    pub fn upcall_wanted<M: PhysMem + ?Sized>(&self, _dom: &Domain, mem: &mut M) -> Option<u8> {
        let v = self.callback_vector?;
        let Some(shared) = self.entry0 else {
            return self.placed_upcall_wanted(mem).then_some(v);
        };
        need_delivery(&SharedPage::new(mem, shared)).then_some(v)
    }

    /// [`Self::upcall_wanted`]'s test with a moved `vcpu_info` (or without
    /// a page: no), out of line.
    #[cold]
    #[inline(never)]
    fn placed_upcall_wanted<M: PhysMem + ?Sized>(&self, mem: &mut M) -> bool {
        match self.shared {
            Some(s) => need_delivery(&SharedPage::for_domain(
                mem,
                s,
                None,
                self.vcpu,
                self.vi_addr(s),
            )),
            None => false,
        }
    }

    /// Whether a blocked vCPU should wake at TSC `tsc` (after the timers were
    /// expired): an event needs delivery, or for a poll a polled port is pending
    /// or the timeout passed.
    pub fn should_wake<M: PhysMem + ?Sized>(&self, dom: &Domain, mem: &mut M, tsc: u64) -> bool {
        with_page!(self, dom, mem, |page| {
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
        }, else true)
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
