//! Bare hardware: what the library does when no hypervisor is there.
//!
//! In the paravirt_ops model bare hardware is "a hypervisor too": the same guest
//! image boots on it (QEMU `-kernel` loads the multiboot1 header at the top of
//! `.text`), and this module gives it what Keel's domain builder would have:
//!
//! - a **start_info view** ([`start_of_day`]): the "domain" is the `nr_pages`
//!   frames from the image's first byte; guest frame = machine frame, so the frame
//!   list is the identity (offset by the image's first frame) and every address of
//!   the domain is mapped at itself (virtual = physical), which is exactly Keel's
//!   rule `virt_base + pfn * 4096`;
//! - **its own page tables** (L4, L3, L2s and L1s in `.bss`, 4 KiB pages, writable:
//!   on bare hardware a kernel writes its tables as it likes), plus the local APIC
//!   page mapped uncached;
//! - the **devices** the native operations use: COM1 (polled 16550), the local APIC
//!   timer in one-shot mode, calibrated with the TSC against PIT channel 2 once,
//!   and the power-off the test runner reads (`keel: power off, status N (...)` on
//!   COM1, then isa-debug-exit at port 0xf4: here the library is the platform).
//!
//! Everything here but the register accesses (in [`crate::arch`]) is plain Rust;
//! the table layout ([`plan_tables`]) is a pure function with host tests.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering::SeqCst};

use crate::abi::platform::ExitStatus;
use crate::abi::start_info::{StartInfo, MAX_GUEST_CMDLINE};
use crate::abi::{GuestVirt, MachineAddr, PAGE_SIZE};
use crate::arch;
use crate::port;

/// Page-table frames of the native address space: L4, L3, the L2 of the first
/// GiB, 8 L1s (16 MiB of domain), the L2 and L1 of the local APIC's page.
pub const PT_FRAMES: usize = 13;
/// L1 tables available for the domain region.
const DOMAIN_L1S: usize = 8;
/// Where the local APIC is (physical = virtual).
pub const LAPIC_VA: u64 = 0xfee0_0000;
/// The vector of the native timer interrupt.
pub const TIMER_VECTOR: u8 = 0xf0;
/// The local APIC's spurious-interrupt vector.
pub const SPURIOUS_VECTOR: u8 = 0xff;

const P: u64 = 1;
const RW: u64 = 2;
const PWT: u64 = 1 << 3;
const PCD: u64 = 1 << 4;

/// What the start of day reads from the multiboot information.
#[derive(Clone, Copy)]
pub struct Multiboot {
    /// `mem_upper` (KiB above 1 MiB), 0 if the loader gave none.
    pub mem_upper_kib: u32,
    /// The command line (NUL-terminated; QEMU gives `kernel-file args`).
    pub cmdline: [u8; MAX_GUEST_CMDLINE],
}

/// Where things are.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// The image's first byte (its link address: physical = virtual).
    pub image_start: u64,
    /// The first byte after `.bss`.
    pub image_end: u64,
    /// The [`PT_FRAMES`] table frames.
    pub tables_va: u64,
    /// The frame list.
    pub mfn_list_va: u64,
    /// The start_info page.
    pub start_info_va: u64,
}

/// The result of the native start of day.
pub struct Setup {
    /// The start_info view.
    pub info: StartInfo,
    /// The root to load.
    pub cr3: u64,
}

/// How many frames the domain gets: as many as memory holds from the image on,
/// at most `max` and at most what the 8 L1 tables of the native layout map.
pub fn domain_pages(image_start: u64, mem_upper_kib: u32, max: usize) -> u64 {
    let top = (1 << 20) + u64::from(mem_upper_kib) * 1024;
    let avail = top.saturating_sub(image_start) / PAGE_SIZE;
    avail.min(max as u64).min((DOMAIN_L1S * 512) as u64)
}

/// Fill `tables` (frames at `tables_va`, identity-mapped) so that they map
/// `[image_start, image_start + pages * 4096)` at itself with 4 KiB writable
/// pages, and the local APIC page uncached. Returns the root (frame 0's address).
pub fn plan_tables(
    tables: &mut [[u64; 512]; PT_FRAMES],
    tables_va: u64,
    image_start: u64,
    pages: u64,
) -> u64 {
    for t in tables.iter_mut() {
        t.fill(0);
    }
    let pa = |i: usize| tables_va + i as u64 * PAGE_SIZE;
    let idx = |va: u64, level: u32| ((va >> (12 + 9 * (level - 1))) & 511) as usize;
    // 0: L4, 1: L3, 2: L2 of the first GiB, 3..11: L1s, 11: L2 of the APIC's GiB, 12: its L1.
    tables[0][0] = pa(1) | P | RW;
    tables[1][0] = pa(2) | P | RW;
    let end = image_start + pages * PAGE_SIZE;
    let mut l1 = 3;
    let mut va = image_start;
    while va < end {
        let l2i = idx(va, 2);
        if tables[2][l2i] == 0 {
            assert!(
                l1 < 3 + DOMAIN_L1S,
                "native: the domain needs more L1 tables"
            );
            tables[2][l2i] = pa(l1) | P | RW;
            l1 += 1;
        }
        let t = ((tables[2][l2i] & !0xfff) - tables_va) / PAGE_SIZE;
        tables[t as usize][idx(va, 1)] = va | P | RW;
        va += PAGE_SIZE;
    }
    tables[1][idx(LAPIC_VA, 3)] = pa(11) | P | RW;
    tables[11][idx(LAPIC_VA, 2)] = pa(12) | P | RW;
    tables[12][idx(LAPIC_VA, 1)] = LAPIC_VA | P | RW | PCD | PWT;
    pa(0)
}

/// Build the native view of a domain: frame list, page tables, start_info.
pub fn start_of_day(
    mb: &Multiboot,
    l: Layout,
    tables: &mut [[u64; 512]; PT_FRAMES],
    mfn_list: &mut [u64],
) -> Setup {
    let pages = domain_pages(l.image_start, mb.mem_upper_kib, mfn_list.len());
    let first = l.image_start / PAGE_SIZE;
    for (pfn, m) in mfn_list.iter_mut().enumerate().take(pages as usize) {
        *m = first + pfn as u64;
    }
    let cr3 = plan_tables(tables, l.tables_va, l.image_start, pages);
    let mut info = StartInfo::new();
    info.nr_pages = pages;
    info.shared_info = MachineAddr::new(0);
    info.pt_base = GuestVirt::new(l.tables_va);
    info.nr_pt_frames = PT_FRAMES as u64;
    info.mfn_list = GuestVirt::new(l.mfn_list_va);
    info.cmd_line = mb.cmdline;
    Setup { info, cr3 }
}

/// Mask every line of both 8259 PICs: the firmware leaves the PIT's IRQ 0 on
/// vector 8, which would look like a `#DF` once interrupts are enabled. The
/// native platform's only interrupt source is the local APIC timer.
pub fn mask_legacy_pic() {
    port::outb(0x21, 0xff);
    port::outb(0xa1, 0xff);
}

// ---------------------------------------------------------------------------
// COM1, polled.
// ---------------------------------------------------------------------------

/// Polls of the line status per byte: a UART that never empties must not hang
/// the test forever.
const UART_POLLS: u32 = 100_000;

/// Write bytes to COM1, waiting for the transmitter before each one.
pub fn uart_write(bytes: &[u8]) {
    for &b in bytes {
        if b == b'\n' {
            port::com1_byte(b'\r', UART_POLLS);
        }
        port::com1_byte(b, UART_POLLS);
    }
}

// ---------------------------------------------------------------------------
// Power-off.
// ---------------------------------------------------------------------------

/// End the run: the power-off line the runner reads, then isa-debug-exit (QEMU
/// exits with `(status << 1) | 1`), then halt.
pub fn power_off(status: ExitStatus) -> ! {
    let mut line = crate::console::LineBuf::new();
    let mut w = LineWriter(&mut line);
    let _ = core::fmt::write(
        &mut w,
        format_args!(
            "keel: power off, status {} ({})\n",
            status as u8,
            status.describe()
        ),
    );
    port::outl(0xf4, u32::from(status as u8));
    arch::cli();
    loop {
        arch::hlt();
    }
}

struct LineWriter<'a>(&'a mut crate::console::LineBuf);

impl core::fmt::Write for LineWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.push(s.as_bytes(), &mut |l| uart_write(l));
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The local APIC timer and the TSC clock.
// ---------------------------------------------------------------------------

const APIC_EOI: u64 = 0xb0;
const APIC_SVR: u64 = 0xf0;
const APIC_LVT_TIMER: u64 = 0x320;
const APIC_TIMER_INIT: u64 = 0x380;
const APIC_TIMER_CUR: u64 = 0x390;
const APIC_TIMER_DIV: u64 = 0x3e0;
const LVT_MASKED: u32 = 1 << 16;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static TSC_ZERO: AtomicU64 = AtomicU64::new(0);
static APIC_HZ: AtomicU64 = AtomicU64::new(0);
static TIMER_HANDLER: AtomicU64 = AtomicU64::new(0);
static TIMER_BOUND: AtomicU8 = AtomicU8::new(0);

/// PIT input clock (Hz).
const PIT_HZ: u64 = 1_193_182;
/// The calibration window: 10 ms of PIT ticks.
const PIT_TICKS: u64 = 11_932;

fn apic_read(off: u64) -> u32 {
    arch::mmio_read32(LAPIC_VA + off)
}
fn apic_write(off: u64, v: u32) {
    arch::mmio_write32(LAPIC_VA + off, v)
}

/// Calibrate the TSC and the local APIC timer against PIT channel 2 (once), and
/// enable the APIC. The clock's zero is the end of the calibration.
pub fn calibrate() {
    if TSC_HZ.load(SeqCst) != 0 {
        return;
    }
    apic_write(APIC_SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    apic_write(APIC_TIMER_DIV, 0xb); // divide by 1
    apic_write(APIC_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    // Channel 2 gate on, speaker off; mode 0, lobyte/hibyte.
    port::outb(0x61, (port::inb(0x61) & !0x02) | 0x01);
    port::outb(0x43, 0xb0);
    apic_write(APIC_TIMER_INIT, u32::MAX);
    let t0 = arch::rdtsc_ordered();
    let a0 = apic_read(APIC_TIMER_CUR);
    port::outb(0x42, (PIT_TICKS & 0xff) as u8);
    port::outb(0x42, (PIT_TICKS >> 8) as u8);
    let mut spins = 0u64;
    while port::inb(0x61) & 0x20 == 0 && spins < 100_000_000 {
        spins += 1;
    }
    let t1 = arch::rdtsc_ordered();
    let a1 = apic_read(APIC_TIMER_CUR);
    apic_write(APIC_TIMER_INIT, 0);
    let tsc = t1.wrapping_sub(t0).max(1);
    let apic = u64::from(a0.wrapping_sub(a1)).max(1);
    TSC_HZ.store(tsc * PIT_HZ / PIT_TICKS, SeqCst);
    APIC_HZ.store(apic * PIT_HZ / PIT_TICKS, SeqCst);
    TSC_ZERO.store(t1, SeqCst);
}

/// Nanoseconds from `ticks` at `hz`.
pub const fn ticks_to_ns(ticks: u64, hz: u64) -> u64 {
    ((ticks as u128 * 1_000_000_000) / hz as u128) as u64
}

/// Ticks at `hz` in `ns` nanoseconds.
pub const fn ns_to_ticks(ns: u64, hz: u64) -> u64 {
    ((ns as u128 * hz as u128) / 1_000_000_000) as u64
}

/// The native clock: nanoseconds since calibration, from the TSC.
pub fn clock_ns() -> u64 {
    calibrate();
    let hz = TSC_HZ.load(SeqCst);
    ticks_to_ns(arch::rdtsc().saturating_sub(TSC_ZERO.load(SeqCst)), hz)
}

/// Arm the one-shot APIC timer for `deadline_ns` on [`clock_ns`] (0 stops it; a
/// past deadline fires at once).
pub fn set_timer(deadline_ns: u64) {
    calibrate();
    if deadline_ns == 0 {
        apic_write(APIC_TIMER_INIT, 0);
        return;
    }
    let delta = deadline_ns.saturating_sub(clock_ns());
    let ticks = ns_to_ticks(delta, APIC_HZ.load(SeqCst)).clamp(1, u64::from(u32::MAX));
    apic_write(APIC_LVT_TIMER, u32::from(TIMER_VECTOR));
    apic_write(APIC_TIMER_INIT, ticks as u32);
}

/// Route the timer interrupt to `handler`.
pub fn bind_timer(handler: fn()) {
    calibrate();
    TIMER_HANDLER.store(handler as usize as u64, SeqCst);
    TIMER_BOUND.store(1, SeqCst);
}

/// Called by the IDT stub for every vector >= 32 that is not the PV upcall:
/// the native timer (and the APIC's spurious vector). False: not ours.
pub fn irq_entry(vector: u8) -> bool {
    if vector == SPURIOUS_VECTOR && TSC_HZ.load(SeqCst) != 0 {
        return true;
    }
    if vector != TIMER_VECTOR || TIMER_BOUND.load(SeqCst) == 0 {
        return false;
    }
    apic_write(APIC_EOI, 0);
    let h = TIMER_HANDLER.load(SeqCst);
    if h != 0 {
        arch::fn_from_addr(h)();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::boxed::Box;

    #[test]
    fn tables_map_the_domain_at_itself_and_the_apic_uncached() {
        let mut t = Box::new([[0u64; 512]; PT_FRAMES]);
        let base = 0x0050_0000; // the tables' own frames
        let root = plan_tables(&mut t, base, 0x40_0000, 4096);
        assert_eq!(root, base);
        // Walk.
        let walk = |t: &[[u64; 512]; PT_FRAMES], va: u64| -> Option<u64> {
            let mut table = 0usize;
            for level in (1..=4u32).rev() {
                let e = t[table][((va >> (12 + 9 * (level - 1))) & 511) as usize];
                if e & P == 0 {
                    return None;
                }
                if level == 1 {
                    return Some(e);
                }
                table = (((e & !0xfff) - base) / PAGE_SIZE) as usize;
            }
            None
        };
        for va in [0x40_0000u64, 0x40_1000, 0x60_0000, 0x13f_f000] {
            assert_eq!(walk(&t, va), Some(va | P | RW), "{va:#x}");
        }
        assert_eq!(walk(&t, 0x3f_f000), None);
        assert_eq!(walk(&t, 0x140_0000), None);
        assert_eq!(walk(&t, 0), None);
        assert_eq!(walk(&t, LAPIC_VA), Some(LAPIC_VA | P | RW | PCD | PWT));
    }

    #[test]
    fn domain_size_and_time_conversions() {
        assert_eq!(domain_pages(0x40_0000, 127 * 1024, 4096), 4096);
        assert_eq!(domain_pages(0x40_0000, 7 * 1024, 4096), 1024);
        assert_eq!(domain_pages(0x40_0000, 0, 4096), 0);
        assert_eq!(ticks_to_ns(3_000_000_000, 3_000_000_000), 1_000_000_000);
        assert_eq!(ns_to_ticks(1_000, 1_000_000_000), 1_000);
    }
}
