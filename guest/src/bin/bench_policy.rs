//! Benchmarks of the trap-and-emulate paths (issue 7/8), in guest TSC ticks (one
//! per emulated instruction under Bochs; an exit round trip adds 4): CPUID, an
//! emulated RDMSR, a pass-through WRMSR (which must not exit at all), and port
//! writes (port 0x80 and a COM1 scratch-register write).
//!
//! Fails if a pass-through WRMSR costs as much as an exit would (it must run
//! natively), or an operation measures zero.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::fault::{rdmsr, wrmsr};
use keel_guest::port::{outb, COM1};
use keel_guest::prelude::*;
use keel_guest::tsc::{self, Stats};

keel_guest::test! {
    title: "Benchmark: CPUID, emulated RDMSR, pass-through WRMSR (no exit), port write (TSC ticks)",
    category: Bench,
    main: test_main,
}

const N: usize = 400;
const FEATURE_CONTROL: u32 = 0x3a;
const LSTAR: u32 = 0xc000_0082;

fn report(name: &str, s: Option<Stats>) -> u64 {
    match s {
        Some(s) => {
            println!(
                "bench {name:<26} median {:>6} min {:>6} max {:>6} ticks (n={})",
                s.median, s.min, s.max, s.count
            );
            check!(s.min > 0, "{name}: measured 0 ticks");
            s.median
        }
        None => {
            keel_guest::error!("{name}: no samples");
            0
        }
    }
}

fn test_main() {
    let mut samples = [0u64; N];
    let mut errors = 0u32;

    let cpuid = report(
        "cpuid(0)",
        tsc::measure(&mut samples, || {
            let _ = keel_guest::cpu::cpuid(0, 0);
        }),
    );
    let rdmsr_emul = report(
        "rdmsr FEATURE_CONTROL (emul)",
        tsc::measure(&mut samples, || {
            if rdmsr(FEATURE_CONTROL) != Ok(1) {
                errors += 1;
            }
        }),
    );
    let wrmsr_pt = report(
        "wrmsr LSTAR (pass-through)",
        tsc::measure(&mut samples, || {
            if wrmsr(LSTAR, 0xffff_8000_0000_1000).is_err() {
                errors += 1;
            }
        }),
    );
    report("out 0x80", tsc::measure(&mut samples, || outb(0x80, 0)));
    report(
        "out COM1 scratch",
        tsc::measure(&mut samples, || outb(COM1 + 7, 0x5a)),
    );
    check_eq!(errors, 0, "measured operations that failed");
    // An exit costs at least 4 ticks of transition plus the handler (CPUID's
    // median is the cheapest exit here); a pass-through WRMSR must be far below.
    check!(
        wrmsr_pt * 4 < cpuid,
        "pass-through WRMSR ({wrmsr_pt} ticks) costs like an exit (CPUID {cpuid})"
    );
    check!(
        rdmsr_emul > wrmsr_pt,
        "emulated RDMSR ({rdmsr_emul}) not slower than a native WRMSR ({wrmsr_pt})?"
    );
    success();
}
