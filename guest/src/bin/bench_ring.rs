//! Benchmark (ABI 1.1): the split-driver ring of `ring_front` with `ring_back`
//! (domain 2) on this domain's CPU: `ring_round_trip` and
//! `ring_round_trip_batch` (`bench_body/ring.rs` describes both;
//! `bench_ring_2cpu` is the same with the back end on another CPU).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

keel_guest::test! {
    title: "Benchmark: a split-driver ring round trip with another domain, alone and batched",
    category: Bench,
    abi: keel_guest::abi::version::AbiVersion::V1_1,
    main: body::run,
}

#[path = "bench_body/ring.rs"]
mod body;
