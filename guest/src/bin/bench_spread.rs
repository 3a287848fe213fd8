//! Benchmark (ABI 1.2 preview): a domain's vCPU on another CPU (the runner
//! boots it with `keel.vcpus=2 keel.vcpu_cpus=0,1` on 2 CPUs): an IPI from
//! vCPU 0 to vCPU 1's upcall (vCPU 1 spinning, then halted), and a PTE
//! update's TLB shootdown with vCPU 1 down and with it spinning
//! (`bench_body/spread.rs`).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

keel_guest::test! {
    title: "Benchmark: vCPUs on two CPUs: IPI to a remote vCPU's upcall, mmu_update with a remote TLB shootdown (ABI 1.2 preview)",
    category: Bench,
    abi: keel_guest::abi::version::AbiVersion::V1_2,
    main: body::run,
}

#[path = "bench_body/spread.rs"]
mod body;
