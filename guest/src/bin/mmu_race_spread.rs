//! Two vCPUs of one domain on 2 CPUs racing MMU operations (ABI 1.2 preview;
//! the runner boots it with `keel.vcpus=2 keel.vcpu_cpus=0,1` on a machine of
//! 2 CPUs): what `mmu_race` checks, with vCPU 1 on CPU 1 racing vCPU 0 for
//! real (`mmu_race_body/mmu_race.rs`), after proving that vCPU 1 runs while
//! vCPU 0 runs (SKIP if it does not: the two share a CPU).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

keel_guest::test! {
    title: "MMU: two vCPUs on 2 CPUs racing pin, unpin, mmu_update and NEW_BASEPTR (ABI 1.2 preview)",
    category: Security,
    abi: keel_guest::abi::version::AbiVersion::V1_2,
    main: body::run_spread,
}

#[path = "mmu_race_body/mmu_race.rs"]
mod body;
