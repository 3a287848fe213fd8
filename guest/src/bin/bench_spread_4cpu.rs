//! Benchmark (ABI 1.2 preview): `bench_spread` on 4 CPUs, with a domain that
//! spins in guest mode on each of CPUs 2 and 3 beside the spread domain
//! (vCPU 0 on CPU 0, vCPU 1 on CPU 1): what the spread domain's TLB
//! shootdowns and cross-CPU operations cost when other CPUs run other
//! domains, and whether they stop those CPUs (`bench_body/spread.rs`).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

keel_guest::test! {
    title: "Benchmark: vCPUs on two of four CPUs, other domains spinning on the other two: IPI to a remote vCPU's upcall, mmu_update with a remote TLB shootdown (ABI 1.2 preview)",
    category: Bench,
    abi: keel_guest::abi::version::AbiVersion::V1_2,
    main: body::run,
}

#[path = "bench_body/spread.rs"]
mod body;
