//! The null hypercall and CPUID timed on each of one domain's 4 vCPUs at
//! once, vCPU K on CPU K (the runner boots it with `keel.vcpus=4` and
//! `keel.vcpu_cpus=`; [`keel_guest::bench::vcpus`]). Each vCPU reports
//! `xen_version.cpuK` and `cpuid.cpuK`; the tool adds the `.worst` of
//! each. A remote vCPU answers both on its CPU alone, so the figures should
//! not grow with the number of vCPUs (`bench_vcpus_2`, `bench_vcpus_4`).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

keel_guest::test! {
    title: "Benchmark: the null hypercall and CPUID on each of a domain's 4 vCPUs at once, on 4 CPUs (ABI 1.2 preview)",
    category: Bench,
    abi: keel_guest::abi::version::AbiVersion::V1_2,
    main: keel_guest::bench::vcpus::run,
}
