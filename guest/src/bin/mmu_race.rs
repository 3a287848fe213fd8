//! Several vCPUs of one domain racing MMU operations (ABI 1.2 preview; the
//! runner boots it with `keel.vcpus=2`, both vCPUs on the domain's CPU):
//! vCPU 0 pins and unpins a tree of page tables too large for one exit while
//! vCPU 1 changes entries of a table of its own, pins and unpins it and loads
//! the current L4 again (`mmu_race_body/mmu_race.rs`; `mmu_race_spread` is
//! the same with vCPU 1 on CPU 1).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

keel_guest::test! {
    title: "MMU: two vCPUs racing pin, unpin, mmu_update and NEW_BASEPTR (ABI 1.2 preview)",
    category: Security,
    abi: keel_guest::abi::version::AbiVersion::V1_2,
    main: body::run,
}

#[path = "mmu_race_body/mmu_race.rs"]
mod body;
