//! A companion of the `domctl` test (ABI 1.1, not the control domain).
//! `role=spin`: spins without a hypercall, interrupts on, until the control
//! domain destroys it (the CPU time it uses shows whether it runs). `role=refused`: every
//! `domctl` it makes is refused (-EPERM; -EFAULT for an envelope it cannot
//! read), then it powers off; a wrong answer crashes it, which fails the test;
//! with `after=D` it first waits (10 s at most) until domain D offers it its
//! port 2.
//! `role=crash`: ends at once as a crashed domain (`SHUTDOWN_crash`, what a
//! PV kernel's panic does), with no result line: the others must go on.
//! Without a role it is `refused` (so it passes alone too).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::domctl::{
    XenDomctl, XEN_DOMCTL_DESTROYDOMAIN, XEN_DOMCTL_GETDOMAININFO, XEN_DOMCTL_PAUSEDOMAIN,
};
use keel_guest::abi::guest;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "A companion of the domctl test: a domain that spins, or one refused every domctl",
    category: Functional,
    abi: keel_guest::abi::version::AbiVersion::V1_1,
    main: test_main,
}

fn test_main() {
    match keel_guest::start::cmdline_value(cmdline(), "role") {
        Some("spin") => {
            // With interrupts on (no upcall is registered, so none comes):
            // on the Bochs models without the VMX-preemption timer a guest
            // with IF clear is never preempted (docs/platforms.md, "Bochs
            // defects"), and this spinner must share the CPU everywhere.
            keel_guest::arch::sti();
            loop {
                core::hint::spin_loop();
            }
        }
        // Refused is also what it is alone (the suite boots every program so):
        // with no control domain every domctl is -EPERM.
        Some("refused") | None => {
            // `after=D`: wait until domain D offers its port 2 (the control
            // domain does once it can see this domain's end).
            if let Some(d) = keel_guest::start::cmdline_value(cmdline(), "after")
                .and_then(|v| v.parse::<u16>().ok())
            {
                let end = keel_guest::events::now_ns() + 10_000_000_000;
                loop {
                    match guest::evtchn_bind_interdomain(d, 2) {
                        Ok(_) => break,
                        Err(Errno::EINVAL) if keel_guest::events::now_ns() < end => {
                            let _ = guest::sched_yield();
                        }
                        Err(e) => {
                            failure!("domain {d}'s port 2: {e}");
                            return;
                        }
                    }
                }
            }
            for (cmd, dom) in [
                (XEN_DOMCTL_GETDOMAININFO, 0),
                (XEN_DOMCTL_PAUSEDOMAIN, 1),
                (XEN_DOMCTL_DESTROYDOMAIN, 2),
                (77, 1),
            ] {
                let mut o = XenDomctl {
                    cmd,
                    domain: dom,
                    ..Default::default()
                };
                check_eq!(
                    guest::domctl(&mut o),
                    Err(Errno::EPERM),
                    "domctl {cmd} on {dom}"
                );
            }
            let r = guest::hypercall_scalar(Hypercall::DOMCTL, [0x10, 0, 0, 0, 0]);
            check_eq!(r, Errno::EFAULT.as_return(), "domctl at 0x10");
            success();
        }
        Some("crash") => {
            println!("crashing on purpose (SHUTDOWN_crash)");
            let e = guest::sched_shutdown(keel_guest::abi::sched::SHUTDOWN_CRASH);
            failure!("SCHEDOP_shutdown(crash) returned {e:?}");
        }
        Some(other) => failure!("role {other:?}: spin, refused or crash"),
    }
}
