//! The hardware layer: entry, descriptor tables, exception stubs and fault probes.
//!
//! This is the only module of keel-guest with `unsafe` code or assembly, and it
//! exists only for `x86_64-unknown-none`.
//!
//! ## Start of day
//! The hypervisor enters `_start` in 64-bit mode at CPL0 with RSP at the top of a
//! boot stack, RSI = the start_info address, IF = 0, and — per the guest-facing
//! contract — GDTR and IDTR with base 0 and limit 0: the segment registers hold
//! valid hidden state, but any exception or segment reload before we install our own
//! tables is a triple fault. So `_start` touches nothing that could fault before
//! `rust_start` has loaded the GDT, TSS and IDT; the first fault-capable access is
//! the read of start_info, after the IDT is live.
//!
//! `.bss` is cleared by `_start` even though the domain builder hands out zeroed
//! frames: the image must not depend on that, and it is a few thousand instructions.
//! We then move to a 64 KiB stack in `.bss`, so stack depth never depends on how
//! much boot stack the builder chose.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU64, Ordering};

use crate::abi::start_info::START_INFO_SIZE;
use crate::abi::GuestVirt;
use crate::cpu::CpuidResult;
use crate::fault::{encode_exinfo, Cr, ExEntry, ExceptionState, Insn, VmxInsn};

/// Size of the main stack.
const STACK_SIZE: usize = 64 * 1024;
/// Size of each IST stack (`#DF`, NMI).
const IST_STACK_SIZE: usize = 8 * 1024;

#[repr(C, align(16))]
struct Stack<const N: usize>([u8; N]);

static mut MAIN_STACK: Stack<STACK_SIZE> = Stack([0; STACK_SIZE]);
static mut DF_STACK: Stack<IST_STACK_SIZE> = Stack([0; IST_STACK_SIZE]);
static mut NMI_STACK: Stack<IST_STACK_SIZE> = Stack([0; IST_STACK_SIZE]);

// ---------------------------------------------------------------------------
// Entry.
// ---------------------------------------------------------------------------

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
    static __image_start: u8;
    static __image_end: u8;
    static __ex_table_start: ExEntry;
    static __ex_table_end: ExEntry;
}

extern "Rust" {
    /// The test's entry, emitted by `keel_guest::test!` in the program.
    fn __keel_guest_main() -> !;
}

/// Rust side of the entry: tables first, then start_info, then the test.
extern "C" fn rust_start(start_info_va: u64) -> ! {
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

// ---------------------------------------------------------------------------
// GDT and TSS.
// ---------------------------------------------------------------------------

/// Selectors: the same values the hypervisor's initial state uses (contract).
const SEL_CODE: u16 = 0x08;
const SEL_DATA: u16 = 0x10;
const SEL_TSS: u16 = 0x18;

/// 64-bit code, DPL0, present, readable (accessed bit preset: no write-back to a
/// read-only GDT page is ever needed).
const GDT_CODE64: u64 = 0x00af_9b00_0000_ffff;
/// Data, DPL0, present, writable, accessed.
const GDT_DATA: u64 = 0x00cf_9300_0000_ffff;

/// User-mode data and 64-bit code (DPL3), for [`run_user`].
const GDT_USER_DATA: u64 = 0x00cf_f300_0000_ffff;
const GDT_USER_CODE64: u64 = 0x00af_fb00_0000_ffff;
/// Their selectors (index 5 and 6, RPL3).
const SEL_USER_DATA: u64 = 0x2b;
const SEL_USER_CODE: u64 = 0x33;

/// GDT: null, code, data, TSS (two slots), user data, user code.
static mut GDT: [u64; 7] = [
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
static mut RING0_STACK: Stack<IST_STACK_SIZE> = Stack([0; IST_STACK_SIZE]);

/// The 64-bit TSS (104 bytes) as 26 dwords: its u64 fields are only 4-aligned.
static mut TSS: [u32; 26] = [0; 26];

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

fn set_tss_u64(tss: *mut [u32; 26], byte_off: usize, v: u64) {
    // SAFETY: called only during single-threaded setup with in-range offsets.
    unsafe {
        (*tss)[byte_off / 4] = v as u32;
        (*tss)[byte_off / 4 + 1] = (v >> 32) as u32;
    }
}

fn load_gdt_and_tss() {
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

    let base = tss as u64;
    let limit = 103u64;
    let low = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40) // present, DPL0, available 64-bit TSS
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    let gdt = &raw mut GDT;
    // SAFETY: single-threaded setup; the GDT is not loaded yet.
    unsafe {
        (*gdt)[3] = low;
        (*gdt)[4] = base >> 32;
    }
    let ptr = DescriptorPointer {
        limit: (core::mem::size_of::<[u64; 7]>() - 1) as u16,
        base: gdt as u64,
    };
    // SAFETY: the GDT is a static with valid descriptors for every selector we
    // load; the far return reloads CS with the 64-bit code segment.
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

// ---------------------------------------------------------------------------
// IDT and exception stubs.
// ---------------------------------------------------------------------------

static mut IDT: [u64; 512] = [0; 512];

// 256 stubs. Each pushes a zero error code when the CPU does not push one (so
// every frame has the same shape), pushes its vector, and jumps to the common path,
// which saves the GPRs and calls `exception_handler` with a pointer to the frame.
// The handler may edit the frame (RIP, R11) before the IRETQ. Each stub also
// appends its own address to `keel_isr_table`, from which `load_idt` fills the IDT.
global_asm!(
    r#"
    .pushsection .rodata.keel_isr_table, "a"
    .balign 8
    .global keel_isr_table
keel_isr_table:
    .popsection

    .section .text.isr, "ax"
    .set keel_vec, 0
    .rept 256
    .balign 16
5:
    .if (keel_vec == 8) || (keel_vec == 10) || (keel_vec == 11) || (keel_vec == 12) || (keel_vec == 13) || (keel_vec == 14) || (keel_vec == 17) || (keel_vec == 21) || (keel_vec == 29) || (keel_vec == 30)
    .else
    pushq $0
    .endif
    pushq $keel_vec
    jmp keel_isr_common
    .pushsection .rodata.keel_isr_table, "a"
    .quad 5b
    .popsection
    .set keel_vec, keel_vec + 1
    .endr

keel_isr_common:
    pushq %r15
    pushq %r14
    pushq %r13
    pushq %r12
    pushq %r11
    pushq %r10
    pushq %r9
    pushq %r8
    pushq %rbp
    pushq %rdi
    pushq %rsi
    pushq %rdx
    pushq %rcx
    pushq %rbx
    pushq %rax
    movq %rsp, %rdi
    cld
    call {handler}
    popq %rax
    popq %rbx
    popq %rcx
    popq %rdx
    popq %rsi
    popq %rdi
    popq %rbp
    popq %r8
    popq %r9
    popq %r10
    popq %r11
    popq %r12
    popq %r13
    popq %r14
    popq %r15
    addq $16, %rsp
    iretq
    "#,
    handler = sym exception_handler,
    options(att_syntax)
);

extern "C" {
    /// The 256 stub addresses, by vector.
    static keel_isr_table: [u64; 256];
}

/// The stack frame the stubs build: GPRs (pushed by the common path), vector and
/// error code (pushed by the stub), then the CPU's interrupt frame.
#[repr(C)]
struct Frame {
    gpr: [u64; 15],
    vector: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// Index of R11 in [`Frame::gpr`]: the register a probe's fixup receives exinfo in.
const GPR_R11: usize = 10;

fn load_idt() {
    // SAFETY: the stub assembly above defines exactly 256 entries.
    let stubs: &[u64; 256] = unsafe { &keel_isr_table };
    let idt = &raw mut IDT;
    for v in 0..256u64 {
        let off = stubs[v as usize];
        let ist = default_ist(v as u8);
        // Present, 64-bit interrupt gate; DPL0, but DPL3 for the vector user
        // mode leaves by (`INT USER_RETURN_VECTOR`).
        let kind: u64 = if v == u64::from(USER_RETURN_VECTOR) {
            0xee
        } else {
            0x8e
        };
        let low = (off & 0xffff)
            | ((SEL_CODE as u64) << 16)
            | (ist << 32)
            | (kind << 40)
            | (((off >> 16) & 0xffff) << 48);
        // SAFETY: single-threaded setup, index < 512.
        unsafe {
            (*idt)[2 * v as usize] = low;
            (*idt)[2 * v as usize + 1] = off >> 32;
        }
    }
    let ptr = DescriptorPointer {
        limit: (core::mem::size_of::<[u64; 512]>() - 1) as u16,
        base: idt as u64,
    };
    // SAFETY: the IDT is a static whose every gate points at a stub.
    unsafe { asm!("lidt [{}]", in(reg) &ptr, options(nostack)) };
}

/// The IST slot a test may point a vector at ([`set_vector_stack`]).
const IST_TEST: u64 = 3;

/// The IST a vector uses normally.
const fn default_ist(vector: u8) -> u64 {
    match vector {
        8 => 1,
        2 => 2,
        _ => 0,
    }
}

/// Deliver `vector` on the stack that ends at `top` (through IST3, shared by
/// every vector pointed this way), or as normal with `None`. For tests of what
/// happens when delivery itself faults (a read-only stack).
pub fn set_vector_stack(vector: u8, top: Option<u64>) {
    let ist = match top {
        Some(t) => {
            set_tss_u64(&raw mut TSS, 0x24 + 8 * (IST_TEST as usize - 1), t);
            IST_TEST
        }
        None => default_ist(vector),
    };
    let idt = &raw mut IDT;
    // SAFETY: one CPU; the gate's IST field (bits 32..34) is rewritten in
    // place, and the CPU reads the gate only when it delivers the vector.
    unsafe {
        let e = &mut (*idt)[2 * usize::from(vector)];
        *e = (*e & !(7 << 32)) | (ist << 32);
    }
}

/// Point `#DF`'s own stack (IST1) at `top`, or back at its own with `None`.
pub fn set_df_stack(top: Option<u64>) {
    let t = top.unwrap_or(&raw const DF_STACK as u64 + IST_STACK_SIZE as u64);
    set_tss_u64(&raw mut TSS, 0x24, t);
}

/// The exception table the linker collected.
fn extable() -> &'static [ExEntry] {
    let start = &raw const __ex_table_start;
    let end = &raw const __ex_table_end;
    let n = (end as usize - start as usize) / core::mem::size_of::<ExEntry>();
    // SAFETY: the linker script brackets `.ex_table` with these symbols; it holds
    // only 16-byte entries emitted by the probes below, 8-aligned.
    unsafe { core::slice::from_raw_parts(start, n) }
}

/// CR2 of the last `#PF` a probe took.
static LAST_CR2: AtomicU64 = AtomicU64::new(0);

/// RFLAGS.TF.
const RFLAGS_TF: u64 = 1 << 8;
/// DR6's value with no debug condition recorded.
const DR6_RESET: u64 = 0xffff_0ff0;
/// DR6 at the last expected `#DB`.
static LAST_DR6: AtomicU64 = AtomicU64::new(0);

/// DR6 as the last `#DB` a probe took found it.
pub fn last_db_dr6() -> u64 {
    LAST_DR6.load(Ordering::Relaxed)
}

/// CR2 of the last expected `#PF`.
pub fn last_fault_cr2() -> u64 {
    LAST_CR2.load(Ordering::Relaxed)
}

extern "C" fn exception_handler(f: &mut Frame) {
    if f.vector == u64::from(USER_RETURN_VECTOR) && f.cs & 3 == 3 {
        user_returned(f);
        return;
    }
    // An interrupt on the event-channel upcall vector.
    if f.vector >= 32 && crate::events::upcall_entry(f.vector as u8, f.rflags, &mut f.gpr, f.rip) {
        return;
    }
    // A device interrupt of the native platform (the local APIC timer).
    if f.vector >= 32 && crate::native::irq_entry(f.vector as u8) {
        return;
    }
    let cr2 = read_cr2();
    if f.vector < 32 {
        if let Some(fixup) = crate::fault::lookup(extable(), f.rip) {
            LAST_CR2.store(cr2, Ordering::Relaxed);
            if f.vector == 1 {
                // A probe's single-step trap: stepping ends with it. Keep DR6
                // and reset it, as a #DB handler must (the CPU never clears it).
                f.rflags &= !RFLAGS_TF;
                let dr6: u64;
                // SAFETY: DR6 is the guest's own (no MOV-DR exiting); writing
                // its reset value has no other effect.
                unsafe {
                    asm!("mov {0}, dr6", "mov dr6, {1}", out(reg) dr6,
                        in(reg) DR6_RESET, options(nostack, nomem))
                };
                LAST_DR6.store(dr6, Ordering::Relaxed);
            }
            f.gpr[GPR_R11] = encode_exinfo(f.vector as u8, f.error_code as u32);
            f.rip = fixup;
            return;
        }
    }
    let st = ExceptionState {
        gpr: f.gpr,
        vector: f.vector,
        error_code: f.error_code,
        rip: f.rip,
        cs: f.cs,
        rflags: f.rflags,
        rsp: f.rsp,
        ss: f.ss,
        cr2,
        cr3: read_cr(Cr::Cr3),
    };
    crate::fault::unexpected(&st)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    match info.location() {
        Some(l) => crate::report::crash(format_args!(
            "panic at {}:{}: {}",
            l.file(),
            l.line(),
            info.message()
        )),
        None => crate::report::crash(format_args!("panic: {}", info.message())),
    }
}

// ---------------------------------------------------------------------------
// Plain instructions.
// ---------------------------------------------------------------------------

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

fn read_cr2() -> u64 {
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

// ---------------------------------------------------------------------------
// Fault probes. Each emits its faulting instruction at a local label `2:` (and
// `4:` for a second one), the resume point at `3:`, and the matching `.ex_table`
// entries. R11 is zeroed first; on a fault the handler stores exinfo there. The
// labels avoid 0 and 1, which Intel syntax would read as binary numbers.
// ---------------------------------------------------------------------------

macro_rules! extable {
    ($($fault:literal => $fixup:literal),+) => {
        concat!(
            ".pushsection .ex_table, \"a\"\n",
            ".balign 8\n",
            $(".quad ", $fault, ", ", $fixup, "\n",)+
            ".popsection\n"
        )
    };
}

/// Read 8 bytes at `addr`: (value, exinfo).
pub fn probe_read_u64(addr: u64) -> (u64, u64) {
    let (v, info): (u64, u64);
    // SAFETY: a read has no side effect on memory; if `addr` is not readable the
    // fault is caught by the exception table and reported in R11.
    unsafe {
        asm!(
            "xor r11d, r11d",
            "xor {v:e}, {v:e}",
            "2: mov {v}, qword ptr [{a}]",
            "3:",
            extable!("2b" => "3b"),
            a = in(reg) addr,
            v = out(reg) v,
            out("r11") info,
            options(nostack, readonly),
        )
    };
    (v, info)
}

/// Read the 8 bytes at `addr` and write them back: exinfo of the first fault.
pub fn probe_rewrite_u64(addr: u64) -> u64 {
    let info: u64;
    // SAFETY: the value written is the value just read, so memory is unchanged even
    // when the write succeeds (single CPU, interrupts off: nothing runs between).
    unsafe {
        asm!(
            "xor r11d, r11d",
            "2: mov {t}, qword ptr [{a}]",
            "4: mov qword ptr [{a}], {t}",
            "3:",
            extable!("2b" => "3b", "4b" => "3b"),
            a = in(reg) addr,
            t = out(reg) _,
            out("r11") info,
            options(nostack),
        )
    };
    info
}

/// Store `value` at `addr` with one `MOV qword [addr], reg` (`REX.W 89 /r`, the
/// store the hypervisor emulates on page-table frames): exinfo of the fault.
pub fn probe_write_u64(addr: u64, value: u64) -> u64 {
    let info: u64;
    // SAFETY: the caller chose to change this memory (a test's own page, or a
    // page-table entry the hypervisor validates); a refused store faults into
    // the exception table.
    unsafe {
        asm!(
            "xor r11d, r11d",
            "2: mov qword ptr [{a}], {v}",
            "3:",
            extable!("2b" => "3b"),
            a = in(reg) addr,
            v = in(reg) value,
            out("r11") info,
            options(nostack),
        )
    };
    info
}

/// `RDMSR`: (value, exinfo).
pub fn probe_rdmsr(msr: u32) -> (u64, u64) {
    let (lo, hi, info): (u32, u32, u64);
    // SAFETY: RDMSR only reads; a refused MSR faults into the exception table.
    unsafe {
        asm!(
            "xor r11d, r11d",
            "xor eax, eax",
            "xor edx, edx",
            "2: rdmsr",
            "3:",
            extable!("2b" => "3b"),
            in("ecx") msr,
            out("eax") lo,
            out("edx") hi,
            out("r11") info,
            options(nostack, nomem),
        )
    };
    ((((hi as u64) << 32) | lo as u64), info)
}

/// `WRMSR`: exinfo.
pub fn probe_wrmsr(msr: u32, value: u64) -> u64 {
    let info: u64;
    // SAFETY: the caller chose the MSR (see `fault::wrmsr`); a refused write faults
    // into the exception table.
    unsafe {
        asm!(
            "xor r11d, r11d",
            "2: wrmsr",
            "3:",
            extable!("2b" => "3b"),
            in("ecx") msr,
            in("eax") value as u32,
            in("edx") (value >> 32) as u32,
            out("r11") info,
            options(nostack),
        )
    };
    info
}

/// `MOV CRn, value`: exinfo.
pub fn probe_write_cr(cr: Cr, value: u64) -> u64 {
    let info: u64;
    // SAFETY: the caller chose the value (see `fault::write_cr`); a refused write
    // faults into the exception table.
    unsafe {
        match cr {
            Cr::Cr0 => asm!(
                "xor r11d, r11d", "2: mov cr0, {v}", "3:", extable!("2b" => "3b"),
                v = in(reg) value, out("r11") info, options(nostack)),
            Cr::Cr3 => asm!(
                "xor r11d, r11d", "2: mov cr3, {v}", "3:", extable!("2b" => "3b"),
                v = in(reg) value, out("r11") info, options(nostack)),
            Cr::Cr4 => asm!(
                "xor r11d, r11d", "2: mov cr4, {v}", "3:", extable!("2b" => "3b"),
                v = in(reg) value, out("r11") info, options(nostack)),
        }
    }
    info
}

/// A VMX instruction: exinfo.
pub fn probe_vmx(insn: VmxInsn) -> u64 {
    // Memory operands: a zeroed 16-byte buffer on the stack (a VMCS pointer of 0, an
    // INVEPT/INVVPID descriptor of zeroes). Nothing valid, so nothing can happen
    // even on a CPU that executed them.
    let mut m = [0u64; 2];
    let p = m.as_mut_ptr();
    let info: u64;
    macro_rules! probe {
        ($insn:literal $(, $($args:tt)*)?) => {
            asm!(
                "xor r11d, r11d", concat!("2: ", $insn), "3:", extable!("2b" => "3b"),
                $($($args)*,)? out("r11") info, options(nostack)
            )
        };
    }
    // SAFETY: in VMX non-root mode each of these exits to the hypervisor; the
    // operands point at our own zeroed buffer; a fault goes to the exception table.
    unsafe {
        match insn {
            VmxInsn::Vmxon => probe!("vmxon qword ptr [{p}]", p = in(reg) p),
            VmxInsn::Vmxoff => probe!("vmxoff"),
            VmxInsn::Vmclear => probe!("vmclear qword ptr [{p}]", p = in(reg) p),
            VmxInsn::Vmptrld => probe!("vmptrld qword ptr [{p}]", p = in(reg) p),
            VmxInsn::Vmptrst => probe!("vmptrst qword ptr [{p}]", p = in(reg) p),
            VmxInsn::Vmread => {
                probe!("vmread {d}, {f}", d = out(reg) _, f = in(reg) 0u64)
            }
            VmxInsn::Vmwrite => {
                probe!("vmwrite {f}, {v}", f = in(reg) 0u64, v = in(reg) 0u64)
            }
            VmxInsn::Vmlaunch => probe!("vmlaunch"),
            VmxInsn::Vmresume => probe!("vmresume"),
            VmxInsn::Invept => {
                probe!("invept {t}, xmmword ptr [{p}]", t = in(reg) 1u64, p = in(reg) p)
            }
            VmxInsn::Invvpid => {
                probe!("invvpid {t}, xmmword ptr [{p}]", t = in(reg) 1u64, p = in(reg) p)
            }
            VmxInsn::Vmfunc => probe!("vmfunc", in("eax") 0u32, in("ecx") 0u32),
        }
    }
    let _ = m;
    info
}

/// Another privileged or sensitive instruction: exinfo.
pub fn probe_insn(insn: Insn) -> u64 {
    let info: u64;
    // SAFETY: each instruction either faults into the exception table or has no
    // effect on memory the program uses (INVD on a guest with no dirty lines it
    // needs: the hypervisor must not let it through anyway).
    unsafe {
        match insn {
            Insn::Invd => asm!("xor r11d, r11d", "2: invd", "3:", extable!("2b" => "3b"),
                out("r11") info, options(nostack)),
            Insn::Wbinvd => asm!("xor r11d, r11d", "2: wbinvd", "3:", extable!("2b" => "3b"),
                out("r11") info, options(nostack)),
            Insn::Ud2 => asm!("xor r11d, r11d", "2: ud2", "3:", extable!("2b" => "3b"),
                out("r11") info, options(nostack)),
            // A trap: the saved RIP is the instruction after INT3, i.e. label 3.
            Insn::Int3 => asm!("xor r11d, r11d", "int3", "3:", extable!("3b" => "3b"),
                out("r11") info, options(nostack)),
            Insn::XsetbvInvalid => {
                asm!("xor r11d, r11d", "2: xsetbv", "3:", extable!("2b" => "3b"),
                in("ecx") 0u32, in("eax") 0u32, in("edx") 0u32, out("r11") info, options(nostack))
            }
            Insn::Rdpmc => asm!("xor r11d, r11d", "2: rdpmc", "3:", extable!("2b" => "3b"),
                in("ecx") 0u32, out("eax") _, out("edx") _, out("r11") info, options(nostack)),
            Insn::DivideByZero => {
                asm!("xor r11d, r11d", "xor eax, eax", "xor edx, edx", "xor ecx, ecx",
                "2: div ecx", "3:", extable!("2b" => "3b"),
                out("eax") _, out("ecx") _, out("edx") _, out("r11") info, options(nostack))
            }
            // A trap like INT3: the saved RIP is the next instruction, label 3.
            Insn::Icebp => asm!("xor r11d, r11d", ".byte 0xf1", "3:", extable!("3b" => "3b"),
                out("r11") info, options(nostack)),
            Insn::Fnop => asm!("xor r11d, r11d", "2: fnop", "3:", extable!("2b" => "3b"),
                out("r11") info, options(nostack)),
            Insn::StackNonCanonical => asm!("xor r11d, r11d",
                "2: mov {t}, qword ptr [rsp + {off}]", "3:", extable!("2b" => "3b"),
                off = in(reg) 0x8000_0000_0000_0000u64, t = out(reg) _, out("r11") info,
                options(nostack, readonly)),
            // GETSEC[CAPABILITIES] takes EBX = 0; RBX belongs to LLVM, so it is
            // saved around the probe (the fixup resumes before the restore).
            // MONITOR takes its address in RAX (a harmless stack address).
            Insn::Monitor => asm!("xor r11d, r11d", "2: monitor", "3:", extable!("2b" => "3b"),
                in("rax") &insn as *const Insn, in("ecx") 0u32, in("edx") 0u32, out("r11") info,
                options(nostack)),
            Insn::Mwait => asm!("xor r11d, r11d", "2: mwait", "3:", extable!("2b" => "3b"),
                in("eax") 0u32, in("ecx") 0u32, out("r11") info, options(nostack)),
            Insn::Rdtscp => asm!("xor r11d, r11d", "2: rdtscp", "3:", extable!("2b" => "3b"),
                out("eax") _, out("ecx") _, out("edx") _, out("r11") info, options(nostack, nomem)),
            Insn::Getsec => asm!("push rbx", "xor ebx, ebx", "xor r11d, r11d", "2: getsec", "3:",
                "pop rbx", extable!("2b" => "3b"),
                inout("eax") 0u32 => _, out("r11") info),
        }
    }
    info
}

/// `XSETBV` with ECX = `xcr`: exinfo.
pub fn probe_xsetbv(xcr: u32, value: u64) -> u64 {
    let info: u64;
    // SAFETY: the caller chose the value; a refused one faults into the exception
    // table. Loading XCR0 changes which state XSAVE covers, not memory.
    unsafe {
        asm!("xor r11d, r11d", "2: xsetbv", "3:", extable!("2b" => "3b"),
            in("ecx") xcr, in("eax") value as u32, in("edx") (value >> 32) as u32,
            out("r11") info, options(nostack, nomem))
    };
    info
}

/// `XGETBV` with ECX = `xcr`: (value, exinfo).
pub fn probe_xgetbv(xcr: u32) -> (u64, u64) {
    let (lo, hi, info): (u32, u32, u64);
    // SAFETY: XGETBV only reads; #UD (CR4.OSXSAVE clear) goes to the exception table.
    unsafe {
        asm!("xor r11d, r11d", "xor eax, eax", "xor edx, edx", "2: xgetbv", "3:",
            extable!("2b" => "3b"), in("ecx") xcr, out("eax") lo, out("edx") hi,
            out("r11") info, options(nostack, nomem))
    };
    ((u64::from(hi) << 32) | u64::from(lo), info)
}

/// `MOV DR0, value` then `MOV value, DR0`, or the same with DR7: (value read back,
/// exinfo).
pub fn probe_dr(dr7: bool, value: u64) -> (u64, u64) {
    let (v, info): (u64, u64);
    // SAFETY: DR0 holds an address (no breakpoint fires while DR7 leaves it
    // disabled); DR7 is written by tests with values that enable nothing. A
    // refused access faults into the exception table.
    unsafe {
        if dr7 {
            asm!("xor r11d, r11d", "mov {v}, {w}", "2: mov dr7, {w}", "4: mov {v}, dr7", "3:",
                extable!("2b" => "3b", "4b" => "3b"), w = in(reg) value, v = out(reg) v,
                out("r11") info, options(nostack, nomem))
        } else {
            asm!("xor r11d, r11d", "mov {v}, {w}", "2: mov dr0, {w}", "4: mov {v}, dr0", "3:",
                extable!("2b" => "3b", "4b" => "3b"), w = in(reg) value, v = out(reg) v,
                out("r11") info, options(nostack, nomem))
        }
    };
    (v, info)
}

// ---------------------------------------------------------------------------
// Port I/O (at CPL0 it never faults; in a Keel guest every access exits).
// ---------------------------------------------------------------------------

/// `IN` of 1, 2 or 4 bytes (any other size reads 4).
pub fn port_in(port: u16, size: u8) -> u32 {
    let v: u32;
    // SAFETY: port I/O has no effect on memory.
    unsafe {
        match size {
            1 => {
                let b: u8;
                asm!("in al, dx", in("dx") port, out("al") b, options(nomem, nostack));
                v = u32::from(b) | 0xffff_ff00;
            }
            2 => {
                let w: u16;
                asm!("in ax, dx", in("dx") port, out("ax") w, options(nomem, nostack));
                v = u32::from(w) | 0xffff_0000;
            }
            _ => asm!("in eax, dx", in("dx") port, out("eax") v, options(nomem, nostack)),
        }
    }
    v
}

/// `IN AL, DX` with AL preset to `al`: the whole of RAX afterwards (the upper
/// bytes must be unchanged by an 8-bit IN).
pub fn port_in8_rax(port: u16, rax: u64) -> u64 {
    let v: u64;
    // SAFETY: port I/O has no effect on memory.
    unsafe { asm!("in al, dx", in("dx") port, inout("rax") rax => v, options(nomem, nostack)) };
    v
}

/// `OUT` of 1, 2 or 4 bytes (any other size writes 4).
pub fn port_out(port: u16, size: u8, value: u32) {
    // SAFETY: port I/O has no effect on memory.
    unsafe {
        match size {
            1 => asm!("out dx, al", in("dx") port, in("al") value as u8, options(nomem, nostack)),
            2 => asm!("out dx, ax", in("dx") port, in("ax") value as u16, options(nomem, nostack)),
            _ => asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack)),
        }
    }
}

/// `REP OUTSB`: every byte of `bytes` to `port`.
pub fn port_outs(port: u16, bytes: &[u8]) {
    // SAFETY: OUTS reads `bytes` (RSI, RCX) and touches nothing else; DF is clear
    // (the ABI guarantees it at every call).
    unsafe {
        asm!("rep outsb", in("dx") port, inout("rsi") bytes.as_ptr() => _,
            inout("rcx") bytes.len() => _, options(nostack, readonly))
    };
}

/// `REP INSB`: fill `buf` from `port`.
pub fn port_ins(port: u16, buf: &mut [u8]) {
    // SAFETY: INS writes `buf` (RDI, RCX) and nothing else; DF is clear.
    unsafe {
        asm!("rep insb", in("dx") port, inout("rdi") buf.as_mut_ptr() => _,
            inout("rcx") buf.len() => _, options(nostack))
    };
}

/// `STD; REP OUTSB; CLD` from the last byte of `bytes` down to the first: returns
/// RSI afterwards (one below `bytes`).
pub fn port_outs_down(port: u16, bytes: &[u8]) -> u64 {
    let rsi: u64;
    // SAFETY: OUTS reads `bytes` backwards (RSI from its last byte, RCX = its
    // length) and touches nothing else; DF is set only around the instruction.
    unsafe {
        asm!("std", "rep outsb", "cld", in("dx") port,
            inout("rsi") bytes.as_ptr().wrapping_add(bytes.len().saturating_sub(1)) => rsi,
            inout("rcx") bytes.len() => _, options(nostack, readonly))
    };
    rsi
}

/// `STD; REP INSB; CLD` into `buf` from its last byte down to the first: returns
/// RDI afterwards (one below `buf`).
pub fn port_ins_down(port: u16, buf: &mut [u8]) -> u64 {
    let rdi: u64;
    // SAFETY: INS writes `buf` backwards (RDI from its last byte, RCX = its length)
    // and nothing else; DF is set only around the instruction.
    unsafe {
        asm!("std", "rep insb", "cld", in("dx") port,
            inout("rdi") buf.as_mut_ptr().wrapping_add(buf.len().saturating_sub(1)) => rdi,
            inout("rcx") buf.len() => _, options(nostack))
    };
    rdi
}

/// `REP OUTSB` of `count` bytes from `addr` to `port`, as a fault probe:
/// (RSI, RCX, exinfo) when it ended. Any address may be aimed at: OUTS only
/// reads memory, and a fault ends it into the exception table.
pub fn probe_rep_outsb(port: u16, addr: u64, count: u64) -> (u64, u64, u64) {
    let (rsi, rcx, info): (u64, u64, u64);
    // SAFETY: reads memory only; DF is clear (the ABI guarantees it at every
    // call); a fault is caught by the exception table and reported in R11.
    unsafe {
        asm!(
            "xor r11d, r11d",
            "2: rep outsb",
            "3:",
            extable!("2b" => "3b"),
            in("dx") port,
            inout("rsi") addr => rsi,
            inout("rcx") count => rcx,
            out("r11") info,
            options(nostack, readonly),
        )
    };
    (rsi, rcx, info)
}

/// `REP OUTSB` with an FS (`gs == false`) or GS segment override: `count`
/// bytes at FS/GS base + `offset` to `port`, as a fault probe: (RSI, RCX,
/// exinfo) when it ended. Reads memory only.
pub fn probe_seg_rep_outsb(gs: bool, port: u16, offset: u64, count: u64) -> (u64, u64, u64) {
    let (rsi, rcx, info): (u64, u64, u64);
    // SAFETY: reads memory only; DF is clear; a fault is caught by the
    // exception table and reported in R11. The bytes are `fs`/`gs` + `rep` +
    // OUTSB (the assembler has no spelling for the override on OUTS).
    unsafe {
        if gs {
            asm!("xor r11d, r11d", "2: .byte 0x65, 0xf3, 0x6e", "3:", extable!("2b" => "3b"),
                in("dx") port, inout("rsi") offset => rsi, inout("rcx") count => rcx,
                out("r11") info, options(nostack, readonly))
        } else {
            asm!("xor r11d, r11d", "2: .byte 0x64, 0xf3, 0x6e", "3:", extable!("2b" => "3b"),
                in("dx") port, inout("rsi") offset => rsi, inout("rcx") count => rcx,
                out("r11") info, options(nostack, readonly))
        }
    };
    (rsi, rcx, info)
}

/// `REP INSB` of `count` bytes from `port` to `addr`, as a fault probe: (RDI,
/// RCX, exinfo) when it ended. Writes memory, like [`probe_write_u64`]: the
/// caller aims it at its own buffer or at memory it cannot write.
pub fn probe_rep_insb(port: u16, addr: u64, count: u64) -> (u64, u64, u64) {
    let (rdi, rcx, info): (u64, u64, u64);
    // SAFETY: the caller chose to change this memory (see above); DF is clear; a
    // fault is caught by the exception table and reported in R11.
    unsafe {
        asm!(
            "xor r11d, r11d",
            "2: rep insb",
            "3:",
            extable!("2b" => "3b"),
            in("dx") port,
            inout("rdi") addr => rdi,
            inout("rcx") count => rcx,
            out("r11") info,
            options(nostack),
        )
    };
    (rdi, rcx, info)
}

// ---------------------------------------------------------------------------
// Hypercall register convention check.
// ---------------------------------------------------------------------------

// `keel_vmcall_all_regs(regs: *mut [u64; 15])`: load every GPR but RSP from
// `regs` (order: RAX, RBX, RCX, RDX, RSI, RDI, RBP, R8..R15), execute VMCALL, and
// store every GPR back, so a test can see exactly what the hypercall changed. The
// callee-saved registers are saved around it (it is an ordinary C function).
global_asm!(
    r#"
    .section .text.keel_vmcall_all_regs, "ax"
    .global keel_vmcall_all_regs
keel_vmcall_all_regs:
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    pushq %rdi
    movq 0(%rdi), %rax
    movq 8(%rdi), %rbx
    movq 16(%rdi), %rcx
    movq 24(%rdi), %rdx
    movq 32(%rdi), %rsi
    movq 48(%rdi), %rbp
    movq 56(%rdi), %r8
    movq 64(%rdi), %r9
    movq 72(%rdi), %r10
    movq 80(%rdi), %r11
    movq 88(%rdi), %r12
    movq 96(%rdi), %r13
    movq 104(%rdi), %r14
    movq 112(%rdi), %r15
    movq 40(%rdi), %rdi
    vmcall
    xchgq %rdi, (%rsp)
    movq %rax, 0(%rdi)
    movq %rbx, 8(%rdi)
    movq %rcx, 16(%rdi)
    movq %rdx, 24(%rdi)
    movq %rsi, 32(%rdi)
    movq %rbp, 48(%rdi)
    movq %r8, 56(%rdi)
    movq %r9, 64(%rdi)
    movq %r10, 72(%rdi)
    movq %r11, 80(%rdi)
    movq %r12, 88(%rdi)
    movq %r13, 96(%rdi)
    movq %r14, 104(%rdi)
    movq %r15, 112(%rdi)
    popq %rax
    movq %rax, 40(%rdi)
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    ret
    "#,
    options(att_syntax)
);

extern "C" {
    fn keel_vmcall_all_regs(regs: *mut [u64; 15]);
}

/// Issue a hypercall with every general-purpose register (but RSP) loaded from
/// `regs` and return every register's value afterwards (same order: RAX, RBX,
/// RCX, RDX, RSI, RDI, RBP, R8..R15). RAX holds the number going in and the result
/// coming out; RDI, RSI, RDX, R10, R8 are the arguments.
pub fn vmcall_all_regs(regs: [u64; 15]) -> [u64; 15] {
    let mut r = regs;
    // SAFETY: the callee saves and restores every callee-saved register and uses no
    // memory but `r`; it is called through the C ABI, so the compiler treats the
    // caller-saved registers as clobbered. The hypercall's pointer arguments are the
    // caller's choice, as for `abi::guest::hypercall_scalar`.
    unsafe { keel_vmcall_all_regs(&mut r) };
    r
}

// ---------------------------------------------------------------------------
// User mode (ring 3): run one instruction there and come back.
// ---------------------------------------------------------------------------

/// The vector user mode returns to the kernel by (a DPL3 gate).
pub const USER_RETURN_VECTOR: u8 = 0x81;

pub use crate::user::UserOp;

// The user-mode code and data, each alone in its page (the section and its
// end are page aligned), so that making these two pages user-accessible
// exposes nothing else.
global_asm!(
    r#"
    .pushsection .text.keel_user, "ax"
    .balign 4096
    .global keel_user_page
keel_user_page:
keel_user_vmcall:
    vmcall
    int $0x81
keel_user_insb:
    xor %r11d, %r11d
2:  rep insb
3:  int $0x81
    .pushsection .ex_table, "a"
    .balign 8
    .quad 2b, 3b
    .popsection
keel_user_outsb:
    xor %r11d, %r11d
2:  rep outsb
3:  int $0x81
    .pushsection .ex_table, "a"
    .balign 8
    .quad 2b, 3b
    .popsection
keel_user_read:
    xor %r11d, %r11d
2:  movq (%rdi), %rax
3:  int $0x81
    .pushsection .ex_table, "a"
    .balign 8
    .quad 2b, 3b
    .popsection
    .balign 4096, 0xcc
    .popsection

    .pushsection .data.keel_user, "aw"
    .balign 4096
    .global keel_user_data
keel_user_data:
    .space 4096
    .popsection

    .pushsection .text.keel_enter_user, "ax"
    .global keel_enter_user
# keel_enter_user(regs: *mut [u64; 15] (RDI), rip (RSI), rflags (RDX)):
# save the callee-saved registers and RSP, IRETQ to CPL3 at `rip` with every
# GPR (but RSP) from `regs`. `user_returned` brings the CPU back to
# keel_user_resume on the saved RSP.
keel_enter_user:
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, {kernel_rsp}(%rip)
    pushq ${user_ss}
    pushq $0
    pushq %rdx
    pushq ${user_cs}
    pushq %rsi
    movq 0(%rdi), %rax
    movq 8(%rdi), %rbx
    movq 16(%rdi), %rcx
    movq 24(%rdi), %rdx
    movq 32(%rdi), %rsi
    movq 48(%rdi), %rbp
    movq 56(%rdi), %r8
    movq 64(%rdi), %r9
    movq 72(%rdi), %r10
    movq 80(%rdi), %r11
    movq 88(%rdi), %r12
    movq 96(%rdi), %r13
    movq 104(%rdi), %r14
    movq 112(%rdi), %r15
    movq 40(%rdi), %rdi
    iretq
    .global keel_user_resume
keel_user_resume:
    movl ${data}, %eax
    movl %eax, %ds
    movl %eax, %es
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    ret
    .popsection
    "#,
    kernel_rsp = sym KERNEL_RSP,
    user_ss = const SEL_USER_DATA,
    user_cs = const SEL_USER_CODE,
    data = const SEL_DATA as u64,
    options(att_syntax)
);

extern "C" {
    static keel_user_page: u8;
    static keel_user_data: u8;
    fn keel_user_vmcall();
    fn keel_user_insb();
    fn keel_user_outsb();
    fn keel_user_read();
    fn keel_user_resume();
    fn keel_enter_user(regs: *mut [u64; 15], rip: u64, rflags: u64);
}

/// The kernel's RSP while user mode runs, and the kernel's RFLAGS to come back
/// with.
static mut KERNEL_RSP: u64 = 0;
static KERNEL_RFLAGS: AtomicU64 = AtomicU64::new(0);
/// The user-mode GPRs: loaded on the way in, stored on the way out (order
/// RAX, RBX, RCX, RDX, RSI, RDI, RBP, R8..R15, as in [`Frame::gpr`]).
static mut USER_REGS: [u64; 15] = [0; 15];

/// The user-mode code page and the user-mode data page.
pub fn user_pages() -> (u64, u64) {
    (
        &raw const keel_user_page as u64,
        &raw const keel_user_data as u64,
    )
}

/// `INT USER_RETURN_VECTOR` from CPL3: keep user mode's registers and return
/// to the kernel where [`run_user`] left it.
fn user_returned(f: &mut Frame) {
    // SAFETY: user mode runs only inside `run_user`, which reads USER_REGS
    // after this; single CPU, interrupts cannot re-enter here (a gate clears IF).
    unsafe {
        USER_REGS = f.gpr;
        f.rsp = KERNEL_RSP;
    }
    f.rip = keel_user_resume as *const () as u64;
    f.cs = SEL_CODE as u64;
    f.ss = SEL_DATA as u64;
    f.rflags = KERNEL_RFLAGS.load(Ordering::Relaxed);
}

/// Run `op` at CPL3 with these GPRs (order RAX, RBX, RCX, RDX, RSI, RDI, RBP,
/// R8..R15; R11 is the fault report and is cleared by the fault-catching ops)
/// and `rflags` (IF is the kernel's; the caller sets IOPL and TF as it needs):
/// the GPRs afterwards. The caller must have made [`user_pages`] user-accessible.
pub fn run_user(op: UserOp, regs: [u64; 15], rflags: u64) -> [u64; 15] {
    let rip = match op {
        UserOp::Vmcall => keel_user_vmcall as *const () as u64,
        UserOp::RepInsb => keel_user_insb as *const () as u64,
        UserOp::RepOutsb => keel_user_outsb as *const () as u64,
        UserOp::Read => keel_user_read as *const () as u64,
    };
    let kflags = self::rflags();
    KERNEL_RFLAGS.store(kflags, Ordering::Relaxed);
    // Reserved bit 1 set; IF as the kernel has it; no IOPL beyond what is asked.
    let uflags = (rflags & !(1 << 9)) | 2 | (kflags & (1 << 9));
    let r = &raw mut USER_REGS;
    // SAFETY: keel_enter_user saves the callee-saved registers and RSP, runs
    // one instruction at CPL3 on pages the caller made user-accessible (which
    // can reach only memory the guest's tables give user mode), and comes back
    // to keel_user_resume through `user_returned`, which restores RSP. It is
    // called through the C ABI, so caller-saved registers count as clobbered.
    unsafe {
        (*r) = regs;
        keel_enter_user(r, rip, uflags);
        *r
    }
}

// ---------------------------------------------------------------------------
// Single-stepping one exiting instruction.
// ---------------------------------------------------------------------------

pub use crate::fault::StepInsn;

// Set TF (POPF: the trap comes after the instruction *after* POPF, i.e. after
// the one under test), execute it, and catch the #DB: at label 3 if it came
// right after the instruction, at 5 if one instruction late (R10 = 1). R11 is
// the exinfo of the #DB, 0 if none came; the #DB handler clears TF.
macro_rules! step_asm {
    ($info:ident, $late:ident, [$($before:literal),*], [$($insn:literal),+], [$($after:literal),*], $($ops:tt)*) => {
        asm!(
            $($before,)*
            "xor r11d, r11d",
            "xor r10d, r10d",
            "pushfq",
            "or qword ptr [rsp], 0x100",
            "popfq",
            $($insn,)+
            "3: inc r10",
            "5: jmp 4f",
            "4:",
            $($after,)*
            extable!("3b" => "4b", "5b" => "4b"),
            out("r11") $info,
            out("r10") $late,
            $($ops)*
        )
    };
}

/// Execute `insn` once with RFLAGS.TF set: (exinfo of the #DB that followed,
/// whether it came one instruction late, DR6 at that #DB). `a` and `b` are its
/// operands (see [`StepInsn`]); a `Store` writes memory, like
/// [`probe_write_u64`].
pub fn probe_single_step(insn: StepInsn, a: u64, b: u64) -> (u64, bool, u64) {
    let (info, late): (u64, u64);
    LAST_DR6.store(0, Ordering::Relaxed);
    // SAFETY: each instruction touches only its own operands (a hypercall
    // that reads nothing, CPUID with RBX saved around it, an MSR read, port
    // I/O to ports with no device or the POST port, a reload of the caller's
    // CR3 value, a store the caller aimed); the #DB it is followed by is
    // caught by the exception table.
    unsafe {
        match insn {
            StepInsn::Vmcall => step_asm!(info, late, [], ["vmcall"], [],
                inout("rax") 17u64 => _, in("rdi") 0u64),
            StepInsn::Cpuid => {
                step_asm!(info, late, ["xchg {t}, rbx"], ["cpuid"], ["xchg {t}, rbx"],
                t = inout(reg) 0u64 => _, inout("eax") 0u32 => _, inout("ecx") 0u32 => _,
                out("edx") _)
            }
            StepInsn::Rdmsr => step_asm!(info, late, [], ["rdmsr"], [],
                in("ecx") 0xc000_0080u32, out("eax") _, out("edx") _),
            StepInsn::Out => step_asm!(info, late, [], ["out 0x80, al"], [], in("al") 0u8),
            StepInsn::In => {
                step_asm!(info, late, [], ["in al, dx"], [], in("dx") 0x2e8u16, out("al") _)
            }
            StepInsn::RepOutsb => step_asm!(info, late, [], ["rep outsb"], [],
                in("dx") 0x2e8u16, inout("rsi") a => _, inout("rcx") 1u64 => _),
            StepInsn::MovCr3 => step_asm!(info, late, [], ["mov cr3, {v}"], [], v = in(reg) a),
            StepInsn::Store => step_asm!(info, late, [], ["mov qword ptr [{p}], {v}"], [],
                p = in(reg) a, v = in(reg) b),
        }
    }
    (info, late != 0, LAST_DR6.load(Ordering::Relaxed))
}

/// `REP OUTSB` (or, with `ins`, `REP INSB`) of `n` bytes at `buf`, port
/// 0x2e8 (no device), with RFLAGS.TF set: (exinfo of the first #DB, RCX at
/// it, where it came: 2 at the REP instruction itself (between iterations),
/// 0 right after it, 1 one instruction late; DR6 at it).
pub fn probe_rep_step(ins: bool, buf: u64, n: u64) -> (u64, u64, u64, u64) {
    let (info, at, rcx): (u64, u64, u64);
    LAST_DR6.store(0, Ordering::Relaxed);
    // SAFETY: the string instruction reads (OUTS) or writes (INS) `n` bytes
    // at `buf`, which the caller owns; port 0x2e8 has no device. The #DB it
    // raises is caught by the exception table, whose handler clears TF.
    unsafe {
        if ins {
            asm!(
                "xor r11d, r11d",
                "xor r10d, r10d",
                "pushfq",
                "or qword ptr [rsp], 0x100",
                "popfq",
                "6: rep insb",
                "3: inc r10",
                "5: jmp 4f",
                "7: mov r10d, 2",
                "4:",
                extable!("6b" => "7b", "3b" => "4b", "5b" => "4b"),
                out("r11") info,
                out("r10") at,
                in("dx") 0x2e8u16,
                inout("rdi") buf => _,
                inout("rcx") n => rcx,
            );
        } else {
            asm!(
                "xor r11d, r11d",
                "xor r10d, r10d",
                "pushfq",
                "or qword ptr [rsp], 0x100",
                "popfq",
                "6: rep outsb",
                "3: inc r10",
                "5: jmp 4f",
                "7: mov r10d, 2",
                "4:",
                extable!("6b" => "7b", "3b" => "4b", "5b" => "4b"),
                out("r11") info,
                out("r10") at,
                in("dx") 0x2e8u16,
                inout("rsi") buf => _,
                inout("rcx") n => rcx,
            );
        }
    }
    (info, rcx, at, LAST_DR6.load(Ordering::Relaxed))
}

/// `STI; VMCALL` (`xen_version`), from IF clear, then two `NOP`s and `CLI`:
/// the addresses of the instruction right after the `VMCALL` and of the one
/// after that. An upcall pending before the `STI` must interrupt the first:
/// the `VMCALL` ends the `STI` shadow when it completes.
pub fn probe_sti_vmcall() -> (u64, u64) {
    let (after, later): (u64, u64);
    // SAFETY: xen_version(XENVER_version) reads and writes no memory; IF is
    // set for two instructions, and every vector has a handler.
    unsafe {
        asm!(
            "lea {a}, [rip + 2f]",
            "lea {b}, [rip + 3f]",
            "sti",
            "vmcall",
            "2: nop",
            "3: nop",
            "cli",
            a = out(reg) after,
            b = out(reg) later,
            inout("rax") 17u64 => _,
            in("rdi") 0u64,
        );
    }
    (after, later)
}

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
struct Pages<const N: usize>([[u64; 512]; N]);

/// The native page tables: in `.bss`, so inside the image and its frame list.
static mut NATIVE_TABLES: Pages<NATIVE_PT_FRAMES> = Pages([[0; 512]; NATIVE_PT_FRAMES]);
/// The native frame list (PFN -> machine frame).
static mut NATIVE_MFN_LIST: [u64; NATIVE_MAX_PAGES] = [0; NATIVE_MAX_PAGES];
/// The native start_info page (encoded).
#[repr(C, align(4096))]
struct InfoPage([u8; 4096]);
static mut NATIVE_START_INFO: InfoPage = InfoPage([0; 4096]);

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
extern "C" fn native_start(mbi: u32) -> ! {
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
unsafe fn read_multiboot(mbi: u32) -> crate::native::Multiboot {
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

// ---------------------------------------------------------------------------
// Patchable call sites (paravirt_ops' patching, static_call style).
//
// A hot operation is called through a *site*: `call qword ptr [rip + slot]`
// (FF 15 disp32, six bytes), where `slot` holds the chosen implementation's
// address, and the pair (site, slot) is recorded in `.pv_sites`. Once the table
// is chosen, `pvops::patch` rewrites each site into `cs call rel32` (2E E8
// rel32, the same six bytes, one instruction): a direct call, with no load of
// the slot and no indirect branch; or, where the native instruction fits, into
// that instruction and a five-byte NOP (CLI or STI).
// ---------------------------------------------------------------------------

/// One recorded site: the address of its `call` and of its slot.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PvSite {
    /// The call instruction.
    pub site: u64,
    /// The slot it reads.
    pub slot: u64,
}

extern "C" {
    static __pv_sites_start: PvSite;
    static __pv_sites_end: PvSite;
}

/// The recorded sites.
pub fn pv_sites() -> &'static [PvSite] {
    let start = &raw const __pv_sites_start;
    let end = &raw const __pv_sites_end;
    let n = (end as usize - start as usize) / core::mem::size_of::<PvSite>();
    // SAFETY: the linker script brackets `.pv_sites`, which holds only the
    // 16-byte records the sites below emit.
    unsafe { core::slice::from_raw_parts(start, n) }
}

/// The slots of the patchable operations: each holds an `extern "C" fn` address.
pub mod slots {
    use core::sync::atomic::AtomicU64;
    /// `cpu.irq_disable`.
    pub static IRQ_DISABLE: AtomicU64 = AtomicU64::new(0);
    /// `cpu.irq_enable`.
    pub static IRQ_ENABLE: AtomicU64 = AtomicU64::new(0);
    /// `time.clock_ns`.
    pub static CLOCK_NS: AtomicU64 = AtomicU64::new(0);
}

macro_rules! pv_site {
    ($slot:path $(, $($args:tt)*)?) => {
        asm!(
            "2: call qword ptr [rip + {slot}]",
            ".pushsection .pv_sites, \"a\"",
            ".balign 8",
            ".quad 2b, {slot}",
            ".popsection",
            slot = sym $slot,
            $($($args)*,)?
            clobber_abi("C"),
        )
    };
}

/// `cpu.irq_disable` through its patchable site.
pub fn site_irq_disable() {
    // SAFETY: the slot holds an `extern "C" fn()` (set by `pvops::init` before
    // any site runs); the C ABI's caller-saved registers are clobbered.
    unsafe { pv_site!(slots::IRQ_DISABLE) };
}

/// `cpu.irq_enable` through its patchable site.
pub fn site_irq_enable() {
    // SAFETY: as `site_irq_disable`.
    unsafe { pv_site!(slots::IRQ_ENABLE) };
}

/// `time.clock_ns` through its patchable site.
pub fn site_clock_ns() -> u64 {
    let v: u64;
    // SAFETY: as `site_irq_disable`; the slot holds an `extern "C" fn() -> u64`.
    unsafe { pv_site!(slots::CLOCK_NS, out("rax") v) };
    v
}

/// `cpu.irq_disable` through the same instruction as its site, but not
/// recorded: never patched (what every site costs before patching).
pub fn unpatched_irq_disable() {
    // SAFETY: as `site_irq_disable`.
    unsafe {
        asm!("call qword ptr [rip + {slot}]", slot = sym slots::IRQ_DISABLE, clobber_abi("C"))
    };
}

/// The six bytes at a site.
pub fn site_bytes(site: u64) -> [u8; 6] {
    assert!(pv_sites().iter().any(|s| s.site == site));
    // SAFETY: `site` is a recorded call instruction in our own text.
    unsafe { core::ptr::read_volatile(site as *const [u8; 6]) }
}

/// Write `bytes` over a recorded site. The caller has made its page writable;
/// the CPUID after the write serialises, so the new instruction is the one
/// fetched from then on (same CPU: no cross-modifying code).
pub fn write_site(site: u64, bytes: [u8; 6]) {
    assert!(pv_sites().iter().any(|s| s.site == site));
    // SAFETY: `site` is a recorded six-byte call in our own text, mapped
    // writable by the caller; one CPU, interrupts are not taken inside a site
    // being rewritten because no site is running while we patch.
    unsafe { core::ptr::write_volatile(site as *mut [u8; 6], bytes) };
    let _ = cpuid(0, 0);
}
