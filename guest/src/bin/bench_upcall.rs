//! Benchmark (ABI 1.1): from an `EVTCHNOP_send` to the upcall handler of the
//! domain at the other end (`upcall_peer`, domain 2), on this domain's CPU
//! (`bench_body/upcall.rs`; `bench_upcall_2cpu` is the same across CPUs).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

keel_guest::test! {
    title: "Benchmark: interdomain EVTCHNOP_send to the other domain's upcall handler",
    category: Bench,
    abi: keel_guest::abi::version::AbiVersion::V1_1,
    main: body::run,
}

#[path = "bench_body/upcall.rs"]
mod body;
