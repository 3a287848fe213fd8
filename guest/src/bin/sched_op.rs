//! `sched_op`: yield works, a shutdown with an unknown reason or a bad pointer is
//! refused (and the domain keeps running), and unimplemented sub-commands are
//! `-ENOSYS`.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::guest::{self, hypercall_scalar};
use keel_guest::abi::sched::*;
use keel_guest::prelude::*;
use keel_guest::targets;

keel_guest::test! {
    title: "sched_op: yield, shutdown with bad reasons and bad pointers, unimplemented sub-commands",
    category: Functional,
    main: test_main,
}

fn sched(cmd: u64, arg: u64) -> i64 {
    hypercall_scalar(Hypercall::SCHED_OP, [cmd, arg, 0, 0, 0])
}

fn test_main() {
    for i in 0..3 {
        check_eq!(guest::sched_yield(), Ok(()), "SCHEDOP_yield #{i}");
    }

    // Unknown reasons: -EINVAL, and we are still here to check it.
    for reason in [6u32, 7, 0x100, u32::MAX] {
        let arg = SchedShutdown { reason };
        let r = sched(SCHEDOP_SHUTDOWN, &arg as *const _ as u64);
        check_eq!(
            r,
            Errno::EINVAL.as_return(),
            "SCHEDOP_shutdown with reason {reason:#x}"
        );
    }

    // The argument pointer itself is bad: -EFAULT.
    for bp in targets::bad_pointers() {
        if keel_guest::start::va_to_pfn(bp.va).is_some() {
            continue;
        }
        check_eq!(
            sched(SCHEDOP_SHUTDOWN, bp.va.get()),
            Errno::EFAULT.as_return(),
            "SCHEDOP_shutdown with argument {} {:#x}",
            bp.name,
            bp.va.get()
        );
    }

    // Sub-commands Keel 0.1 does not implement. SCHEDOP_block and SCHEDOP_poll would
    // block an implementation with no events pending, SCHEDOP_remote_shutdown and
    // SCHEDOP_watchdog could end the domain: they are called only with arguments an
    // implementation must reject, and must answer -ENOSYS in 0.1.
    let zero = [0u64; 4];
    for (cmd, name) in [
        (SCHEDOP_SHUTDOWN_CODE, "SCHEDOP_shutdown_code"),
        (SCHEDOP_PIN_OVERRIDE, "SCHEDOP_pin_override"),
        (8, "8"),
        (0x100, "0x100"),
        (u64::MAX, "u64::MAX"),
    ] {
        check_eq!(
            sched(cmd, zero.as_ptr() as u64),
            Errno::ENOSYS.as_return(),
            "sched_op {name}"
        );
    }
    // SCHEDOP_block (1.0) takes no argument and would block: see the block test.
    for (cmd, name) in [
        (SCHEDOP_POLL, "SCHEDOP_poll"),
        (SCHEDOP_REMOTE_SHUTDOWN, "SCHEDOP_remote_shutdown"),
        (SCHEDOP_WATCHDOG, "SCHEDOP_watchdog"),
    ] {
        // NULL argument: an implementation answers -EFAULT, 0.1 answers -ENOSYS.
        let r = sched(cmd, 0);
        check!(
            r == Errno::ENOSYS.as_return() || r == Errno::EFAULT.as_return(),
            "{name} with a NULL argument returned {r}, want -ENOSYS (or -EFAULT)"
        );
    }
    success();
}
