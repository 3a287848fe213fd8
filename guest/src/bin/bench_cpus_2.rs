//! The null hypercall and a loopback event-channel send timed on each of 2 CPU(s) at once: this domain on CPU 0
//! and this image again on each of the others, one domain per CPU, all
//! starting together ([`keel_guest::bench::cpus`]). Each CPU reports
//! `xen_version.cpuK` and `evtchn_send_self.cpuK`; the tool adds the
//! `.worst` of each. With no lock on a CPU's own exits, and no other CPU
//! stopped for an event channel that stays on the CPU, the figures should
//! not grow with the number of CPUs
//! (`bench_cpus_1`, `bench_cpus_2`, `bench_cpus_4`).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

keel_guest::test! {
    title: "Benchmark: the null hypercall and a loopback event-channel send on each of 2 CPU(s) at once",
    category: Bench,
    main: keel_guest::bench::cpus::run,
}
