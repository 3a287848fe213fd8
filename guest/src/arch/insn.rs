//! Plain instructions: each a thin wrapper with no fault to expect.

use super::*;

/// `RDTSC`.
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC has no side effects (CR4.TSD is clear at CPL0 anyway).
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    ((hi as u64) << 32) | lo as u64
}

/// `LFENCE; RDTSC`.
pub fn rdtsc_ordered() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: as `rdtsc`.
    unsafe { asm!("lfence", "rdtsc", out("eax") lo, out("edx") hi, options(nostack)) };
    ((hi as u64) << 32) | lo as u64
}

/// `CPUID`.
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    let (eax, ebx, ecx, edx): (u32, u64, u32, u32);
    // SAFETY: CPUID has no side effects; RBX is reserved by LLVM, so it is saved in
    // a scratch register around the instruction.
    unsafe {
        asm!(
            "mov {tmp}, rbx",
            "cpuid",
            "xchg {tmp}, rbx",
            tmp = out(reg) ebx,
            inout("eax") leaf => eax,
            inout("ecx") subleaf => ecx,
            out("edx") edx,
            options(nostack, nomem),
        )
    };
    CpuidResult {
        eax,
        ebx: ebx as u32,
        ecx,
        edx,
    }
}

pub(super) fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 at CPL0 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack)) };
    v
}

/// Read CR0, CR3 or CR4.
pub fn read_cr(cr: Cr) -> u64 {
    let v: u64;
    // SAFETY: reading control registers at CPL0 has no side effects.
    unsafe {
        match cr {
            Cr::Cr0 => asm!("mov {}, cr0", out(reg) v, options(nomem, nostack)),
            Cr::Cr3 => asm!("mov {}, cr3", out(reg) v, options(nomem, nostack)),
            Cr::Cr4 => asm!("mov {}, cr4", out(reg) v, options(nomem, nostack)),
        }
    }
    v
}

/// `STI`.
pub fn sti() {
    // SAFETY: enables interrupts; the IDT handles every vector.
    unsafe { asm!("sti", options(nomem, nostack)) };
}

/// `CLI`.
pub fn cli() {
    // SAFETY: disables interrupts.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

/// `STI; HLT` (the interrupt shadow of STI covers HLT: an interrupt pending at
/// the STI wakes the HLT rather than being taken before it).
pub fn sti_hlt() {
    // SAFETY: as `sti`; HLT exits to the hypervisor.
    unsafe { asm!("sti", "hlt", options(nomem, nostack)) };
}

/// `STI; NOP; CLI`: take the interrupts that are pending (an upcall), then
/// disable them again. The `NOP` ends STI's interrupt shadow: `STI; CLI`
/// leaves no instruction boundary at which one can be taken.
pub fn take_interrupts() {
    // SAFETY: as `sti`, then `cli`.
    unsafe { asm!("sti", "nop", "cli", options(nomem, nostack)) };
}

/// `HLT` (with whatever RFLAGS.IF is).
pub fn hlt() {
    // SAFETY: HLT exits to the hypervisor.
    unsafe { asm!("hlt", options(nomem, nostack)) };
}

/// RFLAGS.
pub fn rflags() -> u64 {
    let v: u64;
    // SAFETY: reads RFLAGS through the stack.
    unsafe { asm!("pushfq", "pop {}", out(reg) v, options(nomem)) };
    v
}

/// The `u64` at guest address `va` in the shared_info page, as an atomic (the
/// hypervisor writes the page only while the guest is stopped).
pub fn shared_u64(va: u64) -> &'static core::sync::atomic::AtomicU64 {
    assert!(va.is_multiple_of(8) && va != 0);
    // SAFETY: callers pass addresses inside the shared_info page, which is mapped
    // writable for the guest's whole life and is never freed.
    unsafe { &*(va as *const core::sync::atomic::AtomicU64) }
}

/// The `u32` at `va` in the shared_info page (as [`shared_u64`]).
pub fn shared_u32(va: u64) -> &'static core::sync::atomic::AtomicU32 {
    assert!(va.is_multiple_of(4) && va != 0);
    // SAFETY: as `shared_u64`.
    unsafe { &*(va as *const core::sync::atomic::AtomicU32) }
}

/// The byte at `va` in the shared_info page (as [`shared_u64`]).
pub fn shared_u8(va: u64) -> &'static core::sync::atomic::AtomicU8 {
    assert!(va != 0);
    // SAFETY: as `shared_u64`.
    unsafe { &*(va as *const core::sync::atomic::AtomicU8) }
}

/// The `fn(u32)` whose address `a` is (an address stored from a `fn(u32)`).
pub fn fn_u32_from_addr(a: u64) -> fn(u32) {
    // SAFETY: callers only pass addresses they took from a `fn(u32)`.
    unsafe { core::mem::transmute::<usize, fn(u32)>(a as usize) }
}

/// The `fn(&mut [u64; 15], u64)` whose address `a` is (an address stored from
/// one: `events::set_interrupted_hook`).
pub fn fn_frame_from_addr(a: u64) -> fn(&mut [u64; 15], u64) {
    // SAFETY: callers only pass addresses they took from such a fn.
    unsafe { core::mem::transmute::<usize, fn(&mut [u64; 15], u64)>(a as usize) }
}

/// Spin forever (the runner's timeout ends the run).
pub fn halt_forever() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// Spin until the TSC reaches `until`, holding `rax` in RAX throughout but
/// for each `RDTSC` (every 256 `PAUSE`s): whatever ends the spin for an
/// exit (an interrupt) finds that value there, as a hypercall number would
/// be. No memory access, no hypercall.
pub fn spin_holding_rax(rax: u64, until: u64) {
    // SAFETY: RDTSC and PAUSE only; every register written is declared.
    unsafe {
        asm!(
            "2:",
            "rdtsc",
            "shl rdx, 32",
            "or rax, rdx",
            "cmp rax, {until}",
            "jae 4f",
            "mov rax, {rax}",
            "mov ecx, 256",
            "3:",
            "pause",
            "dec ecx",
            "jnz 3b",
            "jmp 2b",
            "4:",
            until = in(reg) until,
            rax = in(reg) rax,
            out("rax") _,
            out("rdx") _,
            out("rcx") _,
            options(nomem, nostack),
        )
    };
}
