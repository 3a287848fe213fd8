//! No stale writable TLB entry on another CPU survives the update that
//! removed the permission (Xen XSA-286's class, across CPUs; ABI 1.2
//! preview; the runner boots it with `keel.vcpus=2 keel.vcpu_cpus=0,1` on a
//! machine of 2 CPUs): vCPU 0, on the domain's CPU, updates; vCPU 1 writes
//! (`mmu_tlb_body/spread.rs`).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

keel_guest::test! {
    title: "TLB: a permission removed on one CPU is gone on the other at once (XSA-286 class, 2 CPUs, ABI 1.2 preview)",
    category: Security,
    abi: keel_guest::abi::version::AbiVersion::V1_2,
    main: body::run,
}

#[path = "mmu_tlb_body/spread.rs"]
mod body;
