//! Guest user mode cannot reach past its kernel through the hypervisor
//! (docs/abi/README.md, "Privilege"): a hypercall from CPL3 is refused with
//! -EPERM and changes nothing, and string I/O executed at CPL3 (IOPL=3) reaches
//! memory with user-mode permissions, raising the #PF the CPU would raise (U set
//! in the error code) on a supervisor-only page. Each case below was a hole: user
//! mode read kernel memory through console_io, rewrote kernel page-table entries
//! through mmu_update, allocated event channels, shut the domain down, and read
//! and wrote supervisor pages with INS/OUTS.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::console::CONSOLEIO_WRITE;
use keel_guest::abi::event::{EvtchnAllocUnbound, DOMID_SELF, EVTCHNOP_ALLOC_UNBOUND};
use keel_guest::abi::guest::evtchn_alloc_unbound;
use keel_guest::abi::mmu::{MmuUpdate, MMU_NORMAL_PT_UPDATE};
use keel_guest::abi::sched::{SchedShutdown, SCHEDOP_SHUTDOWN, SHUTDOWN_POWEROFF};
use keel_guest::abi::version::XENVER_PAGESIZE;
use keel_guest::fault::{expect_fault, expect_no_fault, pf, StringIoEnd};
use keel_guest::pagetable::{cr3_mfn, read_entry, Pte, PteFlags};
use keel_guest::prelude::*;
use keel_guest::targets::region_end;
use keel_guest::user;

keel_guest::test! {
    title: "User mode (CPL3): hypercalls refused with -EPERM, string I/O with user-mode permissions",
    category: Functional,
    main: test_main,
}

/// An empty port: reads all ones, drops writes.
const PORT: u16 = 0x2e8;
const EPERM: i64 = -1;

fn test_main() {
    if let Err(e) = user::enable() {
        keel_guest::report::crash(format_args!("making the user pages user-accessible: {e}"));
    }
    let data = user::data_page();

    // The facility itself: user mode reads its own page, and the CPU refuses it
    // a kernel page (U clear): #PF, present, user.
    let _ = keel_guest::fault::write_u64(data, 0x5eed);
    check_eq!(
        expect_no_fault(
            format_args!("user read of the user page"),
            user::read_u64(data)
        ),
        Some(0x5eed),
        "user read of the user page"
    );
    let kernel_word = 0x6b65_726e_656cu64;
    let kva = GuestVirt::new(&kernel_word as *const u64 as u64);
    if expect_fault(
        format_args!("user read of a kernel page"),
        user::read_u64(kva),
        Vector::PF,
        Some(pf::PRESENT | pf::USER),
    ) {
        println!("the CPU keeps user mode out of kernel pages");
    }

    hypercalls();
    string_io(data);
    success();
}

fn hypercalls() {
    // The null hypercall.
    check_eq!(
        user::hypercall(Hypercall::XEN_VERSION, [XENVER_PAGESIZE, 0, 0, 0, 0]),
        EPERM,
        "xen_version from CPL3"
    );

    // console_io(CONSOLEIO_write) of kernel memory.
    let secret = *b"KERNEL-ONLY SECRET: user mode must not print this\n";
    check_eq!(
        user::hypercall(
            Hypercall::CONSOLE_IO,
            [
                CONSOLEIO_WRITE,
                secret.len() as u64,
                secret.as_ptr() as u64,
                0,
                0
            ]
        ),
        EPERM,
        "console_io(write) of a kernel buffer from CPL3"
    );

    // mmu_update rewriting a kernel page-table entry: drop RW from the L4
    // entry that maps everything (a request list in kernel memory).
    let l4 = cr3_mfn();
    let region = start_info().pt_base;
    let idx = region.table_index(4);
    let before = read_entry(l4, idx).unwrap_or(Pte::EMPTY);
    let req = [MmuUpdate {
        ptr: ((l4.get() << 12) + idx as u64 * 8) | MMU_NORMAL_PT_UPDATE,
        val: before.without(PteFlags::WRITABLE).raw(),
    }];
    let mut done = 0u32;
    check_eq!(
        user::hypercall(
            Hypercall::MMU_UPDATE,
            [
                req.as_ptr() as u64,
                1,
                &mut done as *mut u32 as u64,
                u64::from(DOMID_SELF),
                0
            ]
        ),
        EPERM,
        "mmu_update of a kernel L4 entry from CPL3"
    );
    check_eq!(
        read_entry(l4, idx).unwrap_or(Pte::EMPTY),
        before,
        "the L4 entry"
    );
    check_eq!(done, 0, "mmu_update's done count");

    // EVTCHNOP_alloc_unbound: no port is taken (the kernel's next port is the
    // one after its previous one).
    let first = evtchn_alloc_unbound();
    let mut a = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom: DOMID_SELF,
        port: 0,
    };
    check_eq!(
        user::hypercall(
            Hypercall::EVENT_CHANNEL_OP,
            [EVTCHNOP_ALLOC_UNBOUND, &mut a as *mut _ as u64, 0, 0, 0]
        ),
        EPERM,
        "EVTCHNOP_alloc_unbound from CPL3"
    );
    check_eq!(a.port, 0, "no port written back");
    match (first, evtchn_alloc_unbound()) {
        (Ok(p), Ok(q)) => {
            check_eq!(q, p + 1, "the kernel's next port");
        }
        (p, q) => keel_guest::failure!("kernel EVTCHNOP_alloc_unbound: {p:?}, {q:?}"),
    }

    // SCHEDOP_shutdown(poweroff): the domain keeps running (this test would
    // end here, with no verdict, if it did not).
    let s = SchedShutdown {
        reason: SHUTDOWN_POWEROFF,
    };
    check_eq!(
        user::hypercall(
            Hypercall::SCHED_OP,
            [SCHEDOP_SHUTDOWN, &s as *const _ as u64, 0, 0, 0]
        ),
        EPERM,
        "SCHEDOP_shutdown from CPL3"
    );
}

fn string_io(data: GuestVirt) {
    // A kernel buffer: OUTS from it faults as a user-mode read (P|U) at its
    // first byte, INS into it as a user-mode write (P|W|U), nothing moves.
    let mut kbuf = [0x11u8; 64];
    let kva = GuestVirt::new(kbuf.as_mut_ptr() as u64);
    let (stop, r) = user::rep_outsb(PORT, kva, 16);
    if expect_fault(
        format_args!("user REP OUTSB from a kernel page"),
        r,
        Vector::PF,
        Some(pf::PRESENT | pf::USER),
    ) {
        check_eq!(r.unwrap_err().cr2, kva.get(), "CR2 of the OUTS #PF");
    }
    check_eq!(
        stop,
        StringIoEnd {
            ptr: kva.get(),
            rcx: 16
        },
        "RSI/RCX: no element done"
    );
    let (stop, r) = user::rep_insb(PORT, kva, 16);
    if expect_fault(
        format_args!("user REP INSB into a kernel page"),
        r,
        Vector::PF,
        Some(pf::PRESENT | pf::WRITE | pf::USER),
    ) {
        check_eq!(r.unwrap_err().cr2, kva.get(), "CR2 of the INS #PF");
    }
    check_eq!(
        stop,
        StringIoEnd {
            ptr: kva.get(),
            rcx: 16
        },
        "RDI/RCX: no element done"
    );
    check!(
        kbuf.iter().all(|&b| b == 0x11),
        "the kernel buffer is unchanged"
    );

    // A page table (read-only and supervisor): INS is refused as a user write.
    let pt = start_info().pt_base;
    let (_, r) = user::rep_insb(PORT, pt, 8);
    expect_fault(
        format_args!("user REP INSB into a page table"),
        r,
        Vector::PF,
        Some(pf::PRESENT | pf::WRITE | pf::USER),
    );

    // Not present: U and W, no P.
    let end = region_end();
    let (_, r) = user::rep_insb(PORT, end, 4);
    expect_fault(
        format_args!("user REP INSB into an unmapped page"),
        r,
        Vector::PF,
        Some(pf::WRITE | pf::USER),
    );

    // The user page itself: both directions work, and a run from the user
    // page into the kernel page after it stops at the boundary.
    let (stop, r) = user::rep_insb(PORT, data, 32);
    expect_no_fault(format_args!("user REP INSB into the user page"), r);
    check_eq!(stop.rcx, 0, "RCX after a complete user REP INSB");
    check_eq!(
        keel_guest::fault::read_u64(data).unwrap_or(0),
        u64::MAX,
        "the empty port's all-ones reached the user page"
    );
    let (stop, r) = user::rep_outsb(PORT, data, 32);
    expect_no_fault(format_args!("user REP OUTSB from the user page"), r);
    check_eq!(stop.rcx, 0, "RCX after a complete user REP OUTSB");
    let last = GuestVirt::new(data.get() + 4096 - 4);
    let (stop, r) = user::rep_outsb(PORT, last, 8);
    if expect_fault(
        format_args!("user REP OUTSB off the end of the user page"),
        r,
        Vector::PF,
        None,
    ) {
        let f = r.unwrap_err();
        check_eq!(f.cr2, data.get() + 4096, "CR2 at the first kernel byte");
        check!(
            f.error_code & pf::USER != 0,
            "U in the error code {:#x}",
            f.error_code
        );
    }
    check_eq!(
        stop,
        StringIoEnd {
            ptr: data.get() + 4096,
            rcx: 4
        },
        "RSI/RCX after the 4 user bytes"
    );
}
