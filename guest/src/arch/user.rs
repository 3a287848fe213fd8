//! User mode (ring 3): run one instruction there and come back.

use super::*;

/// The vector user mode returns to the kernel by (a DPL3 gate).
pub const USER_RETURN_VECTOR: u8 = 0x81;

pub use crate::user::UserOp;

// The user-mode code and data, each alone in its page (the section and its
// end are page aligned), so that making these two pages user-accessible
// exposes nothing else.
global_asm!(
    concat!(
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
"#,
        push_callee_saved!(),
        r#"
    movq %rsp, {kernel_rsp}(%rip)
    pushq ${user_ss}
    pushq $0
    pushq %rdx
    pushq ${user_cs}
    pushq %rsi
"#,
        load_gprs_from_rdi!(),
        r#"
    iretq
    .global keel_user_resume
keel_user_resume:
    movl ${data}, %eax
    movl %eax, %ds
    movl %eax, %es
"#,
        pop_callee_saved!(),
        r#"
    ret
    .popsection
    "#,
    ),
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
pub(super) static mut KERNEL_RSP: u64 = 0;
pub(super) static KERNEL_RFLAGS: AtomicU64 = AtomicU64::new(0);
/// The user-mode GPRs: loaded on the way in, stored on the way out (order
/// RAX, RBX, RCX, RDX, RSI, RDI, RBP, R8..R15, as in [`Frame::gpr`]).
pub(super) static mut USER_REGS: [u64; 15] = [0; 15];

/// The user-mode code page and the user-mode data page.
pub fn user_pages() -> (u64, u64) {
    (
        &raw const keel_user_page as u64,
        &raw const keel_user_data as u64,
    )
}

/// `INT USER_RETURN_VECTOR` from CPL3: keep user mode's registers and return
/// to the kernel where [`run_user`] left it.
pub(super) fn user_returned(f: &mut Frame) {
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
