//! Benchmark (ABI 1.1): `bench_upcall` with the peer (`upcall_peer`, domain
//! 2) on CPU 1 of a 2-CPU machine (`keel.cpu=1`), this domain on CPU 0: an
//! event channel's send to the upcall on another CPU
//! (`bench_body/upcall.rs`).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

keel_guest::test! {
    title: "Benchmark: interdomain EVTCHNOP_send to the upcall handler of a domain on another CPU",
    category: Bench,
    abi: keel_guest::abi::version::AbiVersion::V1_1,
    main: body::run,
}

#[path = "bench_body/upcall.rs"]
mod body;
