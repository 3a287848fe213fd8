//! Host time and timer hardware: TSC calibration against the PIT, the RTC wall
//! clock, the 8259 PIC (masked), and the local APIC timer that wakes the
//! hypervisor from HLT while its only guest is blocked.
//!
//! Keel runs with interrupts off everywhere except one place: [`idle_until`],
//! which programs the local APIC timer, executes `sti; hlt` and disables
//! interrupts again (and a CPU waiting for work, `arch::smp::wait_for_work`).
//! The only vectors that can arrive there are the timer's
//! ([`TIMER_VECTOR`]: its handler writes the EOI and returns), the wake-up
//! IPI's ([`WAKE_VECTOR`], the same handler) and the APIC's
//! spurious vector ([`SPURIOUS_VECTOR`]: returns, no EOI, as the SDM requires).
//! The 8259 PIC is masked at boot, so the PIT, which the BIOS leaves running,
//! raises nothing.

/// The TSC is this module's clock; the instruction itself is with the others in `cpu`.
pub use super::cpu::rdtsc;
use super::cpu::{rdmsr, wrmsr};
use super::percpu::{this, LAPIC_EOI};
use super::port::{inb, outb};
use core::arch::{asm, global_asm};
use core::sync::atomic::Ordering::Relaxed;

/// The host vector of the local APIC timer.
pub const TIMER_VECTOR: u8 = 0xf0;
/// The vector of the IPI that wakes a CPU waiting for work
/// (`arch::smp::wait_for_work`); its handler is the timer's (EOI, return).
pub const WAKE_VECTOR: u8 = 0xf1;
/// The local APIC's spurious-interrupt vector.
pub const SPURIOUS_VECTOR: u8 = 0xff;

const IA32_APIC_BASE: u32 = 0x1b;
const IA32_TSC_DEADLINE: u32 = 0x6e0;
const APIC_EOI: u64 = 0xb0;
const APIC_SVR: u64 = 0xf0;
const APIC_TPR: u64 = 0x80;
const APIC_LVT_TIMER: u64 = 0x320;
const APIC_LVT_LINT0: u64 = 0x350;
const APIC_LVT_LINT1: u64 = 0x360;
const APIC_TIMER_INIT: u64 = 0x380;
const APIC_TIMER_CUR: u64 = 0x390;
const APIC_TIMER_DIV: u64 = 0x3e0;
const LVT_MASKED: u32 = 1 << 16;
const LVT_TSC_DEADLINE: u32 = 0b10 << 17;

/// The PIT's input clock, Hz.
pub const PIT_HZ: u64 = 1_193_182;

/// The IDT gates of the timer and spurious vectors: installed once, in the
/// IDT every CPU shares, by the first CPU that initialises its APIC.
static GATES: spin::Once<()> = spin::Once::new();

global_asm!(
    ".section .text.keel_lapic, \"ax\"",
    ".global keel_lapic_timer_isr",
    "keel_lapic_timer_isr:",
    "push rax",
    // This CPU's EOI register: GS is the host's per-CPU block.
    "mov rax, gs:[{eoi}]",
    "mov dword ptr [rax], 0",
    "pop rax",
    "iretq",
    ".global keel_lapic_spurious_isr",
    "keel_lapic_spurious_isr:",
    "iretq",
    eoi = const LAPIC_EOI,
);

extern "C" {
    fn keel_lapic_timer_isr();
    fn keel_lapic_spurious_isr();
}

pub(super) fn apic_read(off: u64) -> u32 {
    let p = (this().lapic_base.load(Relaxed) + off) as *const u32;
    // SAFETY: `init` set the base to the APIC's identity-mapped MMIO page; `off`
    // is one of its registers.
    unsafe { p.read_volatile() }
}

pub(super) fn apic_write(off: u64, v: u32) {
    let p = (this().lapic_base.load(Relaxed) + off) as *mut u32;
    // SAFETY: as for `apic_read`.
    unsafe { p.write_volatile(v) }
}

/// Point IDT gate `vector` at `handler` (an interrupt gate, DPL 0, no IST), in
/// the IDT `arch::idt` loaded.
fn set_gate(vector: u8, handler: u64) {
    let gate = (super::idt::idt_base() + 16 * u64::from(vector)) as *mut u64;
    let lo = (handler & 0xffff)
        | (u64::from(super::gdt::KERNEL_CS) << 16)
        | (0x8e << 40)
        | ((handler >> 16) & 0xffff) << 48;
    // SAFETY: the IDT is a writable static of 256 16-byte gates; `GATES` makes
    // this happen once, on the boot CPU with interrupts off, before any other
    // CPU could take this vector.
    unsafe {
        gate.write_volatile(lo);
        gate.add(1).write_volatile(handler >> 32);
    }
}

/// Mask both 8259 PICs (the BIOS leaves the PIT's IRQ 0 unmasked, and it would
/// arrive as vector 8, which is #DF in protected mode).
pub fn mask_pic() {
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
}

/// Measure the TSC rate against PIT channel 2 over `pit_ticks` PIT ticks (mode 0,
/// gate via port 0x61; polled, no interrupt). Returns (TSC ticks, PIT ticks).
pub fn calibrate_tsc(pit_ticks: u16) -> (u64, u64) {
    let p61 = inb(0x61);
    outb(0x61, (p61 & !0x02) | 0x01);
    outb(0x43, 0xb0); // channel 2, lobyte/hibyte, mode 0, binary
    outb(0x42, pit_ticks as u8);
    outb(0x42, (pit_ticks >> 8) as u8);
    let t0 = rdtsc();
    let mut spins = 0u64;
    while inb(0x61) & 0x20 == 0 && spins < 100_000_000 {
        spins += 1;
    }
    let t1 = rdtsc();
    outb(0x61, p61);
    (t1.wrapping_sub(t0), u64::from(pit_ticks))
}

/// Poll `done` until it answers true or `pit_ticks` ticks of the PIT (channel
/// 2, one-shot, polled; at most 65,535 ticks, 55 ms) have passed. Returns
/// whether `done` answered true. With a `done` that never does, a delay.
pub fn poll_for(pit_ticks: u16, mut done: impl FnMut() -> bool) -> bool {
    let p61 = inb(0x61);
    outb(0x61, (p61 & !0x02) | 0x01);
    outb(0x43, 0xb0); // channel 2, lobyte/hibyte, mode 0, binary
    outb(0x42, pit_ticks as u8);
    outb(0x42, (pit_ticks >> 8) as u8);
    let mut ok = false;
    // The guard bounds the loop if the PIT never counts (broken emulation).
    let mut guard = 0u64;
    while inb(0x61) & 0x20 == 0 && guard < 100_000_000 {
        if done() {
            ok = true;
            break;
        }
        guard += 1;
    }
    outb(0x61, p61);
    ok || done()
}

/// PIT ticks in `us` microseconds (at least one, at most 65,535).
pub fn pit_ticks_us(us: u64) -> u16 {
    (us * PIT_HZ / 1_000_000).clamp(1, 0xffff) as u16
}

fn cmos(reg: u8) -> u8 {
    outb(0x70, reg);
    inb(0x71)
}

/// Read the RTC (waiting out an update in progress).
pub fn read_rtc() -> crate::time::RtcTime {
    use crate::time::rtc_decode as d;
    let mut guard = 0;
    while cmos(0x0a) & 0x80 != 0 && guard < 1_000_000 {
        guard += 1;
    }
    let b = cmos(0x0b);
    let bin = b & 0x04 != 0;
    let h24 = b & 0x02 != 0;
    let hour_raw = cmos(0x04);
    let mut hour = d(hour_raw & 0x7f, bin);
    if !h24 && hour_raw & 0x80 != 0 {
        hour = (hour % 12) + 12;
    } else if !h24 && hour == 12 {
        hour = 0;
    }
    let year = d(cmos(0x09), bin);
    let century = d(cmos(0x32), bin);
    let century = if (19..=30).contains(&century) {
        century
    } else {
        20
    };
    crate::time::RtcTime {
        year: century * 100 + year,
        month: d(cmos(0x08), bin),
        day: d(cmos(0x07), bin),
        hour,
        min: d(cmos(0x02), bin),
        sec: d(cmos(0x00), bin),
    }
}

/// The executing CPU's local APIC base (IA32_APIC_BASE), before or after
/// [`init_lapic`].
pub fn lapic_base() -> u64 {
    rdmsr(IA32_APIC_BASE) & 0x000f_ffff_ffff_f000
}

/// Enable the executing CPU's local APIC with its timer masked (the timer and
/// spurious handlers are installed in the shared IDT the first time), and
/// choose TSC-deadline mode when the CPU has it (CPUID.1:ECX[24]); otherwise
/// calibrate the one-shot count against the TSC (2^20 ticks, the first time on
/// each CPU). Everything it learns goes
/// into this CPU's `ArchCpu` (GS must point at it). Returns whether
/// TSC-deadline mode is used.
pub fn init_lapic() -> bool {
    let cpu = this();
    let base_msr = rdmsr(IA32_APIC_BASE);
    // SAFETY: sets the global-enable bit of the APIC at its current base.
    unsafe { wrmsr(IA32_APIC_BASE, base_msr | (1 << 11)) };
    let base = base_msr & 0x000f_ffff_ffff_f000;
    cpu.lapic_base.store(base, Relaxed);
    cpu.lapic_eoi.store(base + APIC_EOI, Relaxed);
    GATES.call_once(|| {
        set_gate(TIMER_VECTOR, keel_lapic_timer_isr as *const () as u64);
        set_gate(WAKE_VECTOR, keel_lapic_timer_isr as *const () as u64);
        set_gate(SPURIOUS_VECTOR, keel_lapic_spurious_isr as *const () as u64);
    });
    apic_write(APIC_TPR, 0);
    apic_write(APIC_SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    apic_write(APIC_LVT_LINT0, LVT_MASKED);
    apic_write(APIC_LVT_LINT1, LVT_MASKED);
    apic_write(APIC_TIMER_DIV, 0xb); // divide by 1
    let ecx = super::cpu::cpuid(1, 0).ecx;
    let deadline = ecx & (1 << 24) != 0;
    cpu.tsc_deadline.store(deadline, Relaxed);
    if deadline {
        apic_write(
            APIC_LVT_TIMER,
            LVT_MASKED | LVT_TSC_DEADLINE | u32::from(TIMER_VECTOR),
        );
    } else if cpu.apic_per_tsc_2_20.load(Relaxed) == 0 {
        // Calibrated once per CPU (bring-up may have done it before the
        // domain's run asks again).
        apic_write(APIC_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
        apic_write(APIC_TIMER_INIT, u32::MAX);
        let t0 = rdtsc();
        while rdtsc().wrapping_sub(t0) < 1 << 20 {}
        let used = u64::from(u32::MAX - apic_read(APIC_TIMER_CUR));
        apic_write(APIC_TIMER_INIT, 0);
        cpu.apic_per_tsc_2_20.store(used.max(1), Relaxed);
    }
    deadline
}

/// Acknowledge the timer interrupt (after a VM exit acknowledged it).
pub fn eoi() {
    apic_write(APIC_EOI, 0);
}

/// Arm the APIC timer for TSC `deadline` (replacing any earlier setting). With
/// interrupts off in the host, it ends a guest's run as an external-interrupt
/// exit: the fallback for CPUs without the VMX-preemption timer.
pub fn arm(deadline: u64) {
    let now = rdtsc();
    let at = deadline.max(now + 1);
    this().apic_armed.store(at, Relaxed);
    program(at, now);
}

/// The APIC timer's interrupt ended a guest's run ([`arm`]): record how late
/// it came (`crate::overdue`).
pub fn armed_timer_arrived() {
    let due = this().apic_armed.swap(0, Relaxed);
    if due != 0 {
        note_arrival(due, rdtsc());
    }
}

/// A timer of Keel's due at TSC `due` arrived at TSC `arrived` (the
/// VMX-preemption timer's exit): record how late (`crate::overdue`).
#[inline(always)]
pub fn note_arrival(due: u64, arrived: u64) {
    if crate::overdue::worth_recording(due, arrived) {
        record_overdue(due, arrived);
    }
}

/// The record itself, out of the timer paths: taken only for a timer the
/// platform held back.
#[cold]
#[inline(never)]
fn record_overdue(due: u64, arrived: u64) {
    this().overdue.record(due, arrived);
}

/// TSC ticks of `[from, to)` during which one of this CPU's timers was
/// overdue (`crate::overdue::OverdueLog::within`).
pub fn overdue_within(from: u64, to: u64) -> u64 {
    this().overdue.within(from, to)
}

/// Disarm (and mask) the APIC timer.
pub fn disarm() {
    this().apic_armed.store(0, Relaxed);
    if this().tsc_deadline.load(Relaxed) {
        // SAFETY: 0 disarms the TSC deadline.
        unsafe { wrmsr(IA32_TSC_DEADLINE, 0) };
        apic_write(
            APIC_LVT_TIMER,
            LVT_MASKED | LVT_TSC_DEADLINE | u32::from(TIMER_VECTOR),
        );
    } else {
        apic_write(APIC_TIMER_INIT, 0);
        apic_write(APIC_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    }
}

/// Idle in HLT until the APIC timer reaches TSC `deadline` (or any other
/// interrupt arrives). Returns with interrupts off and the timer disarmed.
/// A wake-up after the deadline is recorded as overdue (`crate::overdue`):
/// the CPU was the machine's to run, not Keel's.
pub fn idle_until(deadline: u64) {
    let now = rdtsc();
    if deadline <= now {
        return;
    }
    program(deadline, now);
    // SAFETY: STI takes effect after the next instruction, so no interrupt can
    // slip in between STI and HLT and be missed; the handlers installed in
    // `init_lapic` are the only ones that can run (the PIC is masked).
    unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
    if deadline != u64::MAX {
        note_arrival(deadline, rdtsc());
    }
    disarm();
}

/// Program the APIC timer (unmasked) for TSC `deadline`, `now` being the TSC.
fn program(deadline: u64, now: u64) {
    if this().tsc_deadline.load(Relaxed) {
        apic_write(APIC_LVT_TIMER, LVT_TSC_DEADLINE | u32::from(TIMER_VECTOR));
        // SAFETY: arms the APIC timer; its interrupt has a handler.
        unsafe { wrmsr(IA32_TSC_DEADLINE, deadline) };
    } else {
        apic_write(APIC_LVT_TIMER, u32::from(TIMER_VECTOR));
        let ticks = (((deadline.saturating_sub(now)) as u128
            * u128::from(this().apic_per_tsc_2_20.load(Relaxed)))
            >> 20)
            .clamp(1, u128::from(u32::MAX)) as u32;
        apic_write(APIC_TIMER_INIT, ticks);
    }
}
