//! Single-stepping one exiting instruction.

use super::*;

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
