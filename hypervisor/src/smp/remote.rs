//! # A domain's vCPUs on other CPUs: where each runs, and what its CPUs ask of each other
//!
//! A domain runs on its CPU (its *home*, `keel.cpu=`); a vCPU placed on
//! another CPU with `keel.vcpu_cpus=` is a *remote* vCPU. Its CPU enters it
//! and handles each of its exits with the home CPU's view lent
//! (`vmx::lend`, `vmx::run`); what the two CPUs must tell each other outside
//! those operations goes through the words here, each followed by a wake-up
//! IPI to the CPU it concerns (`vmx::lend::kick`), which looks at its
//! requests ([`take_pending`], [`take_woken`]) at the top of its run loop:
//!
//! - to the vCPU's CPU: start it ([`request_up`]), wake it
//!   ([`request_wake`]: a running one takes its own in the IPI's exit,
//!   [`take_wake_running`]), drop it (its domain ended: [`set_dead`]);
//! - to the home CPU: the domain's vCPUs changed state ([`request_sync`]),
//!   a remote vCPU ended the domain ([`request_end`]), a remote vCPU was
//!   dropped ([`dropped`]: its domain's teardown waits for that).
//!
//! The TLB shootdown's clock is here too: [`flush_epoch`] counts the
//! flushes a domain with remote vCPUs was owed; each CPU compares it with
//! the count it last flushed at before it enters one of the domain's vCPUs
//! (`smp::tlb` decides; [`placed`] is the set of CPUs a shootdown asks).

use crate::boot::MAX_RUN_CPU as MAX_CPUS;
use crate::domain::vcpus::MAX_VCPUS;
use crate::domain::DomainId;
use crate::smp::tlb;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::*};

/// Domain ids index these tables (id 0 unused).
const DOMS: usize = crate::boot::MAX_MODULES + 1;

/// No CPU of its own: the vCPU runs on its domain's CPU.
const HOME: u8 = u8::MAX;

static VCPU_CPU: [[AtomicU8; MAX_VCPUS]; DOMS] =
    [const { [const { AtomicU8::new(HOME) }; MAX_VCPUS] }; DOMS];
/// Bit `v`: vCPU `v` is remote.
static REMOTE: [AtomicU8; DOMS] = [const { AtomicU8::new(0) }; DOMS];
/// Bit `c`: a remote vCPU is placed on CPU `c` (one load for a shootdown).
static CPUS: [AtomicU32; DOMS] = [const { AtomicU32::new(0) }; DOMS];
/// Bit `v`: its CPU holds state for remote vCPU `v` (set when it starts it,
/// cleared when it drops it).
static HELD: [AtomicU8; DOMS] = [const { AtomicU8::new(0) }; DOMS];
/// Bit `v`: remote vCPU `v` has a slot in its CPU's scheduler.
static STARTED: [AtomicU8; DOMS] = [const { AtomicU8::new(0) }; DOMS];
static UP: [AtomicU8; DOMS] = [const { AtomicU8::new(0) }; DOMS];
static WAKE: [AtomicU8; DOMS] = [const { AtomicU8::new(0) }; DOMS];
static SYNC: [AtomicBool; DOMS] = [const { AtomicBool::new(false) }; DOMS];
/// How a remote vCPU ended the domain (0: it did not), as `vmx::run` codes it.
static END: [AtomicU64; DOMS] = [const { AtomicU64::new(0) }; DOMS];
static DEAD: [AtomicBool; DOMS] = [const { AtomicBool::new(false) }; DOMS];
static FLUSH: [AtomicU64; DOMS] = [const { AtomicU64::new(0) }; DOMS];
/// A CPU has requests to look at.
static PENDING: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Bit `d`: domain `d` has wake requests for vCPUs on the CPU. Apart from
/// [`PENDING`]: a wake for the visitor a CPU is running is finished in that
/// visitor's exit, without ending its run ([`take_wake_running`]).
static WOKEN: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Events were posted to a domain of the CPU ([`request_events`]).
static EVENTS: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

fn at<T>(t: &[T], d: DomainId) -> Option<&T> {
    t.get(usize::from(d.0))
}

/// vCPU `v` of domain `d` runs on CPU `cpu`, not on the domain's (at boot,
/// before any CPU runs a domain).
pub fn place_vcpu(d: DomainId, v: u32, cpu: usize) {
    let (Some(row), Some(r), Ok(c)) = (at(&VCPU_CPU, d), at(&REMOTE, d), u8::try_from(cpu)) else {
        return;
    };
    if let Some(x) = row.get(v as usize) {
        x.store(c, Relaxed);
        r.fetch_or(1 << v, Relaxed);
        if let Some(m) = at(&CPUS, d) {
            m.fetch_or(tlb::CpuSet::one(cpu).mask32(), Relaxed);
        }
    }
}

/// The CPU remote vCPU `v` of `d` runs on (`None`: it runs on its domain's).
#[inline]
pub fn vcpu_cpu(d: DomainId, v: u32) -> Option<usize> {
    let c = at(&VCPU_CPU, d)?.get(v as usize)?.load(Relaxed);
    (c != HOME).then_some(usize::from(c))
}

/// The CPUs domain `d`'s vCPUs are placed on, `home` (its own CPU) with
/// its remote vCPUs' (placement is made at boot and never changes).
#[inline]
pub fn placed(d: DomainId, home: usize) -> tlb::CpuSet {
    let remote = at(&CPUS, d).map_or(0, |m| m.load(Relaxed));
    tlb::CpuSet::one(home).union(tlb::CpuSet::from_mask32(remote))
}

/// Whether domain `d` has remote vCPUs.
#[inline(always)]
pub fn spread(d: DomainId) -> bool {
    at(&REMOTE, d).is_some_and(|r| r.load(Relaxed) != 0)
}

/// The remote vCPUs of live domains CPU `cpu` runs, as `(domain, vCPU)`.
pub fn hosted(cpu: usize) -> impl Iterator<Item = (DomainId, u32)> {
    (1..DOMS as u16).flat_map(move |id| {
        let d = DomainId(id);
        (0..MAX_VCPUS as u32)
            .filter_map(move |v| (vcpu_cpu(d, v) == Some(cpu) && !dead(d)).then_some((d, v)))
    })
}

/// CPU `cpu` has requests: look at them at the top of its run loop.
fn post(cpu: usize) {
    if let Some(p) = PENDING.get(cpu) {
        p.store(true, Release);
    }
}

/// Events were posted to a domain of CPU `cpu` (`crate::peers::inbox`):
/// it takes them in its next exit or at the top of its run loop (kick it
/// after this). A flag apart from the other requests: those end the
/// running vCPU's run, these need not.
pub fn request_events(cpu: usize) {
    if let Some(p) = EVENTS.get(cpu) {
        p.store(true, Release);
    }
}

/// Take CPU `cpu`'s posted-events flag: whether it had one.
pub fn take_events(cpu: usize) -> bool {
    EVENTS.get(cpu).is_some_and(|p| p.swap(false, AcqRel))
}

/// Whether CPU `cpu` has requests (one load: every exit of a CPU that runs
/// remote vCPUs or their domains looks).
#[inline(always)]
pub fn pending(cpu: usize) -> bool {
    PENDING.get(cpu).is_some_and(|p| p.load(Relaxed))
}

/// Whether any CPU has requests it has not looked at.
pub fn any_pending() -> bool {
    PENDING.iter().chain(&EVENTS).any(|p| p.load(Acquire))
        || WOKEN.iter().any(|w| w.load(Acquire) != 0)
}

/// Whether CPU `cpu` has wake requests it has not looked at.
#[inline]
pub fn woken(cpu: usize) -> bool {
    WOKEN.get(cpu).is_some_and(|w| w.load(Relaxed) != 0)
}

/// Take CPU `cpu`'s wake flag (its run loop then takes every wake request
/// of its vCPUs, [`take_wake`]): whether it had one.
pub fn take_woken(cpu: usize) -> bool {
    WOKEN.get(cpu).is_some_and(|w| w.swap(0, AcqRel) != 0)
}

/// CPU `cpu` runs remote vCPU `v` of `d` (in its exit): take a wake request
/// for it. Returns whether there was one, and whether wake requests of
/// other vCPUs remain for this CPU (then left for its run loop, the flag
/// set again).
pub fn take_wake_running(cpu: usize, d: DomainId, v: u32) -> (bool, bool) {
    let (Some(w), Some(word)) = (WOKEN.get(cpu), at(&WAKE, d)) else {
        return (false, false);
    };
    let doms = w.swap(0, AcqRel);
    if doms == 0 {
        return (false, false);
    }
    let mine = word.fetch_and(!(1 << v), AcqRel) & 1 << v != 0;
    // The domain's other vCPUs on this CPU, walked only when the domain has
    // another wake request left.
    let left = word.load(Acquire);
    let same = doms & 1 << d.0 != 0 && left != 0 && left & on_cpu(d, cpu) != 0;
    let rest = doms & !(1 << d.0) | if same { 1 << d.0 } else { 0 };
    if rest != 0 {
        w.fetch_or(rest, AcqRel);
    }
    (mine, rest != 0)
}

/// Take CPU `cpu`'s requests flag: whether it had any.
pub fn take_pending(cpu: usize) -> bool {
    PENDING.get(cpu).is_some_and(|p| p.swap(false, AcqRel))
}

/// Remote vCPU `v` of `d` is up: its CPU (returned, to wake) starts it, or
/// gives it its scheduler slot back.
pub fn request_up(d: DomainId, v: u32) -> Option<usize> {
    let c = vcpu_cpu(d, v)?;
    at(&UP, d)?.fetch_or(1 << v, AcqRel);
    post(c);
    Some(c)
}

/// The vCPUs of `d` placed on CPU `cpu`, as bits.
fn on_cpu(d: DomainId, cpu: usize) -> u8 {
    (0..MAX_VCPUS as u32)
        .filter(|&v| vcpu_cpu(d, v) == Some(cpu))
        .fold(0, |m, v| m | 1 << v)
}

/// Take the bits of `word` that are requests for CPU `cpu`'s vCPUs of `d`,
/// and only those: each CPU looks at its requests when it is kicked, and a
/// request for another CPU's vCPU stays for that CPU (its own kick is on
/// its way).
fn take_for(word: &AtomicU8, d: DomainId, cpu: usize) -> u8 {
    // The common case, no request, without the placement walk: the run
    // loop asks for every domain each time it looks.
    if word.load(Acquire) == 0 {
        return 0;
    }
    let mine = on_cpu(d, cpu);
    word.fetch_and(!mine, AcqRel) & mine
}

/// The start requests for `d`'s remote vCPUs on CPU `cpu` (taken).
pub fn take_up(d: DomainId, cpu: usize) -> u8 {
    at(&UP, d).map_or(0, |u| take_for(u, d, cpu))
}

/// Wake remote vCPU `v` of `d`: its CPU (returned, to wake) makes its
/// scheduler slot runnable.
pub fn request_wake(d: DomainId, v: u32) -> Option<usize> {
    let c = vcpu_cpu(d, v)?;
    at(&WAKE, d)?.fetch_or(1 << v, AcqRel);
    WOKEN.get(c)?.fetch_or(1 << d.0, AcqRel);
    Some(c)
}

/// The wake requests for `d`'s remote vCPUs on CPU `cpu` (taken).
pub fn take_wake(d: DomainId, cpu: usize) -> u8 {
    at(&WAKE, d).map_or(0, |u| take_for(u, d, cpu))
}

/// A remote vCPU of `d` changed the state of the domain's vCPUs
/// (`VCPUOP_up`, `down`): its home CPU `home` looks at them again.
pub fn request_sync(d: DomainId, home: usize) {
    if let Some(s) = at(&SYNC, d) {
        s.store(true, Release);
        post(home);
    }
}

/// Whether `d`'s vCPUs are to be looked at again (taken).
pub fn take_sync(d: DomainId) -> bool {
    at(&SYNC, d).is_some_and(|s| s.swap(false, AcqRel))
}

/// A remote vCPU of `d` ended it (`code`, non-zero): its home CPU `home`
/// ends it.
pub fn request_end(d: DomainId, home: usize, code: u64) {
    if let Some(e) = at(&END, d) {
        let _ = e.compare_exchange(0, code, AcqRel, Relaxed);
        post(home);
    }
}

/// How a remote vCPU ended `d`, if one did (taken).
pub fn take_end(d: DomainId) -> Option<u64> {
    at(&END, d).map(|e| e.swap(0, AcqRel)).filter(|&c| c != 0)
}

/// Domain `d` has ended (its home CPU says so before its teardown): the
/// CPUs of its remote vCPUs (returned as a set, to wake) drop them.
pub fn set_dead(d: DomainId) -> u32 {
    let Some(x) = at(&DEAD, d) else { return 0 };
    x.store(true, Release);
    let mut cpus = 0u32;
    for v in 0..MAX_VCPUS as u32 {
        if let Some(c) = vcpu_cpu(d, v) {
            post(c);
            cpus |= 1 << c;
        }
    }
    cpus
}

/// Whether domain `d` has ended.
#[inline]
pub fn dead(d: DomainId) -> bool {
    at(&DEAD, d).is_some_and(|x| x.load(Acquire))
}

/// Remote vCPU `v` of `d` has state on its CPU now.
pub fn held(d: DomainId, v: u32) {
    if let Some(h) = at(&HELD, d) {
        h.fetch_or(1 << v, AcqRel);
    }
}

/// Remote vCPU `v` of `d` was dropped by its CPU (nothing of it is left
/// there, and it never runs again): the home CPU `home` goes on with the
/// domain's teardown.
pub fn dropped(d: DomainId, v: u32, home: Option<usize>) {
    if let Some(h) = at(&HELD, d) {
        h.fetch_and(!(1 << v), AcqRel);
    }
    if let Some(s) = at(&STARTED, d) {
        s.fetch_and(!(1 << v), AcqRel);
    }
    if let Some(c) = home {
        post(c);
    }
}

/// Whether some remote vCPU of `d` still has state on its CPU (the
/// domain's teardown waits: that CPU may still run it).
pub fn any_held(d: DomainId) -> bool {
    at(&HELD, d).is_some_and(|h| h.load(Acquire) != 0)
}

/// Whether remote vCPU `v` of `d` has a scheduler slot on its CPU.
pub fn started(d: DomainId, v: u32) -> bool {
    at(&STARTED, d).is_some_and(|s| s.load(Acquire) & (1 << v) != 0)
}

/// Remote vCPU `v` of `d` has (`true`) or has not a scheduler slot on its CPU.
pub fn set_started(d: DomainId, v: u32, on: bool) {
    if let Some(s) = at(&STARTED, d) {
        if on {
            s.fetch_or(1 << v, AcqRel);
        } else {
            s.fetch_and(!(1 << v), AcqRel);
        }
    }
}

/// A TLB flush was owed to domain `d`'s vCPUs (one of them changed the
/// domain's page tables): every CPU that runs one flushes its VPID before
/// entering it again. No-op for a domain without remote vCPUs.
#[inline]
pub fn flushed(d: DomainId) {
    if spread(d) {
        if let Some(f) = at(&FLUSH, d) {
            f.fetch_add(1, AcqRel);
        }
    }
}

/// The count of flushes domain `d` was owed so far.
#[inline]
pub fn flush_epoch(d: DomainId) -> u64 {
    at(&FLUSH, d).map_or(0, |f| f.load(Acquire))
}

/// Whether domain `d` was owed a flush since `seen` (the epoch a CPU last
/// flushed one of its vCPUs at), which moves to now: the caller flushes.
#[inline]
pub fn flush_due(d: DomainId, seen: &mut u64) -> bool {
    crate::smp::tlb::due(flush_epoch(d), seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The tables are statics: each test uses domain ids of its own.

    #[test]
    fn placement_and_requests() {
        let d = DomainId(5);
        assert!(!spread(d));
        assert_eq!(vcpu_cpu(d, 1), None);
        place_vcpu(d, 1, 3);
        assert!(spread(d));
        assert_eq!(vcpu_cpu(d, 1), Some(3));
        assert_eq!(vcpu_cpu(d, 2), None);
        assert_eq!(placed(d, 0), tlb::placed(0, [3]));
        assert_eq!(
            placed(DomainId(11), 2),
            tlb::CpuSet::one(2),
            "no remote vCPU"
        );
        assert!(hosted(3).any(|x| x == (d, 1)));
        assert_eq!(request_up(d, 1), Some(3));
        assert_eq!(request_up(d, 2), None, "not remote: no request");
        assert!(take_pending(3));
        assert!(!take_pending(3));
        assert_eq!(take_up(d, 3), 0b10);
        assert_eq!(take_up(d, 3), 0);
        assert_eq!(request_wake(d, 1), Some(3));
        assert_eq!(take_wake(d, 3), 0b10);
        request_end(d, 0, 7);
        request_end(d, 0, 9);
        assert_eq!(take_end(d), Some(7), "the first end wins");
        assert_eq!(take_end(d), None);
        held(d, 1);
        assert!(any_held(d));
        assert_eq!(set_dead(d), 1 << 3);
        assert!(dead(d) && hosted(3).all(|x| x.0 != d));
        dropped(d, 1, Some(0));
        assert!(!any_held(d));
        assert!(take_pending(0));
    }

    /// Remote vCPUs of one domain on several CPUs: each CPU takes the
    /// requests for its own vCPUs only, whichever looks first.
    #[test]
    fn each_cpu_takes_its_own_requests() {
        let d = DomainId(8);
        for (v, c) in [(1, 1), (2, 2), (3, 3), (4, 2)] {
            place_vcpu(d, v, c);
        }
        assert_eq!(request_wake(d, 1), Some(1));
        assert_eq!(request_wake(d, 3), Some(3));
        assert_eq!(request_wake(d, 4), Some(2));
        assert!(!pending(2), "a wake is not a request of the other kinds");
        assert!(woken(2) && take_woken(2) && !woken(2));
        assert_eq!(take_wake(d, 2), 1 << 4, "CPU 2 takes vCPU 4's only");
        assert_eq!(take_wake(d, 2), 0);
        assert_eq!(take_wake(d, 0), 0, "vCPU 0 is not remote");
        assert_eq!(take_wake(d, 1), 1 << 1, "left for CPU 1");
        assert_eq!(take_wake(d, 3), 1 << 3, "left for CPU 3");
        assert_eq!(request_up(d, 2), Some(2));
        assert_eq!(request_up(d, 1), Some(1));
        assert_eq!(take_up(d, 1), 1 << 1);
        assert_eq!(take_up(d, 3), 0);
        assert_eq!(take_up(d, 2), 1 << 2);
        assert_eq!(take_up(d, 2), 0);
    }

    /// A wake for the visitor a CPU runs is taken in its exit; the others
    /// stay for the run loop, with the flag set again.
    #[test]
    fn a_running_visitor_takes_its_own_wake() {
        let (d, e) = (DomainId(12), DomainId(13));
        place_vcpu(d, 1, 6);
        place_vcpu(d, 2, 6);
        place_vcpu(e, 1, 6);
        assert_eq!(take_wake_running(6, d, 1), (false, false), "nothing asked");
        request_wake(d, 1);
        assert_eq!(take_wake_running(6, d, 1), (true, false));
        assert!(!woken(6), "nothing left for the run loop");
        assert_eq!(take_wake(d, 6), 0, "taken");
        // Another vCPU of the domain on this CPU: left, flag set again.
        request_wake(d, 1);
        request_wake(d, 2);
        assert_eq!(take_wake_running(6, d, 1), (true, true));
        assert!(woken(6));
        assert!(take_woken(6));
        assert_eq!(take_wake(d, 6), 1 << 2);
        // Another domain's vCPU: left too.
        request_wake(e, 1);
        assert_eq!(take_wake_running(6, d, 1), (false, true));
        assert!(take_woken(6));
        assert_eq!(take_wake(e, 6), 1 << 1);
        assert!(!woken(6));
    }

    #[test]
    fn flush_epoch_counts_only_spread_domains() {
        let (one, two) = (DomainId(6), DomainId(7));
        flushed(one);
        assert_eq!(flush_epoch(one), 0);
        place_vcpu(two, 1, 1);
        let mut seen = flush_epoch(two);
        assert!(!flush_due(two, &mut seen));
        flushed(two);
        assert!(flush_due(two, &mut seen), "one flush owed");
        assert!(!flush_due(two, &mut seen), "and only once");
    }
}
