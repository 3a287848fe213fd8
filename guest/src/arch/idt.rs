//! The IDT, the exception stubs and the exception handler.

use super::*;

pub(super) static mut IDT: [u64; 512] = [0; 512];

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
pub(super) struct Frame {
    pub(super) gpr: [u64; 15],
    pub(super) vector: u64,
    pub(super) error_code: u64,
    pub(super) rip: u64,
    pub(super) cs: u64,
    pub(super) rflags: u64,
    pub(super) rsp: u64,
    pub(super) ss: u64,
}

/// Index of R11 in [`Frame::gpr`]: the register a probe's fixup receives exinfo in.
pub(super) const GPR_R11: usize = 10;

pub(super) fn load_idt() {
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

/// Load the IDT vCPU 0 built (a secondary vCPU's start of day: its IDTR
/// starts empty).
pub(super) fn reload_idt() {
    let ptr = DescriptorPointer {
        limit: (core::mem::size_of::<[u64; 512]>() - 1) as u16,
        base: &raw const IDT as u64,
    };
    // SAFETY: vCPU 0's `load_idt` filled every gate before any other vCPU
    // was started.
    unsafe { asm!("lidt [{}]", in(reg) &ptr, options(nostack)) };
}

/// The IST slot a test may point a vector at ([`set_vector_stack`]).
pub(super) const IST_TEST: u64 = 3;

/// The IST a vector uses normally.
pub(super) const fn default_ist(vector: u8) -> u64 {
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
pub(super) fn extable() -> &'static [ExEntry] {
    let start = &raw const __ex_table_start;
    let end = &raw const __ex_table_end;
    let n = (end as usize - start as usize) / core::mem::size_of::<ExEntry>();
    // SAFETY: the linker script brackets `.ex_table` with these symbols; it holds
    // only 16-byte entries emitted by the probes below, 8-aligned.
    unsafe { core::slice::from_raw_parts(start, n) }
}

/// CR2 of the last `#PF` a probe took.
pub(super) static LAST_CR2: AtomicU64 = AtomicU64::new(0);

/// RFLAGS.TF.
pub(super) const RFLAGS_TF: u64 = 1 << 8;
/// DR6's value with no debug condition recorded.
pub(super) const DR6_RESET: u64 = 0xffff_0ff0;
/// DR6 at the last expected `#DB`.
pub(super) static LAST_DR6: AtomicU64 = AtomicU64::new(0);

/// DR6 as the last `#DB` a probe took found it.
pub fn last_db_dr6() -> u64 {
    LAST_DR6.load(Ordering::Relaxed)
}

/// CR2 of the last expected `#PF`.
pub fn last_fault_cr2() -> u64 {
    LAST_CR2.load(Ordering::Relaxed)
}

pub(super) extern "C" fn exception_handler(f: &mut Frame) {
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
pub(super) fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
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
