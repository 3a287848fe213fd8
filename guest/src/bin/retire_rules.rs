//! Instruction retirement (docs/abi/insns.md), the two cases the CPU is
//! easiest to get wrong on:
//!
//! - **`STI; VMCALL`**: `STI` blocks interrupts until the instruction after it
//!   completes, and that instruction is the `VMCALL`. When Keel completes the
//!   hypercall, the shadow must end with it: an upcall that was pending before
//!   the `STI` interrupts the instruction right after the `VMCALL`, not one
//!   later (as it would if the shadow were carried into the guest again).
//! - **`REP OUTSB` / `REP INSB` with RFLAGS.TF**: the CPU single-steps a REP
//!   string instruction one iteration at a time (SDM vol. 3, 18.3.1.4): the
//!   first #DB comes after the first element, with RIP still on the
//!   instruction and RCX one less, DR6.BS set; not after the whole string.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

use keel_guest::abi::guest;
use keel_guest::arch;
use keel_guest::events;
use keel_guest::fault::{decode_exinfo, DR6_BS};
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Retirement: STI;VMCALL ends the shadow with the hypercall; REP string I/O steps one iteration per #DB",
    category: Security,
    main: test_main,
}

const VECTOR: u8 = 0xf3;

/// The RIP the first upcall interrupted (0: none yet).
static INTERRUPTED: AtomicU64 = AtomicU64::new(0);

fn hook(_gpr: &mut [u64; 15], rip: u64) {
    let _ = INTERRUPTED.compare_exchange(0, rip, SeqCst, SeqCst);
}

fn on_event(_port: u32) {}

fn sti_vmcall() {
    if let Err(e) = events::bind_timer_upcalls(VECTOR, on_event) {
        failure!("{e}");
        return;
    }
    events::set_interrupted_hook(Some(hook));
    events::enable();
    for round in 0..3 {
        arch::cli();
        INTERRUPTED.store(0, SeqCst);
        let up0 = events::UPCALLS.load(SeqCst);
        // A deadline already past: the timer's event is pending at once, and
        // waits for IF.
        check_eq!(
            guest::set_timer_op(1),
            Ok(()),
            "round {round}: set_timer_op"
        );
        check_eq!(
            events::UPCALLS.load(SeqCst),
            up0,
            "round {round}: an upcall with IF clear"
        );
        let (after, later) = arch::probe_sti_vmcall();
        let at = INTERRUPTED.load(SeqCst);
        check!(
            events::UPCALLS.load(SeqCst) > up0,
            "round {round}: the pending upcall never came"
        );
        check!(
            at == after,
            "round {round}: the upcall interrupted {at:#x}, not {after:#x} right after the VMCALL{}",
            if at == later {
                " (one instruction late: the STI shadow outlived the VMCALL)"
            } else {
                ""
            }
        );
    }
    events::set_interrupted_hook(None);
    arch::cli();
}

fn rep_under_tf() {
    let mut buf = [0x5au8; 8];
    for (name, ins) in [("REP OUTSB", false), ("REP INSB", true)] {
        for n in [2u64, 3, 8] {
            let (info, rcx, at, dr6) = arch::probe_rep_step(ins, buf.as_mut_ptr() as u64, n);
            match decode_exinfo(info, 0) {
                Some(f) if f.vector == Vector::DB => {
                    check_eq!(
                        (at, rcx),
                        (2, n - 1),
                        "{name} of {n}: where the first #DB came (2: at the instruction) and RCX there"
                    );
                    check!(dr6 & DR6_BS != 0, "{name} of {n}: DR6 {dr6:#x} without BS");
                }
                other => keel_guest::failure!("{name} of {n}: no single-step #DB ({other:?})"),
            }
        }
        // One element: the #DB comes right after the instruction.
        let (info, rcx, at, _) = arch::probe_rep_step(ins, buf.as_mut_ptr() as u64, 1);
        check!(
            matches!(decode_exinfo(info, 0), Some(f) if f.vector == Vector::DB)
                && (at, rcx) == (0, 0),
            "{name} of 1: #DB {info:#x} at {at}, RCX {rcx}"
        );
    }
    // REP INSB read the port (no device: all ones) into the first element.
    check_eq!(buf[0], 0xff, "REP INSB's first element");
}

fn test_main() {
    sti_vmcall();
    rep_under_tf();
    success();
}
