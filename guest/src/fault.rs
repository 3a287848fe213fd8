//! Expected faults, the XTF way: an exception table.
//!
//! Some tests must run an instruction that has to fault (a write through a
//! read-only mapping, a WRMSR the hypervisor must refuse, a VMX instruction) and
//! then carry on. Each such instruction is emitted by a probe in [`crate::arch`]
//! together with an entry `{fault_rip, fixup_rip}` in the `.ex_table` section. When
//! an exception arrives, the handler looks the faulting RIP up in that table
//! ([`lookup`]); on a hit it puts the exception's description ("exinfo": vector and
//! error code, see [`encode_exinfo`]) into R11 and resumes at the fixup, where the
//! probe returns it. The probe's safe wrapper here turns that into
//! `Err(Fault { vector, error_code, cr2 })`. A miss is an unexpected exception: the
//! test ends as CRASH with a register dump.
//!
//! The table is data built by the assembler next to the instruction, so a probe
//! cannot forget its entry, and no code runs to register it.

use core::fmt;

use crate::abi::GuestVirt;
use crate::arch;

/// An exception vector.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vector(pub u8);

impl Vector {
    /// Divide error.
    pub const DE: Vector = Vector(0);
    /// Debug.
    pub const DB: Vector = Vector(1);
    /// Non-maskable interrupt.
    pub const NMI: Vector = Vector(2);
    /// Breakpoint (a trap: RIP points after the `int3`).
    pub const BP: Vector = Vector(3);
    /// Overflow.
    pub const OF: Vector = Vector(4);
    /// BOUND range exceeded.
    pub const BR: Vector = Vector(5);
    /// Invalid opcode.
    pub const UD: Vector = Vector(6);
    /// Device not available.
    pub const NM: Vector = Vector(7);
    /// Double fault.
    pub const DF: Vector = Vector(8);
    /// Invalid TSS.
    pub const TS: Vector = Vector(10);
    /// Segment not present.
    pub const NP: Vector = Vector(11);
    /// Stack-segment fault.
    pub const SS: Vector = Vector(12);
    /// General protection.
    pub const GP: Vector = Vector(13);
    /// Page fault.
    pub const PF: Vector = Vector(14);
    /// x87 floating-point error.
    pub const MF: Vector = Vector(16);
    /// Alignment check.
    pub const AC: Vector = Vector(17);
    /// Machine check.
    pub const MC: Vector = Vector(18);
    /// SIMD floating-point.
    pub const XM: Vector = Vector(19);
    /// Virtualisation exception.
    pub const VE: Vector = Vector(20);
    /// Control protection.
    pub const CP: Vector = Vector(21);

    /// The mnemonic (`"#GP"`), or `None` for reserved vectors and interrupts.
    pub const fn mnemonic(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "#DE",
            1 => "#DB",
            2 => "NMI",
            3 => "#BP",
            4 => "#OF",
            5 => "#BR",
            6 => "#UD",
            7 => "#NM",
            8 => "#DF",
            9 => "#CSO",
            10 => "#TS",
            11 => "#NP",
            12 => "#SS",
            13 => "#GP",
            14 => "#PF",
            16 => "#MF",
            17 => "#AC",
            18 => "#MC",
            19 => "#XM",
            20 => "#VE",
            21 => "#CP",
            28 => "#HV",
            29 => "#VC",
            30 => "#SX",
            _ => return None,
        })
    }

    /// Whether the CPU pushes an error code for this vector.
    pub const fn has_error_code(self) -> bool {
        matches!(self.0, 8 | 10 | 11 | 12 | 13 | 14 | 17 | 21 | 29 | 30)
    }
}

impl fmt::Debug for Vector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Vector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mnemonic() {
            Some(m) => f.write_str(m),
            None => write!(f, "vector {}", self.0),
        }
    }
}

/// `#PF` error code bits.
pub mod pf {
    /// The page was present (a protection violation, not a missing page).
    pub const PRESENT: u32 = 1 << 0;
    /// The access was a write.
    pub const WRITE: u32 = 1 << 1;
    /// The access was at CPL3.
    pub const USER: u32 = 1 << 2;
    /// A reserved bit was set in a paging-structure entry.
    pub const RSVD: u32 = 1 << 3;
    /// The access was an instruction fetch.
    pub const INSTR: u32 = 1 << 4;
}

/// An exception a probe took instead of completing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The vector.
    pub vector: Vector,
    /// The error code (0 for vectors without one).
    pub error_code: u32,
    /// CR2 for `#PF` (the faulting linear address), 0 otherwise.
    pub cr2: u64,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.vector.has_error_code() {
            write!(f, "{}[{:04x}]", self.vector, self.error_code)?;
        } else {
            write!(f, "{}", self.vector)?;
        }
        if self.vector == Vector::PF {
            write!(f, " at {:#x}", self.cr2)?;
        }
        Ok(())
    }
}

/// The "valid" flag of an exinfo word (so that vector 0, error 0 is not "no fault").
const EXINFO_VALID: u64 = 1 << 63;

/// Encode an exception for the fixup register: `valid | vector << 32 | error code`.
pub const fn encode_exinfo(vector: u8, error_code: u32) -> u64 {
    EXINFO_VALID | ((vector as u64) << 32) | error_code as u64
}

/// Decode what a probe returned: `None` if the instruction completed.
pub const fn decode_exinfo(info: u64, cr2: u64) -> Option<Fault> {
    if info & EXINFO_VALID == 0 {
        return None;
    }
    let vector = Vector((info >> 32) as u8);
    Some(Fault {
        vector,
        error_code: info as u32,
        cr2: if vector.0 == Vector::PF.0 { cr2 } else { 0 },
    })
}

/// One exception-table entry, as the probes emit it (`.quad fault, fixup`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExEntry {
    /// RIP the exception reports: the faulting instruction (the next one for traps).
    pub fault: u64,
    /// Where to resume.
    pub fixup: u64,
}

/// Find the fixup for an exception at `rip`.
pub fn lookup(table: &[ExEntry], rip: u64) -> Option<u64> {
    table.iter().find(|e| e.fault == rip).map(|e| e.fixup)
}

fn result(info: u64) -> Result<(), Fault> {
    match decode_exinfo(info, arch::last_fault_cr2()) {
        None => Ok(()),
        Some(f) => Err(f),
    }
}

/// Read 8 bytes at `va`; a fault (unmapped, non-canonical) is returned, not fatal.
pub fn read_u64(va: GuestVirt) -> Result<u64, Fault> {
    let (v, info) = arch::probe_read_u64(va.get());
    result(info).map(|_| v)
}

/// Probe write permission at `va`: read the 8 bytes there and write the same value
/// back. Memory is unchanged whether or not the write is allowed, so this is safe
/// to aim at anything (page tables, the image); a refused write returns the `#PF`.
pub fn rewrite_u64(va: GuestVirt) -> Result<(), Fault> {
    result(arch::probe_rewrite_u64(va.get()))
}

/// Store `value` at `va` (one 8-byte `MOV`); a fault is returned, not fatal.
/// Unlike [`rewrite_u64`] this changes memory: aim it only at the test's own
/// pages, or at page-table entries (which the hypervisor validates).
pub fn write_u64(va: GuestVirt, value: u64) -> Result<(), Fault> {
    result(arch::probe_write_u64(va.get(), value))
}

/// Where a `REP` string I/O instruction stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StringIoEnd {
    /// RSI (OUTS) or RDI (INS) afterwards.
    pub ptr: u64,
    /// RCX afterwards: the elements not done.
    pub rcx: u64,
}

/// `REP OUTSB` of `count` bytes at `va` to `port`; a fault is returned with where
/// the instruction stopped. Reads memory only: safe to aim anywhere.
pub fn rep_outsb(port: u16, va: GuestVirt, count: u64) -> (StringIoEnd, Result<(), Fault>) {
    let (ptr, rcx, info) = arch::probe_rep_outsb(port, va.get(), count);
    (StringIoEnd { ptr, rcx }, result(info))
}

/// `REP OUTSB` through an FS (`gs == false`) or GS override: `count` bytes at
/// that segment's base + `offset` to `port`; RSI is the offset afterwards.
pub fn seg_rep_outsb(
    gs: bool,
    port: u16,
    offset: u64,
    count: u64,
) -> (StringIoEnd, Result<(), Fault>) {
    let (ptr, rcx, info) = arch::probe_seg_rep_outsb(gs, port, offset, count);
    (StringIoEnd { ptr, rcx }, result(info))
}

/// `REP INSB` of `count` bytes from `port` to `va`; a fault is returned with
/// where the instruction stopped. Like [`write_u64`] this changes memory: aim it
/// only at the test's own buffers, or at memory the guest cannot write.
pub fn rep_insb(port: u16, va: GuestVirt, count: u64) -> (StringIoEnd, Result<(), Fault>) {
    let (ptr, rcx, info) = arch::probe_rep_insb(port, va.get(), count);
    (StringIoEnd { ptr, rcx }, result(info))
}

/// `RDMSR`.
pub fn rdmsr(msr: u32) -> Result<u64, Fault> {
    let (v, info) = arch::probe_rdmsr(msr);
    result(info).map(|_| v)
}

/// `WRMSR`. Meant for MSRs the hypervisor must refuse; a write that succeeds takes
/// effect, so the test decides what it can afford to change.
pub fn wrmsr(msr: u32, value: u64) -> Result<(), Fault> {
    result(arch::probe_wrmsr(msr, value))
}

/// A control register a probe may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cr {
    /// CR0.
    Cr0,
    /// CR3.
    Cr3,
    /// CR4.
    Cr4,
}

/// `MOV CRn, value`. A write that succeeds takes effect (a bad CR3 then ends the
/// test as CRASH, which is what such a test should report).
pub fn write_cr(cr: Cr, value: u64) -> Result<(), Fault> {
    result(arch::probe_write_cr(cr, value))
}

/// Read CR0, CR3 or CR4 (never faults at CPL0).
pub fn read_cr(cr: Cr) -> u64 {
    arch::read_cr(cr)
}

/// The VMX instructions a guest may try; in VMX non-root mode each one exits to
/// the hypervisor, which must make it behave as on a CPU with VMX off (`#UD`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmxInsn {
    /// `VMXON [m64]` (operand: a zeroed page-aligned address).
    Vmxon,
    /// `VMXOFF`.
    Vmxoff,
    /// `VMCLEAR [m64]`.
    Vmclear,
    /// `VMPTRLD [m64]`.
    Vmptrld,
    /// `VMPTRST [m64]`.
    Vmptrst,
    /// `VMREAD r64, r64` (field 0: VPID).
    Vmread,
    /// `VMWRITE r64, r64` (field 0: VPID).
    Vmwrite,
    /// `VMLAUNCH`.
    Vmlaunch,
    /// `VMRESUME`.
    Vmresume,
    /// `INVEPT r64, [m128]`.
    Invept,
    /// `INVVPID r64, [m128]`.
    Invvpid,
    /// `VMFUNC` (EAX = 0).
    Vmfunc,
}

impl VmxInsn {
    /// Every VMX instruction a probe can issue.
    pub const ALL: [VmxInsn; 12] = [
        VmxInsn::Vmxon,
        VmxInsn::Vmxoff,
        VmxInsn::Vmclear,
        VmxInsn::Vmptrld,
        VmxInsn::Vmptrst,
        VmxInsn::Vmread,
        VmxInsn::Vmwrite,
        VmxInsn::Vmlaunch,
        VmxInsn::Vmresume,
        VmxInsn::Invept,
        VmxInsn::Invvpid,
        VmxInsn::Vmfunc,
    ];
}

/// Issue a VMX instruction.
pub fn vmx(insn: VmxInsn) -> Result<(), Fault> {
    result(arch::probe_vmx(insn))
}

/// Other privileged or sensitive instructions a probe can issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insn {
    /// `INVD`: always exits in VMX non-root mode.
    Invd,
    /// `WBINVD`.
    Wbinvd,
    /// `UD2`: always `#UD` (a self-test of the exception table).
    Ud2,
    /// `INT3`: `#BP`, a trap (a self-test of trap handling).
    Int3,
    /// `XSETBV` with ECX = 0 and an invalid value (XCR0 = 0: x87 must be set).
    XsetbvInvalid,
    /// `RDPMC` of counter 0.
    Rdpmc,
    /// `GETSEC` (SMX is hidden: `#UD`).
    Getsec,
    /// `DIV` by zero: `#DE`.
    DivideByZero,
    /// `ICEBP` (`INT1`, opcode F1): `#DB`, a trap. In VMX non-root mode it is a
    /// "privileged software exception", which a hypervisor intercepting `#DB` must
    /// re-inject as such.
    Icebp,
    /// The same `ICEBP`, recoverable only by a fault that reports the instruction
    /// itself (what QEMU's TCG raises for it: `#UD`); a trap after it is not
    /// expected here, as a fault at it is not by [`Insn::Icebp`].
    IcebpFaulting,
    /// `FNOP`: an x87 instruction, `#NM` while CR0.TS is set.
    Fnop,
    /// `MONITOR` (RAX = a stack address, ECX = EDX = 0).
    Monitor,
    /// `MWAIT` (EAX = ECX = 0).
    Mwait,
    /// `RDTSCP`.
    Rdtscp,
    /// A load through RSP plus a non-canonical offset: `#SS(0)` (not `#GP`: the
    /// stack segment is the one addressed).
    StackNonCanonical,
}

/// `XSETBV`: load XCR `xcr` (0 is XCR0) with `value`.
pub fn xsetbv(xcr: u32, value: u64) -> Result<(), Fault> {
    result(arch::probe_xsetbv(xcr, value))
}

/// `XGETBV`: read XCR `xcr`.
pub fn xgetbv(xcr: u32) -> Result<u64, Fault> {
    let (v, info) = arch::probe_xgetbv(xcr);
    result(info).map(|_| v)
}

/// Write `value` to DR0 (or DR7) and read it back.
pub fn write_read_dr(dr7: bool, value: u64) -> Result<u64, Fault> {
    let (v, info) = arch::probe_dr(dr7, value);
    result(info).map(|_| v)
}

/// Issue one of [`Insn`].
pub fn insn(i: Insn) -> Result<(), Fault> {
    result(arch::probe_insn(i))
}

/// The instruction [`single_step`] executes with RFLAGS.TF set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepInsn {
    /// `VMCALL`: xen_version(XENVER_version).
    Vmcall,
    /// `CPUID` leaf 0.
    Cpuid,
    /// `RDMSR` of IA32_EFER.
    Rdmsr,
    /// `OUT 0x80, AL`.
    Out,
    /// `IN AL, DX` from an empty port (0x2e8).
    In,
    /// `REP OUTSB` of 1 byte at `a` to an empty port.
    RepOutsb,
    /// `MOV CR3, a`.
    MovCr3,
    /// `MOV [a], b`: an 8-byte store (into a page-table entry, emulated).
    Store,
}

/// How a single-stepped instruction ended ([`single_step`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SingleStep {
    /// The #DB that followed it (`None`: none was caught).
    pub db: Option<Fault>,
    /// The #DB came one instruction late (after the next instruction).
    pub late: bool,
    /// DR6 at that #DB.
    pub dr6: u64,
}

/// DR6.BS: the #DB was a single-step trap.
pub const DR6_BS: u64 = 1 << 14;

/// Execute `insn` once with RFLAGS.TF set and report the single-step trap.
pub fn single_step(insn: StepInsn, a: u64, b: u64) -> SingleStep {
    let (info, late, dr6) = arch::probe_single_step(insn, a, b);
    SingleStep {
        db: decode_exinfo(info, 0),
        late,
        dr6,
    }
}

/// Report FAILURE unless `r` is a fault with `vector` (and, when given, `error_code`).
/// `what` names the operation in the message. Returns whether it matched.
pub fn expect_fault<T: fmt::Debug>(
    what: fmt::Arguments<'_>,
    r: Result<T, Fault>,
    vector: Vector,
    error_code: Option<u32>,
) -> bool {
    match r {
        Ok(v) => {
            crate::failure!("{what}: completed ({v:?}), expected {vector}");
            false
        }
        Err(f) if f.vector != vector => {
            crate::failure!("{what}: took {f}, expected {vector}");
            false
        }
        Err(f) => match error_code {
            Some(ec) if ec != f.error_code => {
                crate::failure!("{what}: took {f}, expected error code {ec:#06x}");
                false
            }
            _ => true,
        },
    }
}

/// Report FAILURE if `r` faulted; returns the value if it did not.
pub fn expect_no_fault<T>(what: fmt::Arguments<'_>, r: Result<T, Fault>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(f) => {
            crate::failure!("{what}: unexpected {f}");
            None
        }
    }
}

/// The machine state at an exception nobody expected, for the crash report.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExceptionState {
    /// General-purpose registers: RAX, RBX, RCX, RDX, RSI, RDI, RBP, R8..R15.
    pub gpr: [u64; 15],
    /// Vector.
    pub vector: u64,
    /// Error code (0 if the vector has none).
    pub error_code: u64,
    /// RIP, CS, RFLAGS, RSP, SS as pushed by the CPU.
    pub rip: u64,
    /// CS.
    pub cs: u64,
    /// RFLAGS.
    pub rflags: u64,
    /// RSP.
    pub rsp: u64,
    /// SS.
    pub ss: u64,
    /// CR2 at the exception.
    pub cr2: u64,
    /// CR3 at the exception.
    pub cr3: u64,
}

/// The general-purpose registers in the order the exception frame and
/// [`crate::arch::vmcall_all_regs`] use.
pub const GPR_NAMES: [&str; 15] = [
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
    "r15",
];

/// Print the register dump and end the test as CRASH. Called by the exception
/// handler for anything not in the exception table.
pub fn unexpected(st: &ExceptionState) -> ! {
    let v = Vector(st.vector as u8);
    let p = crate::console::emergency_print;
    p(format_args!(
        "** unexpected exception {} (vector {}), error code {:#x}, at rip {:#018x} **\n",
        v, st.vector, st.error_code, st.rip
    ));
    p(format_args!(
        "   cs {:#06x} rflags {:#010x} rsp {:#018x} ss {:#06x} cr2 {:#018x} cr3 {:#018x}\n",
        st.cs, st.rflags, st.rsp, st.ss, st.cr2, st.cr3
    ));
    for (names, vals) in GPR_NAMES.chunks(4).zip(st.gpr.chunks(4)) {
        let mut line = crate::report::Reason::new();
        for (n, val) in names.iter().zip(vals) {
            let _ = fmt::Write::write_fmt(&mut line, format_args!("{n:>4} {val:#018x} "));
        }
        p(format_args!("  {line}\n"));
    }
    if v == Vector::PF {
        crate::report::crash(format_args!(
            "unexpected {}[{:04x}] at rip {:#x}, cr2 {:#x}",
            v, st.error_code, st.rip, st.cr2
        ))
    } else if v.has_error_code() {
        crate::report::crash(format_args!(
            "unexpected {}[{:04x}] at rip {:#x}",
            v, st.error_code, st.rip
        ))
    } else {
        crate::report::crash(format_args!("unexpected {} at rip {:#x}", v, st.rip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exinfo_round_trip() {
        assert_eq!(decode_exinfo(0, 0), None);
        let f = decode_exinfo(encode_exinfo(0, 0), 0x1234).unwrap();
        assert_eq!(f.vector, Vector::DE);
        assert_eq!(f.cr2, 0);
        let f = decode_exinfo(encode_exinfo(14, 3), 0x1234).unwrap();
        assert_eq!(
            f,
            Fault {
                vector: Vector::PF,
                error_code: 3,
                cr2: 0x1234
            }
        );
    }

    #[test]
    fn lookup_finds_exact_rip_only() {
        let t = [
            ExEntry {
                fault: 0x1000,
                fixup: 0x1010,
            },
            ExEntry {
                fault: 0x2000,
                fixup: 0x2008,
            },
        ];
        assert_eq!(lookup(&t, 0x2000), Some(0x2008));
        assert_eq!(lookup(&t, 0x2001), None);
        assert_eq!(lookup(&[], 0x2000), None);
    }

    #[test]
    fn names() {
        extern crate std;
        use std::format;
        assert_eq!(format!("{}", Vector::GP), "#GP");
        assert_eq!(format!("{}", Vector(40)), "vector 40");
        let f = Fault {
            vector: Vector::PF,
            error_code: 3,
            cr2: 0x40_5000,
        };
        assert_eq!(format!("{f}"), "#PF[0003] at 0x405000");
        assert!(Vector::GP.has_error_code() && !Vector::UD.has_error_code());
    }
}
