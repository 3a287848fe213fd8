//! What other round trips to the hypervisor cost, as the guest sees them on the
//! TSC: `sched_op(yield)`, a hypercall number the hypervisor does not implement
//! (the `-ENOSYS` path) and a one-byte console write (the copy, not the serial
//! line); CPUID, MSRs and ports are `bench_policy`'s. Each figure is printed in the
//! `cargo keel bench` line format (`keel_guest::bench`), with the exits and
//! VMCS accesses the hypervisor counted. Under Bochs one TSC tick is one emulated
//! instruction.
//!
//! It fails if any measured operation returns an error (then the number would
//! measure an error path), or if a round trip measures zero ticks.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::console::CONSOLEIO_WRITE;
use keel_guest::abi::guest::{self, hypercall_scalar};
use keel_guest::bench::{Bench, Figure};
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Benchmark: sched_op(yield), an -ENOSYS hypercall, a one-byte console write (TSC ticks)",
    category: Bench,
    main: test_main,
}

const N: usize = 500;

fn nonzero(name: &str, f: Option<Figure>) {
    if let Some(f) = f {
        check!(f.stats.min > 0, "{name}: a round trip measured 0 ticks");
        if let Some(e) = f.exits() {
            check!(e > 0, "{name}: the hypervisor counted no exits");
        }
    }
}

fn test_main() {
    let mut b = Bench::new();
    let mut samples = [0u64; N];
    let mut errors = 0u32;

    let f = b.measure("sched_yield", 1, &mut samples, || {
        if guest::sched_yield().is_err() {
            errors += 1;
        }
    });
    nonzero("sched_yield", f);

    let f = b.measure("enosys", 1, &mut samples, || {
        if hypercall_scalar(Hypercall(48), [0; 5]) != Errno::ENOSYS.as_return() {
            errors += 1;
        }
    });
    nonzero("enosys", f);

    // One byte, no newline: measures the copy, not the serial line (the bytes go
    // out when the hypervisor's line buffer fills; 100 bytes stay below that).
    let byte = b".";
    keel_guest::console::flush();
    let f = b.run("console_io_1", 1, &mut samples[..100], || {
        let r = hypercall_scalar(
            Hypercall::CONSOLE_IO,
            [CONSOLEIO_WRITE, 1, byte.as_ptr() as u64, 0, 0],
        );
        if r != 0 {
            errors += 1;
        }
    });
    // End the line of dots before anything else is printed.
    let _ = guest::console_write(b"\n");
    if let Some(f) = &f {
        b.report("console_io_1", 1, f);
    }
    nonzero("console_io_1", f);

    check_eq!(errors, 0, "measured operations that returned an error");
    success();
}
