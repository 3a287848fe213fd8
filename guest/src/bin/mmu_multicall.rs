//! `multicall` batches hypercalls: each entry's result is written back, a
//! failing call does not stop the batch, a nested multicall is `-EINVAL`, an
//! unknown number `-ENOSYS`; MMU operations in a batch take effect, including a
//! base-pointer switch (later calls in the batch translate pointers with the
//! new tables).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::console::CONSOLEIO_WRITE;
use keel_guest::abi::guest::{hypercall_scalar, multicall};
use keel_guest::abi::mmu::*;
use keel_guest::mmu::*;
use keel_guest::pagetable::{cr3_mfn, PteFlags};
use keel_guest::prelude::*;

keel_guest::test! {
    title: "multicall: batched MMU operations and per-entry results",
    category: Functional,
    main: test_main,
}

fn call(op: Hypercall, a: [u64; 5]) -> MulticallEntry {
    MulticallEntry {
        op: op.0,
        result: 0x5a5a,
        args: [a[0], a[1], a[2], a[3], a[4], 0],
    }
}

fn test_main() {
    let a = take_frame();
    let b = take_frame();
    let _ = fault::write_u64(b.va, 0xbbbb);
    let (l1, i) = l1_of(a.va);
    let orig = leaf(a.va);
    let remap = [MmuUpdate {
        ptr: slot(l1, i),
        val: entry(b.mfn, PteFlags::PRESENT).raw(),
    }];
    let bad = [MmuUpdate {
        ptr: slot(l1, i),
        val: entry(Mfn::new(1), PteFlags::PRESENT).raw(),
    }];
    let flush = [MmuextOp {
        cmd: MMUEXT_TLB_FLUSH_LOCAL,
        pad: 0,
        arg1: 0,
        arg2: 0,
    }];
    let text = b"multicall: hello from a batch\n";
    let mut calls = [
        call(
            Hypercall::MMU_UPDATE,
            [remap.as_ptr() as u64, 1, 0, DOMID_SELF, 0],
        ),
        call(
            Hypercall::MMUEXT_OP,
            [flush.as_ptr() as u64, 1, 0, DOMID_SELF, 0],
        ),
        call(
            Hypercall::CONSOLE_IO,
            [
                CONSOLEIO_WRITE,
                text.len() as u64,
                text.as_ptr() as u64,
                0,
                0,
            ],
        ),
        call(
            Hypercall::MMU_UPDATE,
            [bad.as_ptr() as u64, 1, 0, DOMID_SELF, 0],
        ),
        call(Hypercall::MULTICALL, [0, 0, 0, 0, 0]),
        call(Hypercall(999), [0; 5]),
        call(Hypercall::MMU_UPDATE, [0x10, 1, 0, DOMID_SELF, 0]),
    ];
    let r = multicall(&mut calls);
    check_eq!(r, Ok(()), "multicall");
    let want = [
        0,
        0,
        0,
        Errno::EINVAL.as_return(),
        Errno::EINVAL.as_return(),
        Errno::ENOSYS.as_return(),
        Errno::EFAULT.as_return(),
    ];
    for (k, (c, w)) in calls.iter().zip(want).enumerate() {
        check_eq!(c.result as i64, w, "result of entry {k}");
    }
    check_eq!(
        fault::read_u64(a.va),
        Ok(0xbbbb),
        "the batched remap took effect"
    );
    expect_ok(format_args!("restoring"), set_leaf(a.va, orig));

    // A base-pointer switch inside a batch; the console write after it passes a
    // pointer that the new tables translate.
    let orig_l4 = cr3_mfn();
    let copy = copy_of_l4();
    let pin_and_switch = [
        MmuextOp {
            cmd: MMUEXT_PIN_L4_TABLE,
            pad: 0,
            arg1: copy.mfn.get(),
            arg2: 0,
        },
        MmuextOp {
            cmd: MMUEXT_NEW_BASEPTR,
            pad: 0,
            arg1: copy.mfn.get(),
            arg2: 0,
        },
    ];
    let back = [MmuextOp {
        cmd: MMUEXT_NEW_BASEPTR,
        pad: 0,
        arg1: orig_l4.get(),
        arg2: 0,
    }];
    let text2 = b"multicall: printed on the copied L4\n";
    let mut calls = [
        call(
            Hypercall::MMUEXT_OP,
            [pin_and_switch.as_ptr() as u64, 2, 0, DOMID_SELF, 0],
        ),
        call(
            Hypercall::CONSOLE_IO,
            [
                CONSOLEIO_WRITE,
                text2.len() as u64,
                text2.as_ptr() as u64,
                0,
                0,
            ],
        ),
        call(
            Hypercall::MMUEXT_OP,
            [back.as_ptr() as u64, 1, 0, DOMID_SELF, 0],
        ),
    ];
    check_eq!(
        multicall(&mut calls),
        Ok(()),
        "multicall with a base switch"
    );
    for (k, c) in calls.iter().enumerate() {
        check_eq!(c.result as i64, 0, "result of switch-batch entry {k}");
    }
    check_eq!(
        cr3_mfn(),
        orig_l4,
        "CR3 after the batch switched and came back"
    );
    expect_ok(format_args!("unpinning the copy"), unpin(copy.mfn));

    // The list itself unreadable.
    check_eq!(
        hypercall_scalar(Hypercall::MULTICALL, [0x10, 1, 0, 0, 0]),
        Errno::EFAULT.as_return(),
        "unreadable call list"
    );
    check_eq!(
        hypercall_scalar(Hypercall::MULTICALL, [0, 0, 0, 0, 0]),
        0,
        "empty call list"
    );
    success();
}
