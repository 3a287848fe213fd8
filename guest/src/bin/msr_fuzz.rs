//! Random RDMSR/WRMSR at indices the guest's CPU does not have (docs/abi/msr.md)
//! must each raise #GP(0), never reach the host's MSRs (an absent MSR read on the
//! host would take the hypervisor down) and never end the domain. Indices are
//! drawn around the architectural ranges and anywhere in the 32-bit space; seeded
//! from the command line (`seed=N`) or the TSC, and reproducible from the seed it
//! prints.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::fault::{rdmsr, wrmsr};
use keel_guest::prelude::*;
use keel_guest::rand::Rng;
use keel_guest::start::{cmdline_value, parse_u64};

keel_guest::test! {
    title: "MSR fuzz: random absent MSRs read and written raise #GP(0), the hypervisor survives",
    category: Security,
    main: test_main,
}

/// The indices the guest's CPU has (docs/abi/msr.md); TSC_AUX depends on RDTSCP,
/// so it is left out of both sides.
const PRESENT: &[u32] = &[
    0x10,
    0x1b,
    0x3a,
    0x8b,
    0xce,
    0xfe,
    0x174,
    0x175,
    0x176,
    0x1a0,
    0x1d9,
    0x250,
    0x258,
    0x259,
    0x268,
    0x269,
    0x26a,
    0x26b,
    0x26c,
    0x26d,
    0x26e,
    0x26f,
    0x277,
    0x2ff,
    0xc000_0080,
    0xc000_0081,
    0xc000_0082,
    0xc000_0083,
    0xc000_0084,
    0xc000_0100,
    0xc000_0101,
    0xc000_0102,
    0xc000_0103,
];

const COUNT: u64 = 3000;

fn test_main() {
    let cmd = cmdline();
    let (seed, from) = match cmdline_value(cmd, "seed").and_then(parse_u64) {
        Some(s) => (s, "command line"),
        None => (keel_guest::tsc::rdtsc(), "TSC"),
    };
    println!("msr fuzz: seed={seed} (from the {from}; replay with seed={seed}), {COUNT} MSRs");
    let mut rng = Rng::new(seed);
    let mut bad = 0u32;
    for _ in 0..COUNT {
        let index = match rng.below(4) {
            0 => rng.below(0x2000) as u32,
            1 => 0xc000_0000 + rng.below(0x2000) as u32,
            2 => *rng.pick(&[
                0x480u32,
                0x48b,
                0x491,
                0x3b,
                0x48,
                0x49,
                0x10a,
                0x6e0,
                0x1a2,
                0xc001_0000,
            ]),
            _ => rng.next_u64() as u32,
        };
        if PRESENT.contains(&index) {
            continue;
        }
        let value = rng.next_u64();
        let r = rdmsr(index);
        let w = wrmsr(index, value);
        for (what, res) in [("RDMSR", r.map(|_| ())), ("WRMSR", w)] {
            match res {
                Err(f) if f.vector == Vector::GP && f.error_code == 0 => {}
                other => {
                    bad += 1;
                    if bad <= 5 {
                        failure!("{what} {index:#x}: {other:?}, expected #GP(0)");
                    }
                }
            }
        }
    }
    check_eq!(bad, 0, "absent MSRs that did not raise #GP(0)");
    success();
}
