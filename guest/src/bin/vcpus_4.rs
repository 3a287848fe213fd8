//! A domain of 4 vCPUs (ABI 1.2 preview; the runner boots it with
//! `keel.vcpus=4`): each vCPU started on a function, IPIs between them,
//! wake-ups, per-vCPU timers and run states, down and up, and the refusals
//! (`vcpus_body/vcpus.rs`; `vcpus` is the same with 2).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

keel_guest::test! {
    title: "vCPUs: 4 in a domain, started, IPIs, wake-ups, timers, run states (ABI 1.2 preview)",
    category: Functional,
    abi: keel_guest::abi::version::AbiVersion::V1_2,
    main: body::run,
}

#[path = "vcpus_body/vcpus.rs"]
mod body;
