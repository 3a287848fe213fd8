//! # Starting an application processor
//!
//! An application processor (AP) waits, after INIT, for a start-up IPI (SIPI),
//! whose vector is the page number of where it begins: in real mode, at
//! `vector << 12`, with CS = `vector << 8` and IP = 0. So:
//!
//! 1. the boot CPU copies the **trampoline** ([`install_trampoline`]) to a page
//!    below 1 MiB (`smp::choose_trampoline` picks it). In real mode it loads the
//!    boot GDT (`arch::boot`, which has a 32-bit code segment at 0x18 for this),
//!    sets CR0.PE and jumps far into 32-bit code inside the image;
//! 2. that code (`keel_ap_entry32`, in `.text.boot32`, identity-mapped and
//!    executable) loads the hypervisor's own page tables (the boot CPU's CR3,
//!    which must lie below 4 GiB), PAE, EFER.LME (and NXE as the boot CPU has
//!    it), then paging, and jumps to 64-bit code, which loads the AP's stack
//!    and calls its Rust entry with its CPU number ([`ApStart`]);
//! 3. [`start`] sends INIT, waits 10 ms (not on processors that do not need
//!    it: `smp::init_wait_us`), sends a SIPI, and a second one 200 µs later
//!    unless the AP has already reported (SDM vol. 3, 9.4.4.1, "Typical BSP
//!    initialization sequence").
//!
//! The parameters go through one static ([`KEEL_AP_PARAMS`]), so APs start one
//! at a time: the boot CPU waits for each to report before it starts the next.

use super::cpu::read_cr3;
use super::percpu::MAX_CPUS;
use super::timer::{apic_read, apic_write, pit_ticks_us, poll_for};
use core::arch::global_asm;
use core::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize, Ordering};

global_asm!(
    r#"
    /* The real-mode trampoline: position-independent, copied below 1 MiB. */
    .section .rodata.keel_ap_trampoline, "a"
    .code16
    .global keel_ap_trampoline
    .global keel_ap_trampoline_end
keel_ap_trampoline:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    lgdtl (keel_ap_gdt_ptr - keel_ap_trampoline)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x18, $keel_ap_entry32
    .balign 8
keel_ap_gdt_ptr:
    .short keel_boot_gdt_end - keel_boot_gdt - 1
    .long keel_boot_gdt
keel_ap_trampoline_end:

    /* 32-bit protected mode, paging off, inside the image. */
    .section .text.boot32, "ax"
    .code32
keel_ap_entry32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl KEEL_AP_PARAMS, %eax            /* cr3 */
    movl %eax, %cr3
    movl %cr4, %eax
    orl $(1 << 5), %eax                  /* PAE */
    movl %eax, %cr4
    movl $0xC0000080, %ecx
    rdmsr
    orl KEEL_AP_PARAMS + 4, %eax         /* EFER bits: LME, and NXE if the boot CPU has it */
    wrmsr
    movl %cr0, %eax
    orl $0x80010031, %eax                /* PG | WP | NE | ET | PE, as the boot CPU */
    movl %eax, %cr0
    ljmp $0x08, $keel_ap_entry64

    .code64
keel_ap_entry64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movq KEEL_AP_PARAMS + 8(%rip), %rsp  /* stack top */
    xorl %ebp, %ebp
    movq KEEL_AP_PARAMS + 24(%rip), %rdi /* argument: the CPU number */
    callq *KEEL_AP_PARAMS + 16(%rip)     /* the Rust entry; never returns */
1:
    cli
    hlt
    jmp 1b
    .text
"#,
    options(att_syntax)
);

unsafe extern "C" {
    static keel_ap_trampoline: u8;
    static keel_ap_trampoline_end: u8;
}

/// What the trampoline's 32- and 64-bit code read (field offsets are fixed in
/// the assembly above: 0, 4, 8, 16, 24).
#[repr(C)]
pub struct ApParams {
    cr3: AtomicU32,
    efer: AtomicU32,
    stack_top: AtomicU64,
    entry: AtomicU64,
    arg: AtomicU64,
}

/// The parameters of the AP being started.
#[no_mangle]
static KEEL_AP_PARAMS: ApParams = ApParams {
    cr3: AtomicU32::new(0),
    efer: AtomicU32::new(0),
    stack_top: AtomicU64::new(0),
    entry: AtomicU64::new(0),
    arg: AtomicU64::new(0),
};

/// How to start one AP.
#[derive(Clone, Copy, Debug)]
pub struct ApStart {
    /// Its local APIC ID (xAPIC: at most 255).
    pub apic_id: u32,
    /// The trampoline page (from [`install_trampoline`]).
    pub trampoline: u64,
    /// The top of its stack (16-byte aligned, mapped).
    pub stack_top: u64,
    /// Its Rust entry, called with `arg` on that stack.
    pub entry: extern "C" fn(u64) -> !,
    /// The argument (its CPU number).
    pub arg: u64,
    /// Microseconds between INIT and the first start-up IPI (`smp::init_wait_us`).
    pub init_wait_us: u64,
}

/// Why an AP could not be sent its start-up sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartError {
    /// The APIC ID needs x2APIC addressing, which Keel does not use.
    ApicIdTooLarge(u32),
    /// The hypervisor's page tables lie above 4 GiB (the trampoline loads CR3
    /// in 32-bit mode).
    Cr3AboveFourGiB(u64),
    /// The trampoline page is not a page below 1 MiB.
    BadTrampoline(u64),
    /// The local APIC kept an IPI pending ("send pending" never cleared).
    IpiStuck,
}

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartError::ApicIdTooLarge(id) => {
                write!(f, "APIC ID {id} needs x2APIC addressing (not used by Keel)")
            }
            StartError::Cr3AboveFourGiB(cr3) => {
                write!(
                    f,
                    "page tables at {cr3:#x}, above 4 GiB, out of the trampoline's reach"
                )
            }
            StartError::BadTrampoline(p) => {
                write!(f, "trampoline at {p:#x} is not a page below 1 MiB")
            }
            StartError::IpiStuck => write!(f, "the local APIC never delivered the IPI"),
        }
    }
}

/// Copy the trampoline to the page at machine address `page` (identity-mapped
/// and writable: conventional memory after `arch::mem::harden`). Returns its size.
pub fn install_trampoline(page: u64) -> Result<usize, StartError> {
    if !page.is_multiple_of(4096) || page == 0 || page >= 1 << 20 {
        return Err(StartError::BadTrampoline(page));
    }
    let start = &raw const keel_ap_trampoline;
    let len = &raw const keel_ap_trampoline_end as usize - start as usize;
    assert!(len <= 4096, "AP trampoline larger than a page");
    // SAFETY: `page` is a page of conventional memory below 1 MiB (checked
    // above; the caller chose usable RAM no one else holds), mapped writable by
    // the direct map; the source is the trampoline's bytes in this image.
    unsafe { core::ptr::copy_nonoverlapping(start, page as *mut u8, len) };
    Ok(len)
}

const APIC_ICR_LOW: u64 = 0x300;
const APIC_ICR_HIGH: u64 = 0x310;
const ICR_SEND_PENDING: u32 = 1 << 12;
const ICR_INIT: u32 = 0b101 << 8;
const ICR_STARTUP: u32 = 0b110 << 8;
const ICR_LEVEL_ASSERT: u32 = 1 << 14;
const ICR_TRIGGER_LEVEL: u32 = 1 << 15;

/// Send one IPI (low word `low`) to APIC ID `dest` and wait until the local
/// APIC has sent it.
fn send_ipi(dest: u32, low: u32) -> Result<(), StartError> {
    apic_write(APIC_ICR_HIGH, dest << 24);
    apic_write(APIC_ICR_LOW, low);
    if poll_for(pit_ticks_us(1000), || {
        apic_read(APIC_ICR_LOW) & ICR_SEND_PENDING == 0
    }) {
        Ok(())
    } else {
        Err(StartError::IpiStuck)
    }
}

/// Start the AP `ap` with INIT-SIPI-SIPI. `reported` answers whether the AP
/// has reached its Rust entry (then the second SIPI is not sent). Returns once
/// the sequence is sent; the caller waits for the AP's report.
pub fn start(ap: &ApStart, reported: impl Fn() -> bool) -> Result<(), StartError> {
    if ap.apic_id > 0xfe {
        return Err(StartError::ApicIdTooLarge(ap.apic_id));
    }
    if !ap.trampoline.is_multiple_of(4096) || ap.trampoline >= 1 << 20 {
        return Err(StartError::BadTrampoline(ap.trampoline));
    }
    let cr3 = read_cr3();
    let Ok(cr3_low) = u32::try_from(cr3) else {
        return Err(StartError::Cr3AboveFourGiB(cr3));
    };
    let efer = super::cpu::rdmsr(super::cpu::IA32_EFER) as u32;
    let p = &KEEL_AP_PARAMS;
    p.cr3.store(cr3_low, Ordering::Relaxed);
    p.efer
        .store(efer & ((1 << 8) | (1 << 11)), Ordering::Relaxed);
    p.stack_top.store(ap.stack_top, Ordering::Relaxed);
    p.entry.store(ap.entry as usize as u64, Ordering::Relaxed);
    p.arg.store(ap.arg, Ordering::Relaxed);
    // The AP reads the parameters with plain loads after it receives the SIPI,
    // which the ICR write below sends: order every store before it.
    fence(Ordering::SeqCst);

    let vector = (ap.trampoline >> 12) as u32;
    send_ipi(ap.apic_id, ICR_INIT | ICR_LEVEL_ASSERT | ICR_TRIGGER_LEVEL)?;
    // INIT de-assert: required by the oldest APICs, ignored by the rest.
    send_ipi(ap.apic_id, ICR_INIT | ICR_TRIGGER_LEVEL)?;
    if ap.init_wait_us > 0 {
        poll_for(pit_ticks_us(ap.init_wait_us), || false);
    }
    send_ipi(ap.apic_id, ICR_STARTUP | vector)?;
    if !poll_for(pit_ticks_us(200), &reported) {
        send_ipi(ap.apic_id, ICR_STARTUP | vector)?;
    }
    Ok(())
}

/// The executing CPU's local APIC ID (xAPIC ID register).
pub fn local_apic_id() -> u32 {
    apic_read(0x20) >> 24
}

/// Send INIT to APIC ID `apic_id`: an AP that did not answer in time goes back
/// to waiting for a start-up IPI, so it cannot wake later and run on the
/// parameters of the next AP.
pub fn stop(apic_id: u32) {
    if apic_id <= 0xfe {
        let _ = send_ipi(apic_id, ICR_INIT | ICR_LEVEL_ASSERT | ICR_TRIGGER_LEVEL);
        let _ = send_ipi(apic_id, ICR_INIT | ICR_TRIGGER_LEVEL);
    }
}

/// Fixed delivery (ICR bits 8-10 zero) of `vector`, level asserted.
const ICR_FIXED: u32 = ICR_LEVEL_ASSERT;

/// Work handed to a CPU that waits for it ([`wait_for_work`]): the address of
/// a function that never returns, and the address of its data (0: none).
struct Handoff {
    call: AtomicUsize,
    data: AtomicUsize,
}

static HANDOFF: [Handoff; MAX_CPUS] = [const {
    Handoff {
        call: AtomicUsize::new(0),
        data: AtomicUsize::new(0),
    }
}; MAX_CPUS];

/// Start `work` on CPU `cpu` (local APIC ID `apic_id`), which waits in
/// [`wait_for_work`], and return. `work` takes what it needs from statics;
/// the CPU halts, interrupts off, if it returns. Whether the wake-up IPI was
/// sent (if not, the work is taken back: it will not run).
pub fn start_on(cpu: usize, apic_id: u32, work: fn()) -> bool {
    let Some(h) = HANDOFF.get(cpu) else {
        return false;
    };
    h.data.store(work as usize, Ordering::Relaxed);
    // Release: every store before (the work's statics) is seen by the CPU
    // that takes `call` with Acquire.
    h.call
        .store(run_plain as fn(usize) -> ! as usize, Ordering::Release);
    if send_ipi(apic_id, ICR_FIXED | u32::from(super::timer::WAKE_VECTOR)).is_ok() {
        return true;
    }
    // Taken back unless the CPU found it anyway.
    h.call.swap(0, Ordering::Acquire) == 0
}

/// Run the `fn()` whose address is `data`, then stop this CPU.
fn run_plain(data: usize) -> ! {
    // SAFETY: `start_on` stored the address of a `fn()` in `data`.
    let work: fn() = unsafe { core::mem::transmute(data) };
    work();
    super::cpu::halt_forever()
}

/// Where an application processor waits for work: halted with interrupts
/// enabled only inside `sti; hlt`, so the wake-up IPI ([`start_on`]) or any
/// other interrupt ends the halt, and the work is looked for with interrupts
/// off. An IPI sent after the look is held pending by the local APIC and taken
/// in the HLT that follows STI (STI's shadow covers HLT): never lost.
pub fn wait_for_work(cpu: usize) -> ! {
    let Some(h) = HANDOFF.get(cpu) else {
        super::cpu::halt_forever()
    };
    loop {
        let call = h.call.swap(0, Ordering::Acquire);
        if call != 0 {
            // SAFETY: only `start_on` stores a non-zero `call`: the address
            // of `run_plain`, with `data` its argument.
            let run: fn(usize) -> ! = unsafe { core::mem::transmute(call) };
            run(h.data.load(Ordering::Relaxed))
        }
        // SAFETY: as `timer::idle_until`: the only handlers that can run are
        // the local APIC's (EOI, return).
        unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
    }
}

/// Send the wake-up IPI ([`super::timer::WAKE_VECTOR`]) to local APIC ID
/// `apic_id`: ends its HLT, or its guest's run (an external-interrupt exit).
pub fn send_wake(apic_id: u32) {
    let _ = send_ipi(apic_id, ICR_FIXED | u32::from(super::timer::WAKE_VECTOR));
}
