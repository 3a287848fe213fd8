//! Bounded work per exit (docs/abi/mmu.md, "Preemption"): a batch of 2^31 - 1
//! requests costs the guest one page of requests, aliased through one L1, one
//! L2 and 32 L3 entries. Such a batch must not hold the CPU: the hypervisor
//! preempts it, a periodic timer's upcall runs between its pieces (it sees the
//! `VMCALL` interrupted, with the progress word in RSI), and the call then goes
//! on where it stopped. The guest sees the result of one uninterrupted call:
//! return value, success count, the target entry, and every register but RAX
//! as it passed them (the count register included).
//!
//! - 2^17 aliased requests run to the end (many pieces under any backend);
//! - the same inside a `multicall` (the entry's progress lives in its `result`
//!   until it completes; its arguments are never changed);
//! - 2^31 - 1 requests: after three upcalls have seen it preempted, the upcall
//!   moves the progress word to 1,000 requests before the end (as the ABI lets
//!   a guest do), and the call completes with success count 2^31 - 1.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

use keel_guest::abi::guest;
use keel_guest::abi::mmu::{MulticallEntry, DOMID_SELF, MMU_BATCH_MAX};
use keel_guest::arch::vmcall_all_regs;
use keel_guest::events;
use keel_guest::fault::GPR_NAMES;
use keel_guest::mmu::*;
use keel_guest::pagetable::{cr3_mfn, read_entry, Pte};
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Batches of up to 2^31-1 requests are preempted: timer upcalls run between the pieces, the result is exact",
    category: Security,
    main: test_main,
}

const VECTOR: u8 = 0xf5;
/// Bit 31 of a count: the call is a continuation (Xen's MMU_UPDATE_PREEMPTED).
const PREEMPTED: u64 = 1 << 31;
/// Bit 63 of a multicall's progress word: inside a preempted entry.
const IN_ENTRY: u64 = 1 << 63;

// Register indices in the vmcall_all_regs order.
const RAX: usize = 0;
const RDX: usize = 3;
const RSI: usize = 4;
const RDI: usize = 5;
const R8: usize = 7;
const R10: usize = 9;

/// What the upcall hook looks for: the call (RAX) and its list (RDI).
static WATCH_NR: AtomicU64 = AtomicU64::new(u64::MAX);
static WATCH_LIST: AtomicU64 = AtomicU64::new(0);
static WATCH_COUNT: AtomicU64 = AtomicU64::new(0);
/// Upcalls that found the watched call preempted (a progress word in RSI).
static SEEN: AtomicU64 = AtomicU64::new(0);
/// The highest done count seen so far, and words that broke the protocol.
static LAST_DONE: AtomicU64 = AtomicU64::new(0);
static BAD: AtomicU64 = AtomicU64::new(0);
static BAD_WORD: AtomicU64 = AtomicU64::new(0);
/// After this many sightings, move the progress to 1,000 before the end (0: never).
static SKIP_AFTER: AtomicU64 = AtomicU64::new(0);

fn watch(nr: Hypercall, list: u64, count: u64, skip_after: u64) {
    SEEN.store(0, SeqCst);
    LAST_DONE.store(0, SeqCst);
    BAD.store(0, SeqCst);
    WATCH_LIST.store(list, SeqCst);
    WATCH_COUNT.store(count, SeqCst);
    SKIP_AFTER.store(skip_after, SeqCst);
    WATCH_NR.store(nr.0, SeqCst);
}

fn hook(gpr: &mut [u64; 15], _rip: u64) {
    if gpr[RAX] != WATCH_NR.load(SeqCst) || gpr[RDI] != WATCH_LIST.load(SeqCst) {
        return;
    }
    let w = gpr[RSI];
    let count = WATCH_COUNT.load(SeqCst);
    if w == count {
        // Interrupted before its VMCALL first ran.
        return;
    }
    let done = (w >> 32) & MMU_BATCH_MAX;
    if w & PREEMPTED == 0
        || w & MMU_BATCH_MAX != count
        || done > count
        || done < LAST_DONE.load(SeqCst)
    {
        BAD.fetch_add(1, SeqCst);
        BAD_WORD.store(w, SeqCst);
        return;
    }
    LAST_DONE.store(done, SeqCst);
    let seen = SEEN.fetch_add(1, SeqCst) + 1;
    let skip = SKIP_AFTER.load(SeqCst);
    if skip != 0 && seen == skip && w & IN_ENTRY == 0 {
        gpr[RSI] = ((count - 1000) << 32) | PREEMPTED | count;
    }
}

fn on_event(_port: u32) {}

/// One `mmu_update` through `vmcall_all_regs`: the result, the success count,
/// and a check that no other register changed.
fn mmu_update_regs(what: &str, list: u64, count: u64) -> (i64, u64) {
    let done = AtomicU64::new(0xdead_beef);
    let mut regs: [u64; 15] =
        core::array::from_fn(|i| 0x5a5a_0000_0000_0000 | ((i as u64 + 1) * 0x1111));
    regs[RAX] = Hypercall::MMU_UPDATE.0;
    regs[RDI] = list;
    regs[RSI] = count;
    regs[RDX] = done.as_ptr() as u64;
    regs[R10] = DOMID_SELF;
    regs[R8] = 0x5a5a_0000_0000_8888;
    let after = vmcall_all_regs(regs);
    same_regs(what, &regs, &after);
    // The success count is a C unsigned int.
    (after[RAX] as i64, done.load(SeqCst) & 0xffff_ffff)
}

fn same_regs(what: &str, before: &[u64; 15], after: &[u64; 15]) {
    for i in 1..15 {
        check!(
            after[i] == before[i],
            "{what}: {} changed from {:#x} to {:#x}",
            GPR_NAMES[i],
            before[i],
            after[i]
        );
    }
}

fn protocol_ok(what: &str) {
    check_eq!(
        BAD.load(SeqCst),
        0,
        "{what}: malformed progress words (last {:#x})",
        BAD_WORD.load(SeqCst)
    );
}

fn test_main() {
    let Some(t) = aliased_requests() else { return };
    events::set_interrupted_hook(Some(hook));
    if let Err(e) = events::timer_upcalls(VECTOR, on_event) {
        failure!("{e}");
        return;
    }
    // 10 ms: many requests a piece, and many pieces a batch.
    check_eq!(
        guest::vcpu_set_periodic_timer(10_000_000),
        Ok(()),
        "periodic timer"
    );

    // 2^17 requests, to the end.
    let n = 1u64 << 17;
    watch(Hypercall::MMU_UPDATE, t.va, n, 0);
    let up0 = events::UPCALLS.load(SeqCst);
    let (r, done) = mmu_update_regs("2^17 requests", t.va, n);
    let ups = events::UPCALLS.load(SeqCst) - up0;
    check_eq!(r, 0, "2^17 requests: result");
    check_eq!(done, n, "2^17 requests: success count");
    check!(
        SEEN.load(SeqCst) > 0,
        "2^17 requests: no upcall ran while the batch was preempted ({ups} upcalls in all)"
    );
    protocol_ok("2^17 requests");
    println!(
        "2^17 requests: {} upcalls saw the batch preempted, {ups} upcalls in all",
        SEEN.load(SeqCst)
    );

    // The same batch inside a multicall, between two other calls.
    let done2 = AtomicU64::new(0xdead_beef);
    let args = [t.va, n, done2.as_ptr() as u64, DOMID_SELF, 0, 0];
    let mut calls = [
        MulticallEntry {
            op: Hypercall::XEN_VERSION.0,
            result: 0x5a5a,
            args: [0; 6],
        },
        MulticallEntry {
            op: Hypercall::MMU_UPDATE.0,
            result: 0x5a5a,
            args,
        },
        MulticallEntry {
            op: Hypercall::XEN_VERSION.0,
            result: 0x5a5a,
            args: [0; 6],
        },
    ];
    watch(Hypercall::MULTICALL, calls.as_ptr() as u64, 3, 0);
    check_eq!(guest::multicall(&mut calls), Ok(()), "multicall");
    let ver = i64::from(keel_guest::abi::version::AbiVersion::CURRENT.encode());
    check_eq!(calls[0].result as i64, ver, "multicall entry 0");
    check_eq!(calls[1].result as i64, 0, "multicall entry 1 (the batch)");
    check_eq!(calls[2].result as i64, ver, "multicall entry 2");
    check!(
        calls[1].args == args,
        "the batch's arguments changed: {:?}",
        calls[1].args
    );
    check_eq!(
        done2.load(SeqCst) & 0xffff_ffff,
        n,
        "multicall: success count"
    );
    check!(
        SEEN.load(SeqCst) > 0,
        "multicall: no upcall ran while it was preempted"
    );
    protocol_ok("multicall");

    // The attack: 2^31 - 1 requests. The hook moves it near its end after three
    // preemptions.
    watch(Hypercall::MMU_UPDATE, t.va, MMU_BATCH_MAX, 3);
    let (r, done) = mmu_update_regs("2^31-1 requests", t.va, MMU_BATCH_MAX);
    check_eq!(r, 0, "2^31-1 requests: result");
    check_eq!(done, MMU_BATCH_MAX, "2^31-1 requests: success count");
    check!(
        SEEN.load(SeqCst) >= 3,
        "2^31-1 requests: seen preempted {} times",
        SEEN.load(SeqCst)
    );
    protocol_ok("2^31-1 requests");

    check_eq!(guest::vcpu_stop_periodic_timer(), Ok(()), "stop the timer");
    events::set_interrupted_hook(None);
    check_eq!(
        events::UPCALLS_WITH_IF_CLEAR.load(SeqCst),
        0,
        "upcalls with IF clear"
    );
    // The batches changed nothing.
    let (l1, i) = ((t.entry_ptr >> 12), ((t.entry_ptr & 0xfff) / 8) as usize);
    check_eq!(
        read_entry(Mfn::new(l1), i),
        Ok(t.entry_val),
        "the target entry"
    );
    expect_ok(
        format_args!("removing the aliased tree"),
        update(slot(cr3_mfn(), t.l4_slot), Pte::EMPTY),
    );
    success();
}
