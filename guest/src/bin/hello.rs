//! The demo guest: prints a banner, asks the hypervisor its ABI version, measures
//! the cost of one `xen_version` round trip (VMCALL -> VM exit -> handler -> VM
//! entry) as the guest sees it on the TSC, and powers off.
//!
//! It is also a test: the version must be one this guest can run on, and the
//! measurement must be sane (a hypercall cannot be free).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::guest;
use keel_guest::abi::version::AbiVersion;
use keel_guest::prelude::*;
use keel_guest::tsc;

keel_guest::test! {
    title: "Hello from a Keel PV guest: version query and hypercall round-trip cost",
    category: Special,
    main: test_main,
}

/// How many round trips the median is taken over.
const ITERATIONS: usize = 1000;

fn test_main() {
    println!("Hello from a Keel PV guest, running in VMX non-root mode at CPL0.");
    let si = start_info();
    println!(
        "start_info at {:#x}: {} pages, page tables at {:#x} ({} frames), command line \"{}\"",
        keel_guest::start::boot().va.get(),
        si.nr_pages,
        si.pt_base.get(),
        si.nr_pt_frames,
        cmdline()
    );

    let v = guest::xen_version();
    match guest::xen_extraversion() {
        Ok(extra) => {
            let len = extra
                .0
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(extra.0.len());
            let s = core::str::from_utf8(&extra.0[..len]).unwrap_or("?");
            println!("xen_version: Keel ABI {v}{s}");
        }
        Err(e) => println!("xen_version: Keel ABI {v} (extraversion: {e})"),
    }
    check!(
        v.can_run(AbiVersion::CURRENT),
        "the hypervisor's ABI {v} cannot run a guest built against {}",
        AbiVersion::CURRENT
    );

    let mut samples = [0u64; ITERATIONS];
    let stats = tsc::measure(&mut samples, || {
        let _ = guest::xen_version();
    });
    match stats {
        Some(s) => {
            println!(
                "xen_version round trip: median {} TSC ticks (min {}, max {}) over {} calls",
                s.median, s.min, s.max, s.count
            );
            check!(s.min > 0, "a hypercall round trip measured 0 TSC ticks");
        }
        None => keel_guest::error!("no samples"),
    }
    success();
}
