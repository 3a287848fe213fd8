//! Benchmarks of the trap-and-emulate paths, in guest TSC ticks (one
//! per emulated instruction under Bochs; an exit round trip adds 4): CPUID, an
//! emulated RDMSR, a pass-through WRMSR (which must not exit at all), and port
//! writes (port 0x80 and a COM1 scratch-register write).
//!
//! Each figure is printed in the `cargo keel bench` line format
//! (`keel_guest::bench`), with the exits and VMCS accesses the hypervisor counted.
//!
//! Fails if a pass-through WRMSR costs as much as an exit would (it must run
//! natively), or an operation measures zero.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::platform::uart::SCR;
use keel_guest::bench::{Bench, Figure};
use keel_guest::fault::{rdmsr, wrmsr};
use keel_guest::port::{outb, COM1};
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Benchmark: CPUID, emulated RDMSR, pass-through WRMSR (no exit), port write (TSC ticks)",
    category: Bench,
    main: test_main,
}

const N: usize = 400;
const FEATURE_CONTROL: u32 = 0x3a;
const LSTAR: u32 = 0xc000_0082;

fn median(name: &str, f: Option<Figure>) -> u64 {
    match f {
        Some(f) => {
            check!(f.stats.min > 0, "{name}: measured 0 ticks");
            f.stats.median
        }
        None => 0,
    }
}

fn test_main() {
    let mut b = Bench::new();
    let mut samples = [0u64; N];
    let mut errors = 0u32;

    let f = b.measure("cpuid_0", 1, &mut samples, || {
        let _ = keel_guest::cpu::cpuid(0, 0);
    });
    let cpuid = median("cpuid_0", f);
    let f = b.measure("rdmsr_feature_control", 1, &mut samples, || {
        if rdmsr(FEATURE_CONTROL) != Ok(1) {
            errors += 1;
        }
    });
    let rdmsr_emul = median("rdmsr_feature_control", f);
    let f = b.measure("wrmsr_lstar_passthrough", 1, &mut samples, || {
        if wrmsr(LSTAR, 0xffff_8000_0000_1000).is_err() {
            errors += 1;
        }
    });
    let wrmsr_pt = median("wrmsr_lstar_passthrough", f);
    if let Some(e) = f.and_then(|f| f.exits()) {
        check_eq!(e, 0, "exits of a pass-through WRMSR");
    }
    let f = b.measure("out_0x80", 1, &mut samples, || outb(0x80, 0));
    median("out_0x80", f);
    let f = b.measure("out_com1_scratch", 1, &mut samples, || {
        outb(COM1 + SCR, 0x5a)
    });
    median("out_com1_scratch", f);
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
