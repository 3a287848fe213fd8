//! Benchmark (ABI 1.1): grants across domains with its companion
//! (`grant_peer mode=bench`, domain 2) on this domain's CPU
//! (`bench_body/grant_cross.rs`).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

keel_guest::test! {
    title: "Benchmark: grant map+unmap and GNTTABOP_copy of 4 KiB across domains (TSC ticks)",
    category: Bench,
    abi: keel_guest::abi::version::AbiVersion::V1_1,
    main: body::run,
}

#[path = "bench_body/grant_cross.rs"]
mod body;
