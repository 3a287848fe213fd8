//! The ABI compatibility guest (`docs/abi-versioning.md`).
//!
//! One binary, two jobs. Built from the release commit of a version and frozen in
//! `abi/fixtures/<version>/compat-guest.elf`, it proves that every *later*
//! hypervisor still keeps what that version promised (old guest, new hypervisor).
//! Built from the current tree and booted on the frozen hypervisor of every
//! released version, it proves that a *new* guest copes with an old hypervisor
//! by detecting what is missing (new guest, old hypervisor).
//!
//! So it declares, in its ABI note, not the version it was built against but the
//! oldest released version the current one runs (0.1; `AbiVersion::can_run`):
//! every released hypervisor must run it. It then asks the hypervisor's version `hv` and, from the
//! data of the `keel-abi` it was built with:
//!
//! - checks each sub-command implemented since a version `<= hv`
//!   (`hypercall::IMPLEMENTED`): results and errors as `docs/abi/` describes;
//! - expects `-ENOSYS` from each sub-command newer than `hv`, and from every
//!   hypercall this crate knows as unimplemented when `hv` is not newer than this
//!   crate (a newer hypervisor may implement more: those are left alone);
//! - checks the CPUID leaves against `xen_version` and the `start_info` invariants.
//!
//! What the hypervisor lacks is printed as `not in ABI <hv>: ...`, not reported as
//! a SKIP: detecting it correctly *is* the test, and the verdict is SUCCESS only
//! when everything `hv` promises works and everything newer is `-ENOSYS`.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::console::{CONSOLEIO_READ, CONSOLEIO_WRITE, CONSOLEIO_WRITE_MAX};
use keel_guest::abi::debug::guest as debug_guest;
use keel_guest::abi::debug::{DEBUGOP_NOP, DEBUGOP_READ_COUNTERS, KEEL_DEBUG_OP};
use keel_guest::abi::domctl::XenDomctl;
use keel_guest::abi::event::{
    callback_vector, EvtchnBindInterdomain, DOMID_SELF, EVTCHNOP_ALLOC_UNBOUND,
    EVTCHNOP_BIND_INTERDOMAIN, EVTCHNOP_BIND_IPI, EVTCHNOP_BIND_VCPU, EVTCHNOP_BIND_VIRQ,
    EVTCHNOP_CLOSE, EVTCHNOP_SEND, EVTCHNOP_STATUS, EVTCHNOP_UNMASK, EVTCHNSTAT_INTERDOMAIN,
    EVTCHNSTAT_IPI, EVTCHNSTAT_UNBOUND, EVTCHNSTAT_VIRQ, HVM_CALLBACK_VECTOR_MIN,
    KEEL_NR_EVTCHN_PORTS, NR_VIRQS, VIRQ_DEBUG,
};
use keel_guest::abi::grant_table::*;
use keel_guest::abi::guest::{self, hypercall_scalar};
use keel_guest::abi::hypercall::{self, Hypercall, SubCommand};
use keel_guest::abi::layout;
use keel_guest::abi::mmu::*;
use keel_guest::abi::sched::{
    SCHEDOP_BLOCK, SCHEDOP_POLL, SCHEDOP_SHUTDOWN, SCHEDOP_YIELD, SCHED_POLL_MAX_PORTS,
};
use keel_guest::abi::start_info::{MAGIC, MAX_GUEST_CMDLINE};
use keel_guest::abi::time::{
    PERIODIC_TIMER_MIN_NS, VCPUOP_SET_PERIODIC_TIMER, VCPUOP_SET_SINGLESHOT_TIMER,
    VCPUOP_STOP_PERIODIC_TIMER, VCPUOP_STOP_SINGLESHOT_TIMER, VCPU_SSHOTTMR_FUTURE,
};
use keel_guest::abi::version::{
    features, AbiVersion, CPUID_LEAF_BASE, CPUID_LEAF_VERSION, CPUID_SIGNATURE, EXTRAVERSION,
    FEATURE_SUBMAPS, XENVER_EXTRAVERSION, XENVER_GET_FEATURES, XENVER_PAGESIZE, XENVER_VERSION,
};
use keel_guest::cpu;
use keel_guest::domctl_cases;
use keel_guest::events;
use keel_guest::mmu::*;
use keel_guest::pagetable::{cr3_mfn, PteFlags};
use keel_guest::prelude::*;

const TITLE: &str =
    "ABI compatibility: what the hypervisor's version promises works, newer is -ENOSYS";

/// The version this image declares: the oldest release the current version runs
/// (0.1: major 0 is the pre-release series of 1, and a 1.x hypervisor runs every
/// 0.x guest), so that every released hypervisor runs it.
const DECLARED: AbiVersion = match layout::oldest_release_runnable_by(AbiVersion::CURRENT) {
    Some(v) => v,
    None => AbiVersion::CURRENT,
};

keel_guest::test! {
    title: TITLE,
    category: Abi,
    abi: DECLARED,
    main: test_main,
}

/// `-ENOSYS` as a hypercall result.
const ENOSYS: i64 = Errno::ENOSYS.as_return();

fn test_main() {
    let built = AbiVersion::CURRENT;
    let hv = guest::xen_version();
    println!("abi_compat: built against ABI {built}, declares {DECLARED}, hypervisor reports {hv}");
    if !check!(
        hv.can_run(DECLARED),
        "hypervisor ABI {hv} should have refused an image declaring {DECLARED}"
    ) {
        return;
    }
    if hv > built {
        println!("abi_compat: the hypervisor is newer than this guest: checking ABI {built} only");
    }

    for sc in hypercall::IMPLEMENTED {
        if sc.since <= hv {
            check_sub_command(sc, hv);
        } else {
            let r = probe(sc.hypercall, sc.sub);
            if check!(
                r == ENOSYS,
                "{}/{} (since {}) returned {r} on ABI {hv}, expected -ENOSYS",
                hc_name(sc.hypercall),
                sc.name,
                sc.since
            ) {
                println!(
                    "not in ABI {hv}: {}/{} (since {}): -ENOSYS",
                    hc_name(sc.hypercall),
                    sc.name,
                    sc.since
                );
            }
        }
    }

    // Hypercalls: the ones newer than the hypervisor, and (unless the hypervisor
    // is newer than this guest's knowledge) the ones nobody implements, must be
    // -ENOSYS. Probing passes all-zero arguments, which is harmless for every Xen
    // hypercall a hypervisor does not implement.
    for h in hypercall::ALL {
        let known_missing = match h.implemented_since() {
            Some(v) => v > hv,
            None => hv <= built,
        };
        if known_missing {
            let r = probe(*h, 0);
            check!(
                r == ENOSYS,
                "hypercall {} ({}) returned {r} on ABI {hv}, expected -ENOSYS",
                hc_name(*h),
                h.0
            );
        }
    }
    // A number that is no hypercall at all, in any version.
    let r = probe(Hypercall(u64::MAX), 0);
    check!(
        r == ENOSYS,
        "hypercall number 2^64-1 returned {r}, expected -ENOSYS"
    );

    check_debug_op(hv);
    check_cpuid(hv);
    check_start_info();
    success();
}

fn hc_name(h: Hypercall) -> &'static str {
    h.name().unwrap_or("?")
}

/// Call `h(sub, 0, 0, 0, 0)`.
fn probe(h: Hypercall, sub: u64) -> i64 {
    hypercall_scalar(h, [sub, 0, 0, 0, 0])
}

/// The checks of one sub-command the hypervisor's version promises.
fn check_sub_command(sc: &SubCommand, hv: AbiVersion) {
    let name = sc.name;
    match (sc.hypercall, sc.sub) {
        (Hypercall::XEN_VERSION, XENVER_VERSION) => {
            let r = probe(Hypercall::XEN_VERSION, XENVER_VERSION);
            check_eq!(r, i64::from(hv.encode()), "{name}");
            // Stray upper bits make another sub-command, which does not exist.
            let r = probe(Hypercall::XEN_VERSION, XENVER_VERSION | 1 << 32);
            check_eq!(
                r,
                ENOSYS,
                "xen_version with sub-command 2^32 | {XENVER_VERSION}"
            );
        }
        (Hypercall::XEN_VERSION, XENVER_EXTRAVERSION) => match guest::xen_extraversion() {
            Ok(e) => {
                check!(
                    e == EXTRAVERSION,
                    "{name}: {:?}, expected \"-keel\"",
                    e.as_bytes()
                );
            }
            Err(e) => {
                failure!("{name}: {e}");
            }
        },
        (Hypercall::XEN_VERSION, XENVER_GET_FEATURES) => {
            match guest::xen_get_features(0) {
                Ok(bits) => {
                    // A later hypervisor may set more bits; never fewer than this
                    // guest knows the hypervisor's version to have.
                    if hv == AbiVersion::CURRENT {
                        check_eq!(bits, features::SUBMAP0, "{name} submap 0");
                    }
                    check_eq!(
                        bits & features::SUBMAP0,
                        features::SUBMAP0,
                        "{name} submap 0 keeps every known bit"
                    );
                }
                Err(e) => {
                    failure!("{name}(0): {e}");
                }
            }
            check_eq!(
                guest::xen_get_features(FEATURE_SUBMAPS),
                Err(Errno::EINVAL),
                "{name}({FEATURE_SUBMAPS})"
            );
            // A NULL argument cannot be read.
            check_eq!(
                probe(Hypercall::XEN_VERSION, XENVER_GET_FEATURES),
                Errno::EFAULT.as_return(),
                "{name}(NULL)"
            );
        }
        (Hypercall::XEN_VERSION, XENVER_PAGESIZE) => {
            check_eq!(
                probe(Hypercall::XEN_VERSION, XENVER_PAGESIZE),
                PAGE_SIZE as i64,
                "{name}"
            );
            let r = hypercall_scalar(Hypercall::XEN_VERSION, [XENVER_PAGESIZE, 0x1000, 0, 0, 0]);
            check_eq!(
                r,
                Errno::EINVAL.as_return(),
                "{name} with a non-NULL argument"
            );
        }
        (Hypercall::CONSOLE_IO, CONSOLEIO_WRITE) => {
            check_eq!(
                guest::console_write(b"abi_compat: console_io works\n"),
                Ok(()),
                "{name}"
            );
            check_eq!(guest::console_write(b""), Ok(()), "{name} of 0 bytes");
            let r = hypercall_scalar(
                Hypercall::CONSOLE_IO,
                [CONSOLEIO_WRITE, CONSOLEIO_WRITE_MAX + 1, 0, 0, 0],
            );
            check_eq!(
                r,
                Errno::EINVAL.as_return(),
                "{name} of CONSOLEIO_WRITE_MAX + 1 bytes"
            );
            let r = hypercall_scalar(Hypercall::CONSOLE_IO, [CONSOLEIO_WRITE, 1, 0, 0, 0]);
            check_eq!(r, Errno::EFAULT.as_return(), "{name} from NULL");
            if hypercall::sub_implemented_since(Hypercall::CONSOLE_IO, CONSOLEIO_READ)
                .is_none_or(|v| v > hv)
            {
                check_eq!(
                    probe(Hypercall::CONSOLE_IO, CONSOLEIO_READ),
                    ENOSYS,
                    "CONSOLEIO_read"
                );
            }
        }
        (Hypercall::SCHED_OP, SCHEDOP_YIELD) => {
            check_eq!(guest::sched_yield(), Ok(()), "{name}");
        }
        (Hypercall::SCHED_OP, SCHEDOP_SHUTDOWN) => {
            // The successful case ends this test (the framework's final
            // SHUTDOWN_poweroff); here, the refusals, which must not end it.
            check_eq!(
                guest::sched_shutdown(0xdead),
                Errno::EINVAL,
                "{name} with an unknown reason"
            );
            check_eq!(
                probe(Hypercall::SCHED_OP, SCHEDOP_SHUTDOWN),
                Errno::EFAULT.as_return(),
                "{name}(NULL)"
            );
        }
        // 1.0: event channels, timers, block/poll, the callback vector. Each is
        // called the way it succeeds and with arguments it must refuse (which a
        // stub answering -ENOSYS, or one answering 0 to everything, fails).
        (Hypercall::SCHED_OP, SCHEDOP_BLOCK) => {
            // Returns at once when an event is pending (here: an IPI sent to
            // ourselves; no callback vector is registered, so nothing is injected).
            if let Some(p) = ok_or_fail("EVTCHNOP_bind_ipi", guest::evtchn_bind_ipi(0)) {
                check_eq!(guest::evtchn_send(p), Ok(()), "send on IPI port {p}");
                check_eq!(guest::sched_block(), Ok(()), "{name} with an event pending");
                check_eq!(guest::evtchn_close(p), Ok(()), "close port {p}");
            }
        }
        (Hypercall::SCHED_OP, SCHEDOP_POLL) => {
            null_is_efault(sc);
            if let Some(p) = ok_or_fail("EVTCHNOP_bind_ipi", guest::evtchn_bind_ipi(0)) {
                check_eq!(guest::evtchn_send(p), Ok(()), "send on IPI port {p}");
                check_eq!(
                    guest::sched_poll(&[p], 0),
                    Ok(()),
                    "{name} of a pending port"
                );
                let many = [p; SCHED_POLL_MAX_PORTS as usize + 1];
                check_eq!(
                    guest::sched_poll(&many, 0),
                    Err(Errno::EINVAL),
                    "{name} of SCHED_POLL_MAX_PORTS + 1 ports"
                );
                check_eq!(guest::evtchn_close(p), Ok(()), "close port {p}");
            }
        }
        (Hypercall::EVENT_CHANNEL_OP, sub) => {
            null_is_efault(sc);
            check_evtchn_op(sub, name, hv);
        }
        // 1.1: grant tables, what one domain can do with its own table and
        // frames and be refused.
        (Hypercall::GRANT_TABLE_OP, sub) => check_grant_op(sub, name),
        // 1.1: domctl, from a domain that is not the control domain.
        (Hypercall::DOMCTL, sub) => check_domctl(sub as u32, name),
        (Hypercall::HVM_OP, _) => {
            null_is_efault(sc);
            check_eq!(
                guest::hvm_set_callback_irq(callback_vector(HVM_CALLBACK_VECTOR_MIN - 1)),
                Err(Errno::EINVAL),
                "{name}: vector HVM_CALLBACK_VECTOR_MIN - 1"
            );
            check_eq!(
                guest::hvm_set_callback_irq(0),
                Ok(()),
                "{name}: no callback (0)"
            );
        }
        (Hypercall::SET_TIMER_OP, _) => {
            // Any deadline is valid (a past one fires at once): a far one, then 0
            // (stop). The timer must not fire during the test.
            let far = events::now_ns().saturating_add(60_000_000_000);
            check_eq!(guest::set_timer_op(far), Ok(()), "{name}(now + 60 s)");
            check_eq!(guest::set_timer_op(0), Ok(()), "{name}(0) (stop)");
        }
        (Hypercall::VCPU_OP, sub) => {
            check_vcpu_op(sc);
            check_eq!(
                hypercall_scalar(sc.hypercall, [sub, 1, 0, 0, 0]),
                Errno::ENOENT.as_return(),
                "{name}(vcpu 1)"
            );
        }
        // 1.0, the PV MMU: the command is inside each request. Every command is
        // used once the way it succeeds, and refused where it has arguments to
        // refuse; every batch refuses a foreign domain and an oversized count.
        (Hypercall::MMU_UPDATE | Hypercall::MMUEXT_OP, sub) => {
            let self_ = keel_guest::abi::mmu::DOMID_SELF;
            let r = hypercall_scalar(sc.hypercall, [0, 0, 0, self_, 0]);
            check_eq!(r, 0, "{name}: an empty batch");
            let r = hypercall_scalar(sc.hypercall, [0, 0, 0, 0x7ff1, 0]);
            check_eq!(r, Errno::ESRCH.as_return(), "{name}: foreigndom 0x7ff1");
            let r = hypercall_scalar(sc.hypercall, [0, MMU_BATCH_MAX + 1, 0, self_, 0]);
            check_eq!(
                r,
                Errno::EINVAL.as_return(),
                "{name}: a count of MMU_BATCH_MAX + 1"
            );
            if sc.hypercall == Hypercall::MMU_UPDATE {
                check_mmu_update(name);
            } else {
                check_mmuext_op(sub as u32, name);
            }
        }
        (Hypercall::MULTICALL, _) => {
            let r = hypercall_scalar(sc.hypercall, [0, 0, 0, 0, 0]);
            check_eq!(r, 0, "{name}: an empty batch");
            let r = hypercall_scalar(sc.hypercall, [0, MMU_BATCH_MAX + 1, 0, 0, 0]);
            check_eq!(
                r,
                Errno::EINVAL.as_return(),
                "{name} of MMU_BATCH_MAX + 1 calls"
            );
            let r = hypercall_scalar(sc.hypercall, [0, 1, 0, 0, 0]);
            check_eq!(r, Errno::EFAULT.as_return(), "{name} of 1 call at NULL");
            // Two calls: one that succeeds, one that does not exist; each result
            // is written back and the batch itself succeeds.
            let mut calls = [
                MulticallEntry {
                    op: Hypercall::XEN_VERSION.0,
                    result: 0x5a5a,
                    args: [XENVER_VERSION, 0, 0, 0, 0, 0],
                },
                MulticallEntry {
                    op: 11, // no hypercall in any version
                    result: 0x5a5a,
                    args: [0; 6],
                },
            ];
            check_eq!(guest::multicall(&mut calls), Ok(()), "{name} of 2 calls");
            check_eq!(
                calls[0].result,
                u64::from(hv.encode()),
                "{name}: xen_version's result"
            );
            check_eq!(
                calls[1].result as i64,
                ENOSYS,
                "{name}: hypercall 11's result"
            );
        }
        _ => {
            error!(
                "no compatibility check for {}/{name} (since {}): extend abi_compat",
                hc_name(sc.hypercall),
                sc.since
            );
        }
    }
}

/// The value of `r`, or a failure naming `what`.
fn ok_or_fail<T>(what: &str, r: Result<T, Errno>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            failure!("{what}: {e}");
            None
        }
    }
}

/// A sub-command that takes a structure cannot read one at NULL.
fn null_is_efault(sc: &SubCommand) {
    check_eq!(
        probe(sc.hypercall, sc.sub),
        Errno::EFAULT.as_return(),
        "{}(NULL)",
        sc.name
    );
}

/// `event_channel_op(sub)`: the successful use, then refusals.
fn check_evtchn_op(sub: u64, name: &str, hv: AbiVersion) {
    match sub {
        EVTCHNOP_BIND_VIRQ => {
            if let Some(p) = ok_or_fail(name, guest::evtchn_bind_virq(VIRQ_DEBUG, 0)) {
                check_eq!(
                    guest::evtchn_status(p).map(|s| (s.status, s.u[0])),
                    Ok((EVTCHNSTAT_VIRQ, VIRQ_DEBUG)),
                    "EVTCHNOP_status of the VIRQ_DEBUG port {p}"
                );
                check_eq!(
                    guest::evtchn_bind_virq(VIRQ_DEBUG, 0),
                    Err(Errno::EEXIST),
                    "{name}: VIRQ_DEBUG again"
                );
                check_eq!(guest::evtchn_close(p), Ok(()), "close port {p}");
            }
            check_eq!(
                guest::evtchn_bind_virq(NR_VIRQS, 0),
                Err(Errno::EINVAL),
                "{name}: virq NR_VIRQS"
            );
        }
        EVTCHNOP_CLOSE => {
            if let Some(p) = ok_or_fail("EVTCHNOP_alloc_unbound", guest::evtchn_alloc_unbound()) {
                check_eq!(guest::evtchn_close(p), Ok(()), "{name} port {p}");
                check_eq!(
                    guest::evtchn_close(p),
                    Err(Errno::EINVAL),
                    "{name} of the closed port {p}"
                );
            }
        }
        EVTCHNOP_SEND => {
            if let Some(p) = ok_or_fail("EVTCHNOP_bind_ipi", guest::evtchn_bind_ipi(0)) {
                check_eq!(guest::evtchn_send(p), Ok(()), "{name} on IPI port {p}");
                check!(events::is_pending(p), "{name}: IPI port {p} is not pending");
                check_eq!(guest::evtchn_close(p), Ok(()), "close port {p}");
            }
            check_eq!(
                guest::evtchn_send(0),
                Err(Errno::EINVAL),
                "{name} on port 0"
            );
        }
        EVTCHNOP_STATUS => {
            if let Some(p) = ok_or_fail("EVTCHNOP_alloc_unbound", guest::evtchn_alloc_unbound()) {
                check_eq!(
                    guest::evtchn_status(p).map(|s| s.status),
                    Ok(EVTCHNSTAT_UNBOUND),
                    "{name} of unbound port {p}"
                );
                check_eq!(guest::evtchn_close(p), Ok(()), "close port {p}");
            }
            check_eq!(
                guest::evtchn_status(KEEL_NR_EVTCHN_PORTS).map(|s| s.status),
                Err(Errno::EINVAL),
                "{name} of port KEEL_NR_EVTCHN_PORTS"
            );
        }
        EVTCHNOP_ALLOC_UNBOUND => {
            if let Some(p) = ok_or_fail(name, guest::evtchn_alloc_unbound()) {
                check!(
                    (1..KEEL_NR_EVTCHN_PORTS).contains(&p),
                    "{name}: port {p} out of range"
                );
                check_eq!(guest::evtchn_close(p), Ok(()), "close port {p}");
            }
            // 1.0 offers a port to the caller only; 1.1 to any domain id,
            // which need not exist yet (Xen), and status names it.
            let other = guest::evtchn_alloc_unbound_in(DOMID_SELF, FAR_DOMAIN);
            if hv < AbiVersion::V1_1 {
                check_eq!(
                    other,
                    Err(Errno::ESRCH),
                    "{name} for domain {FAR_DOMAIN} on ABI {hv}"
                );
            } else if let Some(p) = ok_or_fail("EVTCHNOP_alloc_unbound for another domain", other) {
                check_eq!(
                    guest::evtchn_status(p).map(|s| (s.status, s.u[0])),
                    Ok((EVTCHNSTAT_UNBOUND, u32::from(FAR_DOMAIN))),
                    "EVTCHNOP_status of port {p} unbound for domain {FAR_DOMAIN}"
                );
                check_eq!(guest::evtchn_close(p), Ok(()), "close port {p}");
            }
            check_eq!(
                guest::evtchn_alloc_unbound_in(FAR_DOMAIN, DOMID_SELF),
                Err(Errno::ESRCH),
                "{name} in domain {FAR_DOMAIN}, which does not exist"
            );
        }
        EVTCHNOP_BIND_INTERDOMAIN => check_bind_interdomain(name),
        EVTCHNOP_BIND_IPI => {
            if let Some(p) = ok_or_fail(name, guest::evtchn_bind_ipi(0)) {
                check_eq!(
                    guest::evtchn_status(p).map(|s| s.status),
                    Ok(EVTCHNSTAT_IPI),
                    "EVTCHNOP_status of IPI port {p}"
                );
                check_eq!(guest::evtchn_close(p), Ok(()), "close port {p}");
            }
            check_eq!(
                guest::evtchn_bind_ipi(1),
                Err(Errno::ENOENT),
                "{name} to vCPU 1"
            );
        }
        EVTCHNOP_BIND_VCPU => {
            if let Some(p) = ok_or_fail("EVTCHNOP_alloc_unbound", guest::evtchn_alloc_unbound()) {
                check_eq!(guest::evtchn_bind_vcpu(p, 0), Ok(()), "{name} of port {p}");
                check_eq!(guest::evtchn_close(p), Ok(()), "close port {p}");
            }
            if let Some(p) = ok_or_fail("EVTCHNOP_bind_ipi", guest::evtchn_bind_ipi(0)) {
                check_eq!(
                    guest::evtchn_bind_vcpu(p, 0),
                    Err(Errno::EINVAL),
                    "{name} of IPI port {p}"
                );
                check_eq!(guest::evtchn_close(p), Ok(()), "close port {p}");
            }
        }
        EVTCHNOP_UNMASK => {
            if let Some(p) = ok_or_fail("EVTCHNOP_bind_ipi", guest::evtchn_bind_ipi(0)) {
                check_eq!(guest::evtchn_unmask(p), Ok(()), "{name} port {p}");
                check_eq!(guest::evtchn_close(p), Ok(()), "close port {p}");
            }
            check_eq!(
                guest::evtchn_unmask(KEEL_NR_EVTCHN_PORTS),
                Err(Errno::EINVAL),
                "{name} port KEEL_NR_EVTCHN_PORTS"
            );
        }
        _ => {
            error!("no compatibility check for event_channel_op/{name}: extend abi_compat");
        }
    }
}

/// A domain id no test boots (the compatibility guest runs alone).
const FAR_DOMAIN: u16 = 7;

/// `EVTCHNOP_bind_interdomain` (1.1), alone: a loopback channel to a port of
/// our own that is unbound for us, and the refusals.
fn check_bind_interdomain(name: &str) {
    let bind = |remote_dom: u16, remote_port: u32| {
        let mut a = EvtchnBindInterdomain {
            remote_dom,
            remote_port,
            local_port: 0,
        };
        let r = hypercall_scalar(
            Hypercall::EVENT_CHANNEL_OP,
            [EVTCHNOP_BIND_INTERDOMAIN, &mut a as *mut _ as u64, 0, 0, 0],
        );
        Errno::from_return(r).map(|_| a.local_port)
    };
    if let Some(p) = ok_or_fail("EVTCHNOP_alloc_unbound", guest::evtchn_alloc_unbound()) {
        match bind(DOMID_SELF, p) {
            Ok(q) => {
                check_eq!(
                    guest::evtchn_status(q).map(|s| s.status),
                    Ok(EVTCHNSTAT_INTERDOMAIN),
                    "EVTCHNOP_status of the port {q} {name} made"
                );
                check_eq!(
                    guest::evtchn_status(p).map(|s| s.status),
                    Ok(EVTCHNSTAT_INTERDOMAIN),
                    "EVTCHNOP_status of the port {p} it bound"
                );
                check_eq!(
                    bind(DOMID_SELF, p),
                    Err(Errno::EINVAL),
                    "{name} to port {p} again (no longer unbound)"
                );
                check_eq!(guest::evtchn_close(q), Ok(()), "close port {q}");
                check_eq!(
                    guest::evtchn_status(p).map(|s| s.status),
                    Ok(EVTCHNSTAT_UNBOUND),
                    "port {p} after its peer {q} closed"
                );
            }
            Err(e) => {
                failure!("{name} to our own unbound port {p}: {e}");
            }
        }
        check_eq!(guest::evtchn_close(p), Ok(()), "close port {p}");
    }
    if let Some(p) = ok_or_fail(
        "EVTCHNOP_alloc_unbound for another domain",
        guest::evtchn_alloc_unbound_in(DOMID_SELF, FAR_DOMAIN),
    ) {
        check_eq!(
            bind(DOMID_SELF, p),
            Err(Errno::EINVAL),
            "{name} to port {p}, offered to domain {FAR_DOMAIN}"
        );
        check_eq!(guest::evtchn_close(p), Ok(()), "close port {p}");
    }
    check_eq!(
        bind(FAR_DOMAIN, 1),
        Err(Errno::ESRCH),
        "{name} to domain {FAR_DOMAIN}, which does not exist"
    );
    check_eq!(
        bind(DOMID_SELF, KEEL_NR_EVTCHN_PORTS),
        Err(Errno::EINVAL),
        "{name} to port KEEL_NR_EVTCHN_PORTS"
    );
}

/// `grant_table_op(sub)` (1.1) in one domain: its own table and frames, and
/// the refusals one domain can provoke. Each check sets the table up (again:
/// growing it to the size it has is a no-op) and leaves nothing mapped.
fn check_grant_op(sub: u64, name: &str) {
    let h = Hypercall::GRANT_TABLE_OP;
    // A NULL argument cannot be read (a count of 0 reads nothing).
    check_eq!(
        hypercall_scalar(h, [sub, 0, 1, 0, 0]),
        Errno::EFAULT.as_return(),
        "{name}(NULL, 1)"
    );
    check_eq!(
        hypercall_scalar(h, [sub, 0, KEEL_GNTTAB_BATCH_MAX as u64 + 1, 0, 0]),
        Errno::EINVAL.as_return(),
        "{name} of KEEL_GNTTAB_BATCH_MAX + 1 operations"
    );
    let mut list = [0u64; 1];
    let Some(status) = ok_or_fail("GNTTABOP_setup_table", guest::gnttab_setup_table(&mut list))
    else {
        return;
    };
    if !check_eq!(
        status,
        GNTST_OKAY,
        "GNTTABOP_setup_table of 1 frame: status"
    ) {
        return;
    }
    let table = Mfn::new(list[0]);
    let me = my_domid();
    match sub {
        GNTTABOP_SETUP_TABLE => {
            let mut op = GnttabSetupTable {
                dom: DOMID_SELF,
                nr_frames: 5,
                status: 1,
                frame_list: list.as_mut_ptr() as u64,
            };
            let r = gnttab_one(GNTTABOP_SETUP_TABLE, &mut op, 1);
            check_eq!(
                (r, op.status),
                (0, GNTST_GENERAL_ERROR),
                "{name} of 5 frames (the largest table is 4)"
            );
            op.nr_frames = 1;
            op.dom = FAR_DOMAIN;
            let r = gnttab_one(GNTTABOP_SETUP_TABLE, &mut op, 1);
            check_eq!(
                (r, op.status),
                (0, GNTST_BAD_DOMAIN),
                "{name} for domain {FAR_DOMAIN}, which does not exist"
            );
            op.dom = DOMID_SELF;
            let r = gnttab_one(GNTTABOP_SETUP_TABLE, &mut op, 2);
            check_eq!(r, Errno::EINVAL.as_return(), "{name} with count 2");
        }
        GNTTABOP_QUERY_SIZE => {
            check_eq!(
                guest::gnttab_query_size().map(|q| (q.status, q.nr_frames, q.max_nr_frames)),
                Ok((GNTST_OKAY, 1, 4)),
                "{name}"
            );
            let mut op = GnttabQuerySize {
                dom: FAR_DOMAIN,
                ..Default::default()
            };
            let r = gnttab_one(GNTTABOP_QUERY_SIZE, &mut op, 1);
            check_eq!(
                (r, op.status),
                (0, GNTST_BAD_DOMAIN),
                "{name} of domain {FAR_DOMAIN}"
            );
            let r = gnttab_one(GNTTABOP_QUERY_SIZE, &mut op, 2);
            check_eq!(r, Errno::EINVAL.as_return(), "{name} with count 2");
        }
        GNTTABOP_COPY => with_table(table, |set_entry| {
            let (a, b) = (take_frame(), take_frame());
            let _ = fault::write_u64(GuestVirt::new(a.va.get() + 8), 0x1111);
            let own = |f: &Frame, off: u16| (f.mfn.get(), DOMID_SELF, off);
            let copy = |src: (u64, u16, u16), dst: (u64, u16, u16), len: u16, flags: u16| {
                let mut op = GnttabCopy::new(
                    GnttabCopyPtr::new(src.0, src.1, src.2),
                    GnttabCopyPtr::new(dst.0, dst.1, dst.2),
                    len,
                    flags,
                );
                let r = gnttab_one(GNTTABOP_COPY, &mut op, 1);
                (r, op.status)
            };
            check_eq!(
                copy(own(&a, 0), own(&b, 0), 16, 0),
                (0, GNTST_OKAY),
                "{name} frame to frame"
            );
            check_eq!(
                fault::read_u64(GuestVirt::new(b.va.get() + 8)),
                Ok(0x1111),
                "{name}: the data copied"
            );
            set_entry(1, GTF_PERMIT_ACCESS | GTF_READONLY, me, a.mfn);
            check_eq!(
                copy((1, DOMID_SELF, 8), own(&b, 16), 8, GNTCOPY_SOURCE_GREF),
                (0, GNTST_OKAY),
                "{name} through our own read-only grant"
            );
            check_eq!(
                copy(own(&b, 0), (1, DOMID_SELF, 0), 8, GNTCOPY_DEST_GREF),
                (0, GNTST_GENERAL_ERROR),
                "{name} into a read-only grant"
            );
            check_eq!(
                copy((512, DOMID_SELF, 0), own(&b, 0), 8, GNTCOPY_SOURCE_GREF),
                (0, GNTST_BAD_GNTREF),
                "{name} through a reference beyond the table"
            );
            check_eq!(
                copy(own(&a, 4000), own(&b, 0), 97, 0),
                (0, GNTST_BAD_COPY_ARG),
                "{name} across the end of a page"
            );
            check_eq!(
                copy((a.mfn.get(), FAR_DOMAIN, 0), own(&b, 0), 8, 0),
                (0, GNTST_PERMISSION_DENIED),
                "{name} of another domain's frame without a grant"
            );
            set_entry(1, 0, me, a.mfn);
        }),
        GNTTABOP_MAP_GRANT_REF => with_table(table, |set_entry| {
            let (a, spare) = (take_frame(), take_frame());
            set_entry(2, GTF_PERMIT_ACCESS, me, a.mfn);
            for (what, dom, flags, want) in [
                ("our own grant", me, GNTMAP_HOST_MAP, GNTST_BAD_DOMAIN),
                ("without GNTMAP_host_map", me, 0, GNTST_BAD_GNTREF),
                (
                    "from a domain that does not exist",
                    FAR_DOMAIN,
                    GNTMAP_HOST_MAP,
                    GNTST_BAD_DOMAIN,
                ),
            ] {
                let mut op = GnttabMapGrantRef {
                    host_addr: spare.va.get(),
                    flags,
                    gref: 2,
                    dom,
                    ..Default::default()
                };
                let r = gnttab_one(GNTTABOP_MAP_GRANT_REF, &mut op, 1);
                check_eq!((r, op.status), (0, want), "{name} of {what}");
            }
            set_entry(2, 0, me, a.mfn);
        }),
        GNTTABOP_UNMAP_GRANT_REF => {
            let spare = take_frame();
            let mut op = GnttabUnmapGrantRef {
                host_addr: spare.va.get(),
                handle: 3,
                ..Default::default()
            };
            let r = gnttab_one(GNTTABOP_UNMAP_GRANT_REF, &mut op, 1);
            check_eq!(
                (r, op.status),
                (0, GNTST_BAD_HANDLE),
                "{name} of a handle never returned"
            );
        }
        _ => {
            error!("no compatibility check for grant_table_op/{name}: extend abi_compat");
        }
    }
    // Sub-commands Keel does not adopt (GNTTABOP_transfer).
    let mut q = GnttabQuerySize::default();
    check_eq!(
        gnttab_one(4, &mut q, 1),
        ENOSYS,
        "grant_table_op/GNTTABOP_transfer"
    );
}

/// `grant_table_op(cmd, op, count)` on one structure.
fn gnttab_one<T>(cmd: u64, op: &mut T, count: u64) -> i64 {
    hypercall_scalar(
        Hypercall::GRANT_TABLE_OP,
        [cmd, op as *mut T as u64, count, 0, 0],
    )
}

/// Our domain id (a grant names its grantee by id): the remote end of an
/// unbound port allocated for `DOMID_SELF`.
fn my_domid() -> u16 {
    let id = guest::evtchn_alloc_unbound().and_then(|p| {
        let s = guest::evtchn_status(p);
        let _ = guest::evtchn_close(p);
        s
    });
    match id {
        Ok(s) => s.u[0] as u16,
        Err(e) => {
            failure!("our domain id from an unbound port: {e}");
            0
        }
    }
}

/// Run `f` with the grant-table frame `table` mapped writable in place of a
/// free frame of ours; `f` writes entries with the function it is given
/// `(gref, flags, domid, frame)`. The mapping is undone afterwards (the
/// teardown check counts every reference).
fn with_table(table: Mfn, f: impl FnOnce(&dyn Fn(u64, u16, u16, Mfn))) {
    let t = take_frame();
    if !check_eq!(
        set_leaf(t.va, entry(table, PteFlags::PRESENT | PteFlags::WRITABLE)),
        Ok(()),
        "map the grant-table frame"
    ) {
        return;
    }
    let set_entry = |gref: u64, flags: u16, domid: u16, frame: Mfn| {
        let e = u64::from(flags) | u64::from(domid) << 16 | frame.get() << 32;
        let _ = fault::write_u64(GuestVirt::new(t.va.get() + 8 * gref), e);
    };
    f(&set_entry);
    check_eq!(
        set_leaf(t.va, entry(t.mfn, PteFlags::PRESENT | PteFlags::WRITABLE)),
        Ok(()),
        "unmap the grant-table frame"
    );
}

/// `domctl(cmd)` (1.1) from a domain that is not the control domain
/// (`keel_guest::domctl_cases`): the envelope at NULL, then each case once.
fn check_domctl(cmd: u32, name: &str) {
    check_eq!(
        hypercall_scalar(Hypercall::DOMCTL, [0, 0, 0, 0, 0]),
        Errno::EFAULT.as_return(),
        "{name}(NULL)"
    );
    for c in domctl_cases::CASES.iter().filter(|c| {
        c.cmd == cmd
            || hypercall::sub_implemented_since(Hypercall::DOMCTL, u64::from(c.cmd)).is_none()
    }) {
        let mut op = XenDomctl {
            cmd: c.cmd,
            interface_version: c.interface_version,
            domain: c.domain,
            ..Default::default()
        };
        check_eq!(
            guest::domctl(&mut op),
            Err(c.lone),
            "{} [{}]",
            domctl_cases::name(c.cmd),
            c.class
        );
    }
}

/// `vcpu_op(sub, 0, ...)`: the successful use, then refusals.
fn check_vcpu_op(sc: &SubCommand) {
    let (sub, name) = (sc.sub, sc.name);
    match sub {
        VCPUOP_SET_PERIODIC_TIMER => {
            null_is_efault(sc);
            check_eq!(
                guest::vcpu_set_periodic_timer(PERIODIC_TIMER_MIN_NS - 1),
                Err(Errno::EINVAL),
                "{name}: PERIODIC_TIMER_MIN_NS - 1"
            );
            check_eq!(
                guest::vcpu_set_periodic_timer(60_000_000_000),
                Ok(()),
                "{name}: 60 s"
            );
            check_eq!(
                guest::vcpu_stop_periodic_timer(),
                Ok(()),
                "VCPUOP_stop_periodic_timer"
            );
        }
        VCPUOP_SET_SINGLESHOT_TIMER => {
            null_is_efault(sc);
            check_eq!(
                guest::vcpu_set_singleshot_timer(1, VCPU_SSHOTTMR_FUTURE),
                Err(Errno::ETIME),
                "{name}: a past deadline with VCPU_SSHOTTMR_future"
            );
            let far = events::now_ns().saturating_add(60_000_000_000);
            check_eq!(
                guest::vcpu_set_singleshot_timer(far, VCPU_SSHOTTMR_FUTURE),
                Ok(()),
                "{name}: now + 60 s"
            );
            check_eq!(
                guest::vcpu_stop_singleshot_timer(),
                Ok(()),
                "VCPUOP_stop_singleshot_timer"
            );
        }
        VCPUOP_STOP_PERIODIC_TIMER | VCPUOP_STOP_SINGLESHOT_TIMER => {
            // No argument: stopping a timer that is not running succeeds.
            check_eq!(probe(Hypercall::VCPU_OP, sub), 0, "{name}(vcpu 0)");
        }
        _ => {
            error!("no compatibility check for vcpu_op/{name}: extend abi_compat");
        }
    }
}

/// `mmu_update(MMU_NORMAL_PT_UPDATE)`: a validated change of a real entry (a free
/// frame's mapping made read-only and writable again), then refusals.
fn check_mmu_update(name: &str) {
    let f = take_frame();
    check_eq!(
        make_readonly(f.va),
        Ok(()),
        "{name}: drop RW of a free frame's entry"
    );
    check!(
        !leaf(f.va).contains(PteFlags::WRITABLE),
        "{name}: the entry kept RW"
    );
    check_eq!(make_writable(f.va), Ok(()), "{name}: give RW back");
    check!(
        leaf(f.va).contains(PteFlags::WRITABLE),
        "{name}: the entry did not get RW back"
    );
    let (t, i) = l1_of(f.va);
    check_eq!(
        update(slot(t, i) | 4, leaf(f.va)),
        Err(Errno::EINVAL),
        "{name}: ptr bit 2 set"
    );
    // Mapping a pinned table writable breaks the type rule.
    let l1 = table_frame();
    if check_eq!(pin(1, l1.mfn), Ok(()), "MMUEXT_PIN_L1_TABLE for {name}") {
        check_eq!(
            make_writable(l1.va),
            Err(Errno::EINVAL),
            "{name}: mapping a pinned L1 writable"
        );
        check_eq!(unpin(l1.mfn), Ok(()), "MMUEXT_UNPIN_TABLE for {name}");
    }
}

/// `mmuext_op(cmd)`: the successful use, then refusals where `cmd` has arguments.
fn check_mmuext_op(cmd: u32, name: &str) {
    let one = |arg1: u64, arg2: u64| {
        guest::mmuext_op(&[MmuextOp {
            cmd,
            pad: 0,
            arg1,
            arg2,
        }])
        .1
    };
    let mapped = &DECLARED as *const AbiVersion as u64 & !0xfff;
    match cmd {
        MMUEXT_PIN_L1_TABLE | MMUEXT_PIN_L2_TABLE | MMUEXT_PIN_L3_TABLE | MMUEXT_PIN_L4_TABLE => {
            let level = cmd - MMUEXT_PIN_L1_TABLE + 1;
            let t = if level == 4 {
                copy_of_l4()
            } else {
                table_frame()
            };
            check_eq!(pin(level, t.mfn), Ok(()), "{name} of a fresh table");
            check_eq!(pin(level, t.mfn), Err(Errno::EINVAL), "{name} again");
            check_eq!(unpin(t.mfn), Ok(()), "MMUEXT_UNPIN_TABLE after {name}");
            let w = take_frame();
            check_eq!(
                pin(level, w.mfn),
                Err(Errno::EINVAL),
                "{name} of a frame mapped writable"
            );
            check_eq!(
                pin(level, Mfn::new(0xf_ffff_ffff)),
                Err(Errno::EINVAL),
                "{name} of a frame not the domain's"
            );
        }
        MMUEXT_UNPIN_TABLE => {
            let t = table_frame();
            check_eq!(pin(1, t.mfn), Ok(()), "MMUEXT_PIN_L1_TABLE for {name}");
            check_eq!(unpin(t.mfn), Ok(()), "{name}");
            check_eq!(
                unpin(t.mfn),
                Err(Errno::EINVAL),
                "{name} of an unpinned frame"
            );
        }
        MMUEXT_NEW_BASEPTR => {
            let orig = cr3_mfn();
            let copy = copy_of_l4();
            check_eq!(
                ext(cmd, copy.mfn),
                Err(Errno::EINVAL),
                "{name} of an unpinned L4"
            );
            if check_eq!(pin(4, copy.mfn), Ok(()), "MMUEXT_PIN_L4_TABLE for {name}") {
                check_eq!(
                    ext(cmd, copy.mfn),
                    Ok(()),
                    "{name} of a pinned copy of the L4"
                );
                check_eq!(cr3_mfn(), copy.mfn, "CR3 after {name}");
                check_eq!(ext(cmd, orig), Ok(()), "{name} back to the original L4");
                check_eq!(cr3_mfn(), orig, "CR3 after {name} back");
                check_eq!(unpin(copy.mfn), Ok(()), "MMUEXT_UNPIN_TABLE after {name}");
            }
        }
        MMUEXT_TLB_FLUSH_LOCAL | MMUEXT_TLB_FLUSH_ALL => {
            check_eq!(one(0, 0), Ok(()), "{name}");
        }
        MMUEXT_INVLPG_LOCAL | MMUEXT_INVLPG_ALL => {
            check_eq!(one(mapped, 0), Ok(()), "{name} of a mapped page");
        }
        MMUEXT_TLB_FLUSH_MULTI | MMUEXT_INVLPG_MULTI => {
            let vcpus: u64 = 1;
            let mask = &vcpus as *const u64 as u64;
            check_eq!(one(mapped, mask), Ok(()), "{name} for vCPU 0");
            check_eq!(
                one(mapped, 0),
                Err(Errno::EFAULT),
                "{name} with the vCPU bitmap at NULL"
            );
        }
        _ => {
            error!("no compatibility check for mmuext_op/{name}: extend abi_compat");
        }
    }
}

/// `keel_debug_op` is Keel's own number, outside `hypercall::IMPLEMENTED`: its
/// commands exist since 1.0 (`debug::KEEL_DEBUG_OP`'s `since`).
fn check_debug_op(hv: AbiVersion) {
    let op = Hypercall(KEEL_DEBUG_OP);
    if hv < AbiVersion::V1_0 {
        for cmd in [DEBUGOP_NOP, DEBUGOP_READ_COUNTERS] {
            let r = probe(op, cmd);
            if check!(
                r == ENOSYS,
                "keel_debug_op({cmd}) returned {r} on ABI {hv}, expected -ENOSYS"
            ) {
                println!("not in ABI {hv}: keel_debug_op({cmd}) (since 1.0): -ENOSYS");
            }
        }
        return;
    }
    check_eq!(debug_guest::nop(), 0, "keel_debug_op(DEBUGOP_nop)");
    match debug_guest::read_counters() {
        Ok(c) => {
            check!(
                c.total_exits() > 0,
                "keel_debug_op(DEBUGOP_read_counters): no exit counted"
            );
        }
        Err(e) => {
            failure!("keel_debug_op(DEBUGOP_read_counters): {e}");
        }
    }
    check_eq!(
        probe(op, DEBUGOP_READ_COUNTERS),
        Errno::EFAULT.as_return(),
        "keel_debug_op(DEBUGOP_read_counters, NULL)"
    );
    check_eq!(probe(op, 2), ENOSYS, "keel_debug_op(2)");
}

/// The hypervisor CPUID leaves agree with `xen_version`.
fn check_cpuid(hv: AbiVersion) {
    let l1 = cpu::cpuid(1, 0);
    check!(
        l1.ecx & cpu::LEAF1_ECX_HYPERVISOR != 0,
        "CPUID.1:ECX[31] (hypervisor) is clear"
    );
    let base = cpu::cpuid(CPUID_LEAF_BASE, 0);
    check_eq!(
        &cpu::signature(&base),
        CPUID_SIGNATURE,
        "CPUID 0x4000_0000 signature"
    );
    check!(
        base.eax >= CPUID_LEAF_VERSION,
        "CPUID 0x4000_0000: highest leaf {:#x}",
        base.eax
    );
    let ver = cpu::cpuid(CPUID_LEAF_VERSION, 0);
    check_eq!(
        ver.eax,
        hv.encode(),
        "CPUID 0x4000_0001 EAX (the ABI version)"
    );
    if let Ok(bits) = guest::xen_get_features(0) {
        check_eq!(ver.ebx, bits, "CPUID 0x4000_0001 EBX (feature submap 0)");
    }
}

/// What every version promises about the start-of-day page.
fn check_start_info() {
    let si = start_info();
    check!(
        si.magic.starts_with(MAGIC),
        "start_info.magic: {:?}",
        &si.magic[..]
    );
    check!(si.nr_pages > 0, "start_info.nr_pages is 0");
    check!(
        si.pt_base.is_canonical() && si.pt_base.page_offset() == 0,
        "start_info.pt_base {:#x}",
        si.pt_base.get()
    );
    check!(
        si.nr_pt_frames >= 4,
        "start_info.nr_pt_frames {} < 4 (L4..L1)",
        si.nr_pt_frames
    );
    check!(
        si.mfn_list.is_canonical(),
        "start_info.mfn_list {:#x}",
        si.mfn_list.get()
    );
    check!(
        si.cmd_line_bytes().len() < MAX_GUEST_CMDLINE,
        "start_info.cmd_line is not NUL-terminated"
    );
}
