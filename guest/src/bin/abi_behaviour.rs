//! The behaviour transcript of the ABI (docs/abi-versioning.md, "Behaviour
//! fixtures"): every released hypercall and sub-command, called with valid
//! arguments and with each class of invalid ones, one line per call:
//!
//! `behaviour: <since> <call> [<class>] = <result>[; <effect>]`
//!
//! `<result>` is the return value (an error by name), `<effect>` what the call
//! visibly changed (a port's status, a pending bit, an entry's RW bit, a
//! multicall result). Nothing that varies from boot to boot is printed (no
//! time, no address, no port number). Each release freezes the transcript its
//! own hypervisor produced (`abi/fixtures/<version>/behaviour.txt`), and
//! `loader/tests/abi_behaviour.rs` names every line today's hypervisor changes.
//!
//! The image declares the oldest release the current version runs (0.1), like
//! `abi_compat`, so that every released hypervisor runs it; a sub-command newer
//! than the hypervisor simply answers `-ENOSYS`, which the transcript of that
//! release records.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::console::{CONSOLEIO_READ, CONSOLEIO_WRITE, CONSOLEIO_WRITE_MAX};
use keel_guest::abi::domctl::XenDomctl;
use keel_guest::abi::event::{
    callback_vector, EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindVirq,
    EvtchnStatus, XenHvmParam, DOMID_SELF, EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_BIND_INTERDOMAIN,
    EVTCHNOP_BIND_IPI, EVTCHNOP_BIND_VIRQ, EVTCHNOP_STATUS, HVMOP_SET_PARAM,
    HVM_CALLBACK_VECTOR_MIN, HVM_PARAM_CALLBACK_IRQ, KEEL_NR_EVTCHN_PORTS, NR_VIRQS, VIRQ_DEBUG,
};
use keel_guest::abi::grant_table::*;
use keel_guest::abi::guest::{self, hypercall_scalar};
use keel_guest::abi::hypercall::{self, Hypercall};
use keel_guest::abi::layout;
use keel_guest::abi::mmu::*;
use keel_guest::abi::sched::{
    SchedPoll, SCHEDOP_BLOCK, SCHEDOP_POLL, SCHEDOP_SHUTDOWN, SCHEDOP_YIELD, SCHED_POLL_MAX_PORTS,
};
use keel_guest::abi::time::{
    VcpuSetPeriodicTimer, VcpuSetSingleshotTimer, PERIODIC_TIMER_MIN_NS, VCPUOP_SET_PERIODIC_TIMER,
    VCPUOP_SET_SINGLESHOT_TIMER, VCPUOP_STOP_PERIODIC_TIMER, VCPUOP_STOP_SINGLESHOT_TIMER,
    VCPU_SSHOTTMR_FUTURE,
};
use keel_guest::abi::version::{
    AbiVersion, XenFeatureInfo, XENVER_EXTRAVERSION, XENVER_GET_FEATURES, XENVER_PAGESIZE,
    XENVER_VERSION,
};
use keel_guest::domctl_cases;
use keel_guest::events;
use keel_guest::mmu::*;
use keel_guest::pagetable::{cr3_mfn, PteFlags};
use keel_guest::prelude::*;

/// The version this image declares: the oldest release the current one runs.
const DECLARED: AbiVersion = match layout::oldest_release_runnable_by(AbiVersion::CURRENT) {
    Some(v) => v,
    None => AbiVersion::CURRENT,
};

keel_guest::test! {
    title: "ABI behaviour transcript: every released sub-command, valid and invalid arguments",
    category: Abi,
    abi: DECLARED,
    main: test_main,
}

/// A guest address that is canonical and mapped by nothing.
const UNMAPPED: u64 = 0x0000_7f00_0000_0000;
/// A non-canonical address.
const NONCANONICAL: u64 = 0x8000_0000_0000_0000;

/// The version that introduced `h`'s sub-command `sub` (`-` for none).
fn since(h: Hypercall, sub: u64) -> &'static str {
    let v = hypercall::sub_implemented_since(h, sub).or_else(|| h.implemented_since());
    match v {
        Some(AbiVersion::V0_1) => "0.1",
        Some(AbiVersion::V1_0) => "1.0",
        Some(AbiVersion::V1_1) => "1.1",
        Some(_) => "new",
        None => "-",
    }
}

/// A return value as the transcript writes it: an error by name, else the number.
struct Res(i64);

impl core::fmt::Display for Res {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match Errno::from_return(self.0) {
            Err(e) => write!(f, "-{}", e.name().unwrap_or("E?")),
            Ok(v) => write!(f, "{v}"),
        }
    }
}

/// One transcript line.
fn line(
    h: Hypercall,
    sub: u64,
    call: &str,
    class: impl core::fmt::Display,
    r: i64,
    effect: core::fmt::Arguments<'_>,
) {
    if effect.as_str() == Some("") {
        println!("behaviour: {} {call} [{class}] = {}", since(h, sub), Res(r));
    } else {
        println!(
            "behaviour: {} {call} [{class}] = {}; {effect}",
            since(h, sub),
            Res(r)
        );
    }
}

/// `Ok(())`/`Err(e)` as a return value.
fn ret(r: Result<(), Errno>) -> i64 {
    match r {
        Ok(()) => 0,
        Err(e) => e.as_return(),
    }
}

fn hc(h: Hypercall, a: [u64; 5]) -> i64 {
    hypercall_scalar(h, a)
}

/// Whether the hypervisor provides the shared-info page (1.0 and later): the
/// effects read from it are printed only then.
fn have_shared_info() -> bool {
    start_info().shared_info.get() != 0
}

/// A port's status as the transcript writes it.
fn status_of(p: u32) -> &'static str {
    let mut s = EvtchnStatus {
        dom: DOMID_SELF,
        port: p,
        ..Default::default()
    };
    let r = hc(
        Hypercall::EVENT_CHANNEL_OP,
        [EVTCHNOP_STATUS, &mut s as *mut _ as u64, 0, 0, 0],
    );
    if r != 0 {
        return "status ?";
    }
    match s.status {
        0 => "closed",
        1 => "unbound",
        2 => "interdomain",
        4 => "virq",
        5 => "ipi",
        _ => "other",
    }
}

fn pending(p: u32) -> &'static str {
    if !have_shared_info() {
        "no shared_info"
    } else if events::is_pending(p) {
        "pending"
    } else {
        "not pending"
    }
}

fn test_main() {
    let hv = guest::xen_version();
    println!("abi_behaviour: declares {DECLARED}, hypervisor reports {hv}");
    version();
    console();
    sched();
    evtchn();
    interdomain();
    hvm();
    timers();
    mmu();
    multicall();
    grants();
    domctl();
    unimplemented();
    // Last: the valid SCHEDOP_shutdown (the framework's power-off) ends the run;
    // the host records the exit status.
    success();
}

fn version() {
    let h = Hypercall::XEN_VERSION;
    let r = hc(h, [XENVER_VERSION, 0, 0, 0, 0]);
    // The version itself is each hypervisor's own (a later one reports a later
    // version); what stays is that it agrees with CPUID and can run this image.
    let v = AbiVersion::decode(r as u32);
    let cpuid = keel_guest::cpu::cpuid(keel_guest::abi::version::CPUID_LEAF_VERSION, 0).eax;
    line(
        h,
        XENVER_VERSION,
        "xen_version/XENVER_version",
        "valid",
        0,
        format_args!(
            "{} CPUID 0x4000_0001, {} the declared {DECLARED}",
            if cpuid == r as u32 {
                "equals"
            } else {
                "differs from"
            },
            if v.can_run(DECLARED) {
                "runs"
            } else {
                "cannot run"
            }
        ),
    );
    let r = hc(h, [XENVER_VERSION | 1 << 32, 0, 0, 0, 0]);
    line(
        h,
        XENVER_VERSION,
        "xen_version/XENVER_version",
        "upper bits in cmd",
        r,
        format_args!(""),
    );
    let mut ev = [0u8; 16];
    let r = hc(h, [XENVER_EXTRAVERSION, ev.as_mut_ptr() as u64, 0, 0, 0]);
    let n = ev.iter().position(|&b| b == 0).unwrap_or(16);
    line(
        h,
        XENVER_EXTRAVERSION,
        "xen_version/XENVER_extraversion",
        "valid",
        r,
        format_args!("{:?}", core::str::from_utf8(&ev[..n]).unwrap_or("?")),
    );
    for (class, p) in [
        ("NULL", 0),
        ("unmapped", UNMAPPED),
        ("non-canonical", NONCANONICAL),
    ] {
        let r = hc(h, [XENVER_EXTRAVERSION, p, 0, 0, 0]);
        line(
            h,
            XENVER_EXTRAVERSION,
            "xen_version/XENVER_extraversion",
            class,
            r,
            format_args!(""),
        );
    }
    let r = hc(
        h,
        [XENVER_EXTRAVERSION, start_info().pt_base.get(), 0, 0, 0],
    );
    line(
        h,
        XENVER_EXTRAVERSION,
        "xen_version/XENVER_extraversion",
        "read-only page table",
        r,
        format_args!(""),
    );
    let mut fi = XenFeatureInfo {
        submap_idx: 0,
        submap: 0,
    };
    let r = hc(h, [XENVER_GET_FEATURES, &mut fi as *mut _ as u64, 0, 0, 0]);
    line(
        h,
        XENVER_GET_FEATURES,
        "xen_version/XENVER_get_features",
        "valid",
        r,
        format_args!("submap0 {:#x}", fi.submap),
    );
    let mut fi = XenFeatureInfo {
        submap_idx: 1,
        submap: 0,
    };
    let r = hc(h, [XENVER_GET_FEATURES, &mut fi as *mut _ as u64, 0, 0, 0]);
    line(
        h,
        XENVER_GET_FEATURES,
        "xen_version/XENVER_get_features",
        "submap 1",
        r,
        format_args!(""),
    );
    let r = hc(h, [XENVER_GET_FEATURES, 0, 0, 0, 0]);
    line(
        h,
        XENVER_GET_FEATURES,
        "xen_version/XENVER_get_features",
        "NULL",
        r,
        format_args!(""),
    );
    let r = hc(h, [XENVER_PAGESIZE, 0, 0, 0, 0]);
    line(
        h,
        XENVER_PAGESIZE,
        "xen_version/XENVER_pagesize",
        "valid",
        r,
        format_args!(""),
    );
    let r = hc(h, [XENVER_PAGESIZE, 0x1000, 0, 0, 0]);
    line(
        h,
        XENVER_PAGESIZE,
        "xen_version/XENVER_pagesize",
        "non-NULL argument",
        r,
        format_args!(""),
    );
}

fn console() {
    let h = Hypercall::CONSOLE_IO;
    let msg = b"abi_behaviour: console_io\n";
    let r = hc(
        h,
        [CONSOLEIO_WRITE, msg.len() as u64, msg.as_ptr() as u64, 0, 0],
    );
    line(
        h,
        CONSOLEIO_WRITE,
        "console_io/CONSOLEIO_write",
        "valid",
        r,
        format_args!(""),
    );
    let r = hc(h, [CONSOLEIO_WRITE, 0, 0, 0, 0]);
    line(
        h,
        CONSOLEIO_WRITE,
        "console_io/CONSOLEIO_write",
        "0 bytes",
        r,
        format_args!(""),
    );
    let r = hc(
        h,
        [
            CONSOLEIO_WRITE,
            CONSOLEIO_WRITE_MAX + 1,
            msg.as_ptr() as u64,
            0,
            0,
        ],
    );
    line(
        h,
        CONSOLEIO_WRITE,
        "console_io/CONSOLEIO_write",
        "CONSOLEIO_WRITE_MAX + 1 bytes",
        r,
        format_args!(""),
    );
    for (class, p) in [
        ("NULL", 0),
        ("unmapped", UNMAPPED),
        ("non-canonical", NONCANONICAL),
    ] {
        let r = hc(h, [CONSOLEIO_WRITE, 8, p, 0, 0]);
        line(
            h,
            CONSOLEIO_WRITE,
            "console_io/CONSOLEIO_write",
            class,
            r,
            format_args!(""),
        );
    }
    let r = hc(h, [CONSOLEIO_READ, 0, 0, 0, 0]);
    line(
        h,
        CONSOLEIO_READ,
        "console_io/CONSOLEIO_read",
        "any",
        r,
        format_args!(""),
    );
}

fn sched() {
    let h = Hypercall::SCHED_OP;
    let r = hc(h, [SCHEDOP_YIELD, 0, 0, 0, 0]);
    line(
        h,
        SCHEDOP_YIELD,
        "sched_op/SCHEDOP_yield",
        "valid",
        r,
        format_args!(""),
    );
    let reason = 0xdeadu32;
    let r = hc(h, [SCHEDOP_SHUTDOWN, &reason as *const _ as u64, 0, 0, 0]);
    line(
        h,
        SCHEDOP_SHUTDOWN,
        "sched_op/SCHEDOP_shutdown",
        "unknown reason",
        r,
        format_args!("still running"),
    );
    for (class, p) in [("NULL", 0), ("unmapped", UNMAPPED)] {
        let r = hc(h, [SCHEDOP_SHUTDOWN, p, 0, 0, 0]);
        line(
            h,
            SCHEDOP_SHUTDOWN,
            "sched_op/SCHEDOP_shutdown",
            class,
            r,
            format_args!("still running"),
        );
    }
    // Block and poll return at once with an event pending (an IPI sent to
    // ourselves; no callback vector is registered, so nothing is injected).
    let p = guest::evtchn_bind_ipi(0).unwrap_or(1);
    let _ = guest::evtchn_send(p);
    let r = hc(h, [SCHEDOP_BLOCK, 0, 0, 0, 0]);
    line(
        h,
        SCHEDOP_BLOCK,
        "sched_op/SCHEDOP_block",
        "event pending",
        r,
        format_args!(""),
    );
    let ports = [p];
    let mut sp = SchedPoll {
        ports: ports.as_ptr() as u64,
        nr_ports: 1,
        timeout: 0,
    };
    let r = hc(h, [SCHEDOP_POLL, &sp as *const _ as u64, 0, 0, 0]);
    line(
        h,
        SCHEDOP_POLL,
        "sched_op/SCHEDOP_poll",
        "pending port",
        r,
        format_args!(""),
    );
    let r = hc(h, [SCHEDOP_POLL, 0, 0, 0, 0]);
    line(
        h,
        SCHEDOP_POLL,
        "sched_op/SCHEDOP_poll",
        "NULL",
        r,
        format_args!(""),
    );
    let many = [p; SCHED_POLL_MAX_PORTS as usize + 1];
    sp.ports = many.as_ptr() as u64;
    sp.nr_ports = SCHED_POLL_MAX_PORTS + 1;
    let r = hc(h, [SCHEDOP_POLL, &sp as *const _ as u64, 0, 0, 0]);
    line(
        h,
        SCHEDOP_POLL,
        "sched_op/SCHEDOP_poll",
        "SCHED_POLL_MAX_PORTS + 1 ports",
        r,
        format_args!(""),
    );
    // An invalid port after a pending one (Xen would return 0 at the pending one).
    let bad = [p, KEEL_NR_EVTCHN_PORTS];
    sp.ports = bad.as_ptr() as u64;
    sp.nr_ports = 2;
    let r = hc(h, [SCHEDOP_POLL, &sp as *const _ as u64, 0, 0, 0]);
    line(
        h,
        SCHEDOP_POLL,
        "sched_op/SCHEDOP_poll",
        "pending port, then port KEEL_NR_EVTCHN_PORTS",
        r,
        format_args!(""),
    );
    sp.ports = UNMAPPED;
    sp.nr_ports = 1;
    let r = hc(h, [SCHEDOP_POLL, &sp as *const _ as u64, 0, 0, 0]);
    line(
        h,
        SCHEDOP_POLL,
        "sched_op/SCHEDOP_poll",
        "unmapped port array",
        r,
        format_args!(""),
    );
    let _ = guest::evtchn_close(p);
    let r = hc(h, [8, 0, 0, 0, 0]);
    line(h, 8, "sched_op/8", "unknown command", r, format_args!(""));
}

fn evtchn() {
    let h = Hypercall::EVENT_CHANNEL_OP;
    let name = |sub: u64| -> &'static str {
        match sub {
            1 => "event_channel_op/EVTCHNOP_bind_virq",
            3 => "event_channel_op/EVTCHNOP_close",
            4 => "event_channel_op/EVTCHNOP_send",
            5 => "event_channel_op/EVTCHNOP_status",
            6 => "event_channel_op/EVTCHNOP_alloc_unbound",
            7 => "event_channel_op/EVTCHNOP_bind_ipi",
            8 => "event_channel_op/EVTCHNOP_bind_vcpu",
            9 => "event_channel_op/EVTCHNOP_unmask",
            _ => "event_channel_op/?",
        }
    };
    // Every sub-command reads a structure: NULL cannot be read.
    for sub in [1u64, 3, 4, 5, 6, 7, 8, 9] {
        let r = hc(h, [sub, 0, 0, 0, 0]);
        line(h, sub, name(sub), "NULL", r, format_args!(""));
    }
    // alloc_unbound.
    let mut a = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom: DOMID_SELF,
        port: 0,
    };
    let r = hc(
        h,
        [EVTCHNOP_ALLOC_UNBOUND, &mut a as *mut _ as u64, 0, 0, 0],
    );
    let p = a.port;
    line(
        h,
        6,
        name(6),
        "valid",
        r,
        format_args!("port {}", status_of(p)),
    );
    let mut b = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom: 7,
        port: 0,
    };
    let r = hc(
        h,
        [EVTCHNOP_ALLOC_UNBOUND, &mut b as *mut _ as u64, 0, 0, 0],
    );
    // An image that knows 1.1 is offered the port (the domain need not exist
    // yet, as Xen): its status names the domain. It is given back, so that
    // what follows starts from the same ports on every version.
    if r == 0 {
        let st = guest::evtchn_status(b.port);
        line(
            h,
            6,
            name(6),
            "remote_dom another domain",
            r,
            format_args!(
                "port {}, remote {}",
                status_of(b.port),
                st.map_or(0, |s| s.u[0])
            ),
        );
        let _ = guest::evtchn_close(b.port);
    } else {
        line(
            h,
            6,
            name(6),
            "remote_dom another domain",
            r,
            format_args!(""),
        );
    }
    b.dom = 7;
    b.remote_dom = DOMID_SELF;
    let r = hc(
        h,
        [EVTCHNOP_ALLOC_UNBOUND, &mut b as *mut _ as u64, 0, 0, 0],
    );
    line(h, 6, name(6), "dom another domain", r, format_args!(""));
    // bind_vcpu of the unbound port, then of vCPU 1.
    let r = ret(guest::evtchn_bind_vcpu(p, 0));
    line(h, 8, name(8), "unbound port, vcpu 0", r, format_args!(""));
    let r = ret(guest::evtchn_bind_vcpu(p, 1));
    line(h, 8, name(8), "unbound port, vcpu 1", r, format_args!(""));
    // send on an unbound port: dropped.
    let r = ret(guest::evtchn_send(p));
    line(
        h,
        4,
        name(4),
        "unbound port",
        r,
        format_args!("{}", pending(p)),
    );
    // close, twice.
    let r = ret(guest::evtchn_close(p));
    line(
        h,
        3,
        name(3),
        "unbound port",
        r,
        format_args!("port {}", status_of(p)),
    );
    let r = ret(guest::evtchn_close(p));
    line(h, 3, name(3), "closed port", r, format_args!(""));
    // bind_ipi; send sets it pending; unmask; status.
    let mut ipi = EvtchnBindIpi { vcpu: 0, port: 0 };
    let r = hc(h, [EVTCHNOP_BIND_IPI, &mut ipi as *mut _ as u64, 0, 0, 0]);
    let q = ipi.port;
    line(
        h,
        7,
        name(7),
        "valid",
        r,
        format_args!("port {}", status_of(q)),
    );
    let mut ipi1 = EvtchnBindIpi { vcpu: 1, port: 0 };
    let r = hc(h, [EVTCHNOP_BIND_IPI, &mut ipi1 as *mut _ as u64, 0, 0, 0]);
    line(h, 7, name(7), "vcpu 1", r, format_args!(""));
    let r = ret(guest::evtchn_send(q));
    line(h, 4, name(4), "IPI port", r, format_args!("{}", pending(q)));
    let r = ret(guest::evtchn_bind_vcpu(q, 0));
    line(h, 8, name(8), "IPI port", r, format_args!(""));
    let r = ret(guest::evtchn_unmask(q));
    line(h, 9, name(9), "IPI port", r, format_args!("{}", pending(q)));
    let r = ret(guest::evtchn_close(q));
    line(h, 3, name(3), "IPI port", r, format_args!("{}", pending(q)));
    // bind_virq.
    let mut v = EvtchnBindVirq {
        virq: VIRQ_DEBUG,
        vcpu: 0,
        port: 0,
    };
    let r = hc(h, [EVTCHNOP_BIND_VIRQ, &mut v as *mut _ as u64, 0, 0, 0]);
    let vp = v.port;
    line(
        h,
        1,
        name(1),
        "VIRQ_DEBUG",
        r,
        format_args!("port {}", status_of(vp)),
    );
    let mut v2 = EvtchnBindVirq {
        virq: VIRQ_DEBUG,
        vcpu: 0,
        port: 0,
    };
    let r = hc(h, [EVTCHNOP_BIND_VIRQ, &mut v2 as *mut _ as u64, 0, 0, 0]);
    line(h, 1, name(1), "VIRQ_DEBUG again", r, format_args!(""));
    v2.virq = NR_VIRQS;
    let r = hc(h, [EVTCHNOP_BIND_VIRQ, &mut v2 as *mut _ as u64, 0, 0, 0]);
    line(h, 1, name(1), "virq NR_VIRQS", r, format_args!(""));
    v2.virq = 2; // VIRQ_CONSOLE, a global VIRQ
    v2.vcpu = 1;
    let r = hc(h, [EVTCHNOP_BIND_VIRQ, &mut v2 as *mut _ as u64, 0, 0, 0]);
    line(h, 1, name(1), "global VIRQ on vcpu 1", r, format_args!(""));
    let r = ret(guest::evtchn_send(vp));
    line(h, 4, name(4), "VIRQ port", r, format_args!(""));
    let r = ret(guest::evtchn_close(vp));
    line(
        h,
        3,
        name(3),
        "VIRQ port",
        r,
        format_args!("port {}", status_of(vp)),
    );
    // Port 0 and the limit.
    for (class, port) in [
        ("port 0", 0u32),
        ("port KEEL_NR_EVTCHN_PORTS", KEEL_NR_EVTCHN_PORTS),
    ] {
        let mut s = EvtchnStatus {
            dom: DOMID_SELF,
            port,
            ..Default::default()
        };
        let r = hc(h, [EVTCHNOP_STATUS, &mut s as *mut _ as u64, 0, 0, 0]);
        line(h, 5, name(5), class, r, format_args!("status {}", s.status));
        line(
            h,
            9,
            name(9),
            class,
            ret(guest::evtchn_unmask(port)),
            format_args!(""),
        );
        line(
            h,
            4,
            name(4),
            class,
            ret(guest::evtchn_send(port)),
            format_args!(""),
        );
        line(
            h,
            3,
            name(3),
            class,
            ret(guest::evtchn_close(port)),
            format_args!(""),
        );
        line(
            h,
            8,
            name(8),
            class,
            ret(guest::evtchn_bind_vcpu(port, 0)),
            format_args!(""),
        );
    }
    let mut s = EvtchnStatus {
        dom: 7,
        port: 1,
        ..Default::default()
    };
    let r = hc(h, [EVTCHNOP_STATUS, &mut s as *mut _ as u64, 0, 0, 0]);
    line(h, 5, name(5), "dom another domain", r, format_args!(""));
}

/// Interdomain event channels (1.1) as one domain can use them: a loopback
/// channel to a port of its own, a port offered to another domain, and the
/// refusals.
fn interdomain() {
    let h = Hypercall::EVENT_CHANNEL_OP;
    let n = "event_channel_op/EVTCHNOP_bind_interdomain";
    let sub = EVTCHNOP_BIND_INTERDOMAIN;
    let bind = |remote_dom: u16, remote_port: u32| {
        let mut a = EvtchnBindInterdomain {
            remote_dom,
            remote_port,
            local_port: 0,
        };
        let r = hc(h, [sub, &mut a as *mut _ as u64, 0, 0, 0]);
        (r, a.local_port)
    };
    let r = hc(h, [sub, 0, 0, 0, 0]);
    line(h, sub, n, "NULL", r, format_args!(""));
    // Loopback: bind to our own port that is unbound for us.
    let p = guest::evtchn_alloc_unbound().unwrap_or(0);
    let (r, q) = bind(DOMID_SELF, p);
    line(
        h,
        sub,
        n,
        "our own port unbound for us",
        r,
        format_args!(
            "new port {}, {}; bound port {}",
            status_of(q),
            pending(q),
            status_of(p)
        ),
    );
    let (r2, _) = bind(DOMID_SELF, p);
    line(h, sub, n, "that port again", r2, format_args!(""));
    // The new port in use. Where the bind failed (a hypervisor without
    // interdomain channels) the line keeps the bind's answer: the class is a
    // port only the bind makes.
    let bound = r == 0;
    let r = if bound { ret(guest::evtchn_send(q)) } else { r };
    line(
        h,
        sub,
        n,
        "then EVTCHNOP_send on the new port",
        r,
        format_args!("peer {}", pending(p)),
    );
    let r = if bound {
        ret(guest::evtchn_close(q))
    } else {
        r
    };
    line(
        h,
        sub,
        n,
        "then EVTCHNOP_close of the new port",
        r,
        format_args!("port {}, peer {}", status_of(q), status_of(p)),
    );
    let _ = guest::evtchn_close(p);
    // A port of ours offered to another domain is not ours to bind.
    let o = guest::evtchn_alloc_unbound_in(DOMID_SELF, 7);
    let (r, _) = bind(DOMID_SELF, *o.as_ref().unwrap_or(&0));
    line(
        h,
        sub,
        n,
        "our port offered to another domain",
        r,
        format_args!(""),
    );
    if let Ok(o) = o {
        let _ = guest::evtchn_close(o);
    }
    let (r, _) = bind(7, 1);
    line(h, sub, n, "remote_dom no such domain", r, format_args!(""));
    let (r, _) = bind(DOMID_SELF, KEEL_NR_EVTCHN_PORTS);
    line(
        h,
        sub,
        n,
        "remote_port KEEL_NR_EVTCHN_PORTS",
        r,
        format_args!(""),
    );
    let (r, _) = bind(DOMID_SELF, 0);
    line(h, sub, n, "remote_port 0", r, format_args!(""));
}

fn hvm() {
    let h = Hypercall::HVM_OP;
    let n = "hvm_op/HVMOP_set_param";
    let set = |domid: u16, index: u32, value: u64| {
        let p = XenHvmParam {
            domid,
            index,
            value,
        };
        hc(h, [HVMOP_SET_PARAM, &p as *const _ as u64, 0, 0, 0])
    };
    let sub = HVMOP_SET_PARAM;
    line(
        h,
        sub,
        n,
        "vector 0x40",
        set(DOMID_SELF, HVM_PARAM_CALLBACK_IRQ, callback_vector(0x40)),
        format_args!(""),
    );
    line(
        h,
        sub,
        n,
        "no callback (0)",
        set(DOMID_SELF, HVM_PARAM_CALLBACK_IRQ, 0),
        format_args!(""),
    );
    line(
        h,
        sub,
        n,
        "vector HVM_CALLBACK_VECTOR_MIN - 1",
        set(
            DOMID_SELF,
            HVM_PARAM_CALLBACK_IRQ,
            callback_vector(HVM_CALLBACK_VECTOR_MIN - 1),
        ),
        format_args!(""),
    );
    line(
        h,
        sub,
        n,
        "callback type GSI",
        set(DOMID_SELF, HVM_PARAM_CALLBACK_IRQ, 5),
        format_args!(""),
    );
    line(
        h,
        sub,
        n,
        "callback type 3",
        set(DOMID_SELF, HVM_PARAM_CALLBACK_IRQ, 3 << 56 | 0x40),
        format_args!(""),
    );
    line(
        h,
        sub,
        n,
        "bits 55:8 set",
        set(
            DOMID_SELF,
            HVM_PARAM_CALLBACK_IRQ,
            callback_vector(0x40) | 1 << 20,
        ),
        format_args!(""),
    );
    line(
        h,
        sub,
        n,
        "another index",
        set(DOMID_SELF, 1, 0),
        format_args!(""),
    );
    line(
        h,
        sub,
        n,
        "another domain",
        set(7, HVM_PARAM_CALLBACK_IRQ, 0),
        format_args!(""),
    );
    line(
        h,
        sub,
        n,
        "NULL",
        hc(h, [HVMOP_SET_PARAM, 0, 0, 0, 0]),
        format_args!(""),
    );
    line(
        h,
        1,
        "hvm_op/HVMOP_get_param",
        "any",
        hc(h, [1, 0, 0, 0, 0]),
        format_args!(""),
    );
    // Leave no callback registered.
    let _ = set(DOMID_SELF, HVM_PARAM_CALLBACK_IRQ, 0);
}

fn timers() {
    let h = Hypercall::SET_TIMER_OP;
    // Deadlines are absolute system time; the transcript uses ones whose
    // outcome does not depend on the clock: 0 (stop), and a stop afterwards.
    line(
        h,
        0,
        "set_timer_op",
        "0 (stop)",
        hc(h, [0, 0, 0, 0, 0]),
        format_args!(""),
    );
    line(
        h,
        0,
        "set_timer_op",
        "1 ns (past)",
        hc(h, [1, 0, 0, 0, 0]),
        format_args!(""),
    );
    let _ = hc(h, [0, 0, 0, 0, 0]);
    let v = Hypercall::VCPU_OP;
    let per = |ns: u64| VcpuSetPeriodicTimer { period_ns: ns };
    let p = per(PERIODIC_TIMER_MIN_NS - 1);
    line(
        v,
        VCPUOP_SET_PERIODIC_TIMER,
        "vcpu_op/VCPUOP_set_periodic_timer",
        "PERIODIC_TIMER_MIN_NS - 1",
        hc(
            v,
            [VCPUOP_SET_PERIODIC_TIMER, 0, &p as *const _ as u64, 0, 0],
        ),
        format_args!(""),
    );
    let p = per(60_000_000_000);
    line(
        v,
        VCPUOP_SET_PERIODIC_TIMER,
        "vcpu_op/VCPUOP_set_periodic_timer",
        "60 s",
        hc(
            v,
            [VCPUOP_SET_PERIODIC_TIMER, 0, &p as *const _ as u64, 0, 0],
        ),
        format_args!(""),
    );
    line(
        v,
        VCPUOP_SET_PERIODIC_TIMER,
        "vcpu_op/VCPUOP_set_periodic_timer",
        "vcpu 1",
        hc(
            v,
            [VCPUOP_SET_PERIODIC_TIMER, 1, &p as *const _ as u64, 0, 0],
        ),
        format_args!(""),
    );
    line(
        v,
        VCPUOP_SET_PERIODIC_TIMER,
        "vcpu_op/VCPUOP_set_periodic_timer",
        "NULL",
        hc(v, [VCPUOP_SET_PERIODIC_TIMER, 0, 0, 0, 0]),
        format_args!(""),
    );
    line(
        v,
        VCPUOP_STOP_PERIODIC_TIMER,
        "vcpu_op/VCPUOP_stop_periodic_timer",
        "valid",
        hc(v, [VCPUOP_STOP_PERIODIC_TIMER, 0, 0, 0, 0]),
        format_args!(""),
    );
    line(
        v,
        VCPUOP_STOP_PERIODIC_TIMER,
        "vcpu_op/VCPUOP_stop_periodic_timer",
        "vcpu 1",
        hc(v, [VCPUOP_STOP_PERIODIC_TIMER, 1, 0, 0, 0]),
        format_args!(""),
    );
    let s = VcpuSetSingleshotTimer {
        timeout_abs_ns: 1,
        flags: VCPU_SSHOTTMR_FUTURE,
    };
    line(
        v,
        VCPUOP_SET_SINGLESHOT_TIMER,
        "vcpu_op/VCPUOP_set_singleshot_timer",
        "past deadline, VCPU_SSHOTTMR_future",
        hc(
            v,
            [VCPUOP_SET_SINGLESHOT_TIMER, 0, &s as *const _ as u64, 0, 0],
        ),
        format_args!(""),
    );
    let s = VcpuSetSingleshotTimer {
        timeout_abs_ns: 1,
        flags: 0,
    };
    line(
        v,
        VCPUOP_SET_SINGLESHOT_TIMER,
        "vcpu_op/VCPUOP_set_singleshot_timer",
        "past deadline",
        hc(
            v,
            [VCPUOP_SET_SINGLESHOT_TIMER, 0, &s as *const _ as u64, 0, 0],
        ),
        format_args!(""),
    );
    line(
        v,
        VCPUOP_SET_SINGLESHOT_TIMER,
        "vcpu_op/VCPUOP_set_singleshot_timer",
        "vcpu 1",
        hc(
            v,
            [VCPUOP_SET_SINGLESHOT_TIMER, 1, &s as *const _ as u64, 0, 0],
        ),
        format_args!(""),
    );
    line(
        v,
        VCPUOP_SET_SINGLESHOT_TIMER,
        "vcpu_op/VCPUOP_set_singleshot_timer",
        "NULL",
        hc(v, [VCPUOP_SET_SINGLESHOT_TIMER, 0, 0, 0, 0]),
        format_args!(""),
    );
    line(
        v,
        VCPUOP_STOP_SINGLESHOT_TIMER,
        "vcpu_op/VCPUOP_stop_singleshot_timer",
        "valid",
        hc(v, [VCPUOP_STOP_SINGLESHOT_TIMER, 0, 0, 0, 0]),
        format_args!(""),
    );
    line(
        v,
        VCPUOP_STOP_SINGLESHOT_TIMER,
        "vcpu_op/VCPUOP_stop_singleshot_timer",
        "vcpu 1",
        hc(v, [VCPUOP_STOP_SINGLESHOT_TIMER, 1, 0, 0, 0]),
        format_args!(""),
    );
    line(
        v,
        0,
        "vcpu_op/VCPUOP_initialise",
        "any",
        hc(v, [0, 0, 0, 0, 0]),
        format_args!(""),
    );
}

/// The entry's RW bit, as an effect.
fn rw(va: GuestVirt) -> &'static str {
    if !have_shared_info() {
        // A 0.x hypervisor has no PV MMU: nothing to look at.
        "-"
    } else if leaf(va).contains(PteFlags::WRITABLE) {
        "RW"
    } else {
        "RO"
    }
}

fn mmu() {
    let h = Hypercall::MMU_UPDATE;
    let n = "mmu_update/MMU_NORMAL_PT_UPDATE";
    let s = MMU_NORMAL_PT_UPDATE;
    let self_ = DOMID_SELF as u64;
    line(
        h,
        s,
        n,
        "empty batch",
        hc(h, [0, 0, 0, self_, 0]),
        format_args!(""),
    );
    line(
        h,
        s,
        n,
        "foreigndom 0x7ff1",
        hc(h, [0, 0, 0, 0x7ff1, 0]),
        format_args!(""),
    );
    line(
        h,
        s,
        n,
        "count MMU_BATCH_MAX + 1",
        hc(h, [0, MMU_BATCH_MAX + 1, 0, self_, 0]),
        format_args!(""),
    );
    line(
        h,
        s,
        n,
        "1 request at NULL",
        hc(h, [0, 1, 0, self_, 0]),
        format_args!(""),
    );
    let f = take_frame();
    let (t, i) = l1_of(f.va);
    let ro = leaf(f.va).without(PteFlags::WRITABLE);
    let req = [MmuUpdate {
        ptr: slot(t, i),
        val: ro.raw(),
    }];
    let mut done = 0xffff_ffffu32;
    let r = hc(
        h,
        [req.as_ptr() as u64, 1, &mut done as *mut _ as u64, self_, 0],
    );
    line(
        h,
        s,
        n,
        "drop RW of a free frame",
        r,
        format_args!("done {done}, entry {}", rw(f.va)),
    );
    let rwv = leaf(f.va).with(PteFlags::WRITABLE);
    let req = [MmuUpdate {
        ptr: slot(t, i),
        val: rwv.raw(),
    }];
    let r = hc(
        h,
        [req.as_ptr() as u64, 1, start_info().pt_base.get(), self_, 0],
    );
    line(
        h,
        s,
        n,
        "give RW back, done count read-only",
        r,
        format_args!("entry {}", rw(f.va)),
    );
    let req = [MmuUpdate {
        ptr: slot(t, i) | 4,
        val: rwv.raw(),
    }];
    let r = hc(h, [req.as_ptr() as u64, 1, 0, self_, 0]);
    line(h, s, n, "ptr bit 2 set", r, format_args!(""));
    for cmd in [
        MMU_MACHPHYS_UPDATE,
        MMU_PT_UPDATE_PRESERVE_AD,
        MMU_PT_UPDATE_NO_TRANSLATE,
    ] {
        let req = [MmuUpdate {
            ptr: slot(t, i) | cmd,
            val: rwv.raw(),
        }];
        let r = hc(h, [req.as_ptr() as u64, 1, 0, self_, 0]);
        line(
            h,
            cmd,
            n,
            format_args!("command {cmd}"),
            r,
            format_args!(""),
        );
    }
    // A pinned L1 mapped writable breaks the type rule.
    let l1 = take_frame();
    let r = ret(make_readonly(l1.va));
    line(
        h,
        s,
        n,
        "drop RW of a second free frame",
        r,
        format_args!("entry {}", rw(l1.va)),
    );
    let r = ret(pin(1, l1.mfn));
    line(
        Hypercall::MMUEXT_OP,
        u64::from(MMUEXT_PIN_L1_TABLE),
        "mmuext_op/MMUEXT_PIN_L1_TABLE",
        "a fresh L1",
        r,
        format_args!(""),
    );
    let r = ret(pin(1, l1.mfn));
    line(
        Hypercall::MMUEXT_OP,
        u64::from(MMUEXT_PIN_L1_TABLE),
        "mmuext_op/MMUEXT_PIN_L1_TABLE",
        "already pinned",
        r,
        format_args!(""),
    );
    let r = ret(make_writable(l1.va));
    line(
        h,
        s,
        n,
        "map a pinned L1 writable",
        r,
        format_args!("entry {}", rw(l1.va)),
    );
    let r = ret(unpin(l1.mfn));
    line(
        Hypercall::MMUEXT_OP,
        u64::from(MMUEXT_UNPIN_TABLE),
        "mmuext_op/MMUEXT_UNPIN_TABLE",
        "pinned L1",
        r,
        format_args!(""),
    );
    let r = ret(unpin(l1.mfn));
    line(
        Hypercall::MMUEXT_OP,
        u64::from(MMUEXT_UNPIN_TABLE),
        "mmuext_op/MMUEXT_UNPIN_TABLE",
        "not pinned",
        r,
        format_args!(""),
    );

    let e = Hypercall::MMUEXT_OP;
    let one = |cmd: u32, arg1: u64, arg2: u64| {
        let op = [MmuextOp {
            cmd,
            pad: 0,
            arg1,
            arg2,
        }];
        let mut done = 0u32;
        let r = hc(
            e,
            [op.as_ptr() as u64, 1, &mut done as *mut _ as u64, self_, 0],
        );
        (r, done)
    };
    let nm = |cmd: u32| -> &'static str {
        match cmd {
            MMUEXT_PIN_L2_TABLE => "mmuext_op/MMUEXT_PIN_L2_TABLE",
            MMUEXT_PIN_L3_TABLE => "mmuext_op/MMUEXT_PIN_L3_TABLE",
            MMUEXT_PIN_L4_TABLE => "mmuext_op/MMUEXT_PIN_L4_TABLE",
            MMUEXT_NEW_BASEPTR => "mmuext_op/MMUEXT_NEW_BASEPTR",
            MMUEXT_TLB_FLUSH_LOCAL => "mmuext_op/MMUEXT_TLB_FLUSH_LOCAL",
            MMUEXT_INVLPG_LOCAL => "mmuext_op/MMUEXT_INVLPG_LOCAL",
            MMUEXT_TLB_FLUSH_MULTI => "mmuext_op/MMUEXT_TLB_FLUSH_MULTI",
            MMUEXT_INVLPG_MULTI => "mmuext_op/MMUEXT_INVLPG_MULTI",
            MMUEXT_TLB_FLUSH_ALL => "mmuext_op/MMUEXT_TLB_FLUSH_ALL",
            MMUEXT_INVLPG_ALL => "mmuext_op/MMUEXT_INVLPG_ALL",
            _ => "mmuext_op/other",
        }
    };
    line(
        e,
        0,
        "mmuext_op/MMUEXT_PIN_L1_TABLE",
        "foreigndom 0x7ff1",
        hc(e, [0, 0, 0, 0x7ff1, 0]),
        format_args!(""),
    );
    line(
        e,
        0,
        "mmuext_op/MMUEXT_PIN_L1_TABLE",
        "count MMU_BATCH_MAX + 1",
        hc(e, [0, MMU_BATCH_MAX + 1, 0, self_, 0]),
        format_args!(""),
    );
    line(
        e,
        0,
        "mmuext_op/MMUEXT_PIN_L1_TABLE",
        "1 op at NULL",
        hc(e, [0, 1, 0, self_, 0]),
        format_args!(""),
    );
    // A writable (ordinary) frame cannot be pinned as a table of any level.
    let plain = take_frame();
    for cmd in [
        MMUEXT_PIN_L2_TABLE,
        MMUEXT_PIN_L3_TABLE,
        MMUEXT_PIN_L4_TABLE,
    ] {
        let (r, d) = one(cmd, plain.mfn.get(), 0);
        line(
            e,
            u64::from(cmd),
            nm(cmd),
            "a writable frame",
            r,
            format_args!("done {d}"),
        );
    }
    // A frame the domain does not own.
    let (r, d) = one(MMUEXT_PIN_L4_TABLE, 0, 0);
    line(
        e,
        u64::from(MMUEXT_PIN_L4_TABLE),
        nm(MMUEXT_PIN_L4_TABLE),
        "machine frame 0",
        r,
        format_args!("done {d}"),
    );
    // NEW_BASEPTR to the current L4 (pinned by the domain builder) and to an
    // unpinned frame.
    let cur = keel_guest::pagetable::cr3_mfn();
    let (r, d) = one(MMUEXT_NEW_BASEPTR, cur.get(), 0);
    line(
        e,
        u64::from(MMUEXT_NEW_BASEPTR),
        nm(MMUEXT_NEW_BASEPTR),
        "the current L4",
        r,
        format_args!("done {d}"),
    );
    let (r, d) = one(MMUEXT_NEW_BASEPTR, plain.mfn.get(), 0);
    line(
        e,
        u64::from(MMUEXT_NEW_BASEPTR),
        nm(MMUEXT_NEW_BASEPTR),
        "an unpinned frame",
        r,
        format_args!("done {d}"),
    );
    for cmd in [MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_TLB_FLUSH_ALL] {
        let (r, d) = one(cmd, 0, 0);
        line(
            e,
            u64::from(cmd),
            nm(cmd),
            "valid",
            r,
            format_args!("done {d}"),
        );
    }
    for cmd in [MMUEXT_INVLPG_LOCAL, MMUEXT_INVLPG_ALL] {
        let (r, d) = one(cmd, f.va.get(), 0);
        line(
            e,
            u64::from(cmd),
            nm(cmd),
            "valid",
            r,
            format_args!("done {d}"),
        );
    }
    let mask = 1u64;
    for cmd in [MMUEXT_TLB_FLUSH_MULTI, MMUEXT_INVLPG_MULTI] {
        let (r, d) = one(cmd, f.va.get(), &mask as *const _ as u64);
        line(
            e,
            u64::from(cmd),
            nm(cmd),
            "vcpu 0",
            r,
            format_args!("done {d}"),
        );
        let (r, d) = one(cmd, f.va.get(), UNMAPPED);
        line(
            e,
            u64::from(cmd),
            nm(cmd),
            "unmapped bitmap",
            r,
            format_args!("done {d}"),
        );
    }
    for cmd in [
        MMUEXT_FLUSH_CACHE,
        MMUEXT_SET_LDT,
        MMUEXT_NEW_USER_BASEPTR,
        MMUEXT_CLEAR_PAGE,
        MMUEXT_COPY_PAGE,
        MMUEXT_FLUSH_CACHE_GLOBAL,
        MMUEXT_MARK_SUPER,
        MMUEXT_UNMARK_SUPER,
        21,
    ] {
        let (r, d) = one(cmd, 0, 0);
        line(
            e,
            u64::from(cmd),
            "mmuext_op/other",
            format_args!("command {cmd}"),
            r,
            format_args!("done {d}"),
        );
    }
}

fn multicall() {
    let h = Hypercall::MULTICALL;
    let n = "multicall";
    line(
        h,
        0,
        n,
        "empty batch",
        hc(h, [0, 0, 0, 0, 0]),
        format_args!(""),
    );
    line(
        h,
        0,
        n,
        "MMU_BATCH_MAX + 1 calls",
        hc(h, [0, MMU_BATCH_MAX + 1, 0, 0, 0]),
        format_args!(""),
    );
    line(
        h,
        0,
        n,
        "1 call at NULL",
        hc(h, [0, 1, 0, 0, 0]),
        format_args!(""),
    );
    let mut calls = [
        MulticallEntry {
            op: Hypercall::XEN_VERSION.0,
            result: 0x5a5a,
            args: [XENVER_PAGESIZE, 0, 0, 0, 0, 0x77],
        },
        MulticallEntry {
            op: 11,
            result: 0x5a5a,
            args: [0; 6],
        },
        MulticallEntry {
            op: Hypercall::MULTICALL.0,
            result: 0x5a5a,
            args: [0; 6],
        },
        MulticallEntry {
            op: Hypercall::SCHED_OP.0,
            result: 0x5a5a,
            args: [SCHEDOP_BLOCK, 0, 0, 0, 0, 0],
        },
    ];
    // The block entry's answer depends on whether an upcall is pending (a
    // pending one makes SCHEDOP_block return 0 at once): state it, so that the
    // line records the refusal and not what earlier lines left pending.
    // (A hypervisor older than 1.0 has no shared-info page.)
    if events::shared_info().is_some() {
        events::upcall_pending().store(0, core::sync::atomic::Ordering::SeqCst);
    }
    let r = hc(h, [calls.as_mut_ptr() as u64, calls.len() as u64, 0, 0, 0]);
    let rs = |i: usize| Res(calls[i].result as i64);
    line(
        h,
        0,
        n,
        "pagesize (args[5] set), hypercall 11, nested multicall, SCHEDOP_block",
        r,
        format_args!("results {} {} {} {}", rs(0), rs(1), rs(2), rs(3)),
    );
    // A batch whose result slot cannot be written: the entry is read, the call
    // made, and writing its result back faults.
    let ro = take_frame();
    let entry = MulticallEntry {
        op: Hypercall::XEN_VERSION.0,
        result: 0,
        args: [XENVER_PAGESIZE, 0, 0, 0, 0, 0],
    };
    for (i, w) in [entry.op, entry.result]
        .into_iter()
        .chain(entry.args)
        .enumerate()
    {
        let _ = fault::write_u64(GuestVirt::new(ro.va.get() + 8 * i as u64), w);
    }
    let r = ret(make_readonly(ro.va));
    line(
        Hypercall::MMU_UPDATE,
        MMU_NORMAL_PT_UPDATE,
        "mmu_update/MMU_NORMAL_PT_UPDATE",
        "drop RW of a page of multicall entries",
        r,
        format_args!(""),
    );
    let r = hc(h, [ro.va.get(), 1, 0, 0, 0]);
    line(h, 0, n, "1 call in a read-only page", r, format_args!(""));
}

/// One end of a copy: `(frame or reference, domain, offset)`.
type CopyPtr = (u64, u16, u16);

/// `grant_table_op(cmd, op, count)` on one structure.
fn gnttab<T>(cmd: u64, op: &mut T, count: u64) -> i64 {
    hc(
        Hypercall::GRANT_TABLE_OP,
        [cmd, op as *mut T as u64, count, 0, 0],
    )
}

/// Grant tables (1.1) as one domain can use them: its own table, frames and
/// grants, and each class of invalid argument. Statuses are `GNTST_*` numbers.
fn grants() {
    let h = Hypercall::GRANT_TABLE_OP;
    let names = |cmd: u64| -> &'static str {
        match cmd {
            GNTTABOP_MAP_GRANT_REF => "grant_table_op/GNTTABOP_map_grant_ref",
            GNTTABOP_UNMAP_GRANT_REF => "grant_table_op/GNTTABOP_unmap_grant_ref",
            GNTTABOP_SETUP_TABLE => "grant_table_op/GNTTABOP_setup_table",
            GNTTABOP_COPY => "grant_table_op/GNTTABOP_copy",
            GNTTABOP_QUERY_SIZE => "grant_table_op/GNTTABOP_query_size",
            _ => "grant_table_op/other",
        }
    };
    let all = [
        GNTTABOP_MAP_GRANT_REF,
        GNTTABOP_UNMAP_GRANT_REF,
        GNTTABOP_SETUP_TABLE,
        GNTTABOP_COPY,
        GNTTABOP_QUERY_SIZE,
    ];
    for cmd in all {
        let n = names(cmd);
        line(
            h,
            cmd,
            n,
            "NULL, count 1",
            hc(h, [cmd, 0, 1, 0, 0]),
            format_args!(""),
        );
        line(
            h,
            cmd,
            n,
            "UNMAPPED, count 1",
            hc(h, [cmd, UNMAPPED, 1, 0, 0]),
            format_args!(""),
        );
        line(
            h,
            cmd,
            n,
            "non-canonical, count 1",
            hc(h, [cmd, NONCANONICAL, 1, 0, 0]),
            format_args!(""),
        );
        line(
            h,
            cmd,
            n,
            "count KEEL_GNTTAB_BATCH_MAX + 1",
            hc(h, [cmd, 0, KEEL_GNTTAB_BATCH_MAX as u64 + 1, 0, 0]),
            format_args!(""),
        );
        line(
            h,
            cmd,
            n,
            "count above 32 bits",
            hc(h, [cmd, 0, 1 << 32, 0, 0]),
            format_args!(""),
        );
    }
    for cmd in [3u64, 4, 7, 8, 9, 10, 11, 12] {
        let mut q = GnttabQuerySize::default();
        line(
            h,
            cmd,
            "grant_table_op/other",
            format_args!("command {cmd}"),
            gnttab(cmd, &mut q, 1),
            format_args!(""),
        );
    }

    // setup_table and query_size.
    let st = GNTTABOP_SETUP_TABLE;
    let mut list = [0u64; 4];
    let mut op = GnttabSetupTable {
        dom: DOMID_SELF,
        nr_frames: 1,
        status: 1,
        frame_list: list.as_mut_ptr() as u64,
    };
    let r = gnttab(st, &mut op, 1);
    line(
        h,
        st,
        names(st),
        "1 frame",
        r,
        format_args!("status {}", op.status),
    );
    let have_table = r == 0 && op.status == GNTST_OKAY;
    let table = Mfn::new(list[0]);
    let query = |dom: u16, count: u64| {
        let mut q = GnttabQuerySize {
            dom,
            status: 1,
            ..Default::default()
        };
        let r = gnttab(GNTTABOP_QUERY_SIZE, &mut q, count);
        (r, q)
    };
    let qs = GNTTABOP_QUERY_SIZE;
    let (r, q) = query(DOMID_SELF, 1);
    line(
        h,
        qs,
        names(qs),
        "DOMID_SELF",
        r,
        format_args!(
            "status {}, frames {} of {}",
            q.status, q.nr_frames, q.max_nr_frames
        ),
    );
    let (r, q) = query(7, 1);
    line(
        h,
        qs,
        names(qs),
        "no such domain",
        r,
        format_args!("status {}", q.status),
    );
    let (r, _) = query(DOMID_SELF, 2);
    line(h, qs, names(qs), "count 2", r, format_args!(""));
    let (r, _) = query(DOMID_SELF, 0);
    line(h, qs, names(qs), "count 0", r, format_args!(""));
    for (class, dom, nr, at) in [
        ("2 frames", DOMID_SELF, 2, list.as_mut_ptr() as u64),
        (
            "5 frames (above the largest table)",
            DOMID_SELF,
            5,
            list.as_mut_ptr() as u64,
        ),
        ("no such domain", 7, 1, list.as_mut_ptr() as u64),
        ("frame list UNMAPPED", DOMID_SELF, 1, UNMAPPED),
        ("frame list non-canonical", DOMID_SELF, 1, NONCANONICAL),
        ("0 frames", DOMID_SELF, 0, 0),
    ] {
        let mut op = GnttabSetupTable {
            dom,
            nr_frames: nr,
            status: 1,
            frame_list: at,
        };
        let r = gnttab(st, &mut op, 1);
        line(
            h,
            st,
            names(st),
            class,
            r,
            format_args!("status {}", op.status),
        );
    }
    let (r, q) = query(DOMID_SELF, 1);
    line(
        h,
        qs,
        names(qs),
        "after growing to 2 frames",
        r,
        format_args!(
            "status {}, frames {} of {}",
            q.status, q.nr_frames, q.max_nr_frames
        ),
    );
    let mut op = GnttabSetupTable {
        dom: DOMID_SELF,
        nr_frames: 1,
        status: 1,
        frame_list: list.as_mut_ptr() as u64,
    };
    let r = gnttab(st, &mut op, 2);
    line(h, st, names(st), "count 2", r, format_args!(""));

    // The table frame, mapped writable in place of a free frame of ours
    // (refused by a hypervisor without grant tables: its entries then go
    // nowhere, and every call below answers -ENOSYS anyway).
    let t = take_frame();
    let mapped = have_table
        && (set_leaf(t.va, entry(table, PteFlags::PRESENT | PteFlags::WRITABLE))).is_ok();
    let me = my_domid();
    let set_entry = |gref: u64, flags: u16, domid: u16, frame: Mfn| {
        if mapped {
            let e = u64::from(flags) | u64::from(domid) << 16 | frame.get() << 32;
            let _ = fault::write_u64(GuestVirt::new(t.va.get() + 8 * gref), e);
        }
    };
    let flags_of = |gref: u64| {
        if mapped {
            fault::read_u64(GuestVirt::new(t.va.get() + 8 * gref)).map_or(0, |e| e as u16)
        } else {
            0
        }
    };

    // copy.
    let cp = GNTTABOP_COPY;
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
        let r = gnttab(cp, &mut op, 1);
        (r, op.status)
    };
    let (r, s) = copy(own(&a, 0), own(&b, 0), 16, 0);
    line(
        h,
        cp,
        names(cp),
        "frame to frame",
        r,
        format_args!(
            "status {s}, data {}",
            if fault::read_u64(GuestVirt::new(b.va.get() + 8)) == Ok(0x1111) {
                "copied"
            } else {
                "not copied"
            }
        ),
    );
    set_entry(1, GTF_PERMIT_ACCESS | GTF_READONLY, me, a.mfn);
    set_entry(2, GTF_PERMIT_ACCESS, me.wrapping_add(1), a.mfn);
    set_entry(3, 0, me, a.mfn);
    set_entry(4, GTF_PERMIT_ACCESS, me, cr3_mfn());
    let (r, s) = copy((1, DOMID_SELF, 8), own(&b, 16), 8, GNTCOPY_SOURCE_GREF);
    line(
        h,
        cp,
        names(cp),
        "through our own read-only grant",
        r,
        format_args!("status {s}, entry flags {:#x} after", flags_of(1)),
    );
    let cases: [(&str, CopyPtr, CopyPtr, u16, u16); 10] = [
        (
            "into a read-only grant",
            own(&b, 0),
            (1, DOMID_SELF, 0),
            8,
            GNTCOPY_DEST_GREF,
        ),
        (
            "through a grant to another domain",
            (2, DOMID_SELF, 0),
            own(&b, 0),
            8,
            GNTCOPY_SOURCE_GREF,
        ),
        (
            "through a revoked grant",
            (3, DOMID_SELF, 0),
            own(&b, 0),
            8,
            GNTCOPY_SOURCE_GREF,
        ),
        (
            "through a grant of a page table",
            (4, DOMID_SELF, 0),
            own(&b, 0),
            8,
            GNTCOPY_SOURCE_GREF,
        ),
        (
            "reference beyond the table",
            (4096, DOMID_SELF, 0),
            own(&b, 0),
            8,
            GNTCOPY_SOURCE_GREF,
        ),
        (
            "a frame not ours",
            (0xf_ffff_ffff, DOMID_SELF, 0),
            own(&b, 0),
            8,
            0,
        ),
        (
            "another domain's frame without a grant",
            (a.mfn.get(), 7, 0),
            own(&b, 0),
            8,
            0,
        ),
        ("across the end of a page", own(&a, 4000), own(&b, 0), 97, 0),
        (
            "our page table as destination",
            own(&a, 0),
            (cr3_mfn().get(), DOMID_SELF, 0),
            8,
            0,
        ),
        ("length 0", own(&a, 0), own(&b, 0), 0, 0),
    ];
    for (class, src, dst, len, flags) in cases {
        let (r, s) = copy(src, dst, len, flags);
        line(h, cp, names(cp), class, r, format_args!("status {s}"));
    }
    let mut none: [GnttabCopy; 0] = [];
    line(
        h,
        cp,
        names(cp),
        "count 0",
        hc(h, [cp, none.as_mut_ptr() as u64, 0, 0, 0]),
        format_args!(""),
    );

    // map and unmap.
    let mp = GNTTABOP_MAP_GRANT_REF;
    let spare = take_frame();
    set_entry(5, GTF_PERMIT_ACCESS, me, a.mfn);
    for (class, dom, gref, flags) in [
        ("our own grant", me, 5, GNTMAP_HOST_MAP),
        ("DOMID_SELF's grant", DOMID_SELF, 5, GNTMAP_HOST_MAP),
        ("without GNTMAP_host_map", me, 5, 0),
        ("from no such domain", 7, 5, GNTMAP_HOST_MAP),
        ("reference beyond the table", me, 4096, GNTMAP_HOST_MAP),
    ] {
        let mut op = GnttabMapGrantRef {
            host_addr: spare.va.get(),
            flags,
            gref,
            dom,
            status: 1,
            ..Default::default()
        };
        let r = gnttab(mp, &mut op, 1);
        line(
            h,
            mp,
            names(mp),
            class,
            r,
            format_args!("status {}", op.status),
        );
    }
    let um = GNTTABOP_UNMAP_GRANT_REF;
    for (class, handle, at) in [
        ("a handle never returned", 3, spare.va.get()),
        ("handle 2^32-1", u32::MAX, spare.va.get()),
        ("a handle never returned, address 0", 3, 0),
    ] {
        let mut op = GnttabUnmapGrantRef {
            host_addr: at,
            handle,
            status: 1,
            ..Default::default()
        };
        let r = gnttab(um, &mut op, 1);
        line(
            h,
            um,
            names(um),
            class,
            r,
            format_args!("status {}", op.status),
        );
    }
    for g in 1..6 {
        set_entry(g, 0, 0, Mfn::new(0));
    }
    // The table frame is unmapped again (the teardown counts every reference).
    if mapped {
        let _ = set_leaf(t.va, entry(t.mfn, PteFlags::PRESENT | PteFlags::WRITABLE));
    }
}

/// Our domain id (a grant names its grantee by id): the remote end of an
/// unbound port allocated for `DOMID_SELF` (0 without event channels).
fn my_domid() -> u16 {
    let Ok(p) = guest::evtchn_alloc_unbound() else {
        return 0;
    };
    let id = guest::evtchn_status(p).map_or(0, |s| s.u[0] as u16);
    let _ = guest::evtchn_close(p);
    id
}

/// `domctl` from a domain that is not the control domain: the envelope at
/// NULL and every case of `keel_guest::domctl_cases` (the list the lead
/// extends when `domctl` is wired), whether or not it is served.
fn domctl() {
    let h = Hypercall::DOMCTL;
    line(
        h,
        0,
        "domctl",
        "NULL",
        hc(h, [0, 0, 0, 0, 0]),
        format_args!(""),
    );
    for c in domctl_cases::CASES {
        let mut op = XenDomctl {
            cmd: c.cmd,
            interface_version: c.interface_version,
            domain: c.domain,
            ..Default::default()
        };
        let r = ret(guest::domctl(&mut op));
        line(
            h,
            u64::from(c.cmd),
            domctl_cases::name(c.cmd),
            c.class,
            r,
            format_args!(""),
        );
    }
}

fn unimplemented() {
    // Every hypercall no release implements answers -ENOSYS; one line each.
    // (One staged for a version in progress is not described: it is served
    // only to an image that declares that version, which this program does
    // not, so it gets -ENOSYS. `domctl` has lines of its own.)
    for h in hypercall::ALL {
        let released = h
            .implemented_since()
            .is_some_and(keel_guest::abi::layout::described);
        // `domctl` has its lines whether it is served or not (`domctl()`).
        if !released && *h != Hypercall::DOMCTL {
            let r = hc(*h, [0, 0, 0, 0, 0]);
            line(
                *h,
                0,
                h.name().unwrap_or("?"),
                "unimplemented",
                r,
                format_args!(""),
            );
        }
    }
    let r = hc(Hypercall(u64::MAX), [0, 0, 0, 0, 0]);
    line(
        Hypercall(u64::MAX),
        0,
        "hypercall 2^64-1",
        "no such number",
        r,
        format_args!(""),
    );
    let r = hc(
        Hypercall::SCHED_OP,
        [SCHEDOP_SHUTDOWN | 1 << 32, 0, 0, 0, 0],
    );
    line(
        Hypercall::SCHED_OP,
        SCHEDOP_SHUTDOWN,
        "sched_op/SCHEDOP_shutdown",
        "upper bits in cmd",
        r,
        format_args!("still running"),
    );
}
