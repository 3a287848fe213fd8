//! A secondary vCPU's start of day ([`crate::smp`]): its entry, its own GDT
//! and TSS, the shared IDT, and the GS base that says which vCPU runs.
//!
//! A vCPU brought up with `VCPUOP_initialise` starts as vCPU 0 did
//! (`docs/abi/vcpu.md`): 64-bit mode, CPL0, on the page tables and at the
//! RIP, RSP and GS base its context named, with GDTR and IDTR empty and
//! RFLAGS.IF set (Xen's rule). So [`keel_vcpu_entry`] clears IF before
//! anything else, and the first Rust code loads this vCPU's tables before it
//! touches anything that could fault, as `_start` does.
//!
//! Each vCPU needs a TSS of its own (LTR marks the descriptor busy, and each
//! CPU's IST stacks must be its own), so each has a copy of the boot GDT
//! whose TSS slot points at its TSS: the selectors are the same on every
//! vCPU. The IDT is the one vCPU 0 built; its IST slots resolve in each
//! CPU's own TSS.

use super::*;

/// The most vCPUs the library runs (vCPU 0 included): `crate::smp::MAX_VCPUS`.
const MAX: usize = crate::smp::MAX_VCPUS;

/// Each secondary vCPU's stack ([`vcpu_stack`]).
pub const VCPU_STACK_SIZE: usize = 32 * 1024;
/// Each secondary vCPU's `#DF` and NMI stacks.
const VCPU_IST_SIZE: usize = 4 * 1024;

/// `IA32_GS_BASE`.
const MSR_GS_BASE: u32 = 0xc000_0101;

/// One secondary vCPU's descriptor tables and exception stacks.
#[repr(C, align(16))]
struct VcpuTables {
    gdt: [u64; 7],
    tss: [u32; 26],
    df_stack: Stack<VCPU_IST_SIZE>,
    nmi_stack: Stack<VCPU_IST_SIZE>,
}

const NO_TABLES: VcpuTables = VcpuTables {
    gdt: [0; 7],
    tss: [0; 26],
    df_stack: Stack([0; VCPU_IST_SIZE]),
    nmi_stack: Stack([0; VCPU_IST_SIZE]),
};

/// Indexed by vCPU (entry 0 unused: vCPU 0 has the boot tables).
static mut VCPU_TABLES: [VcpuTables; MAX] = [NO_TABLES; MAX];
/// Indexed by vCPU (entry 0 unused: vCPU 0 runs on the boot stack).
static mut VCPU_STACKS: [Stack<VCPU_STACK_SIZE>; MAX] =
    [const { Stack([0; VCPU_STACK_SIZE]) }; MAX];

global_asm!(
    r#"
    .section .text.keel_vcpu_entry, "ax"
    .global keel_vcpu_entry
    .type keel_vcpu_entry, @function
keel_vcpu_entry:
    /* IF is set (Xen's rule) and there is no IDT yet: nothing may come in. */
    cli
    xorl %ebp, %ebp
    /* RDI, RSI, RDX are the context's: vCPU id, main, the GS base it named. */
    call {rust_entry}
    ud2
    .size keel_vcpu_entry, . - keel_vcpu_entry
    "#,
    rust_entry = sym vcpu_rust_entry,
    options(att_syntax)
);

extern "C" {
    fn keel_vcpu_entry();
}

/// The RIP a secondary vCPU's context names: the entry above, which takes
/// the vCPU's id, its `fn(u32)` and its GS base in RDI, RSI and RDX.
pub fn vcpu_entry_address() -> u64 {
    keel_vcpu_entry as *const () as u64
}

/// The `[base, top)` of secondary vCPU `id`'s stack (`id` in 1..MAX_VCPUS).
pub fn vcpu_stack(id: usize) -> (u64, u64) {
    assert!((1..MAX).contains(&id));
    let stacks = &raw const VCPU_STACKS;
    // SAFETY: only the address is taken; `id` is in range.
    let base = unsafe { &raw const (*stacks)[id] } as u64;
    (base, base + VCPU_STACK_SIZE as u64)
}

fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller reads an MSR Keel passes through (the GS base).
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Set this vCPU's GS base (`WRMSR IA32_GS_BASE`: passed through, no exit).
pub fn set_gs_base(v: u64) {
    // SAFETY: the GS base is this vCPU's own; nothing in the library reads
    // GS but `gs_u32`, whose callers set the base first.
    unsafe {
        asm!("wrmsr", in("ecx") MSR_GS_BASE, in("eax") v as u32, in("edx") (v >> 32) as u32,
            options(nomem, nostack))
    };
}

/// This vCPU's GS base.
pub fn gs_base() -> u64 {
    rdmsr(MSR_GS_BASE)
}

/// The `u32` at `gs:[0]`.
pub fn gs_u32() -> u32 {
    let v: u32;
    // SAFETY: callers (`smp::current`) read it only once every vCPU's GS base
    // points at its `smp` record, whose first word is the vCPU's id.
    unsafe { asm!("mov {:e}, dword ptr gs:[0]", out(reg) v, options(nostack, readonly)) };
    v
}

/// An entry with an id out of range: the id + 1 (0: none) and its GS base.
static STRAY_ENTRY: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// A vCPU that reached the entry with an id no context of the library names
/// (its RDI), and the GS base it found: the hypervisor did not load the
/// context's registers.
pub fn stray_vcpu_entry() -> Option<(u64, u64)> {
    match STRAY_ENTRY[0].load(Ordering::SeqCst) {
        0 => None,
        id => Some((id - 1, STRAY_ENTRY[1].load(Ordering::SeqCst))),
    }
}

/// Secondary vCPU `id`'s first Rust code: its tables, the IDT, its GS base,
/// then the library's `smp::vcpu_main`.
extern "C" fn vcpu_rust_entry(id: u64, main: u64, gs: u64) -> ! {
    let i = id as usize;
    if !(1..MAX).contains(&i) {
        // No table to load, so nothing to report with: leave a note for
        // vCPU 0 ([`stray_vcpu_entry`]) and stay here.
        STRAY_ENTRY[1].store(gs_base(), Ordering::SeqCst);
        STRAY_ENTRY[0].store(id.wrapping_add(1), Ordering::SeqCst);
        loop {
            hlt();
        }
    }
    // What the hypervisor loaded from the context, before the segment
    // reloads below set the base from the descriptor.
    let found = gs_base();
    load_vcpu_tables(i);
    reload_idt();
    set_gs_base(gs);
    crate::smp::vcpu_main(id as u32, main, found)
}

fn load_vcpu_tables(i: usize) {
    let tables = &raw mut VCPU_TABLES;
    let boot_gdt = &raw const GDT;
    // SAFETY: entry `i` is this vCPU's alone (vCPU 0 wrote nothing there),
    // and the boot GDT's code, data and user entries never change after
    // vCPU 0's start of day.
    unsafe {
        let t = &raw mut (*tables)[i];
        (*t).gdt = *boot_gdt;
        let tss = &raw mut (*t).tss;
        *tss = [0; 26];
        let df = &raw const (*t).df_stack as u64 + VCPU_IST_SIZE as u64;
        let nmi = &raw const (*t).nmi_stack as u64 + VCPU_IST_SIZE as u64;
        set_tss_u64(tss, 0x24, df);
        set_tss_u64(tss, 0x2c, nmi);
        // No RSP0: user mode is vCPU 0's only.
        (*tss)[25] = 104 << 16;
        [(*t).gdt[3], (*t).gdt[4]] = tss_descriptor(tss as u64);
        load_gdt_and_tr(&raw const (*t).gdt);
    }
}
