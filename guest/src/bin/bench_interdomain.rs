//! Benchmark (ABI 1.1): interdomain event channels with the companion
//! (`evtchn_peer role=pong`, domain 2) on this domain's CPU: the loopback
//! `evtchn_send_interdomain` and the `evtchn_ping_pong` round trip
//! (`bench_body/interdomain.rs` describes both; `bench_interdomain_2cpu`
//! is the same with the companion on another CPU).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

keel_guest::test! {
    title: "Benchmark: interdomain EVTCHNOP_send, and a ping-pong round trip with another domain",
    category: Bench,
    abi: keel_guest::abi::version::AbiVersion::V1_1,
    main: body::run,
}

#[path = "bench_body/interdomain.rs"]
mod body;
