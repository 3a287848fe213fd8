//! The ABI compatibility guest (issue 4; `docs/abi-versioning.md`).
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
use keel_guest::abi::guest::{self, hypercall_scalar};
use keel_guest::abi::hypercall::{self, Hypercall, SubCommand};
use keel_guest::abi::layout;
use keel_guest::abi::sched::{SCHEDOP_BLOCK, SCHEDOP_POLL, SCHEDOP_SHUTDOWN, SCHEDOP_YIELD};
use keel_guest::abi::start_info::{MAGIC, MAX_GUEST_CMDLINE};
use keel_guest::abi::time::{VCPUOP_STOP_PERIODIC_TIMER, VCPUOP_STOP_SINGLESHOT_TIMER};
use keel_guest::abi::version::{
    features, AbiVersion, CPUID_LEAF_BASE, CPUID_LEAF_VERSION, CPUID_SIGNATURE, EXTRAVERSION,
    FEATURE_SUBMAPS, XENVER_EXTRAVERSION, XENVER_GET_FEATURES, XENVER_PAGESIZE, XENVER_VERSION,
};
use keel_guest::cpu;
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
        // 1.0: event channels, timers, block/poll, the callback vector. With NULL
        // arguments every one that takes a structure is -EFAULT; the ones that
        // take none succeed harmlessly.
        (Hypercall::SCHED_OP, SCHEDOP_BLOCK) => {
            // Returns at once when an event is pending (here: an IPI sent to
            // ourselves; no callback vector is registered, so nothing is injected).
            match guest::evtchn_bind_ipi(0) {
                Ok(p) => {
                    check_eq!(guest::evtchn_send(p), Ok(()), "send on IPI port {p}");
                    check_eq!(guest::sched_block(), Ok(()), "{name} with an event pending");
                    check_eq!(guest::evtchn_close(p), Ok(()), "close port {p}");
                }
                Err(e) => {
                    failure!("EVTCHNOP_bind_ipi: {e}");
                }
            }
        }
        (Hypercall::SCHED_OP, SCHEDOP_POLL)
        | (Hypercall::EVENT_CHANNEL_OP, _)
        | (Hypercall::HVM_OP, _) => {
            check_eq!(
                probe(sc.hypercall, sc.sub),
                Errno::EFAULT.as_return(),
                "{name}(NULL)"
            );
        }
        (Hypercall::SET_TIMER_OP, _) => {
            check_eq!(probe(sc.hypercall, 0), 0, "{name}(0) (stop)");
        }
        (Hypercall::VCPU_OP, sub) => {
            let r = probe(sc.hypercall, sub);
            let want = if matches!(
                sub,
                VCPUOP_STOP_PERIODIC_TIMER | VCPUOP_STOP_SINGLESHOT_TIMER
            ) {
                0
            } else {
                Errno::EFAULT.as_return()
            };
            check_eq!(r, want, "{name}(vcpu 0, NULL)");
            check_eq!(
                hypercall_scalar(sc.hypercall, [sub, 1, 0, 0, 0]),
                Errno::ENOENT.as_return(),
                "{name}(vcpu 1)"
            );
        }
        // 1.0, the PV MMU: the command is inside each request, so the check is an
        // empty batch (which does nothing and succeeds) and a foreign domain.
        (Hypercall::MMU_UPDATE | Hypercall::MMUEXT_OP, _) => {
            let self_ = keel_guest::abi::mmu::DOMID_SELF;
            let r = hypercall_scalar(sc.hypercall, [0, 0, 0, self_, 0]);
            check_eq!(r, 0, "{name}: an empty batch");
            let r = hypercall_scalar(sc.hypercall, [0, 0, 0, 0x7ff1, 0]);
            check_eq!(r, Errno::ESRCH.as_return(), "{name}: foreigndom 0x7ff1");
        }
        (Hypercall::MULTICALL, _) => {
            let r = hypercall_scalar(sc.hypercall, [0, 0, 0, 0, 0]);
            check_eq!(r, 0, "{name}: an empty batch");
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
        si.pt_base.0
    );
    check!(
        si.nr_pt_frames >= 4,
        "start_info.nr_pt_frames {} < 4 (L4..L1)",
        si.nr_pt_frames
    );
    check!(
        si.mfn_list.is_canonical(),
        "start_info.mfn_list {:#x}",
        si.mfn_list.0
    );
    check!(
        si.cmd_line_bytes().len() < MAX_GUEST_CMDLINE,
        "start_info.cmd_line is not NUL-terminated"
    );
}
