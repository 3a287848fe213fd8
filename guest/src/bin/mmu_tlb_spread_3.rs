//! `mmu_tlb_spread` with the update made by a vCPU on another CPU than its
//! domain's (ABI 1.2 preview; the runner boots it with `keel.vcpus=3
//! keel.vcpu_cpus=0,1,2` on a machine of 4 CPUs): vCPU 1 on CPU 1 updates,
//! vCPU 2 on CPU 2 writes. vCPU 1's operations stop only the domain's CPU
//! unless one owes a flush; then CPU 2 must leave its guest before the
//! operation ends (`mmu_tlb_body/spread.rs`).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

keel_guest::test! {
    title: "TLB: a permission a remote vCPU removes is gone on a third CPU at once (XSA-286 class, 3 vCPUs on 4 CPUs, ABI 1.2 preview)",
    category: Security,
    abi: keel_guest::abi::version::AbiVersion::V1_2,
    main: body::run_3,
}

#[path = "mmu_tlb_body/spread.rs"]
mod body;
