//! Benchmark (ABI 1.1): `bench_interdomain` with its companion
//! (`evtchn_peer role=pong`, domain 2) on CPU 1 of a 2-CPU machine
//! (`keel.cpu=1`), this domain on CPU 0 (`bench_body/interdomain.rs`).
//! With a domain on another CPU, every interdomain operation is a cross-CPU
//! one: the hypervisor stops the other CPU (it lends its domains,
//! `vmx/lend.rs`) for each send, bind and status, so both figures show that
//! price beside `bench_interdomain`'s same-CPU ones.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

keel_guest::test! {
    title: "Benchmark: interdomain EVTCHNOP_send and ping-pong with the other domain on another CPU",
    category: Bench,
    abi: keel_guest::abi::version::AbiVersion::V1_1,
    main: body::run,
}

#[path = "bench_body/interdomain.rs"]
mod body;
