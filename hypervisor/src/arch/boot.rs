//! The first instructions: multiboot headers and the 32-bit entry that switches to
//! long mode.
//!
//! Both boot protocols hand us the CPU in 32-bit protected mode with paging off,
//! a magic value in EAX and the physical address of the boot information in EBX
//! (multiboot1 magic `0x2BADB002`, multiboot2 `0x36D76289`). Before any Rust can run
//! we need long mode, which needs paging, which needs page tables. So the entry code
//! below, still in 32-bit mode:
//!
//! 1. saves EAX/EBX (the loader's values are the only record of where the boot
//!    information lives);
//! 2. checks CPUID for long mode (and, separately, NX), printing a line and halting
//!    if there is none: nothing else could be done on such a CPU;
//! 3. builds identity-mapping page tables for the first 4 GiB with 2 MiB pages: one
//!    PML4, one PDPT and four page directories, all in `.bss`. 4 GiB covers the
//!    image, the boot information, the modules (multiboot addresses are 32-bit) and
//!    the usual MMIO (local APIC, I/O APIC). Rust extends this *direct map* to all
//!    RAM later (`arch::mem`);
//! 4. enables PAE, EFER.LME (+ EFER.NXE when CPUID says the CPU has NX), then paging,
//!    which activates long mode (in compatibility mode until CS is reloaded);
//! 5. loads a minimal GDT and far-jumps into a 64-bit code segment, loads the data
//!    segments and the boot stack, and calls `keel_rust_start(magic, info)` (defined
//!    by the binary's `main.rs`).
//!
//! The real GDT (with a TSS and IST stacks) replaces the boot GDT in `arch::gdt`.

use core::arch::global_asm;

/// Multiboot1: the magic value the loader leaves in EAX.
pub const MULTIBOOT1_BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
/// Multiboot2: the magic value the loader leaves in EAX.
pub const MULTIBOOT2_BOOTLOADER_MAGIC: u32 = 0x36D7_6289;

/// Size of the boot stack, which stays the hypervisor's only stack (one CPU).
/// Room for a domain's vCPU (its event channels make it about 17 KiB) being
/// built and moved into its slot (`vmx::run::prepare`).
pub const BOOT_STACK_SIZE: usize = 256 * 1024;

global_asm!(
    r#"
/* ------------------------------------------------------------------------------
 * Multiboot headers. The multiboot2 header comes first (it needs 8-byte alignment);
 * the multiboot1 header follows. Both are within the first few hundred bytes of the
 * image, which itself starts at file offset 0x1000 (see link.ld).
 * ------------------------------------------------------------------------------ */
    .section .multiboot_headers, "a"
    .balign 8
keel_mb2_header:
    .long 0xE85250D6                              /* magic */
    .long 0                                       /* architecture: i386 (32-bit protected mode) */
    .long keel_mb2_header_end - keel_mb2_header   /* header length */
    .long 0x100000000 - (0xE85250D6 + (keel_mb2_header_end - keel_mb2_header))
    /* Module alignment tag: ask for page-aligned modules, so a module's frames
     * belong to it alone and the frame allocator can reserve them exactly. */
    .balign 8
    .short 6
    .short 0
    .long 8
    /* End tag. */
    .balign 8
    .short 0
    .short 0
    .long 8
keel_mb2_header_end:

    .balign 4
keel_mb1_header:
    .long 0x1BADB002                              /* magic */
    /* flags: bit 0 page-align modules, bit 1 give memory info (incl. the map),
     * bit 16 the address fields below are valid (the "a.out kludge" QEMU needs to
     * load a 64-bit ELF). */
    .long 0x00010003
    .long 0x100000000 - (0x1BADB002 + 0x00010003) /* checksum */
    .long keel_mb1_header                         /* header_addr */
    .long __keel_image_start                      /* load_addr */
    .long __keel_load_end                         /* load_end_addr */
    .long __keel_bss_end                          /* bss_end_addr: the loader zeroes .bss */
    .long keel_entry32                            /* entry_addr */

/* ------------------------------------------------------------------------------
 * Boot data. Page tables and the stack are in .bss (zeroed by the loader; the page
 * tables are zeroed again below so we do not depend on that).
 * ------------------------------------------------------------------------------ */
    .section .bss.keel_boot, "aw", @nobits
    .balign 4096
    .global keel_boot_pml4
keel_boot_pml4:
    .skip 4096
keel_boot_pdpt:
    .skip 4096
keel_boot_pd:
    .skip 4 * 4096
keel_boot_tables_end:
    /* A page left unmapped by arch::mem::harden: a stack overflow faults here
     * (and the #DF handler reports it from its IST stack) instead of silently
     * overwriting the page tables above. */
    .global keel_boot_stack_guard
keel_boot_stack_guard:
    .skip 4096
    .global keel_boot_stack_bottom
keel_boot_stack_bottom:
    .skip {stack_size}
    .global keel_boot_stack_top
keel_boot_stack_top:

    .section .data.keel_boot, "aw"
    .balign 8
keel_boot_magic:
    .long 0
keel_boot_info:
    .long 0
keel_boot_ext_edx:
    .long 0
    .balign 8
keel_boot_gdt:
    .quad 0                       /* null */
    .quad 0x00AF9A000000FFFF      /* 0x08: 64-bit code, DPL0 */
    .quad 0x00CF92000000FFFF      /* 0x10: data, DPL0 */
keel_boot_gdt_end:
keel_boot_gdt_ptr:
    .short keel_boot_gdt_end - keel_boot_gdt - 1
    .long keel_boot_gdt

    .section .rodata.keel_boot, "a"
keel_no_long_mode_msg:
    .ascii "keel: this CPU has no long mode (CPUID 0x80000001 EDX[29]); halting\n"
keel_no_long_mode_msg_end:

/* ------------------------------------------------------------------------------
 * 32-bit entry.
 * ------------------------------------------------------------------------------ */
    .section .text.boot32, "ax"
    .code32
    .global keel_entry32
keel_entry32:
    cli
    cld
    movl %eax, keel_boot_magic
    movl %ebx, keel_boot_info
    movl $keel_boot_stack_top, %esp

    /* Long mode available? */
    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb keel_no_long_mode
    movl $0x80000001, %eax
    cpuid
    movl %edx, keel_boot_ext_edx
    btl $29, %edx
    jnc keel_no_long_mode

    /* Zero the boot page tables. */
    movl $keel_boot_pml4, %edi
    movl $(keel_boot_tables_end - keel_boot_pml4) / 4, %ecx
    xorl %eax, %eax
    rep stosl

    /* PML4[0] -> PDPT (present, writable). */
    movl $keel_boot_pdpt, %eax
    orl $0x3, %eax
    movl %eax, keel_boot_pml4

    /* PDPT[0..4] -> the four page directories. */
    xorl %ecx, %ecx
1:
    movl %ecx, %eax
    shll $12, %eax
    addl $keel_boot_pd, %eax
    orl $0x3, %eax
    movl %eax, keel_boot_pdpt(, %ecx, 8)
    incl %ecx
    cmpl $4, %ecx
    jb 1b

    /* 2048 PDEs: entry i maps [i * 2 MiB, (i + 1) * 2 MiB): present, writable,
     * page size (0x83). Bits 32+ of the address are i >> 11. */
    xorl %ecx, %ecx
2:
    movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax
    movl %eax, keel_boot_pd(, %ecx, 8)
    movl %ecx, %eax
    shrl $11, %eax
    movl %eax, keel_boot_pd + 4(, %ecx, 8)
    incl %ecx
    cmpl $2048, %ecx
    jb 2b

    movl $keel_boot_pml4, %eax
    movl %eax, %cr3

    /* CR4.PAE */
    movl %cr4, %eax
    orl $(1 << 5), %eax
    movl %eax, %cr4

    /* EFER.LME, and EFER.NXE if the CPU has NX (CPUID 0x80000001 EDX[20]). */
    movl $0xC0000080, %ecx
    rdmsr
    orl $(1 << 8), %eax
    btl $20, keel_boot_ext_edx
    jnc 3f
    orl $(1 << 11), %eax
3:
    wrmsr

    /* CR0: PG | WP | NE | ET | PE. WP so that read-only mappings bind the hypervisor
     * too; NE for native x87 error reporting (also required by VMXON). */
    movl %cr0, %eax
    orl $0x80010031, %eax
    movl %eax, %cr0

    lgdt keel_boot_gdt_ptr
    ljmp $0x08, $keel_entry64

keel_no_long_mode:
    movl $keel_no_long_mode_msg, %esi
    movw $0x3f8, %dx
4:
    cmpl $keel_no_long_mode_msg_end, %esi
    jae 5f
    lodsb
    outb %al, %dx
    jmp 4b
5:
    cli
    hlt
    jmp 5b

/* ------------------------------------------------------------------------------
 * 64-bit entry.
 * ------------------------------------------------------------------------------ */
    .code64
keel_entry64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movq $keel_boot_stack_top, %rsp
    xorl %ebp, %ebp
    movl keel_boot_magic, %edi
    movl keel_boot_info, %esi
    call keel_rust_start
6:
    cli
    hlt
    jmp 6b
"#,
    stack_size = const BOOT_STACK_SIZE,
    options(att_syntax)
);

/// Define the Rust entry point the boot code calls: `entry_point!(path)` where
/// `path` is a `fn(magic: u32, info: u32) -> !` taking the loader's EAX and EBX.
/// (The binary owns the boot flow; the symbol it must export lives here, next to
/// the assembly that calls it.)
#[macro_export]
macro_rules! entry_point {
    ($main:path) => {
        #[unsafe(no_mangle)]
        extern "C" fn keel_rust_start(magic: u32, info: u32) -> ! {
            let main: fn(u32, u32) -> ! = $main;
            main(magic, info)
        }
    };
}

unsafe extern "C" {
    static __keel_image_start: u8;
    static __keel_text_end: u8;
    static __keel_rodata_end: u8;
    static __keel_image_end: u8;
    static keel_boot_stack_guard: u8;
    static keel_boot_stack_bottom: u8;
    static keel_boot_stack_top: u8;
}

/// The machine address range `[start, end)` the hypervisor image occupies, `.bss`
/// (page tables, stacks) included.
pub fn image_range() -> (u64, u64) {
    // Only the addresses of the linker symbols are used, never their contents.
    let start = &raw const __keel_image_start as u64;
    let end = &raw const __keel_image_end as u64;
    (start, end)
}

/// The boot stack `[bottom, top)`, for diagnostics.
pub fn boot_stack() -> (u64, u64) {
    (
        &raw const keel_boot_stack_bottom as u64,
        &raw const keel_boot_stack_top as u64,
    )
}

/// The image's layout, for page protections: `[start, text_end)` is code (and the
/// multiboot headers), `[text_end, rodata_end)` read-only data, `[rodata_end, end)`
/// writable data and `.bss`, with the stack guard page at `stack_guard`.
#[derive(Clone, Copy, Debug)]
pub struct ImageLayout {
    /// First byte of the image.
    pub start: u64,
    /// End of code (page-aligned).
    pub text_end: u64,
    /// End of read-only data (page-aligned).
    pub rodata_end: u64,
    /// End of the image (page-aligned).
    pub end: u64,
    /// The boot stack's guard page.
    pub stack_guard: u64,
}

/// The image layout from the linker symbols.
pub fn image_layout() -> ImageLayout {
    ImageLayout {
        start: &raw const __keel_image_start as u64,
        text_end: &raw const __keel_text_end as u64,
        rodata_end: &raw const __keel_rodata_end as u64,
        end: &raw const __keel_image_end as u64,
        stack_guard: &raw const keel_boot_stack_guard as u64,
    }
}
