//! Fault probes: an instruction that may fault, and what it raised.

use super::*;

// ---------------------------------------------------------------------------
// Fault probes. Each emits its faulting instruction at a local label `2:` (and
// `4:` for a second one), the resume point at `3:`, and the matching `.ex_table`
// entries. R11 is zeroed first; on a fault the handler stores exinfo there. The
// labels avoid 0 and 1, which Intel syntax would read as binary numbers.
// ---------------------------------------------------------------------------

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
            // A fault at the instruction itself, label 2.
            Insn::IcebpFaulting => asm!("xor r11d, r11d", "2: .byte 0xf1", "3:",
                extable!("2b" => "3b"), out("r11") info, options(nostack)),
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
