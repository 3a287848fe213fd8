//! The hypercall figures of `cargo keel bench`: the floor, the null
//! hypercall, a console line, and a multicall of null calls, each as the guest
//! sees it on the TSC (under Bochs: emulated instructions), with the VM exits and
//! VMCS accesses the hypervisor counted for it.
//!
//! - `floor`: `keel_debug_op(DEBUGOP_nop)`, which the VMCALL handler answers
//!   before any other hypercall work (docs/abi/debug.md): the exit, the exit
//!   reason, advancing RIP, the resume. Nothing a hypercall does can cost less.
//! - `xen_version`: `xen_version(XENVER_version)`, the null hypercall: the full
//!   dispatch path (argument packing, accounting, table lookup) with a handler
//!   that does nothing but return a constant.
//! - `console_io_64`: `console_io(CONSOLEIO_write)` of a 64-byte line (63
//!   characters and the newline): the copy through the guest's page tables, the
//!   line buffer, and the line's output on COM1.
//! - `multicall_16`: one `multicall` of 16 `xen_version(XENVER_version)` entries
//!   (reported as missing on a hypervisor that answers multicall with -ENOSYS).
//!
//! Every measured call is checked: a figure that measured an error path would be a
//! lie, so any unexpected return value is a FAILURE.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::console::CONSOLEIO_WRITE;
use keel_guest::abi::debug;
use keel_guest::abi::guest::{self, hypercall_scalar};
use keel_guest::abi::layout;
use keel_guest::abi::mmu::MulticallEntry;
use keel_guest::abi::version::AbiVersion;
use keel_guest::bench::Bench;
use keel_guest::prelude::*;

const TITLE: &str =
    "Benchmark: the floor, xen_version, console_io of 64 bytes, multicall of 16 null calls";

/// The version this image declares: the oldest release the current version runs
/// (0.1: a 1.x hypervisor runs every 0.x guest), so that every released
/// hypervisor runs it, and the figures an older
/// hypervisor cannot give (no `keel_debug_op`, no `multicall`) are reported as
/// missing rather than refused at boot (`loader/tests/bench_compat.rs` boots it on
/// the frozen 0.1 hypervisor).
const DECLARED: AbiVersion = match layout::oldest_release_runnable_by(AbiVersion::CURRENT) {
    Some(v) => v,
    None => AbiVersion::CURRENT,
};

keel_guest::test! {
    title: TITLE,
    category: Bench,
    abi: DECLARED,
    main: test_main,
}

/// Samples per figure: enough for a stable median on hardware; under Bochs every
/// sample is the same, and more only cost boot time.
const N: usize = 1000;

fn test_main() {
    println!(
        "bench_hypercalls: declares ABI {DECLARED}, the hypervisor reports {}",
        guest::xen_version()
    );
    let mut b = Bench::new();
    let mut samples = [0u64; N];
    let mut errors = 0u32;

    // The floor. On a hypervisor without keel_debug_op it is -ENOSYS, which is
    // itself the unknown-hypercall path: report it as missing rather than mislabel.
    if debug::guest::nop() == 0 {
        b.measure("floor", 1, &mut samples, || {
            if debug::guest::nop() != 0 {
                errors += 1;
            }
        });
    } else {
        b.missing(
            "floor",
            format_args!("keel_debug_op(DEBUGOP_nop) is -ENOSYS (hypervisor older than 1.0)"),
        );
    }

    let want = i64::from(guest::xen_version().encode());
    check!(
        want >= i64::from(AbiVersion::V0_1.encode()),
        "xen_version returned {want}"
    );
    b.measure("xen_version", 1, &mut samples, || {
        if hypercall_scalar(
            Hypercall::XEN_VERSION,
            [keel_guest::abi::version::XENVER_VERSION, 0, 0, 0, 0],
        ) != want
        {
            errors += 1;
        }
    });

    // 63 visible characters and the newline: one complete console line per call.
    let mut line = [b'.'; 64];
    line[..14].copy_from_slice(b"bench console ");
    line[63] = b'\n';
    keel_guest::console::flush();
    b.measure("console_io_64", 1, &mut samples[..64], || {
        let r = hypercall_scalar(
            Hypercall::CONSOLE_IO,
            [CONSOLEIO_WRITE, 64, line.as_ptr() as u64, 0, 0],
        );
        if r != 0 {
            errors += 1;
        }
    });

    multicall(&mut b, &mut samples, &mut errors);

    check_eq!(
        errors,
        0,
        "measured calls that returned an unexpected value"
    );
    check!(b.figures() >= 4, "not every figure was reported");
    success();
}

/// `multicall` of 16 `xen_version(XENVER_version)` entries: one exit for all 16.
/// On a hypervisor without `multicall` (older than 1.0: `-ENOSYS`) the figure is
/// reported as missing.
fn multicall(b: &mut Bench, samples: &mut [u64], errors: &mut u32) {
    let null = MulticallEntry {
        op: Hypercall::XEN_VERSION.0,
        result: 0,
        args: [keel_guest::abi::version::XENVER_VERSION, 0, 0, 0, 0, 0],
    };
    let want = u64::from(guest::xen_version().encode());
    let mut calls = [null; 16];
    match guest::multicall(&mut calls) {
        Ok(()) => {}
        Err(e) => {
            b.missing(
                "multicall_16",
                format_args!("multicall of 16 null calls returned {e}"),
            );
            return;
        }
    }
    b.measure("multicall_16", 1, samples, || {
        if guest::multicall(&mut calls).is_err() || calls.iter().any(|c| c.result != want) {
            *errors += 1;
        }
    });
}
