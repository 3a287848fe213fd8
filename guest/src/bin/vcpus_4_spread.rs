//! A domain of 4 vCPUs on 4 CPUs (ABI 1.2 preview; the runner boots it with
//! `keel.vcpus=4 keel.vcpu_cpus=0,1,2,3` on a machine of 4 CPUs): what
//! `vcpus_4` checks, with vCPU `v` on CPU `v` (`vcpus_body/vcpus.rs`), after
//! proving that each of vCPUs 1 to 3 runs while vCPU 0 runs (SKIP if one
//! does not: it shares vCPU 0's CPU).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

keel_guest::test! {
    title: "vCPUs: 4 in a domain on 4 CPUs, started, IPIs, wake-ups, timers, run states (ABI 1.2 preview)",
    category: Functional,
    abi: keel_guest::abi::version::AbiVersion::V1_2,
    main: body::run_spread,
}

#[path = "vcpus_body/vcpus.rs"]
mod body;
