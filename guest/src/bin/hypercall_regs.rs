//! The hypercall register convention: VMCALL with the number in RAX and arguments
//! in RDI, RSI, RDX, R10, R8 returns the result in RAX and preserves every other
//! register — for implemented hypercalls, failing ones, and unknown numbers alike.
//! A hypervisor that leaked a host value into a guest register, or forgot to
//! restore one, fails here.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::console::CONSOLEIO_WRITE;
use keel_guest::abi::sched::SCHEDOP_YIELD;
use keel_guest::abi::version::{AbiVersion, XENVER_EXTRAVERSION, XENVER_VERSION};
use keel_guest::arch::vmcall_all_regs;
use keel_guest::fault::GPR_NAMES;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Hypercalls return in RAX and preserve every other general-purpose register",
    category: Abi,
    main: test_main,
}

// Register indices in the vmcall_all_regs order.
const RAX: usize = 0;
const RDX: usize = 3;
const RSI: usize = 4;
const RDI: usize = 5;
const R8: usize = 7;
const R10: usize = 9;

/// A distinct, recognisable value for every register.
fn patterns(round: u64) -> [u64; 15] {
    core::array::from_fn(|i| 0x5a5a_0000_0000_0000 | (round << 32) | ((i as u64 + 1) * 0x1111))
}

fn check_call(name: &str, nr: u64, args: [u64; 5], want: i64) {
    for round in 0..4u64 {
        let mut regs = patterns(round);
        regs[RAX] = nr;
        regs[RDI] = args[0];
        regs[RSI] = args[1];
        regs[RDX] = args[2];
        regs[R10] = args[3];
        regs[R8] = args[4];
        let after = vmcall_all_regs(regs);
        check_eq!(after[RAX] as i64, want, "{name}: RAX (the result)");
        for i in 1..15 {
            check!(
                after[i] == regs[i],
                "{name}: {} changed from {:#x} to {:#x}",
                GPR_NAMES[i],
                regs[i],
                after[i]
            );
        }
    }
}

fn test_main() {
    let mut extra = [0u8; 16];
    let line = b"hypercall_regs: a console write through the register check\n";
    check_call(
        "xen_version(XENVER_version)",
        Hypercall::XEN_VERSION.0,
        [XENVER_VERSION, 0, 0, 0, 0],
        AbiVersion::CURRENT.encode() as i64,
    );
    check_call(
        "xen_version(XENVER_extraversion)",
        Hypercall::XEN_VERSION.0,
        [XENVER_EXTRAVERSION, extra.as_mut_ptr() as u64, 0, 0, 0],
        0,
    );
    check_call(
        "xen_version(XENVER_extraversion, NULL)",
        Hypercall::XEN_VERSION.0,
        [XENVER_EXTRAVERSION, 0, 0, 0, 0],
        Errno::EFAULT.as_return(),
    );
    check_call(
        "console_io(CONSOLEIO_write)",
        Hypercall::CONSOLE_IO.0,
        [
            CONSOLEIO_WRITE,
            line.len() as u64,
            line.as_ptr() as u64,
            0,
            0,
        ],
        0,
    );
    check_call(
        "sched_op(SCHEDOP_yield)",
        Hypercall::SCHED_OP.0,
        [SCHEDOP_YIELD, 0, 0, 0, 0],
        0,
    );
    check_call(
        "unknown hypercall 47",
        47,
        [1, 2, 3, 4, 5],
        Errno::ENOSYS.as_return(),
    );
    check_call(
        "hypercall u64::MAX",
        u64::MAX,
        [u64::MAX; 5],
        Errno::ENOSYS.as_return(),
    );
    success();
}
