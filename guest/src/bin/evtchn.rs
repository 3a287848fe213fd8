//! Event channels (ABI 1.0) with upcalls on a registered vector: an IPI to
//! ourselves is delivered once per send (10,000 sends, no loss, no duplicate);
//! a masked port stays pending with no upcall and arrives exactly once after
//! `EVTCHNOP_unmask`; with `evtchn_upcall_mask` set nothing is delivered and
//! enabling delivers; with RFLAGS.IF = 0 the upcall is deferred (not dropped)
//! until STI; no upcall ever interrupts IF = 0; Xen's error codes.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};

use keel_guest::abi::event::*;
use keel_guest::abi::guest;
use keel_guest::arch;
use keel_guest::events;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Event channels: upcalls, masking, 10,000 sends, IF=0 deferral, Xen error codes",
    category: Functional,
    main: test_main,
}

const VECTOR: u8 = 0xf3;
static SEEN: [AtomicU32; 64] = [const { AtomicU32::new(0) }; 64];
static TOTAL: AtomicU64 = AtomicU64::new(0);

fn on_event(port: u32) {
    TOTAL.fetch_add(1, SeqCst);
    if let Some(c) = SEEN.get(port as usize) {
        c.fetch_add(1, SeqCst);
    }
}

fn seen(p: u32) -> u32 {
    SEEN.get(p as usize).map_or(0, |c| c.load(SeqCst))
}

fn test_main() {
    if events::shared_info().is_none() {
        failure!("no shared_info page");
        return;
    }
    check_eq!(
        events::set_upcall_handler(VECTOR, on_event),
        Ok(()),
        "HVM_PARAM_CALLBACK_IRQ"
    );
    events::enable();
    arch::sti();

    let ipi = match guest::evtchn_bind_ipi(0) {
        Ok(p) => p,
        Err(e) => {
            failure!("bind_ipi: {e}");
            return;
        }
    };
    println!("IPI port {ipi}");

    // One send, one upcall, before the hypercall even returns to us.
    check_eq!(guest::evtchn_send(ipi), Ok(()), "send");
    check_eq!(seen(ipi), 1, "upcalls after one send");

    // 10,000 sends: exactly 10,000 upcalls.
    for _ in 0..10_000 {
        let _ = guest::evtchn_send(ipi);
    }
    check_eq!(seen(ipi), 10_001, "upcalls after 10,000 more sends");

    // Masked port: pending, no upcall; unmask delivers exactly once.
    events::mask(ipi);
    for _ in 0..3 {
        check_eq!(guest::evtchn_send(ipi), Ok(()), "send while masked");
    }
    check_eq!(seen(ipi), 10_001, "upcalls while masked");
    check!(events::is_pending(ipi), "masked port is pending");
    check_eq!(guest::evtchn_unmask(ipi), Ok(()), "unmask");
    check_eq!(seen(ipi), 10_002, "upcalls after unmask (exactly one)");
    check!(!events::is_pending(ipi), "delivered port no longer pending");
    check_eq!(guest::evtchn_unmask(ipi), Ok(()), "unmask again");
    check_eq!(seen(ipi), 10_002, "a second unmask delivers nothing");

    // evtchn_upcall_mask: nothing delivered; enabling delivers the pending one.
    events::disable();
    for _ in 0..100 {
        let _ = guest::evtchn_send(ipi);
    }
    check_eq!(seen(ipi), 10_002, "upcalls while evtchn_upcall_mask = 1");
    events::enable();
    check_eq!(seen(ipi), 10_003, "after enabling: the pending event, once");

    // RFLAGS.IF = 0: deferred until STI, not dropped.
    arch::cli();
    let _ = guest::evtchn_send(ipi);
    let _ = guest::xen_version();
    let during = seen(ipi);
    arch::sti();
    // The interrupt window opens after the instruction following STI.
    core::hint::black_box(0);
    let after = seen(ipi);
    check_eq!(during, 10_003, "upcalls while IF = 0");
    check_eq!(after, 10_004, "the deferred upcall after STI");
    check_eq!(
        events::UPCALLS_WITH_IF_CLEAR.load(SeqCst),
        0,
        "upcalls that interrupted IF = 0"
    );

    // A second port: events on two ports in one upcall are both seen.
    let ipi2 = guest::evtchn_bind_ipi(0).unwrap_or(0);
    events::disable();
    let _ = guest::evtchn_send(ipi);
    let _ = guest::evtchn_send(ipi2);
    events::enable();
    check_eq!(
        (seen(ipi), seen(ipi2)),
        (10_005, 1),
        "two ports, one enable"
    );

    // Status and error codes (Xen's).
    let st = guest::evtchn_status(ipi);
    check_eq!(
        st.map(|s| s.status),
        Ok(EVTCHNSTAT_IPI),
        "status of the IPI port"
    );
    let t = guest::evtchn_bind_virq(VIRQ_TIMER, 0);
    check!(t.is_ok(), "bind VIRQ_TIMER: {t:?}");
    let t = t.unwrap_or(0);
    check_eq!(
        guest::evtchn_bind_virq(VIRQ_TIMER, 0),
        Err(Errno::EEXIST),
        "VIRQ_TIMER twice"
    );
    check_eq!(
        guest::evtchn_status(t).map(|s| (s.status, s.u[0])),
        Ok((EVTCHNSTAT_VIRQ, VIRQ_TIMER)),
        "status of the VIRQ port"
    );
    check_eq!(
        guest::evtchn_send(t),
        Err(Errno::EINVAL),
        "send on a VIRQ port"
    );
    check_eq!(
        guest::evtchn_bind_vcpu(t, 0),
        Err(Errno::EINVAL),
        "bind_vcpu of a per-vCPU VIRQ"
    );
    let c = guest::evtchn_bind_virq(VIRQ_CONSOLE, 0);
    check!(c.is_ok(), "bind VIRQ_CONSOLE: {c:?}");
    check_eq!(
        guest::evtchn_bind_vcpu(c.unwrap_or(0), 0),
        Ok(()),
        "bind_vcpu of a global VIRQ"
    );
    check!(
        guest::evtchn_bind_virq(VIRQ_DEBUG, 0).is_ok(),
        "bind VIRQ_DEBUG"
    );
    check_eq!(
        guest::evtchn_bind_virq(VIRQ_CONSOLE, 1),
        Err(Errno::EINVAL),
        "global VIRQ on vCPU 1"
    );
    check_eq!(
        guest::evtchn_bind_virq(NR_VIRQS, 0),
        Err(Errno::EINVAL),
        "VIRQ out of range"
    );
    check_eq!(
        guest::evtchn_bind_ipi(1),
        Err(Errno::ENOENT),
        "IPI to vCPU 1"
    );
    let u = guest::evtchn_alloc_unbound();
    check!(u.is_ok(), "alloc_unbound: {u:?}");
    let u = u.unwrap_or(0);
    check_eq!(
        guest::evtchn_status(u).map(|s| s.status),
        Ok(EVTCHNSTAT_UNBOUND),
        "status of the unbound port"
    );
    check_eq!(
        guest::evtchn_send(u),
        Ok(()),
        "send on an unbound port (dropped)"
    );
    check_eq!(guest::evtchn_close(u), Ok(()), "close");
    check_eq!(guest::evtchn_close(u), Err(Errno::EINVAL), "close twice");
    check_eq!(
        guest::evtchn_status(u).map(|s| s.status),
        Ok(EVTCHNSTAT_CLOSED),
        "status of a closed port"
    );
    check_eq!(
        guest::evtchn_close(0),
        Err(Errno::EINVAL),
        "close port 0 (reserved)"
    );
    check_eq!(
        guest::evtchn_send(KEEL_NR_EVTCHN_PORTS),
        Err(Errno::EINVAL),
        "send beyond the last port"
    );
    check_eq!(
        guest::evtchn_unmask(u32::MAX),
        Err(Errno::EINVAL),
        "unmask 2^32-1"
    );
    check_eq!(guest::evtchn_close(t), Ok(()), "close the VIRQ port");
    check_eq!(
        guest::evtchn_bind_virq(VIRQ_TIMER, 0).is_ok(),
        true,
        "rebind VIRQ_TIMER after close"
    );
    check_eq!(
        guest::hvm_set_callback_irq(callback_vector(0x0f)),
        Err(Errno::EINVAL),
        "vector 0x0f"
    );
    check_eq!(seen(ipi), 10_005, "no stray upcalls");
    println!("{} upcalls in all", events::UPCALLS.load(SeqCst));
    arch::cli();
    success();
}
