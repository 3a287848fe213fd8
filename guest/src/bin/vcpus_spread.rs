//! A domain of 2 vCPUs on 2 CPUs (ABI 1.2 preview; the runner boots it with
//! `keel.vcpus=2 keel.vcpu_cpus=0,1` on a machine of 2 CPUs): what `vcpus`
//! checks, with vCPU 1 on CPU 1 (`vcpus_body/vcpus.rs`), after proving that
//! vCPU 1 runs while vCPU 0 runs (SKIP if it does not: the two share a CPU).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

keel_guest::test! {
    title: "vCPUs: 2 in a domain on 2 CPUs, started, IPIs, wake-ups, timers, run states (ABI 1.2 preview)",
    category: Functional,
    abi: keel_guest::abi::version::AbiVersion::V1_2,
    main: body::run_spread,
}

#[path = "vcpus_body/vcpus.rs"]
mod body;
