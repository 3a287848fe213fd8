//! Bare hardware: the multiboot1 entry and the native start of day.

use super::*;

// ---------------------------------------------------------------------------
// Bare hardware: the multiboot1 entry, the native start of day, and the few
// instructions only the native operations use.
// ---------------------------------------------------------------------------

/// How many frames the native start of day gives the "domain" (16 MiB from the
/// image's first byte, like a Keel domain of 4096 pages).
pub const NATIVE_MAX_PAGES: usize = 4096;
/// Page-table frames of the native address space (see `native::plan_tables`).
pub const NATIVE_PT_FRAMES: usize = crate::native::PT_FRAMES;

#[repr(C, align(4096))]
pub(super) struct Pages<const N: usize>([[u64; 512]; N]);

/// The native page tables: in `.bss`, so inside the image and its frame list.
pub(super) static mut NATIVE_TABLES: Pages<NATIVE_PT_FRAMES> = Pages([[0; 512]; NATIVE_PT_FRAMES]);
/// The native frame list (PFN -> machine frame).
pub(super) static mut NATIVE_MFN_LIST: [u64; NATIVE_MAX_PAGES] = [0; NATIVE_MAX_PAGES];
/// The native start_info page (encoded).
#[repr(C, align(4096))]
pub(super) struct InfoPage([u8; 4096]);
pub(super) static mut NATIVE_START_INFO: InfoPage = InfoPage([0; 4096]);

// The multiboot1 header (a.out kludge: QEMU's -kernel loads a 64-bit ELF through
// the address fields) and the 32-bit entry. The boot page tables and GDT are in
// `.data`, not `.bss`: the 64-bit path clears `.bss` while running on them.
global_asm!(
    r#"
    .section .text.multiboot, "ax"
    .balign 4
keel_guest_mb1_header:
    .long 0x1BADB002
    .long 0x00010002
    .long 0x100000000 - (0x1BADB002 + 0x00010002)
    .long keel_guest_mb1_header
    .long __image_start
    .long __load_end
    .long __image_end
    .long keel_native_entry32

    .section .data.keel_native_boot, "aw"
    .balign 4096
keel_native_pml4:
    .skip 4096
keel_native_pdpt:
    .skip 4096
keel_native_pd:
    .skip 4096
    .global keel_native_mbi
keel_native_mbi:
    .quad 0
    .balign 8
keel_native_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
keel_native_gdt_end:
keel_native_gdt_ptr:
    .short keel_native_gdt_end - keel_native_gdt - 1
    .long keel_native_gdt

    .section .text.multiboot, "ax"
    .code32
keel_native_entry32:
    cli
    cld
    movl %ebx, keel_native_mbi
    /* PML4[0] -> PDPT, PDPT[0] -> PD, PD[i] = i * 2 MiB (the first GiB). */
    movl $keel_native_pdpt, %eax
    orl $0x3, %eax
    movl %eax, keel_native_pml4
    movl $keel_native_pd, %eax
    orl $0x3, %eax
    movl %eax, keel_native_pdpt
    xorl %ecx, %ecx
1:
    movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax
    movl %eax, keel_native_pd(, %ecx, 8)
    incl %ecx
    cmpl $512, %ecx
    jb 1b
    movl $keel_native_pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $(1 << 5), %eax
    movl %eax, %cr4
    /* EFER.LME, and NXE when the CPU has NX (Keel guests run with NXE). */
    movl $0x80000001, %eax
    cpuid
    movl %edx, %esi
    movl $0xC0000080, %ecx
    rdmsr
    orl $(1 << 8), %eax
    btl $20, %esi
    jnc 2f
    orl $(1 << 11), %eax
2:
    wrmsr
    /* PG, WP, PE. */
    movl %cr0, %eax
    orl $0x80010001, %eax
    movl %eax, %cr0
    lgdt keel_native_gdt_ptr
    ljmp $0x08, $keel_native_entry64

    .code64
keel_native_entry64:
    movl $0x10, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    leaq __bss_start(%rip), %rdi
    leaq __bss_end(%rip), %rcx
    subq %rdi, %rcx
    xorl %eax, %eax
    rep stosb
    leaq {stack}+{stack_size}(%rip), %rsp
    xorl %ebp, %ebp
    movl keel_native_mbi(%rip), %edi
    call {native_start}
    ud2
    "#,
    stack = sym MAIN_STACK,
    stack_size = const STACK_SIZE,
    native_start = sym native_start,
    options(att_syntax)
);

/// Rust side of the multiboot entry: our own tables, then the native start of
/// day (frame list, page tables, start_info), then the test.
pub(super) extern "C" fn native_start(mbi: u32) -> ! {
    load_gdt_and_tss();
    load_idt();
    crate::native::mask_legacy_pic();
    let image_start = &raw const __image_start as u64;
    let image_end = &raw const __image_end as u64;
    // SAFETY: the loader left the multiboot information at `mbi`, in the first GiB
    // that the boot tables map; it is only read, before our tables replace them.
    let mb = unsafe { read_multiboot(mbi) };
    let tables = &raw mut NATIVE_TABLES;
    let list = &raw mut NATIVE_MFN_LIST;
    let page = &raw mut NATIVE_START_INFO;
    // SAFETY: single-threaded start of day; nothing else refers to these statics
    // yet, and the tables are not loaded until `plan` has filled them.
    let (tables, list, page) = unsafe { (&mut (*tables).0, &mut *list, &mut (*page).0) };
    let setup = crate::native::start_of_day(
        &mb,
        crate::native::Layout {
            image_start,
            image_end,
            tables_va: tables.as_ptr() as u64,
            mfn_list_va: list.as_ptr() as u64,
            start_info_va: page.as_ptr() as u64,
        },
        tables,
        list,
    );
    page[..START_INFO_SIZE].copy_from_slice(&setup.info.encode());
    // SAFETY: the new L4 maps the whole image (code, stack, these tables) at the
    // same addresses as the boot tables did.
    unsafe { asm!("mov cr3, {}", in(reg) setup.cr3, options(nostack)) };
    crate::start::init(crate::start::Boot {
        info: setup.info,
        va: GuestVirt::new(page.as_ptr() as u64),
        virt_base: GuestVirt::new(image_start),
        image_end: GuestVirt::new(image_end),
    });
    crate::pvops::init(crate::pvops::Entry::Multiboot);
    // SAFETY: every test program defines `__keel_guest_main` through `test!`.
    unsafe { __keel_guest_main() }
}

/// Read what the native start of day needs from the multiboot information.
///
/// # Safety
/// `mbi` must be the address the loader passed, mapped (the boot tables map the
/// first GiB).
pub(super) unsafe fn read_multiboot(mbi: u32) -> crate::native::Multiboot {
    let p = mbi as usize as *const u32;
    // SAFETY: the caller's contract; fields 0 (flags), 2 (mem_upper), 4 (cmdline).
    let (flags, mem_upper, cmdline) = unsafe { (*p, *p.add(2), *p.add(4)) };
    let mut mb = crate::native::Multiboot {
        mem_upper_kib: if flags & 1 != 0 { mem_upper } else { 0 },
        cmdline: [0; crate::abi::start_info::MAX_GUEST_CMDLINE],
    };
    if flags & (1 << 2) != 0 && cmdline != 0 {
        let s = cmdline as usize as *const u8;
        for i in 0..mb.cmdline.len() - 1 {
            // SAFETY: a NUL-terminated string in the mapped first GiB.
            let b = unsafe { *s.add(i) };
            if b == 0 {
                break;
            }
            mb.cmdline[i] = b;
        }
    }
    mb
}

/// `INVLPG [va]`.
pub fn invlpg(va: u64) {
    // SAFETY: flushes one TLB entry; no memory is accessed through `va`.
    unsafe { asm!("invlpg [{}]", in(reg) va, options(nostack)) };
}

/// `MOV CR3, CR3`: flush the non-global TLB entries.
pub fn reload_cr3() {
    // SAFETY: reloads the current root; the address space does not change.
    unsafe { asm!("mov {t}, cr3", "mov cr3, {t}", t = out(reg) _, options(nostack)) };
}

/// A 32-bit MMIO read at `va` (the local APIC page, mapped uncached by the
/// native start of day).
pub fn mmio_read32(va: u64) -> u32 {
    assert!(va.is_multiple_of(4) && va >= crate::native::LAPIC_VA);
    // SAFETY: only the mapped local APIC page is read (native platform only).
    unsafe { core::ptr::read_volatile(va as *const u32) }
}

/// A 32-bit MMIO write at `va` (as [`mmio_read32`]).
pub fn mmio_write32(va: u64, v: u32) {
    assert!(va.is_multiple_of(4) && va >= crate::native::LAPIC_VA);
    // SAFETY: as `mmio_read32`; a register write.
    unsafe { core::ptr::write_volatile(va as *mut u32, v) };
}

/// The `fn()` whose address `a` is (an address stored from a `fn()`).
pub fn fn_from_addr(a: u64) -> fn() {
    // SAFETY: callers only pass addresses they took from a `fn()`.
    unsafe { core::mem::transmute::<usize, fn()>(a as usize) }
}
