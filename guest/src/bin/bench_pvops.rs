//! Each operation of the table, PV beside native-with-trap, on Keel (guest TSC
//! ticks: one per emulated instruction under Bochs).
//!
//! Figures come in pairs named `<operation>.pv` (the Keel PV entry: a hypercall,
//! shared memory, or a cache) and `<operation>.trap` (the native entry: the raw
//! instruction, which Keel traps and emulates); `cargo keel bench` prints the
//! pairs side by side. Operations with only one side say why in a `missing=`
//! line: Keel has no MSR hypercall (as Xen PV, MSRs are emulated instructions),
//! and no local APIC, so the native clock and timer do not exist on Keel.
//!
//! `call.table` and `call.direct` are the price of the table itself: the same
//! cheap PV operation (masking events: one store) called through `ops()` and
//! called directly.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use keel_guest::abi::guest;
use keel_guest::bench::{Bench, Figure};
use keel_guest::pagetable::{cr3_mfn, read_entry, Pte};
use keel_guest::prelude::*;
use keel_guest::pvops::{self, MmuOps, NATIVE_CPU, PV_CPU, PV_MMU, PV_TIME, TRAP_MMU};
use keel_guest::start::{pfn_to_mfn, pfn_to_va};

keel_guest::test! {
    title: "Benchmark: every table operation, Keel PV beside native with trap-and-emulate",
    category: Bench,
    main: test_main,
}

const N: usize = 200;
const APIC_BASE: u32 = 0x1b;

static ERRORS: AtomicU64 = AtomicU64::new(0);

fn ok<T, E>(r: Result<T, E>) {
    if r.is_err() {
        ERRORS.fetch_add(1, SeqCst);
    }
}

fn nonzero(name: &str, f: Option<Figure>) {
    if let Some(f) = f {
        check!(f.stats.min > 0, "{name}: measured 0 ticks");
    }
}

fn on_timer() {}

fn test_main() {
    if pvops::choice().platform != pvops::Platform::Keel {
        skip!("PV beside trap needs Keel");
        return;
    }
    let mut b = Bench::new();
    let mut s = [0u64; N];

    // cpu
    let f = b.measure("cpuid.pv", 1, &mut s, || {
        let _ = (PV_CPU.cpuid)(0, 0);
    });
    nonzero("cpuid.pv", f);
    let f = b.measure("cpuid.trap", 1, &mut s, || {
        let _ = (NATIVE_CPU.cpuid)(0, 0);
    });
    nonzero("cpuid.trap", f);
    let why = format_args!("Keel has no MSR hypercall: MSRs are emulated instructions");
    b.missing("rdmsr.pv", why);
    let f = b.measure("rdmsr.trap", 1, &mut s, || {
        ok((NATIVE_CPU.read_msr)(APIC_BASE))
    });
    nonzero("rdmsr.trap", f);
    b.missing("wrmsr.pv", why);
    let apic = (NATIVE_CPU.read_msr)(APIC_BASE).unwrap_or(0);
    let f = b.measure("wrmsr.trap", 1, &mut s, || {
        ok((NATIVE_CPU.write_msr)(APIC_BASE, apic))
    });
    nonzero("wrmsr.trap", f);

    // mmu
    mmu(&mut b, &mut s, "pv", &PV_MMU);
    mmu(&mut b, &mut s, "trap", &TRAP_MMU);

    // time and halt
    if let Err(e) = (pvops::PV_IRQ.bind_timer)(on_timer) {
        return failure!("bind_timer: {e}");
    }
    let f = b.measure("clock_read.pv", 1, &mut s, || {
        let _ = (PV_TIME.clock_ns)();
    });
    nonzero("clock_read.pv", f);
    let why = format_args!("the native clock and timer need a local APIC; Keel has none");
    b.missing("clock_read.trap", why);
    let far = (PV_TIME.clock_ns)() + 1_000_000_000_000;
    let f = b.measure("timer_arm.pv", 1, &mut s, || ok((PV_TIME.set_timer)(far)));
    nonzero("timer_arm.pv", f);
    b.missing("timer_arm.trap", why);
    ok((PV_TIME.set_timer)(0));
    // Halt until an event: interrupts off, a timer armed in the past (pending at
    // once), then the atomic "enable and wait" (SCHEDOP_block, or STI;HLT whose
    // interrupt shadow covers the HLT): the cost of the halt path itself (block
    // or HLT, the wake-up and the upcall), not of waiting.
    let f = b.measure("halt.pv", 1, &mut s, || {
        (PV_CPU.irq_disable)();
        ok(guest::set_timer_op(1));
        (PV_CPU.safe_halt)();
    });
    nonzero("halt.pv", f);
    let f = b.measure("halt.trap", 1, &mut s, || {
        (NATIVE_CPU.irq_disable)();
        ok(guest::set_timer_op(1));
        (NATIVE_CPU.safe_halt)();
    });
    nonzero("halt.trap", f);
    (PV_CPU.irq_disable)();

    // The table's own price, and what patching the call sites saves: the same
    // operation (masking events, one store) called through `ops()`, through an
    // unpatched site (`call [rip + slot]`), through a patched site (`call
    // rel32`), and directly.
    let f = b.measure("call.table", 1, &mut s, || (pvops::ops().cpu.irq_disable)());
    nonzero("call.table", f);
    let f = b.measure(
        "call.site_unpatched",
        1,
        &mut s,
        keel_guest::arch::unpatched_irq_disable,
    );
    nonzero("call.site_unpatched", f);
    let p = pvops::patched();
    if p.sites > 0 {
        let f = b.measure("call.site_patched", 1, &mut s, pvops::irq_disable);
        nonzero("call.site_patched", f);
    } else {
        b.missing(
            "call.site_patched",
            format_args!("no site was patched (patch=no?)"),
        );
    }
    let f = b.measure("call.direct", 1, &mut s, keel_guest::events::disable);
    nonzero("call.direct", f);

    check_eq!(ERRORS.load(SeqCst), 0, "measured operations that failed");
    success();
}

fn frame(i: u64) -> (Mfn, GuestVirt) {
    let pfn = Pfn::new(start_info().nr_pages - 2 - i);
    (pfn_to_mfn(pfn).unwrap_or(Mfn::new(0)), pfn_to_va(pfn))
}

fn mmu(b: &mut Bench, s: &mut [u64], side: &str, m: &'static MmuOps) {
    let (_, a) = frame(0);
    let (c_mfn, c) = frame(1);
    let _ = fault::write_u64(a, 1);
    let Ok(slot) = pvops::l1_slot(a) else {
        return error!("no L1 entry for {:#x}", a.get());
    };
    let pte = read_entry(Mfn::new(slot >> 12), ((slot & 0xfff) / 8) as usize).unwrap_or(Pte::EMPTY);
    let name = |op: &str| {
        let mut n = heapless_name();
        let _ = core::fmt::Write::write_fmt(&mut n, format_args!("{op}.{side}"));
        n
    };
    // The same value each time: every update is validated in full (no flag-only
    // shortcut), and no flush is owed.
    let n = name("pte_write");
    let f = b.measure(n.as_str(), 1, s, || ok((m.set_pte)(slot, pte.raw())));
    nonzero(n.as_str(), f);
    let n = name("flush_one");
    let f = b.measure(n.as_str(), 1, s, || ok((m.flush_one)(a)));
    nonzero(n.as_str(), f);
    let n = name("flush_all");
    let f = b.measure(n.as_str(), 1, s, || ok((m.flush_all)()));
    nonzero(n.as_str(), f);

    // A second root (a copy of the L4, announced), switched to and back: two
    // root loads per sample.
    let old = cr3_mfn();
    for i in 0..512 {
        let _ = fault::write_u64(
            GuestVirt::new(c.get() + i * 8),
            read_entry(old, i as usize).unwrap_or(Pte::EMPTY).raw(),
        );
    }
    if let Err(e) = (m.alloc_table)(4, c_mfn) {
        return failure!("alloc_table of the copy: {e}");
    }
    let n = name("root_switch");
    let f = b.measure(n.as_str(), 2, s, || {
        ok((m.load_root)(c_mfn));
        ok((m.load_root)(old));
    });
    nonzero(n.as_str(), f);
    if let Err(e) = (m.release_table)(c_mfn) {
        failure!("release_table of the copy: {e}");
    }
}

/// A figure name built without an allocator.
struct Name {
    buf: [u8; 32],
    len: usize,
}

fn heapless_name() -> Name {
    Name {
        buf: [0; 32],
        len: 0,
    }
}

impl Name {
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("bad-name")
    }
}

impl core::fmt::Write for Name {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(core::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
