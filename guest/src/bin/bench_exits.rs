//! What a round trip to the hypervisor costs, as the guest sees it on the TSC:
//! the cheapest hypercalls (`xen_version`, `sched_op(yield)`, an `-ENOSYS`
//! number), a one-byte console write, and the instructions that always exit
//! (CPUID). Median, min and max over many iterations; the numbers go in the
//! console. Under Bochs one TSC tick is one emulated instruction.
//!
//! It fails if any measured operation returns an error (then the number would
//! measure an error path), or if a round trip measures zero ticks.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::console::CONSOLEIO_WRITE;
use keel_guest::abi::guest::{self, hypercall_scalar};
use keel_guest::abi::version::AbiVersion;
use keel_guest::prelude::*;
use keel_guest::tsc::{self, Stats};

keel_guest::test! {
    title: "Benchmark: guest-measured cost of hypercall and CPUID round trips (TSC ticks)",
    category: Bench,
    main: test_main,
}

const N: usize = 500;

fn report(name: &str, s: Option<Stats>) {
    match s {
        Some(s) => {
            println!(
                "bench {name:<24} median {:>8} min {:>8} max {:>8} ticks (n={})",
                s.median, s.min, s.max, s.count
            );
            check!(s.min > 0, "{name}: a round trip measured 0 ticks");
        }
        None => keel_guest::error!("{name}: no samples"),
    }
}

fn test_main() {
    let mut samples = [0u64; N];
    let mut errors = 0u32;

    let want = AbiVersion::CURRENT.encode();
    let s = tsc::measure(&mut samples, || {
        if guest::xen_version().encode() < want {
            errors += 1;
        }
    });
    report("xen_version(version)", s);

    let s = tsc::measure(&mut samples, || {
        if guest::sched_yield().is_err() {
            errors += 1;
        }
    });
    report("sched_op(yield)", s);

    let s = tsc::measure(&mut samples, || {
        if hypercall_scalar(Hypercall(48), [0; 5]) != Errno::ENOSYS.as_return() {
            errors += 1;
        }
    });
    report("unknown hypercall", s);

    // One byte, no newline: measures the copy, not the serial line (the byte goes
    // out with the next newline).
    let byte = b".";
    let s = tsc::measure(&mut samples[..100], || {
        let r = hypercall_scalar(
            Hypercall::CONSOLE_IO,
            [CONSOLEIO_WRITE, 1, byte.as_ptr() as u64, 0, 0],
        );
        if r != 0 {
            errors += 1;
        }
    });
    println!();
    report("console_io(write, 1)", s);

    let s = tsc::measure(&mut samples, || {
        let _ = keel_guest::cpu::cpuid(0, 0);
    });
    report("cpuid(0)", s);

    check_eq!(errors, 0, "measured operations that returned an error");
    success();
}
