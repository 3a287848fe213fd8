//! # Guest user mode: run one instruction at CPL3
//!
//! A guest kernel's user/kernel boundary is the guest's own, and the hypervisor
//! must keep it (docs/abi/README.md, "Privilege"). To test that from inside,
//! this module runs single instructions in ring 3 and comes back: the kernel
//! makes two pages user-accessible (one of code, one of data, each alone in its
//! page; everything else stays supervisor-only), enters CPL3 with IRETQ at one of
//! the code page's instructions, and the instruction is followed by
//! `INT 0x81`, a DPL3 gate the kernel's handler turns back into a return from
//! [`run`]. The instruction's own faults go through the exception table, as the
//! kernel's probes do ([`crate::fault`]), and are returned.

use crate::abi::errno::Errno;
use crate::abi::guest::mmu_update;
use crate::abi::hypercall::Hypercall;
use crate::abi::mmu::{MmuUpdate, MMU_NORMAL_PT_UPDATE};
use crate::abi::GuestVirt;
use crate::arch;
use crate::fault::{decode_exinfo, Fault, StringIoEnd};
use crate::pagetable::{cr3_mfn, read_entry, PteFlags};

/// What [`run`] executes at CPL3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserOp {
    /// `VMCALL` (a hypercall from user mode).
    Vmcall,
    /// `REP INSB` (needs IOPL=3).
    RepInsb,
    /// `REP OUTSB` (needs IOPL=3).
    RepOutsb,
    /// `MOV RAX, [RDI]`.
    Read,
}

/// RFLAGS.IOPL = 3: user mode may execute port I/O.
pub const IOPL3: u64 = 3 << 12;
/// RFLAGS.TF.
pub const TF: u64 = 1 << 8;

/// Register slots of [`run`]'s array.
const RAX: usize = 0;
const RCX: usize = 2;
const RDX: usize = 3;
const RSI: usize = 4;
const RDI: usize = 5;
const R8: usize = 7;
const R10: usize = 9;
const R11: usize = 10;

/// The user-accessible data page (4096 bytes the kernel may also use).
pub fn data_page() -> GuestVirt {
    GuestVirt::new(arch::user_pages().1)
}

/// Set (or clear) U/S on every entry of the walk to `va`.
fn set_user(va: GuestVirt, on: bool) -> Result<(), Errno> {
    let mut table = cr3_mfn();
    for level in [4u32, 3, 2, 1] {
        let i = va.table_index(level);
        let e = read_entry(table, i).map_err(|_| Errno::EFAULT)?;
        if !e.is_present() {
            return Err(Errno::EFAULT);
        }
        let want = if on {
            e.with(PteFlags::USER)
        } else {
            e.without(PteFlags::USER)
        };
        // Upper levels stay user-accessible once set: other pages below them
        // keep their own (clear) U/S, which is what decides.
        if want != e && (on || level == 1) {
            let ptr = (table.get() << 12) + (i as u64) * 8;
            mmu_update(&[MmuUpdate {
                ptr: ptr | MMU_NORMAL_PT_UPDATE,
                val: want.raw(),
            }])
            .1?;
        }
        table = e.frame();
    }
    Ok(())
}

/// Make the code and data pages user-accessible (idempotent).
pub fn enable() -> Result<(), Errno> {
    let (code, data) = arch::user_pages();
    set_user(GuestVirt::new(code), true)?;
    set_user(GuestVirt::new(data), true)
}

/// Make them supervisor-only again (the upper-level entries keep U/S).
pub fn disable() -> Result<(), Errno> {
    let (code, data) = arch::user_pages();
    set_user(GuestVirt::new(code), false)?;
    set_user(GuestVirt::new(data), false)
}

/// Run `op` at CPL3 with these registers (RAX, RBX, RCX, RDX, RSI, RDI, RBP,
/// R8..R15) and RFLAGS bits (IOPL, TF): the registers afterwards. [`enable`]
/// first.
pub fn run(op: UserOp, regs: [u64; 15], rflags: u64) -> [u64; 15] {
    arch::run_user(op, regs, rflags)
}

fn fault_of(regs: &[u64; 15]) -> Result<(), Fault> {
    match decode_exinfo(regs[R11], arch::last_fault_cr2()) {
        None => Ok(()),
        Some(f) => Err(f),
    }
}

/// A hypercall from user mode (the Xen register convention): its RAX.
pub fn hypercall(nr: Hypercall, args: [u64; 5]) -> i64 {
    let mut r = [0u64; 15];
    r[RAX] = nr.0;
    r[RDI] = args[0];
    r[RSI] = args[1];
    r[RDX] = args[2];
    r[R10] = args[3];
    r[R8] = args[4];
    run(UserOp::Vmcall, r, 0)[RAX] as i64
}

/// `REP INSB` of `count` bytes from `port` to `va` at CPL3 with IOPL=3: where
/// it stopped, and its fault.
pub fn rep_insb(port: u16, va: GuestVirt, count: u64) -> (StringIoEnd, Result<(), Fault>) {
    let mut r = [0u64; 15];
    r[RDX] = u64::from(port);
    r[RDI] = va.get();
    r[RCX] = count;
    let out = run(UserOp::RepInsb, r, IOPL3);
    (
        StringIoEnd {
            ptr: out[RDI],
            rcx: out[RCX],
        },
        fault_of(&out),
    )
}

/// `REP OUTSB` of `count` bytes at `va` to `port` at CPL3 with IOPL=3.
pub fn rep_outsb(port: u16, va: GuestVirt, count: u64) -> (StringIoEnd, Result<(), Fault>) {
    let mut r = [0u64; 15];
    r[RDX] = u64::from(port);
    r[RSI] = va.get();
    r[RCX] = count;
    let out = run(UserOp::RepOutsb, r, IOPL3);
    (
        StringIoEnd {
            ptr: out[RSI],
            rcx: out[RCX],
        },
        fault_of(&out),
    )
}

/// Read 8 bytes at `va` from user mode.
pub fn read_u64(va: GuestVirt) -> Result<u64, Fault> {
    let mut r = [0u64; 15];
    r[RDI] = va.get();
    let out = run(UserOp::Read, r, 0);
    fault_of(&out).map(|()| out[RAX])
}
