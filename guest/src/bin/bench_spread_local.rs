//! Benchmark (ABI 1.2 preview): the reference for `bench_spread`, one vCPU on
//! one CPU: the PTE update pair that owes a TLB flush with no vCPU of the
//! domain placed elsewhere (`bench_body/spread.rs`).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

keel_guest::test! {
    title: "Benchmark: mmu_update that owes a TLB flush, no vCPU on another CPU (bench_spread's reference, ABI 1.2 preview)",
    category: Bench,
    abi: keel_guest::abi::version::AbiVersion::V1_2,
    main: body::run,
}

#[path = "bench_body/spread.rs"]
mod body;
