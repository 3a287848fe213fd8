//! Benchmark (ABI 1.1): `bench_ring` with the back end (`ring_back`, domain 2)
//! on CPU 1 of a 2-CPU machine (`keel.cpu=1`), this front end on CPU 0
//! (`bench_body/ring.rs`). Each notification is a cross-CPU operation
//! there (the other CPU's domains lent, `vmx/lend.rs`), and neither end's CPU
//! switches domains: each idles while its end sleeps.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

keel_guest::test! {
    title: "Benchmark: a split-driver ring round trip with the back end on another CPU, alone and batched",
    category: Bench,
    abi: keel_guest::abi::version::AbiVersion::V1_1,
    main: body::run,
}

#[path = "bench_body/ring.rs"]
mod body;
