//! Preemptible pinning (docs/abi/mmu.md, "Preemption"): pinning the L4 of the
//! largest tree the guest can build (half its memory in L1 tables, every entry
//! present) validates over half a million entries, and unpinning it
//! devalidates as many. Neither may hold the CPU: the hypervisor does the work
//! in bounded pieces, a periodic timer's upcall runs between them (it sees the
//! `mmuext_op` `VMCALL` interrupted, the progress word in RSI with the pin
//! request not yet done), and the call goes on where it stopped. The guest
//! sees one uninterrupted call: result 0, success count 1, every register but
//! RAX as it passed them, the tree validated (an L1 of it cannot be mapped
//! writable) while pinned, and every frame free again after the unpin (each L1
//! can be mapped writable).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

use keel_guest::abi::guest;
use keel_guest::abi::mmu::{MmuextOp, DOMID_SELF, MMUEXT_PIN_L4_TABLE, MMUEXT_UNPIN_TABLE};
use keel_guest::arch::vmcall_all_regs;
use keel_guest::events;
use keel_guest::fault::GPR_NAMES;
use keel_guest::mmu::*;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Pinning and unpinning a tree of half the guest's memory is preempted: timer upcalls run during it, the result is exact",
    category: Security,
    main: test_main,
}

const VECTOR: u8 = 0xf4;
/// Bit 31 of a count: the call is a continuation (Xen's MMU_UPDATE_PREEMPTED).
const PREEMPTED: u64 = 1 << 31;

// Register indices in the vmcall_all_regs order.
const RAX: usize = 0;
const RDX: usize = 3;
const RSI: usize = 4;
const RDI: usize = 5;
const R10: usize = 9;

static WATCH_LIST: AtomicU64 = AtomicU64::new(0);
/// Upcalls that found the watched call preempted with its one request not done.
static SEEN: AtomicU64 = AtomicU64::new(0);
static BAD: AtomicU64 = AtomicU64::new(0);
static BAD_WORD: AtomicU64 = AtomicU64::new(0);

fn hook(gpr: &mut [u64; 15], _rip: u64) {
    if gpr[RAX] != Hypercall::MMUEXT_OP.0 || gpr[RDI] != WATCH_LIST.load(SeqCst) {
        return;
    }
    let w = gpr[RSI];
    if w == 1 {
        return; // interrupted before its VMCALL first ran
    }
    // One request, not done: the count 1 with the continuation flag and done 0.
    if w != PREEMPTED | 1 {
        BAD.fetch_add(1, SeqCst);
        BAD_WORD.store(w, SeqCst);
        return;
    }
    SEEN.fetch_add(1, SeqCst);
}

fn on_event(_port: u32) {}

/// One `mmuext_op` of `op` through `vmcall_all_regs`, watched by the hook:
/// its result and success count, the upcalls that saw it preempted, and a
/// check that no other register changed.
fn ext_watched(what: &str, op: MmuextOp) -> (i64, u64, u64) {
    let ops = [op];
    let done = AtomicU64::new(0xdead_beef);
    WATCH_LIST.store(ops.as_ptr() as u64, SeqCst);
    SEEN.store(0, SeqCst);
    let mut regs: [u64; 15] =
        core::array::from_fn(|i| 0x5a5a_0000_0000_0000 | ((i as u64 + 1) * 0x1111));
    regs[RAX] = Hypercall::MMUEXT_OP.0;
    regs[RDI] = ops.as_ptr() as u64;
    regs[RSI] = 1;
    regs[RDX] = done.as_ptr() as u64;
    regs[R10] = DOMID_SELF;
    let after = vmcall_all_regs(regs);
    WATCH_LIST.store(0, SeqCst);
    for i in 1..15 {
        check!(
            after[i] == regs[i],
            "{what}: {} changed from {:#x} to {:#x}",
            GPR_NAMES[i],
            regs[i],
            after[i]
        );
    }
    (
        after[RAX] as i64,
        done.load(SeqCst) & 0xffff_ffff,
        SEEN.load(SeqCst),
    )
}

fn op(cmd: u32, mfn: Mfn) -> MmuextOp {
    MmuextOp {
        cmd,
        pad: 0,
        arg1: mfn.get(),
        arg2: 0,
    }
}

fn test_main() {
    let l1s = start_info().nr_pages / 2;
    let t = tree(l1s);
    println!("tree: {} tables, {l1s} full L1s", t.tables);
    events::set_interrupted_hook(Some(hook));
    if let Err(e) = events::timer_upcalls(VECTOR, on_event) {
        failure!("{e}");
        return;
    }
    // 10 ms: many entries a piece, and many pieces a pin.
    check_eq!(
        guest::vcpu_set_periodic_timer(10_000_000),
        Ok(()),
        "periodic timer"
    );

    for round in 0..2 {
        let up0 = events::UPCALLS.load(SeqCst);
        let (r, done, seen) = ext_watched("pin", op(MMUEXT_PIN_L4_TABLE, t.l4.mfn));
        let ups = events::UPCALLS.load(SeqCst) - up0;
        check_eq!(
            (r, done),
            (0, 1),
            "round {round}: pin: result, success count"
        );
        check!(
            seen > 0,
            "round {round}: pin: no upcall ran while it was preempted ({ups} upcalls in all)"
        );
        println!("round {round}: pin: {seen} upcalls saw it preempted, {ups} in all");
        // Pinned and validated: a second pin is refused, and the L4 may not
        // be mapped writable.
        expect_err(
            format_args!("round {round}: pinning it again"),
            pin(4, t.l4.mfn),
            Errno::EINVAL,
        );
        expect_err(
            format_args!("round {round}: mapping the pinned L4 writable"),
            make_writable(t.l4.va),
            Errno::EINVAL,
        );
        let up0 = events::UPCALLS.load(SeqCst);
        let (r, done, seen) = ext_watched("unpin", op(MMUEXT_UNPIN_TABLE, t.l4.mfn));
        let ups = events::UPCALLS.load(SeqCst) - up0;
        check_eq!(
            (r, done),
            (0, 1),
            "round {round}: unpin: result, success count"
        );
        check!(
            seen > 0,
            "round {round}: unpin: no upcall ran while it was preempted ({ups} upcalls in all)"
        );
        println!("round {round}: unpin: {seen} upcalls saw it preempted, {ups} in all");
        expect_err(
            format_args!("round {round}: unpinning it again"),
            unpin(t.l4.mfn),
            Errno::EINVAL,
        );
    }
    check_eq!(guest::vcpu_stop_periodic_timer(), Ok(()), "stop the timer");
    events::set_interrupted_hook(None);
    check_eq!(
        BAD.load(SeqCst),
        0,
        "malformed progress words (last {:#x})",
        BAD_WORD.load(SeqCst)
    );
    check_eq!(
        events::UPCALLS_WITH_IF_CLEAR.load(SeqCst),
        0,
        "upcalls with IF clear"
    );
    // The tree is ordinary memory again: its L4 can be mapped writable (it
    // could not while the tree was pinned).
    expect_ok(
        format_args!("mapping the unpinned L4 writable"),
        make_writable(t.l4.va),
    );
    success();
}
