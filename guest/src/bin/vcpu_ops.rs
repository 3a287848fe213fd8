//! `vcpu_op`'s vCPU operations (ABI 1.2, in progress: this image declares
//! 1.2 to be served them) on a one-vCPU domain: `VCPUOP_is_up`, `up`,
//! `initialise` for vCPU 0 and beyond the count; `VCPUOP_get_runstate_info`
//! (running now, its times adding up to system time, blocked time growing
//! across a `SCHEDOP_block` on a timer, the copy checked as every copy is);
//! `VCPUOP_register_vcpu_info` (Xen 4.17's refusals, once only, the record
//! moved with everything marked pending, and an event that still arrives and
//! is seen at the new place while `shared_info`'s entry stays quiet).
//! `VCPUOP_down` of the only vCPU powers the domain off (host-tested).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::SeqCst};

use keel_guest::abi::guest::{self, vcpu_op_raw};
use keel_guest::abi::time::offsets;
use keel_guest::abi::vcpu::*;
use keel_guest::abi::version::AbiVersion;
use keel_guest::arch;
use keel_guest::events;
use keel_guest::prelude::*;
use keel_guest::start;

keel_guest::test! {
    title: "vcpu_op: is_up, up, initialise, runstate, register_vcpu_info (ABI 1.2 preview)",
    category: Functional,
    abi: AbiVersion::V1_2,
    main: test_main,
}

const VECTOR: u8 = 0xf4;
static UPCALL_PORTS: AtomicU64 = AtomicU64::new(0);
static LAST_PORT: AtomicU32 = AtomicU32::new(u32::MAX);

fn on_event(port: u32) {
    UPCALL_PORTS.fetch_add(1, SeqCst);
    LAST_PORT.store(port, SeqCst);
}

/// A writable page of our own: the new home of vCPU 0's `vcpu_info`.
#[repr(C, align(4096))]
struct Page([AtomicU8; 4096]);
#[allow(clippy::declare_interior_mutable_const)]
const Z: AtomicU8 = AtomicU8::new(0);
static PAGE: Page = Page([Z; 4096]);
/// Where in [`PAGE`] the record goes (8-byte aligned, away from the start).
const OFFSET: u32 = 0x140;

/// A `vcpu_guest_context` to offer (its contents do not matter: every call
/// here is refused before it is looked at).
#[repr(C, align(8))]
struct Ctx([u8; 5168]);
static CONTEXT: Ctx = Ctx([0; 5168]);

fn test_main() {
    check_eq!(
        guest::xen_version(),
        AbiVersion::CURRENT,
        "the hypervisor still reports its released version to a 1.2 preview"
    );
    let ctx = &CONTEXT as *const Ctx as u64;

    // Which vCPUs exist: vCPU 0 only.
    check_eq!(vcpu_op_raw(VCPUOP_IS_UP, 0, 0), Ok(1), "is_up(0)");
    for id in [1u64, 2, 7, 31, 32, 1 << 32, u64::MAX] {
        for (cmd, name, arg) in [
            (VCPUOP_IS_UP, "is_up", 0),
            (VCPUOP_UP, "up", 0),
            (VCPUOP_DOWN, "down", 0),
            (VCPUOP_INITIALISE, "initialise", ctx),
            (VCPUOP_GET_RUNSTATE_INFO, "get_runstate_info", ctx),
            (VCPUOP_REGISTER_VCPU_INFO, "register_vcpu_info", ctx),
        ] {
            check_eq!(
                vcpu_op_raw(cmd, id, arg),
                Err(Errno::ENOENT),
                "{name}({id:#x}): beyond the domain's one vCPU"
            );
        }
    }
    check_eq!(
        vcpu_op_raw(VCPUOP_UP, 0, 0),
        Ok(0),
        "up(0) of a running vCPU"
    );
    check_eq!(
        vcpu_op_raw(VCPUOP_INITIALISE, 0, 0),
        Err(Errno::EFAULT),
        "initialise(0) with a NULL context"
    );
    check_eq!(
        vcpu_op_raw(VCPUOP_INITIALISE, 0, ctx),
        Err(Errno::EEXIST),
        "initialise(0): vCPU 0 has its boot state"
    );
    check_eq!(
        vcpu_op_raw(VCPUOP_IS_UP, 0, 0),
        Ok(1),
        "still up after the refusals"
    );

    runstate();
    register_vcpu_info();
    success();
}

fn runstate() {
    // The copy out is checked as every copy is.
    let text = test_main as *const () as u64;
    for (va, what) in [
        (0u64, "NULL"),
        (text, "read-only text"),
        (1 << 47, "non-canonical"),
    ] {
        check_eq!(
            vcpu_op_raw(VCPUOP_GET_RUNSTATE_INFO, 0, va),
            Err(Errno::EFAULT),
            "get_runstate_info(0) into {what}"
        );
    }
    let before = events::now_ns();
    let r = match guest::vcpu_runstate(0) {
        Ok(r) => r,
        Err(e) => {
            failure!("get_runstate_info(0): {e}");
            return;
        }
    };
    let after = events::now_ns();
    println!(
        "runstate: state {} since {} ns; running {} runnable {} blocked {} offline {} ns",
        r.state, r.state_entry_time, r.time[0], r.time[1], r.time[2], r.time[3]
    );
    check_eq!(r.state, RUNSTATE_RUNNING as i32, "the caller is running");
    check!(
        r.state_entry_time <= after,
        "entered its state in the future"
    );
    // The hypervisor's clock and the pvclock read may round a nanosecond apart.
    let sum: u64 = r.time.iter().sum();
    check!(
        (before.saturating_sub(16)..=after + 16).contains(&sum),
        "the times add up to {sum} ns, system time was {before}..={after} ns"
    );
    check_eq!(r.time[RUNSTATE_OFFLINE as usize], 0, "never offline");

    // Blocked time grows across a SCHEDOP_block on a 3 ms timer; the time
    // around it is the sum of what grew.
    if let Err(e) = events::bind_timer_upcalls(VECTOR, on_event) {
        failure!("{e}");
        return;
    }
    let r0 = guest::vcpu_runstate(0).unwrap_or_default();
    let (deadline, woke) = match events::block_on_timer(3_000_000) {
        Ok(t) => t,
        Err(e) => {
            failure!("block: {e}");
            return;
        }
    };
    let r1 = guest::vcpu_runstate(0).unwrap_or_default();
    events::enable();
    arch::sti();
    let grew = |s: u32| r1.time[s as usize] - r0.time[s as usize];
    let (blocked, running) = (grew(RUNSTATE_BLOCKED), grew(RUNSTATE_RUNNING));
    println!(
        "across a 3 ms block: blocked +{blocked} ns, running +{running} ns, runnable +{} ns; woke {} ns after the deadline",
        grew(RUNSTATE_RUNNABLE),
        woke.saturating_sub(deadline)
    );
    check_eq!(
        r1.state,
        RUNSTATE_RUNNING as i32,
        "running again after the block"
    );
    check!(
        blocked >= 2_000_000,
        "blocked time grew by {blocked} ns across a 3 ms block"
    );
    let elapsed: u64 = r1.time.iter().sum::<u64>() - r0.time.iter().sum::<u64>();
    check!(
        blocked < elapsed && running < elapsed,
        "blocked {blocked} ns and running {running} ns out of {elapsed} ns"
    );
    check!(
        r1.state_entry_time >= deadline,
        "running again since {} ns, before the timer's deadline {deadline} ns",
        r1.state_entry_time
    );
}

fn register_vcpu_info() {
    let page = GuestVirt::new(PAGE.0.as_ptr() as u64);
    let Some(mfn) = start::va_to_pfn(page).and_then(|p| start::pfn_to_mfn(p).ok()) else {
        failure!("no frame behind the vcpu_info page at {:#x}", page.get());
        return;
    };
    let l4 = start::start_info().pt_base;
    let l4_mfn = start::va_to_pfn(l4).and_then(|p| start::pfn_to_mfn(p).ok());
    let reg = |mfn: u64, off: u32| guest::vcpu_register_vcpu_info(0, mfn, off);

    // Xen 4.17's refusals, none of which moves anything.
    check_eq!(
        reg(mfn.get(), 4),
        Err(Errno::ENXIO),
        "offset not 8-byte aligned"
    );
    check_eq!(
        reg(mfn.get(), 4096 - 56),
        Err(Errno::ENXIO),
        "record past the page"
    );
    check_eq!(
        reg(mfn.get(), 4096),
        Err(Errno::ENXIO),
        "offset past the page"
    );
    if let Some(l4) = l4_mfn {
        check_eq!(reg(l4.get(), 0), Err(Errno::EINVAL), "a page-table frame");
    }
    check_eq!(reg(0, 0), Err(Errno::EINVAL), "a frame not the domain's");
    check_eq!(
        reg(1 << 40, 0),
        Err(Errno::EINVAL),
        "a frame number out of range"
    );
    check_eq!(
        vcpu_op_raw(VCPUOP_REGISTER_VCPU_INFO, 0, 0),
        Err(Errno::EFAULT),
        "a NULL argument"
    );

    // Quiet first: no upcall pending, nothing selected, events masked.
    arch::cli();
    events::disable();
    events::drain();
    let old_mask = events::upcall_mask().load(SeqCst);
    let si = events::shared_info().map_or(0, |v| v.get());
    let new_va = GuestVirt::new(page.get() + u64::from(OFFSET));
    check_eq!(
        events::register_vcpu_info(new_va, mfn, OFFSET),
        Ok(()),
        "register_vcpu_info at {OFFSET:#x} in our page"
    );
    check_eq!(
        reg(mfn.get(), 0),
        Err(Errno::EINVAL),
        "a second registration"
    );
    // The record moved: its mask came along, every selector bit and the
    // upcall flag are set, and the pvclock is there.
    let at = |off: usize| PAGE.0[OFFSET as usize + off].load(SeqCst);
    check_eq!(
        at(offsets::upcall_mask(0)),
        old_mask,
        "the upcall mask moved"
    );
    check_eq!(
        at(offsets::upcall_pending(0)),
        1,
        "upcall pending after the move"
    );
    check_eq!(
        events::pending_sel().load(SeqCst),
        u64::MAX,
        "every selector bit after the move"
    );
    let t = events::time_info();
    check!(
        t.version > 0 && t.version.is_multiple_of(2) && t.tsc_to_system_mul != 0,
        "a pvclock record at the new place (version {}, mul {:#x})",
        t.version,
        t.tsc_to_system_mul
    );
    let a = events::now_ns();
    let b = events::now_ns();
    check!(
        b >= a && a > 0,
        "the clock read at the new place: {a}, then {b}"
    );

    // The spurious upcall comes, and finds nothing (or the timer).
    UPCALL_PORTS.store(0, SeqCst);
    events::enable();
    arch::sti();
    let _ = guest::xen_version();
    arch::cli();
    events::disable();
    events::drain();

    // shared_info's entry 0 is no longer written: clear it, then send an event.
    let old_pending = arch::shared_u8(si + offsets::upcall_pending(0) as u64);
    let old_sel = arch::shared_u64(si + offsets::pending_sel(0) as u64);
    old_pending.store(0, SeqCst);
    old_sel.store(0, SeqCst);
    let ipi = match guest::evtchn_bind_ipi(0) {
        Ok(p) => p,
        Err(e) => {
            failure!("EVTCHNOP_bind_ipi: {e}");
            return;
        }
    };
    UPCALL_PORTS.store(0, SeqCst);
    LAST_PORT.store(u32::MAX, SeqCst);
    check_eq!(guest::evtchn_send(ipi), Ok(()), "EVTCHNOP_send");
    check_eq!(
        at(offsets::upcall_pending(0)),
        1,
        "the event flagged at the new place"
    );
    check!(
        events::pending_sel().load(SeqCst) & (1 << (ipi / 64)) != 0,
        "the event's selector bit at the new place"
    );
    check_eq!(
        old_pending.load(SeqCst),
        0,
        "shared_info's upcall flag untouched"
    );
    check_eq!(old_sel.load(SeqCst), 0, "shared_info's selector untouched");
    // Unmasked at the new place, the upcall is delivered and sees the port.
    events::enable();
    arch::sti();
    let _ = guest::xen_version();
    check!(
        UPCALL_PORTS.load(SeqCst) >= 1 && LAST_PORT.load(SeqCst) == ipi,
        "the IPI's upcall: {} ports handed over, last {}",
        UPCALL_PORTS.load(SeqCst),
        LAST_PORT.load(SeqCst)
    );
    check_eq!(
        at(offsets::upcall_pending(0)),
        0,
        "the upcall cleared the flag"
    );
    println!(
        "vcpu_info moved to frame {:#x} + {OFFSET:#x}; the IPI on port {ipi} arrived there",
        mfn.get()
    );
}
