//! More vCPUs on one CPU than it can park (ABI 1.2 preview): three domains
//! of 8 vCPUs share CPU 0, whose pool parks 16 (`PARKED_PER_CPU`), so the
//! 21 vCPUs beyond the three vCPU 0s cannot all have a place. The runner
//! boots this test with `keel.vcpus=8` and two companions of its own kind
//! (`loader/src/runner.rs`): the places go to the domains in the order they
//! were built, 7, 7 and 2, and each domain checks what `VCPUOP_up` answers
//! it: 0 for a vCPU with a place, which then runs its function; `-ENOMEM`
//! for one without, which stays down (`VCPUOP_is_up` 0, never entered, its
//! run state offline), again at a second try. `places=N` says how many the
//! domain expects (default: all, one fewer than its vCPUs), or all when the
//! domains are spread over CPUs of their own (`place=spread`); a companion
//! reports its own verdict, which the runner holds the test to.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::{AtomicU32, Ordering::SeqCst};

use keel_guest::abi::guest;
use keel_guest::abi::vcpu::RUNSTATE_OFFLINE;
use keel_guest::prelude::*;
use keel_guest::smp::{self, MAX_VCPUS};
use keel_guest::start;

keel_guest::test! {
    title: "vCPUs: more than a CPU can park; VCPUOP_up is -ENOMEM for those without a place (ABI 1.2 preview)",
    category: Functional,
    abi: keel_guest::abi::version::AbiVersion::V1_2,
    main: run,
}

/// How long to wait for a vCPU to run its function (system time).
const PATIENCE_NS: u64 = 2_000_000_000;

/// Each worker's argument + 1, once it ran.
static RAN: [AtomicU32; MAX_VCPUS] = [const { AtomicU32::new(0) }; MAX_VCPUS];

/// Every vCPU but 0 runs this, then takes itself down (its return).
fn worker(id: u32) {
    if let Some(r) = RAN.get(id as usize) {
        r.store(id + 1, SeqCst);
    }
}

fn wait_for(done: impl Fn() -> bool) -> bool {
    smp::yield_until(PATIENCE_NS, done)
}

fn run() {
    let n = match smp::count() {
        Ok(n) => n,
        Err(e) => {
            failure!("VCPUOP_is_up(0): {e}");
            return;
        }
    };
    let want = smp::requested().unwrap_or(8);
    println!("asked for {want} vCPUs; the hypervisor gave {n}");
    if n == 1 {
        skip!("the hypervisor gave this domain 1 vCPU (keel.vcpus={want} asked for more)");
        return;
    }
    let places = start::cmdline_value(start::cmdline(), "places")
        .and_then(|p| p.parse::<u32>().ok())
        .unwrap_or(n - 1);
    println!("expecting a place for {places} of vCPUs 1-{}", n - 1);
    smp::init();
    // Places go to a domain's vCPUs in order: some answer 0, the rest
    // -ENOMEM.
    let mut placed = 0;
    for id in 1..n {
        if !check_eq!(smp::initialise(id, worker), Ok(()), "initialise({id})") {
            return;
        }
        match smp::up(id) {
            Ok(()) if placed == id - 1 => {
                placed = id;
                check!(
                    wait_for(|| RAN[id as usize].load(SeqCst) == id + 1),
                    "vCPU {id} did not run its function within {} ms after up answered 0 (entered {} time(s))",
                    PATIENCE_NS / 1_000_000,
                    smp::entered(id)
                );
            }
            Ok(()) => failure!("up({id}) answered 0 after up({placed}) was refused"),
            Err(Errno::ENOMEM) => {
                check_eq!(smp::is_up(id), Ok(false), "is_up({id}) after -ENOMEM");
                check_eq!(
                    guest::vcpu_runstate(u64::from(id)).map(|r| r.state),
                    Ok(RUNSTATE_OFFLINE as i32),
                    "vCPU {id}'s run state after -ENOMEM"
                );
            }
            Err(e) => failure!("up({id}): {e}"),
        }
    }
    // Alone on its CPU (`place=spread` puts the three domains on CPUs of
    // their own: loader/tests/smp.rs) a domain has a place for every vCPU.
    check!(
        placed == places || placed == n - 1,
        "vCPUs 1-{placed} had a place: want 1-{places} (three domains on this CPU) or 1-{} (alone)",
        n - 1
    );
    // The refused stay refused and never ran (the others had the time to).
    for id in placed + 1..n {
        check_eq!(smp::up(id), Err(Errno::ENOMEM), "up({id}) again");
        check_eq!(smp::entered(id), 0, "vCPU {id} entered");
        check_eq!(RAN[id as usize].load(SeqCst), 0, "vCPU {id} ran");
    }
    success();
}
