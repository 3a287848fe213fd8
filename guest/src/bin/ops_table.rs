//! Every operation of the table, the same checks on bare hardware and on Keel.
//!
//! This is the differential test of the paravirt_ops table ([`keel_guest::pvops`]):
//! `keel`'s `pvops` loader test runs it natively on QEMU TCG, with every group PV
//! on Keel, and with the groups left native on Keel (trap-and-emulate), and all
//! must reach the same verdict. Where Keel deliberately differs from bare metal
//! the check says so, and docs/abi names the difference: CPUID.1:ECX.hypervisor,
//! no local APIC, and page tables that must be announced before they are loaded.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use keel_guest::cpu::{signature, LEAF1_ECX_HYPERVISOR};
use keel_guest::fault::Cr;
use keel_guest::pagetable::{cr3_mfn, read_entry, Pte, PteFlags};
use keel_guest::prelude::*;
use keel_guest::pvops::{self, ops, Platform};
use keel_guest::start::{pfn_to_mfn, pfn_to_va};

keel_guest::test! {
    title: "The operations table: cpu, mmu, time, irq and console, native or PV",
    category: Functional,
    needs: Nothing,
    main: test_main,
}

const IA32_EFER: u32 = 0xc000_0080;
const IA32_KERNEL_GS_BASE: u32 = 0xc000_0102;
const IA32_APIC_BASE: u32 = 0x1b;

fn test_main() {
    let keel = pvops::choice().platform == Platform::Keel;
    println!("cpu group");
    cpu(keel);
    println!("mmu group");
    mmu();
    println!("time and irq groups");
    time_and_irq();
    println!("console group");
    console();
    println!("patched call sites");
    patched();
    success();
}

fn cpu(keel: bool) {
    let o = ops();
    let raw0 = keel_guest::cpu::cpuid(0, 0);
    let t0 = (o.cpu.cpuid)(0, 0);
    check_eq!(t0, raw0, "cpuid(0) through the table");
    // Twice: the PV table answers the second from its cache.
    check_eq!((o.cpu.cpuid)(0, 0), raw0, "cpuid(0) again");
    let l1 = (o.cpu.cpuid)(1, 0);
    // Differs from bare metal: Keel sets CPUID.1:ECX.hypervisor and presents its
    // leaves at 0x4000_0000 (docs/abi/cpuid.md). (QEMU sets the bit even under
    // TCG, so only its presence on Keel is checked.)
    check!(
        !keel || l1.ecx & LEAF1_ECX_HYPERVISOR != 0,
        "CPUID.1:ECX.hypervisor on Keel"
    );
    let base = (o.cpu.cpuid)(0x4000_0000, 0);
    check_eq!(
        signature(&base) == *b"KeelKeelKeel",
        keel,
        "Keel's CPUID leaves"
    );
    // Differs from bare metal: Keel presents no local APIC (CPUID.1:EDX.APIC clear,
    // IA32_APIC_BASE globally disabled, docs/abi/msr.md).
    check_eq!(l1.edx & (1 << 9) == 0, keel, "CPUID.1:EDX.APIC clear");
    match (o.cpu.read_msr)(IA32_APIC_BASE) {
        Ok(v) => {
            check_eq!(v & (1 << 11) == 0, keel, "IA32_APIC_BASE.EN clear");
        }
        Err(f) => failure!("RDMSR IA32_APIC_BASE: {f}"),
    }

    match (o.cpu.read_msr)(IA32_EFER) {
        Ok(v) => {
            check!(
                v & (1 << 8 | 1 << 10) == 1 << 8 | 1 << 10,
                "EFER {v:#x}: LME and LMA"
            );
        }
        Err(f) => failure!("RDMSR EFER: {f}"),
    }
    let probe = 0x0000_7fff_1234_5000;
    let old = (o.cpu.read_msr)(IA32_KERNEL_GS_BASE).unwrap_or(0);
    check!(
        (o.cpu.write_msr)(IA32_KERNEL_GS_BASE, probe).is_ok(),
        "WRMSR KERNEL_GS_BASE"
    );
    check_eq!(
        (o.cpu.read_msr)(IA32_KERNEL_GS_BASE),
        Ok(probe),
        "KERNEL_GS_BASE read back"
    );
    let _ = (o.cpu.write_msr)(IA32_KERNEL_GS_BASE, old);
    // (A non-canonical KERNEL_GS_BASE, or an MSR that does not exist, is #GP(0)
    // on the CPU and on Keel, but QEMU's TCG takes the first and reads the second
    // as 0: no refusal is compared here.)

    let cr0 = (o.cpu.read_cr)(Cr::Cr0);
    check!(cr0 & 0x8001_0001 == 0x8001_0001, "CR0 {cr0:#x}: PG, WP, PE");
    let cr4 = (o.cpu.read_cr)(Cr::Cr4);
    check!(cr4 & (1 << 5) != 0, "CR4 {cr4:#x}: PAE");
    check!(
        (o.cpu.write_cr)(Cr::Cr4, cr4).is_ok(),
        "CR4 rewritten with its value"
    );
    // (Refused CR writes are #GP(0) on the CPU and on Keel, but QEMU's TCG
    // clears CR0.PG in long mode and spins on a reserved CR4 bit: compared only
    // on Keel, by cr_writes.)
}

/// Two frames from the top of memory (below the last, which is Keel's
/// shared_info page).
fn frame(i: u64) -> (Mfn, GuestVirt) {
    let pfn = Pfn::new(start_info().nr_pages - 2 - i);
    let mfn = pfn_to_mfn(pfn).unwrap_or(Mfn::new(0));
    (mfn, pfn_to_va(pfn))
}

fn mmu() {
    let o = ops();
    let (a_mfn, a) = frame(0);
    let (b_mfn, b) = frame(1);
    let (c_mfn, c) = frame(2);
    if fault::write_u64(a, 0xaaaa).is_err() || fault::write_u64(b, 0xbbbb).is_err() {
        error!("the top frames are not writable");
        return;
    }
    let slot = match pvops::l1_slot(a) {
        Ok(s) => s,
        Err(e) => return error!("no L1 entry for {:#x}: {e}", a.get()),
    };
    let orig =
        read_entry(Mfn::new(slot >> 12), ((slot & 0xfff) / 8) as usize).unwrap_or(Pte::EMPTY);
    check_eq!(
        orig.frame().get() << 12,
        a_mfn.get() << 12,
        "the entry maps the frame"
    );

    // Point A's page at B's frame, flush that page, read B's marker through A.
    let r = (o.mmu.set_pte)(slot, Pte::new(b_mfn, orig.flags()).raw());
    check!(r.is_ok(), "set_pte to another frame: {r:?}");
    check!((o.mmu.flush_one)(a).is_ok(), "flush_one");
    check_eq!(fault::read_u64(a), Ok(0xbbbb), "A's page after the remap");
    // Back, flushing everything.
    let r = (o.mmu.set_pte)(slot, orig.raw());
    check!(r.is_ok(), "set_pte back: {r:?}");
    check!((o.mmu.flush_all)().is_ok(), "flush_all");
    check_eq!(fault::read_u64(a), Ok(0xaaaa), "A's page after the restore");

    // A second root: a copy of the L4, announced, loaded, and left.
    let old = cr3_mfn();
    for i in 0..512 {
        let e = read_entry(old, i).unwrap_or(Pte::EMPTY);
        if fault::write_u64(GuestVirt::new(c.get() + i as u64 * 8), e.raw()).is_err() {
            return error!("filling the new L4");
        }
    }
    let r = (o.mmu.alloc_table)(4, c_mfn);
    if !check!(r.is_ok(), "alloc_table(4) of the copy: {r:?}") {
        return;
    }
    let r = (o.mmu.load_root)(c_mfn);
    check!(r.is_ok(), "load_root(copy): {r:?}");
    check_eq!(cr3_mfn(), c_mfn, "CR3 after load_root");
    check_eq!(fault::read_u64(a), Ok(0xaaaa), "A through the new root");
    let r = (o.mmu.load_root)(old);
    check!(r.is_ok(), "load_root(old): {r:?}");
    check_eq!(cr3_mfn(), old, "CR3 back");
    let r = (o.mmu.release_table)(c_mfn);
    check!(r.is_ok(), "release_table: {r:?}");
    // The released frame is ordinary writable memory again (everywhere).
    check!(
        fault::write_u64(c, 0).is_ok(),
        "the released table is writable"
    );
    let _ = PteFlags::PRESENT | PteFlags::WRITABLE;
}

static FIRED: AtomicU64 = AtomicU64::new(0);
static FIRED_AT: AtomicU64 = AtomicU64::new(0);

fn on_timer() {
    FIRED_AT.store((ops().time.clock_ns)(), SeqCst);
    FIRED.fetch_add(1, SeqCst);
}

fn time_and_irq() {
    let o = ops();
    let t0 = (o.time.clock_ns)();
    let mut x = 0u64;
    for i in 0..10_000u64 {
        x = x.wrapping_add(i);
    }
    core::hint::black_box(x);
    let t1 = (o.time.clock_ns)();
    check!(t1 > t0, "the clock advances: {t0} then {t1}");

    if let Err(e) = (o.irq.bind_timer)(on_timer) {
        return failure!("bind_timer: {e}");
    }
    let deadline = (o.time.clock_ns)() + 1_000_000;
    if let Err(e) = (o.time.set_timer)(deadline) {
        return failure!("set_timer: {e}");
    }
    // Wait with interrupts enabled; bounded (a lost timer ends as a failure,
    // not a hang).
    for _ in 0..1000 {
        if FIRED.load(SeqCst) != 0 {
            break;
        }
        (o.cpu.safe_halt)();
    }
    (o.cpu.irq_disable)();
    let n = FIRED.load(SeqCst);
    check!(n == 1, "the one-shot timer fired {n} times (want 1)");
    let at = FIRED_AT.load(SeqCst);
    check!(
        n == 0 || at >= deadline,
        "the timer fired at {at}, before its deadline {deadline}"
    );
    // Disarmed: no second interrupt.
    check!((o.time.set_timer)(0).is_ok(), "set_timer(0)");
}

fn console() {
    check!(
        (ops().console.write)(b"ops console: one line through the table\n").is_ok(),
        "console write"
    );
}

fn patched() {
    let p = pvops::patched();
    println!("{} call sites patched into direct calls", p.sites);
    check!(
        p.sites > 0 && p.skipped == 0,
        "call sites patched at boot: {} (skipped {})",
        p.sites,
        p.skipped
    );
    // The patched sites call the chosen implementations.
    let t0 = pvops::clock_ns();
    let t1 = (ops().time.clock_ns)();
    let t2 = pvops::clock_ns();
    check!(
        t0 <= t1 && t1 <= t2,
        "the patched clock agrees with the table's: {t0} {t1} {t2}"
    );
    pvops::irq_disable();
    pvops::irq_enable();
    pvops::irq_disable();
}
