//! The control domain (`keel.control`, runner's `TEST_DOMAIN_WORDS`) and its
//! `domctl` subset (ABI 1.1), with three companions (`COMPANION_DOMAINS`):
//! domain 2 spins (`domctl_peer role=spin`, 4 MiB), domain 3 is refused
//! (`domctl_peer role=refused after=1`: -EPERM, -EFAULT; it starts once this
//! domain offers it a port, after binding `VIRQ_DOM_EXC`) and ends on its own, domain
//! 4 crashes at once (`role=crash`) while the others go on: the machine's
//! power-off status is then 1, which the runner expects of this test
//! (`EXPECTED_STATUS`). (An
//! image that knows only 1.0 gets -ENOSYS: that is what an image built with
//! the 1.0 crate is served, `AbiVersion::served_to`, host-tested in
//! `hypercall/tests_domctl.rs`; any image built today knows 1.1.) Covered:
//! `VIRQ_DOM_EXC` bound and raised when 3 shuts down; the refusals (wrong
//! interface version -EACCES, unknown command -ENOSYS, bad pointers -EFAULT,
//! itself -EINVAL, a domain that does not exist -ESRCH, unpause of a domain
//! not paused -EINVAL); `getdomaininfo` of itself and of domain 2 (name,
//! pages, state); pause (its CPU time stands still while it is paused, the
//! flag is set), unpause (it runs again); destroy (dying while its teardown
//! goes on, pause -EINVAL then; gone once done; `VIRQ_DOM_EXC`; every command
//! on it -ESRCH).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::domctl::{
    XenDomctl, XenDomctlGetdomaininfo, XEN_DOMCTL_DESTROYDOMAIN, XEN_DOMCTL_GETDOMAININFO,
    XEN_DOMCTL_PAUSEDOMAIN, XEN_DOMCTL_UNPAUSEDOMAIN, XEN_DOMINF_BLOCKED, XEN_DOMINF_DYING,
    XEN_DOMINF_PAUSED, XEN_DOMINF_RUNNING, XEN_DOMINF_SHUTDOWN,
};
use keel_guest::abi::event::{Pod, DOMID_SELF, VIRQ_DOM_EXC};
use keel_guest::abi::guest;
use keel_guest::events;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "The control domain: domctl getdomaininfo, pause, unpause, destroy, VIRQ_DOM_EXC, and every refusal",
    category: Functional,
    abi: keel_guest::abi::version::AbiVersion::V1_1,
    main: test_main,
}

const SPINNER: u16 = 2;
const REFUSED: u16 = 3;
const CRASHER: u16 = 4;
/// The port offered to domain 3 to say VIRQ_DOM_EXC is bound (our second:
/// the VIRQ's is the first).
const GO_PORT: u32 = 2;

fn op(cmd: u32, domain: u16) -> XenDomctl {
    XenDomctl {
        cmd,
        domain,
        ..Default::default()
    }
}

fn call(cmd: u32, domain: u16) -> Result<(), Errno> {
    guest::domctl(&mut op(cmd, domain))
}

/// `getdomaininfo` of the first domain at or above `domain`.
fn info(domain: u16) -> Result<XenDomctlGetdomaininfo, Errno> {
    let mut o = op(XEN_DOMCTL_GETDOMAININFO, domain);
    guest::domctl(&mut o)?;
    let mut b = [0u8; XenDomctl::SIZE];
    o.encode(&mut b);
    let i = XenDomctlGetdomaininfo::decode(&b[16..]);
    if i.domain != o.domain {
        failure!("envelope names domain {}, answer {}", o.domain, i.domain);
    }
    Ok(i)
}

fn clear(p: u32) {
    events::pending_word((p / 64) as usize)
        .fetch_and(!(1 << (p % 64)), core::sync::atomic::Ordering::SeqCst);
}

/// Poll `port` until it is pending or `ms` passed; whether it was (cleared).
fn wait_pending(port: u32, ms: u64) -> bool {
    let end = events::now_ns() + ms * 1_000_000;
    while !events::is_pending(port) && events::now_ns() < end {
        let _ = guest::sched_poll(&[port], end);
    }
    let was = events::is_pending(port);
    clear(port);
    was
}

/// Let `ms` of system time pass with the CPU given to the others.
fn sleep(port: u32, ms: u64) {
    let end = events::now_ns() + ms * 1_000_000;
    while events::now_ns() < end {
        let _ = guest::sched_poll(&[port], end);
        if events::is_pending(port) {
            failure!("VIRQ_DOM_EXC while no domain should end");
            clear(port);
        }
    }
}

fn name(i: &XenDomctlGetdomaininfo) -> &[u8] {
    let n = i.handle.iter().position(|b| *b == 0).unwrap_or(16);
    &i.handle[..n]
}

fn test_main() {
    if events::shared_info().is_none() {
        failure!("no shared_info page");
        return;
    }
    // Events stay masked in vcpu_info: the port is polled, never delivered.
    let port = guest::evtchn_bind_virq(VIRQ_DOM_EXC, 0);
    let Ok(port) = port else {
        failure!("bind VIRQ_DOM_EXC: {port:?}");
        return;
    };
    // Domain 4 crashes at its start: torn down while we (and the spinner)
    // run on, then gone from the list. Its VIRQ_DOM_EXC (raised only if it
    // came after our bind) is then cleared, so that the next one is domain
    // 3's.
    let end = events::now_ns() + 10_000_000_000;
    while info(CRASHER).is_ok() && events::now_ns() < end {
        let _ = wait_pending(port, 100);
    }
    check_eq!(
        info(CRASHER).map(|i| i.domain),
        Err(Errno::ESRCH),
        "the crashed domain 4 is gone"
    );
    clear(port);
    // Domain 3 waits for this port before it starts (`domctl_peer
    // after=1`): it shuts down only once VIRQ_DOM_EXC is bound here.
    check_eq!(
        guest::evtchn_alloc_unbound_in(DOMID_SELF, REFUSED),
        Ok(GO_PORT),
        "the port offered to domain 3"
    );

    // Refusals.
    let mut bad = op(XEN_DOMCTL_GETDOMAININFO, 0);
    bad.interface_version = 0x14;
    check_eq!(
        guest::domctl(&mut bad),
        Err(Errno::EACCES),
        "interface version 0x14"
    );
    bad.interface_version = 0x16;
    check_eq!(
        guest::domctl(&mut bad),
        Err(Errno::EACCES),
        "interface version 0x16"
    );
    for cmd in [0, 1, 6, 9, 46, 0xffff_ffff] {
        check_eq!(
            call(cmd, SPINNER),
            Err(Errno::ENOSYS),
            "domctl command {cmd}"
        );
    }
    for va in [0u64, 0x10, 0xffff_8000_0000_0000, 0x0000_8000_0000_0000 - 8] {
        let r = guest::hypercall_scalar(Hypercall::DOMCTL, [va, 0, 0, 0, 0]);
        check_eq!(r, Errno::EFAULT.as_return(), "domctl at {va:#x}");
    }
    check_eq!(
        call(XEN_DOMCTL_PAUSEDOMAIN, 1),
        Err(Errno::EINVAL),
        "pause itself"
    );
    check_eq!(
        call(XEN_DOMCTL_DESTROYDOMAIN, 1),
        Err(Errno::EINVAL),
        "destroy itself"
    );
    check_eq!(
        call(XEN_DOMCTL_PAUSEDOMAIN, 77),
        Err(Errno::ESRCH),
        "pause domain 77"
    );
    check_eq!(
        call(XEN_DOMCTL_DESTROYDOMAIN, 77),
        Err(Errno::ESRCH),
        "destroy domain 77"
    );
    check_eq!(
        info(77).map(|i| i.domain),
        Err(Errno::ESRCH),
        "getdomaininfo from 77"
    );
    check_eq!(
        call(XEN_DOMCTL_UNPAUSEDOMAIN, SPINNER),
        Err(Errno::EINVAL),
        "unpause a domain not paused"
    );

    // Domain 3 checks its refusals and shuts down: VIRQ_DOM_EXC, and then
    // nothing at or above 3 is listed.
    let end = events::now_ns() + 10_000_000_000;
    let mut raised = 0;
    while info(REFUSED).is_ok() && events::now_ns() < end {
        if wait_pending(port, 100) {
            raised += 1;
        }
    }
    // Raised before it left the list: if it ended between two looks, the
    // bit is still pending.
    if wait_pending(port, 1) {
        raised += 1;
    }
    check_eq!(
        info(REFUSED).map(|i| i.domain),
        Err(Errno::ESRCH),
        "domain 3 ended"
    );
    check!(raised >= 1, "no VIRQ_DOM_EXC when domain 3 shut down");

    // The list: ourselves (running), then the spinner.
    match info(0) {
        Ok(me) => {
            check_eq!(me.domain, 1, "the first domain");
            check_eq!(name(&me), b"domctl", "our name");
            check_eq!(me.flags & XEN_DOMINF_RUNNING, XEN_DOMINF_RUNNING, "we run");
            check!(me.tot_pages > 0 && me.max_pages > 0, "our pages {me:?}");
            check!(me.shared_info_frame != 0, "our shared_info frame");
        }
        Err(e) => failure!("getdomaininfo from 0: {e}"),
    }
    let spinner = match info(2) {
        Ok(s) => s,
        Err(e) => {
            failure!("getdomaininfo of domain 2: {e}");
            return;
        }
    };
    check_eq!(spinner.domain, SPINNER, "domain 2 listed");
    check_eq!(name(&spinner), b"domctl_peer", "its name");
    check_eq!(spinner.max_pages, 4 * 256, "its memory (keel.mem=4)");
    check!(
        spinner.tot_pages > 0 && spinner.tot_pages <= spinner.max_pages + 64,
        "its pages: {} of {}",
        spinner.tot_pages,
        spinner.max_pages
    );
    // Runnable, or running when it has a CPU of its own (`keel.cpu=`,
    // `place=spread`): on one CPU it cannot run while we do.
    check_eq!(
        spinner.flags
            & (XEN_DOMINF_PAUSED | XEN_DOMINF_DYING | XEN_DOMINF_SHUTDOWN | XEN_DOMINF_BLOCKED),
        0,
        "its state: runnable or running"
    );
    check_eq!(spinner.nr_online_vcpus, 1, "its vCPUs");

    // Pause: its CPU time stands still.
    check_eq!(
        call(XEN_DOMCTL_PAUSEDOMAIN, SPINNER),
        Ok(()),
        "pause domain 2"
    );
    let t0 = info(SPINNER).map(|i| (i.flags & XEN_DOMINF_PAUSED, i.cpu_time));
    check_eq!(t0.map(|t| t.0), Ok(XEN_DOMINF_PAUSED), "paused flag");
    sleep(port, 50);
    let t1 = info(SPINNER).map(|i| i.cpu_time);
    check_eq!(t1, t0.map(|t| t.1), "CPU time of the paused domain");

    // Unpause: it runs again.
    check_eq!(
        call(XEN_DOMCTL_UNPAUSEDOMAIN, SPINNER),
        Ok(()),
        "unpause domain 2"
    );
    let flags = info(SPINNER).map(|i| i.flags & XEN_DOMINF_PAUSED);
    check_eq!(flags, Ok(0), "paused flag after unpause");
    sleep(port, 50);
    let t2 = info(SPINNER).map(|i| i.cpu_time);
    let (Ok(t1), Ok(t2)) = (t1, t2) else {
        failure!("getdomaininfo of domain 2 after unpause: {t2:?}");
        return;
    };
    check!(
        t2 > t1,
        "domain 2 did not run once unpaused: CPU time {t1} then {t2}"
    );
    println!("domain 2: CPU time {t1} ns paused, {t2} ns after 50 ms unpaused");

    // Destroy: VIRQ_DOM_EXC, then it is dying or gone.
    check_eq!(
        call(XEN_DOMCTL_DESTROYDOMAIN, SPINNER),
        Ok(()),
        "destroy domain 2"
    );
    // Its teardown goes on in bounded steps between scheduling decisions:
    // listed as dying until it is done (pausing it is -EINVAL), then gone.
    let mut dying = 0u32;
    let end = events::now_ns() + 5_000_000_000;
    loop {
        match info(SPINNER) {
            Err(Errno::ESRCH) => break,
            Ok(i) if i.domain == SPINNER => {
                check_eq!(
                    i.flags & XEN_DOMINF_DYING,
                    XEN_DOMINF_DYING,
                    "domain 2 dying"
                );
                if dying == 0 {
                    check_eq!(
                        call(XEN_DOMCTL_PAUSEDOMAIN, SPINNER),
                        Err(Errno::EINVAL),
                        "pause a dying domain"
                    );
                }
                dying += 1;
            }
            other => {
                failure!("getdomaininfo of a destroyed domain: {other:?}");
                return;
            }
        }
        if events::now_ns() > end {
            failure!("domain 2 still listed 5 s after its destruction");
            return;
        }
        let _ = guest::sched_yield();
    }
    check!(
        events::is_pending(port) || wait_pending(port, 5_000),
        "no VIRQ_DOM_EXC after destroying domain 2"
    );
    clear(port);
    println!("domain 2 listed as dying {dying} times before it was gone");
    check_eq!(
        call(XEN_DOMCTL_PAUSEDOMAIN, SPINNER),
        Err(Errno::ESRCH),
        "pause a destroyed domain"
    );
    check_eq!(
        call(XEN_DOMCTL_UNPAUSEDOMAIN, SPINNER),
        Err(Errno::ESRCH),
        "unpause a destroyed domain"
    );
    check_eq!(
        call(XEN_DOMCTL_DESTROYDOMAIN, SPINNER),
        Err(Errno::ESRCH),
        "destroy it again"
    );
    // Alone now: the list holds only us.
    check_eq!(
        info(2).map(|i| i.domain),
        Err(Errno::ESRCH),
        "nothing above us"
    );
    success();
}
