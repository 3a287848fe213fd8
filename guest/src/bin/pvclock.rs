//! pvclock time (ABI 1.0): the shared_info page is where start_info says, the
//! `vcpu_time_info` record follows the version protocol and is TSC-stable, time
//! never goes backwards across 20,000 reads, it advances with the TSC at the
//! published scale, a read costs no exit (its median is below the cheapest
//! hypercall round trip measured in the same run), and the wall clock is the
//! RTC's (on or after 2000-01-01, Bochs's fixed RTC start).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::guest;
use keel_guest::abi::time::XEN_PVCLOCK_TSC_STABLE_BIT;
use keel_guest::events;
use keel_guest::prelude::*;
use keel_guest::tsc;

keel_guest::test! {
    title: "pvclock: shared_info, version protocol, monotonic, no exit, wall clock",
    category: Functional,
    main: test_main,
}

fn test_main() {
    let Some(si) = events::shared_info() else {
        failure!(
            "start_info.shared_info is 0 (hypervisor ABI {})",
            guest::xen_version()
        );
        return;
    };
    let si_ma = keel_guest::start::start_info().shared_info.get();
    println!("shared_info at {:#x} (machine {:#x})", si.get(), si_ma);
    check_eq!(
        keel_guest::start::va_to_pfn(si).map(|p| p.get()),
        Some(keel_guest::start::start_info().nr_pages - 1),
        "shared_info is the domain's last frame"
    );
    let t = events::time_info();
    println!(
        "vcpu_time_info: version {} tsc_timestamp {} system_time {} mul {:#x} shift {} flags {:#x}",
        t.version, t.tsc_timestamp, t.system_time, t.tsc_to_system_mul, t.tsc_shift, t.flags
    );
    check!(
        t.version.is_multiple_of(2) && t.version > 0,
        "version {} (even, published)",
        t.version
    );
    check!(t.flags & XEN_PVCLOCK_TSC_STABLE_BIT != 0, "TSC-stable flag");
    check!(t.tsc_to_system_mul != 0, "scale multiplier is 0");

    // Monotonic across many reads.
    let mut prev = events::now_ns();
    let mut backwards = 0u32;
    for _ in 0..20_000 {
        let n = events::now_ns();
        if n < prev {
            backwards += 1;
        }
        prev = n;
    }
    check_eq!(backwards, 0, "reads that went backwards");

    // Advances with the TSC at the published scale: over >= 100,000 ticks the
    // clock moves by ticks_to_ns(ticks) within 1 ns per 1,000 ns plus 2 ns.
    let (t0, n0) = (tsc::rdtsc(), events::now_ns());
    while tsc::rdtsc() - t0 < 100_000 {}
    let (t1, n1) = (tsc::rdtsc(), events::now_ns());
    let want = events::ticks_to_ns(t1 - t0);
    let got = n1 - n0;
    check!(
        got.abs_diff(want) <= want / 1000 + 2 + events::ticks_to_ns(200),
        "clock moved {got} ns over {} ticks, scale says {want} ns",
        t1 - t0
    );
    println!("{} TSC ticks = {} ns of system time", t1 - t0, got);

    // No exit: a read is cheaper than the cheapest round trip to the hypervisor.
    let mut s = [0u64; 500];
    let read = tsc::measure(&mut s, || {
        let _ = events::now_ns();
    });
    let trip = tsc::measure(&mut s, || {
        let _ = guest::xen_version();
    });
    if let (Some(r), Some(h)) = (read, trip) {
        println!(
            "pvclock read median {} ticks; xen_version round trip median {} ticks",
            r.median, h.median
        );
        check!(
            r.median < h.median,
            "a pvclock read ({} ticks) costs as much as a VM exit round trip ({} ticks)",
            r.median,
            h.median
        );
    }

    let (sec, nsec) = events::wallclock();
    println!("wall clock at system time 0: {sec}.{nsec:09} s since the epoch");
    check!(
        (946_684_800..(1u64 << 34)).contains(&sec) && nsec < 1_000_000_000,
        "wall clock {sec}.{nsec} out of range"
    );
    success();
}
