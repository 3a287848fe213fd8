//! # Lending a CPU's domains to the CPU that handles a cross-CPU operation
//!
//! Each CPU's run loop (`vmx::run`) owns the domains placed on it: their vCPUs,
//! records and scheduler are plain `&mut` borrows on that CPU, as on a
//! one-CPU machine. An operation that reaches a domain on another CPU (an
//! interdomain event, a grant, `domctl`, a domain's end) runs on the CPU that
//! asked for it, with every other CPU *lending* it its view (its run loop's
//! borrows) for the operation's length:
//!
//! 1. the asking CPU takes the **cross lock** ([`cross`]): one cross-CPU
//!    operation at a time in the machine. While it waits for the lock it
//!    serves the requests of the holder ([`serve`]), so two CPUs that ask at
//!    once cannot wait for each other;
//! 2. it asks every other CPU that runs domains (or those an operation that
//!    reaches only their domains names: [`cross_some`]; it can ask the
//!    rest later, [`Lent::ask`]), with a wake-up IPI: a CPU in
//!    its guest leaves it (an external-interrupt exit), an idle one wakes,
//!    one in the middle of an exit finishes it (bounded work) and the IPI,
//!    held pending, ends its next guest entry at once;
//! 3. each one, at the start of its next exit or run-loop iteration, before it
//!    has touched its state, publishes a pointer to its view and spins until
//!    it is given back: its domains stand still, guests included;
//! 4. the asking CPU runs the operation over its own view and the lent ones,
//!    gives them back, and releases the lock.
//!
//! This is stop-the-others for cross-CPU operations: correct by construction
//! (no domain's state is ever reached by two CPUs at once, and no guest runs
//! while another CPU writes its shared page), and free for everything that
//! stays on one CPU (no lock, no atomic beyond one load a exit: a null
//! hypercall costs the same on every CPU at once). Its price is on the cross
//! operations, which wait for every other CPU to reach a safe point.
//!
//! The lent view is one type for the whole machine (the run loop's), checked
//! by name at each borrow: a mismatch is a hypervisor bug and panics.

#![allow(unsafe_code)]

use crate::arch::percpu::MAX_CPUS;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering::*};

/// One CPU's lending state.
struct Slot {
    /// Another CPU asks for this CPU's view ([`LEND`]), or has requests
    /// for it ([`KICKED`], `smp::remote`): one word, so that an exit looks
    /// at both with one load.
    asked: AtomicU8,
    /// The view, while lent (null otherwise).
    view: AtomicPtr<()>,
    /// The view's type name (its check).
    type_name: AtomicPtr<u8>,
    type_len: AtomicU32,
    /// [`IDLE`], [`LENT`] or [`RETURNED`]: one word, so that a borrower
    /// never mistakes the end of one lend for the next.
    state: AtomicU32,
}

/// `Slot::asked`: lend the view.
const LEND: u8 = 1;
/// `Slot::asked`: the CPU was kicked with requests ([`kick`]).
const KICKED: u8 = 2;

/// No lend in progress.
const IDLE: u32 = 0;
/// The view is published; the borrower may use it.
const LENT: u32 = 1;
/// The borrower is done; the lender goes on (and sets `IDLE`).
const RETURNED: u32 = 2;

static SLOTS: [Slot; MAX_CPUS] = [const {
    Slot {
        asked: AtomicU8::new(0),
        view: AtomicPtr::new(core::ptr::null_mut()),
        type_name: AtomicPtr::new(core::ptr::null_mut()),
        type_len: AtomicU32::new(0),
        state: AtomicU32::new(IDLE),
    }
}; MAX_CPUS];

/// The cross lock: one cross-CPU operation at a time, a ticket lock. Fair:
/// CPUs take it in the order they asked. A CPU whose guest exits back to
/// back (each exit of a remote vCPU is an operation, `vmx::run::visit`)
/// could otherwise take it again before a waiting CPU saw it free, for as
/// long as its guest likes (under Bochs, whose CPUs run in turns of a few
/// instructions, a race it can win every time); with tickets every waiting
/// CPU's wait is bounded by the operations asked before its own.
static NEXT_TICKET: AtomicU32 = AtomicU32::new(0);
/// The ticket whose holder has the lock.
static SERVING: AtomicU32 = AtomicU32::new(0);

/// The CPUs that run domains and so must lend (bit per CPU), with each one's
/// local APIC ID for the wake-up IPI.
static ACTIVE: AtomicU32 = AtomicU32::new(0);
static APIC_IDS: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];

/// Whether any CPU but one runs domains (cross-CPU operations are possible).
#[inline(always)]
pub fn several_cpus() -> bool {
    let a = ACTIVE.load(Relaxed);
    a & a.wrapping_sub(1) != 0
}

/// CPU `cpu` (local APIC ID `apic`) runs domains from now on.
pub fn activate(cpu: usize, apic: u32) {
    if let Some(a) = APIC_IDS.get(cpu) {
        a.store(apic, Relaxed);
        ACTIVE.fetch_or(1 << cpu, AcqRel);
    }
}

/// CPU `me` runs no more domains: it is asked no more (taken under the cross
/// lock, so that no holder is waiting for it), serving meanwhile with `view`.
/// The others look at their state again (one of them may now be the last
/// that is not stuck, [`stuck`]).
pub fn deactivate<T>(me: usize, view: &mut T) {
    lock(me, view);
    ACTIVE.fetch_and(!(1 << me), AcqRel);
    unlock();
    kick_others();
}

/// CPUs whose every domain is blocked with no deadline, and whether they all
/// were at once: then no domain anywhere can ever be woken.
static STUCK: AtomicU32 = AtomicU32::new(0);
static ALL_STUCK: AtomicBool = AtomicBool::new(false);

/// CPU `me`'s domains are all blocked with no deadline (it is about to wait
/// for an IPI). Whether every CPU that runs domains is in that state: then
/// each ends its domains ([`all_stuck`]; the others are woken to). Pair with
/// [`unstuck`] after the wait. A cross-CPU operation that could wake a domain
/// runs only with every other CPU awake (lending), so none is counted then.
pub fn stuck(quiet: impl Fn() -> bool) -> bool {
    let n = STUCK.fetch_add(1, AcqRel) + 1;
    // `quiet`: no CPU has a request on its way that could wake a domain.
    if n >= ACTIVE.load(Acquire).count_ones() && quiet() {
        ALL_STUCK.store(true, Release);
        kick_others();
        return true;
    }
    false
}

/// The wait that followed [`stuck`] is over.
pub fn unstuck() {
    let _ = STUCK.fetch_update(AcqRel, Acquire, |n| n.checked_sub(1));
}

/// Every CPU's domains were blocked with no deadline at once.
pub fn all_stuck() -> bool {
    ALL_STUCK.load(Acquire)
}

/// Wake CPU `cpu` (this one included: the IPI then ends its next guest
/// entry at once), if it runs domains: it has requests to look at
/// (`smp::remote`).
pub fn kick(cpu: usize) {
    if ACTIVE.load(Acquire) & (1 << cpu) == 0 {
        return;
    }
    if let Some(s) = SLOTS.get(cpu) {
        s.asked.fetch_or(KICKED, Release);
    }
    if let Some(apic) = APIC_IDS.get(cpu) {
        crate::arch::smp::send_wake(apic.load(Relaxed));
    }
}

/// Wake every other CPU that runs domains (to look at its state again: the
/// last domain that keeps the machine on has ended).
pub fn kick_others() {
    let me = crate::vmx::percpu::this().index();
    let others = ACTIVE.load(Acquire) & !(1 << me);
    for c in (0..MAX_CPUS).filter(|c| others & (1 << c) != 0) {
        if let Some(apic) = APIC_IDS.get(c) {
            crate::arch::smp::send_wake(apic.load(Relaxed));
        }
    }
}

/// The guest time (TSC ticks) a CPU in its guest keeps between two lends: a
/// domain that asks back to back (a cross-CPU hypercall in a loop) cannot
/// take more than about a fifth of another CPU's guest time (a lend costs an
/// exit, the wait for the operation and the entry: a few hundred to a
/// thousand ticks); its own CPU waits instead. About 1.5 us on a 3 GHz TSC.
pub const GUEST_TICKS: u64 = 4096;

/// When each CPU's last lend ended (TSC).
static LAST_LEND: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// For CPU `me` in its guest's exit at TSC `now`, asked to lend: `None` to
/// lend now, or the TSC from which it may ([`GUEST_TICKS`] after its last).
pub fn next_lend(me: usize, now: u64) -> Option<u64> {
    let last = LAST_LEND.get(me)?.load(Relaxed);
    let at = last.saturating_add(GUEST_TICKS);
    (now < at).then_some(at)
}

/// Whether another CPU asks CPU `me` for its view, or kicked it with
/// requests (one load: every exit looks).
#[inline(always)]
pub fn asked(me: usize) -> bool {
    SLOTS.get(me).is_some_and(|s| s.asked.load(Acquire) != 0)
}

/// Whether another CPU asks CPU `me` for its view.
pub fn lend_asked(me: usize) -> bool {
    SLOTS
        .get(me)
        .is_some_and(|s| s.asked.load(Acquire) & LEND != 0)
}

/// Whether CPU `me` was kicked with requests since it last looked
/// ([`looked`]).
pub fn kicked(me: usize) -> bool {
    SLOTS
        .get(me)
        .is_some_and(|s| s.asked.load(Acquire) & KICKED != 0)
}

/// CPU `me` looks at its requests now (a kick after this is a new one).
pub fn looked(me: usize) {
    if let Some(s) = SLOTS.get(me) {
        s.asked.fetch_and(!KICKED, AcqRel);
    }
}

/// CPU `me` looked at its requests ([`looked`]) and found some it leaves
/// for its run loop's top: it is kicked again, without an IPI.
pub fn rekick(me: usize) {
    if let Some(s) = SLOTS.get(me) {
        s.asked.fetch_or(KICKED, Release);
    }
}

/// If another CPU asks, lend it `view` until it gives it back. Returns
/// whether it was lent (the view may have changed).
pub fn serve<T>(me: usize, view: &mut T) -> bool {
    let Some(s) = SLOTS.get(me) else {
        return false;
    };
    if s.asked.fetch_and(!LEND, Acquire) & LEND == 0 {
        return false;
    }
    let name = core::any::type_name::<T>();
    s.type_name.store(name.as_ptr().cast_mut(), Relaxed);
    s.type_len.store(name.len() as u32, Relaxed);
    s.view.store((view as *mut T).cast(), Relaxed);
    // Release: the view, and everything this CPU wrote to its state, is seen
    // by the borrower that reads LENT.
    s.state.store(LENT, Release);
    while s.state.load(Acquire) != RETURNED {
        core::hint::spin_loop();
    }
    s.view.store(core::ptr::null_mut(), Relaxed);
    if let Some(t) = LAST_LEND.get(me) {
        t.store(crate::arch::timer::rdtsc(), Relaxed);
    }
    s.state.store(IDLE, Release);
    true
}

/// Take the cross lock, serving requests with `own` while it is held by
/// another CPU.
fn lock<T>(me: usize, own: &mut T) {
    let ticket = NEXT_TICKET.fetch_add(1, Relaxed);
    while SERVING.load(Acquire) != ticket {
        serve(me, own);
        core::hint::spin_loop();
    }
}

/// Give the cross lock to the next ticket.
fn unlock() {
    SERVING.fetch_add(1, Release);
}

/// The views lent for one cross-CPU operation, by CPU.
pub struct Lent<'v, T> {
    views: [Option<&'v mut T>; MAX_CPUS],
    /// The CPU that holds the lock.
    me: usize,
    /// The CPUs asked to lend (bit per CPU): each is given back at the end.
    asked: u32,
}

impl<'v, T> Lent<'v, T> {
    /// CPU `cpu`'s view, if it lent one.
    pub fn get_mut(&mut self, cpu: usize) -> Option<&mut T> {
        self.views.get_mut(cpu)?.as_deref_mut()
    }

    /// CPU `cpu`'s view, if it lent one.
    pub fn get(&self, cpu: usize) -> Option<&T> {
        self.views.get(cpu)?.as_deref()
    }

    /// Every lent view, with its CPU.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.views
            .iter()
            .enumerate()
            .filter_map(|(c, v)| Some((c, v.as_deref()?)))
    }

    /// Ask the CPUs of `mask` that run domains (not this one, not those
    /// asked already) and wait for their views: an operation that lent
    /// fewer ([`cross_some`]) and finds it needs more (a flush it made owes
    /// every CPU of the domain: they leave their guests now, before the
    /// operation ends).
    pub fn ask(&mut self, mask: u32) {
        let new = mask & ACTIVE.load(Acquire) & !(1 << self.me) & !self.asked;
        if new == 0 {
            return;
        }
        for c in (0..MAX_CPUS).filter(|c| new & (1 << c) != 0) {
            if let (Some(s), Some(apic)) = (SLOTS.get(c), APIC_IDS.get(c)) {
                s.asked.fetch_or(LEND, Release);
                crate::arch::smp::send_wake(apic.load(Relaxed));
            }
        }
        self.asked |= new;
        let name = core::any::type_name::<T>();
        for c in (0..MAX_CPUS).filter(|c| new & (1 << c) != 0) {
            let Some(s) = SLOTS.get(c) else { continue };
            while s.state.load(Acquire) != LENT {
                core::hint::spin_loop();
            }
            let p = s.view.load(Relaxed);
            // SAFETY: the name was published before the view (Release/Acquire).
            let lent_name = unsafe {
                core::slice::from_raw_parts(
                    s.type_name.load(Relaxed).cast_const(),
                    s.type_len.load(Relaxed) as usize,
                )
            };
            assert!(
                lent_name == name.as_bytes(),
                "smp: CPU {c} lent a view of another type"
            );
            // SAFETY: CPU `c` published a `&mut T` (same type, checked) and
            // spins without touching it until RETURNED, which `cross_some`
            // sets only after the operation has returned and every borrow
            // of `self` (whose views live no longer than it) has ended.
            if let Some(v) = self.views.get_mut(c) {
                *v = Some(unsafe { &mut *p.cast::<T>() });
            }
        }
    }
}

/// Run `op` on CPU `me` with its own view `own` and the views of every other
/// CPU that runs domains (see the module's steps).
pub fn cross<T, R>(me: usize, own: &mut T, op: impl FnOnce(&mut T, &mut Lent<'_, T>) -> R) -> R {
    cross_some(me, own, u32::MAX, op)
}

/// [`cross`], asking only the CPUs of `mask` (bit per CPU): the others go
/// on running their guests. For an operation that reaches only the domains
/// of those CPUs; it can still ask for more ([`Lent::ask`]).
pub fn cross_some<T, R>(
    me: usize,
    own: &mut T,
    mask: u32,
    op: impl FnOnce(&mut T, &mut Lent<'_, T>) -> R,
) -> R {
    lock(me, own);
    let mut lent = Lent {
        views: [const { None }; MAX_CPUS],
        me,
        asked: 0,
    };
    lent.ask(mask);
    // `lent`'s borrows end with `op`: nothing of them is used past here.
    let r = op(own, &mut lent);
    let asked = lent.asked;
    for c in (0..MAX_CPUS).filter(|c| asked & (1 << c) != 0) {
        if let Some(s) = SLOTS.get(c) {
            s.state.store(RETURNED, Release);
        }
    }
    unlock();
    r
}
