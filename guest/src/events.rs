//! Events and time for guests (ABI 1.0): the `shared_info` page, the pvclock read
//! (no exit), the wall clock, and the upcall handler on the registered vector.
//!
//! The upcall follows the Xen guest protocol: clear `evtchn_upcall_pending`,
//! exchange `evtchn_pending_sel` with 0, and for each selected word take the
//! pending-and-unmasked bits, clear them, and hand each port to the handler.
//! Because the hypervisor publishes in the opposite order (port bit, selector,
//! upcall flag), an event that arrives while the handler runs is either seen in
//! this pass or raises the flag again for the next one; none is lost.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering::SeqCst};

use crate::abi::event::callback_vector;
use crate::abi::guest;
use crate::abi::time::{offsets, VcpuTimeInfo};
use crate::abi::{Errno, GuestVirt, Mfn, Pfn};
use crate::arch;
use crate::start;

/// The guest-virtual address of shared_info (0 until found).
static SHARED_VA: AtomicU64 = AtomicU64::new(0);
/// The guest-virtual address of vCPU 0's `vcpu_info` once moved out of
/// shared_info with [`register_vcpu_info`] (0: shared_info's entry 0).
static VCPU_INFO_VA: AtomicU64 = AtomicU64::new(0);
/// The registered upcall vector (0: none) and handler.
static VECTOR: AtomicU8 = AtomicU8::new(0);
static HANDLER: AtomicU64 = AtomicU64::new(0);
/// Upcalls taken, and of them, how many found RFLAGS.IF clear in the interrupted
/// context (must be none: the hypervisor injects only when IF is set).
pub static UPCALLS: AtomicU64 = AtomicU64::new(0);
/// Upcalls that interrupted a context with IF = 0 (a hypervisor bug).
pub static UPCALLS_WITH_IF_CLEAR: AtomicU64 = AtomicU64::new(0);

/// The shared_info page's address in the bootstrap mapping, if the hypervisor
/// provides one (`start_info.shared_info` != 0, ABI 1.0).
pub fn shared_info() -> Option<GuestVirt> {
    let cached = SHARED_VA.load(SeqCst);
    if cached != 0 {
        return Some(GuestVirt::new(cached));
    }
    let si = start::start_info();
    let ma = si.shared_info.get();
    if ma == 0 || !ma.is_multiple_of(4096) {
        return None;
    }
    let mfn = Mfn::new(ma >> 12);
    // The hypervisor uses the domain's last frame; search from the top.
    let pfn = (0..si.nr_pages)
        .rev()
        .map(Pfn::new)
        .find(|&p| start::pfn_to_mfn(p).is_ok_and(|m| m == mfn))?;
    let va = start::pfn_to_va(pfn);
    SHARED_VA.store(va.get(), SeqCst);
    Some(va)
}

fn base() -> u64 {
    match shared_info() {
        Some(v) => v.get(),
        None => crate::report::crash(format_args!(
            "events: no shared_info page (start_info.shared_info is 0: hypervisor ABI < 1.0?)"
        )),
    }
}

/// The running vCPU's `vcpu_info`: where [`register_vcpu_info`] put it, else
/// its entry of shared_info (`offsets::*(0)` are offsets in the record). One
/// cached load, as [`base`]'s, while the domain runs on vCPU 0 alone: the
/// pvclock read goes through it. Once `smp::init` ran the cache stays empty
/// and every read names the running vCPU's record.
#[inline(always)]
fn vcpu_info_base() -> u64 {
    let va = VCPU_INFO_VA.load(SeqCst);
    if va != 0 {
        return va;
    }
    vcpu_info_lookup()
}

#[cold]
#[inline(never)]
fn vcpu_info_lookup() -> u64 {
    let b = base();
    if crate::smp::active() {
        return crate::smp::vcpu_info_va(crate::smp::current(), b);
    }
    VCPU_INFO_VA.store(b, SeqCst);
    b
}

/// Several vCPUs run from now on (`smp::init`): no more cached `vcpu_info`.
pub(crate) fn vcpus_started() {
    VCPU_INFO_VA.store(0, SeqCst);
}

/// `VCPUOP_register_vcpu_info` (ABI 1.2) for the running vCPU: move its
/// `vcpu_info` to `va`, which must be mapped writable at `offset` in frame
/// `mfn`; from then on its upcall flags, selector and pvclock are read there.
pub fn register_vcpu_info(va: GuestVirt, mfn: Mfn, offset: u32) -> Result<(), Errno> {
    let me = crate::smp::current();
    guest::vcpu_register_vcpu_info(u64::from(me), mfn.get(), offset)?;
    crate::smp::set_vcpu_info_va(me, va.get());
    if !crate::smp::active() {
        VCPU_INFO_VA.store(va.get(), SeqCst);
    }
    Ok(())
}

/// The running vCPU's `evtchn_upcall_mask`.
pub fn upcall_mask() -> &'static AtomicU8 {
    arch::shared_u8(vcpu_info_base() + offsets::upcall_mask(0) as u64)
}
/// The running vCPU's `evtchn_upcall_pending`.
pub fn upcall_pending() -> &'static AtomicU8 {
    arch::shared_u8(vcpu_info_base() + offsets::upcall_pending(0) as u64)
}
/// The running vCPU's `evtchn_pending_sel`.
pub fn pending_sel() -> &'static AtomicU64 {
    arch::shared_u64(vcpu_info_base() + offsets::pending_sel(0) as u64)
}
/// Word `w` of `evtchn_pending`.
pub fn pending_word(w: usize) -> &'static AtomicU64 {
    arch::shared_u64(base() + offsets::pending_word(w) as u64)
}
/// Word `w` of `evtchn_mask`.
pub fn mask_word(w: usize) -> &'static AtomicU64 {
    arch::shared_u64(base() + offsets::mask_word(w) as u64)
}

/// Whether port `p` is pending.
pub fn is_pending(p: u32) -> bool {
    pending_word((p / 64) as usize).load(SeqCst) & (1 << (p % 64)) != 0
}
/// Mask port `p` (no exit).
pub fn mask(p: u32) {
    mask_word((p / 64) as usize).fetch_or(1 << (p % 64), SeqCst);
}

/// Disable upcalls (the PV "cli"): no exit.
pub fn disable() {
    upcall_mask().store(1, SeqCst);
}

/// Enable upcalls; if one is already pending, make a hypercall so that the
/// hypervisor delivers it now (Xen's "force callback").
pub fn enable() {
    upcall_mask().store(0, SeqCst);
    if upcall_pending().load(SeqCst) != 0 {
        let _ = guest::xen_version();
    }
}

/// Register `handler` for every pending port, on `vector` (HVM_PARAM_CALLBACK_IRQ
/// of the vector type). Upcalls still need `enable()` and RFLAGS.IF = 1.
pub fn set_upcall_handler(vector: u8, handler: fn(u32)) -> Result<(), Errno> {
    HANDLER.store(handler as usize as u64, SeqCst);
    VECTOR.store(vector, SeqCst);
    guest::hvm_set_callback_irq(callback_vector(vector))
}

/// Why [`timer_upcalls`] could not set a test up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupError {
    /// The hypervisor gave no shared_info page.
    NoSharedInfo,
    /// `EVTCHNOP_bind_virq(VIRQ_TIMER)` failed.
    BindTimer(Errno),
    /// `HVMOP_set_param(HVM_PARAM_CALLBACK_IRQ)` refused the vector.
    CallbackVector(Errno),
}

impl core::fmt::Display for SetupError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoSharedInfo => write!(f, "no shared_info page"),
            Self::BindTimer(e) => write!(f, "bind VIRQ_TIMER: {e}"),
            Self::CallbackVector(e) => write!(f, "callback vector: {e}"),
        }
    }
}

/// The start of every test that takes timer events: bind `VIRQ_TIMER`, deliver
/// upcalls to `handler` on `vector`, unmask events and set RFLAGS.IF. Returns the
/// timer's port. (A test that wants the interrupted context sets its hook first:
/// an upcall may come as soon as this returns.)
pub fn timer_upcalls(vector: u8, handler: fn(u32)) -> Result<u32, SetupError> {
    let port = bind_timer_upcalls(vector, handler)?;
    enable();
    arch::sti();
    Ok(port)
}

/// [`timer_upcalls`] for a test that blocks on its timers itself
/// ([`block_on_timer`]): bind `VIRQ_TIMER` and deliver upcalls to `handler` on
/// `vector`, leaving the event mask and RFLAGS.IF as they are. Returns the
/// timer's port.
pub fn bind_timer_upcalls(vector: u8, handler: fn(u32)) -> Result<u32, SetupError> {
    if shared_info().is_none() {
        return Err(SetupError::NoSharedInfo);
    }
    let port =
        crate::smp::bind_virq(crate::abi::event::VIRQ_TIMER).map_err(SetupError::BindTimer)?;
    set_upcall_handler(vector, handler).map_err(SetupError::CallbackVector)?;
    Ok(port)
}

/// Why [`block_on_timer`] did not block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// `set_timer_op` refused the deadline.
    SetTimer(Errno),
    /// `SCHEDOP_block` failed.
    Block(Errno),
}

impl core::fmt::Display for BlockError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::SetTimer(e) => write!(f, "set_timer_op: {e}"),
            Self::Block(e) => write!(f, "SCHEDOP_block: {e}"),
        }
    }
}

/// Block until a single-shot timer `after_ns` from now, as a kernel's idle loop
/// does (Linux's `xen_safe_halt`): clear RFLAGS.IF and mask events, arm the
/// timer, `SCHEDOP_block` (which unmasks events again). Returns the deadline and
/// the system time it woke at. RFLAGS.IF stays clear, so the caller can look
/// before the timer's upcall comes: after its `events::enable(); arch::sti()`.
pub fn block_on_timer(after_ns: u64) -> Result<(u64, u64), BlockError> {
    arch::cli();
    disable();
    let deadline = now_ns() + after_ns;
    guest::set_timer_op(deadline).map_err(BlockError::SetTimer)?;
    guest::sched_block().map_err(BlockError::Block)?;
    Ok((deadline, now_ns()))
}

/// Of the time since system time `since_ns`, the nanoseconds during which the
/// machine beneath the hypervisor held one of the hypervisor's own timers past
/// its due time (`keel_debug_op(DEBUGOP_PLATFORM_DELAY)`, docs/abi/debug.md):
/// the platform's part of a lateness measured since then. 0 where the
/// hypervisor does not serve it (an image that does not declare ABI 1.2, a
/// hypervisor before it).
pub fn platform_delay_since(since_ns: u64) -> u64 {
    crate::abi::debug::guest::platform_delay(since_ns).unwrap_or(0)
}

/// The interrupted context's general-purpose registers (in
/// `fault::GPR_NAMES` order) and RIP, as an upcall finds them.
pub type InterruptedHook = fn(gpr: &mut [u64; 15], rip: u64);

static INTERRUPTED_HOOK: AtomicU64 = AtomicU64::new(0);

/// Have `hook` see, and may change, the registers of the context every upcall
/// interrupts, before the handler runs (tests of hypercall continuations look
/// at a preempted `VMCALL` this way). `None` removes it.
pub fn set_interrupted_hook(hook: Option<InterruptedHook>) {
    INTERRUPTED_HOOK.store(hook.map_or(0, |h| h as usize as u64), SeqCst);
}

/// Called by the IDT stub for every vector >= 32: handle an upcall, or say it
/// is not ours.
pub fn upcall_entry(vector: u8, interrupted_rflags: u64, gpr: &mut [u64; 15], rip: u64) -> bool {
    let v = VECTOR.load(SeqCst);
    if v == 0 || vector != v {
        return false;
    }
    let hook = INTERRUPTED_HOOK.load(SeqCst);
    if hook != 0 {
        // Only `set_interrupted_hook` stores here, from an `InterruptedHook`.
        arch::fn_frame_from_addr(hook)(gpr, rip);
    }
    UPCALLS.fetch_add(1, SeqCst);
    if interrupted_rflags & (1 << 9) == 0 {
        UPCALLS_WITH_IF_CLEAR.fetch_add(1, SeqCst);
    }
    drain();
    true
}

/// The Xen upcall loop: hand every pending, unmasked port to the handler.
/// With several vCPUs ([`crate::smp`]), only the ports bound to the running
/// vCPU: another's stay pending for its own upcall.
pub fn drain() {
    // A domain that runs on vCPU 0 alone has its record cached (no test for
    // several vCPUs: the cache is empty while they run, `vcpus_started`).
    let info = VCPU_INFO_VA.load(SeqCst);
    if info == 0 {
        return drain_uncached();
    }
    drain_record(info);
}

/// [`drain`] with no cached record: on one of several vCPUs, or before the
/// first look.
#[cold]
#[inline(never)]
fn drain_uncached() {
    if crate::smp::active() {
        return drain_vcpus();
    }
    drain_record(vcpu_info_base());
}

/// [`drain`] on vCPU 0 alone, whose `vcpu_info` is at `info`.
#[inline(always)]
fn drain_record(info: u64) {
    let h = HANDLER.load(SeqCst);
    let pending = arch::shared_u8(info + offsets::upcall_pending(0) as u64);
    let selector = arch::shared_u64(info + offsets::pending_sel(0) as u64);
    loop {
        pending.store(0, SeqCst);
        let sel = selector.swap(0, SeqCst);
        if sel == 0 {
            break;
        }
        let mut words = sel;
        while words != 0 {
            let w = words.trailing_zeros() as usize;
            words &= words - 1;
            let mut bits = pending_word(w).load(SeqCst) & !mask_word(w).load(SeqCst);
            pending_word(w).fetch_and(!bits, SeqCst);
            while bits != 0 {
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                if h != 0 {
                    let f: fn(u32) = fn_from(h);
                    f(w as u32 * 64 + b);
                }
            }
        }
    }
}

/// [`drain`] on one of several vCPUs: its own `vcpu_info`, the ports bound
/// to it (`smp::owned_bits`).
#[inline(never)]
fn drain_vcpus() {
    let h = HANDLER.load(SeqCst);
    let me = crate::smp::current();
    let info = vcpu_info_base();
    let pending = arch::shared_u8(info + offsets::upcall_pending(0) as u64);
    let selector = arch::shared_u64(info + offsets::pending_sel(0) as u64);
    loop {
        pending.store(0, SeqCst);
        let sel = selector.swap(0, SeqCst);
        if sel == 0 {
            break;
        }
        let mut words = sel;
        while words != 0 {
            let w = words.trailing_zeros() as usize;
            words &= words - 1;
            let mut bits = pending_word(w).load(SeqCst)
                & !mask_word(w).load(SeqCst)
                & crate::smp::owned_bits(me, w);
            pending_word(w).fetch_and(!bits, SeqCst);
            while bits != 0 {
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                if h != 0 {
                    let f: fn(u32) = fn_from(h);
                    f(w as u32 * 64 + b);
                }
            }
        }
    }
}

fn fn_from(h: u64) -> fn(u32) {
    // Only values stored by `set_upcall_handler` (a real `fn(u32)`) get here.
    crate::arch::fn_u32_from_addr(h)
}

/// The pvclock record, read with the version protocol.
pub fn time_info() -> VcpuTimeInfo {
    let b = vcpu_info_base() + offsets::time(0) as u64;
    let ver = arch::shared_u32(b);
    loop {
        let v0 = ver.load(SeqCst);
        if v0 & 1 != 0 {
            continue;
        }
        let t = VcpuTimeInfo {
            version: v0,
            pad0: 0,
            tsc_timestamp: arch::shared_u64(b + 8).load(SeqCst),
            system_time: arch::shared_u64(b + 16).load(SeqCst),
            tsc_to_system_mul: arch::shared_u32(b + 24).load(SeqCst),
            tsc_shift: (arch::shared_u32(b + 28).load(SeqCst) & 0xff) as u8 as i8,
            flags: (arch::shared_u32(b + 28).load(SeqCst) >> 8) as u8,
            pad1: [0; 2],
        };
        if ver.load(SeqCst) == v0 {
            return t;
        }
    }
}

/// System time in nanoseconds, from the pvclock: no exit.
pub fn now_ns() -> u64 {
    let t = time_info();
    t.system_time_at(arch::rdtsc())
}

/// The wall clock at system time 0: (seconds since the epoch, nanoseconds).
pub fn wallclock() -> (u64, u32) {
    let b = base();
    let ver = arch::shared_u32(b + offsets::wc_version() as u64);
    loop {
        let v0 = ver.load(SeqCst);
        if v0 & 1 != 0 {
            continue;
        }
        let lo = arch::shared_u32(b + offsets::wc_sec() as u64).load(SeqCst);
        let hi = arch::shared_u32(b + offsets::wc_sec_hi() as u64).load(SeqCst);
        let ns = arch::shared_u32(b + offsets::wc_nsec() as u64).load(SeqCst);
        if ver.load(SeqCst) == v0 {
            return ((u64::from(hi) << 32) | u64::from(lo), ns);
        }
    }
}

/// The first TSC value at which the pvclock reads at least `ns` (the inverse of
/// [`now_ns`], for turning a deadline into TSC ticks).
pub fn tsc_at_ns(ns: u64) -> u64 {
    let t = time_info();
    let (mut lo, mut hi) = (t.tsc_timestamp, t.tsc_timestamp);
    // Exponential search, then bisection: system_time_at is monotonic.
    let mut step = 1u64;
    while t.system_time_at(hi) < ns && step < 1 << 62 {
        lo = hi;
        hi = hi.saturating_add(step);
        step <<= 1;
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if t.system_time_at(mid) >= ns {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// Nanoseconds that `ticks` TSC ticks last, by the pvclock scale.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    let t = time_info();
    let base = VcpuTimeInfo {
        tsc_timestamp: 0,
        system_time: 0,
        ..t
    };
    base.system_time_at(ticks)
}
