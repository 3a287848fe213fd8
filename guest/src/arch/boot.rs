//! Start of day: the stacks, the entry `_start`, the GDT and the TSS.

use super::*;

/// Size of the main stack.
pub(super) const STACK_SIZE: usize = 64 * 1024;
/// Size of each IST stack (`#DF`, NMI).
pub(super) const IST_STACK_SIZE: usize = 8 * 1024;

#[repr(C, align(16))]
pub(super) struct Stack<const N: usize>(pub(super) [u8; N]);

pub(super) static mut MAIN_STACK: Stack<STACK_SIZE> = Stack([0; STACK_SIZE]);
pub(super) static mut DF_STACK: Stack<IST_STACK_SIZE> = Stack([0; IST_STACK_SIZE]);
pub(super) static mut NMI_STACK: Stack<IST_STACK_SIZE> = Stack([0; IST_STACK_SIZE]);

global_asm!(
    r#"
    .section .text.entry, "ax"
    .global _start
    .type _start, @function
_start:
    /* RSI = start_info: keep it in a callee-saved register across the clear. */
    movq %rsi, %r12
    leaq __bss_start(%rip), %rdi
    leaq __bss_end(%rip), %rcx
    subq %rdi, %rcx
    xorl %eax, %eax
    cld
    rep stosb
    leaq {stack}+{stack_size}(%rip), %rsp
    xorl %ebp, %ebp
    movq %r12, %rdi
    call {rust_start}
    ud2
    .size _start, . - _start
    "#,
    stack = sym MAIN_STACK,
    stack_size = const STACK_SIZE,
    rust_start = sym rust_start,
    options(att_syntax)
);

extern "C" {
    pub(super) static __image_start: u8;
    pub(super) static __image_end: u8;
    pub(super) static __ex_table_start: ExEntry;
    pub(super) static __ex_table_end: ExEntry;
}

extern "Rust" {
    /// The test's entry, emitted by `keel_guest::test!` in the program.
    pub(super) fn __keel_guest_main() -> !;
}

/// Rust side of the entry: tables first, then start_info, then the test.
pub(super) extern "C" fn rust_start(start_info_va: u64) -> ! {
    load_gdt_and_tss();
    load_idt();

    // SAFETY: the hypervisor guarantees RSI points at a mapped start_info page; if
    // it does not, the read faults and our IDT (now live) reports the crash.
    let raw = unsafe { &*(start_info_va as *const [u8; START_INFO_SIZE]) };
    let info = crate::abi::start_info::StartInfo::decode(raw);
    crate::start::init(crate::start::Boot {
        info,
        va: GuestVirt::new(start_info_va),
        virt_base: GuestVirt::new(&raw const __image_start as u64),
        image_end: GuestVirt::new(&raw const __image_end as u64),
    });
    crate::pvops::init(crate::pvops::Entry::Keel);

    // SAFETY: every test program defines `__keel_guest_main` through `test!`.
    unsafe { __keel_guest_main() }
}

/// Selectors: the same values the hypervisor's initial state uses (contract).
pub(super) const SEL_CODE: u16 = 0x08;
pub(super) const SEL_DATA: u16 = 0x10;
pub(super) const SEL_TSS: u16 = 0x18;

/// 64-bit code, DPL0, present, readable (accessed bit preset: no write-back to a
/// read-only GDT page is ever needed).
pub(super) const GDT_CODE64: u64 = 0x00af_9b00_0000_ffff;
/// Data, DPL0, present, writable, accessed.
pub(super) const GDT_DATA: u64 = 0x00cf_9300_0000_ffff;

/// User-mode data and 64-bit code (DPL3), for [`run_user`].
pub(super) const GDT_USER_DATA: u64 = 0x00cf_f300_0000_ffff;
pub(super) const GDT_USER_CODE64: u64 = 0x00af_fb00_0000_ffff;
/// Their selectors (index 5 and 6, RPL3).
pub(super) const SEL_USER_DATA: u64 = 0x2b;
pub(super) const SEL_USER_CODE: u64 = 0x33;

/// GDT: null, code, data, TSS (two slots), user data, user code.
pub(super) static mut GDT: [u64; 7] = [
    0,
    GDT_CODE64,
    GDT_DATA,
    0,
    0,
    GDT_USER_DATA,
    GDT_USER_CODE64,
];

/// The stack the CPU switches to (TSS.RSP0) when user mode takes an interrupt
/// or exception.
pub(super) static mut RING0_STACK: Stack<IST_STACK_SIZE> = Stack([0; IST_STACK_SIZE]);

/// The 64-bit TSS (104 bytes) as 26 dwords: its u64 fields are only 4-aligned.
pub(super) static mut TSS: [u32; 26] = [0; 26];

#[repr(C, packed)]
pub(super) struct DescriptorPointer {
    pub(super) limit: u16,
    pub(super) base: u64,
}

pub(super) fn set_tss_u64(tss: *mut [u32; 26], byte_off: usize, v: u64) {
    // SAFETY: called only during single-threaded setup with in-range offsets.
    unsafe {
        (*tss)[byte_off / 4] = v as u32;
        (*tss)[byte_off / 4 + 1] = (v >> 32) as u32;
    }
}

pub(super) fn load_gdt_and_tss() {
    let tss = &raw mut TSS;
    // IST1 (offset 0x24) for #DF, IST2 (offset 0x2c) for NMI: a fresh stack even
    // when the fault was caused by a broken RSP.
    set_tss_u64(
        tss,
        0x24,
        &raw const DF_STACK as u64 + IST_STACK_SIZE as u64,
    );
    set_tss_u64(
        tss,
        0x2c,
        &raw const NMI_STACK as u64 + IST_STACK_SIZE as u64,
    );
    // RSP0 (offset 4): where user mode's exceptions are delivered.
    set_tss_u64(
        tss,
        0x04,
        &raw const RING0_STACK as u64 + IST_STACK_SIZE as u64,
    );
    // I/O map base = limit + 1: no I/O permission bitmap.
    // SAFETY: single-threaded setup.
    unsafe { (*tss)[25] = 104 << 16 };

    let gdt = &raw mut GDT;
    // SAFETY: single-threaded setup; the GDT is not loaded yet.
    unsafe { [(*gdt)[3], (*gdt)[4]] = tss_descriptor(tss as u64) };
    // SAFETY: the GDT is a static with valid descriptors for every selector
    // loaded.
    unsafe { load_gdt_and_tr(gdt) };
}

/// The two GDT words of a present, DPL0, available 64-bit TSS at `base`
/// (limit 103: no I/O permission bitmap).
pub(super) fn tss_descriptor(base: u64) -> [u64; 2] {
    let limit = 103u64;
    let low = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40) // present, DPL0, available 64-bit TSS
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    [low, base >> 32]
}

/// Load `gdt` and reload every data segment register, CS (a far return to
/// the 64-bit code segment) and TR from it.
///
/// # Safety
/// `gdt` holds valid descriptors for `SEL_CODE`, `SEL_DATA` and `SEL_TSS`
/// (an available TSS) and stays where it is while it is loaded.
pub(super) unsafe fn load_gdt_and_tr(gdt: *const [u64; 7]) {
    let ptr = DescriptorPointer {
        limit: (core::mem::size_of::<[u64; 7]>() - 1) as u16,
        base: gdt as u64,
    };
    // SAFETY: as the caller promises; the far return reloads CS.
    unsafe {
        asm!(
            "lgdt [{ptr}]",
            "mov ds, {data:x}",
            "mov es, {data:x}",
            "mov ss, {data:x}",
            "mov fs, {data:x}",
            "mov gs, {data:x}",
            "push {code}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "ltr {tss:x}",
            ptr = in(reg) &ptr,
            data = in(reg) SEL_DATA as u64,
            code = in(reg) SEL_CODE as u64,
            tss = in(reg) SEL_TSS as u64,
            tmp = out(reg) _,
        );
    }
}
