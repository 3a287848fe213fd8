//! vCPU operations (`vcpu_op`, hypercall 24, beyond its timers): bringing a
//! domain's vCPUs up and down, their run states, and where a vCPU's
//! `vcpu_info` lives: `xen/include/public/vcpu.h`, and the x86_64
//! `vcpu_guest_context` of `arch-x86/xen.h` and `arch-x86/xen-x86_64.h`.
//!
//! Staged for ABI 1.2 (`layout::IN_PROGRESS`): served only to an image that
//! declares 1.2. Reference: `docs/abi/vcpu.md`.
//!
//! Bare-metal difference: on bare metal an operating system starts its other
//! processors with INIT and start-up IPIs at a real-mode trampoline; a Keel
//! guest hands the hypervisor a complete 64-bit register state
//! ([`VcpuGuestContext`]) for a vCPU and asks for it to be brought up.

use crate::event::{rd16, rd32, rd64, wr, Pod};
use crate::layout::{xen, Family};
use crate::version::AbiVersion;

abi_consts! {
    family: Family::Vcpu, since: AbiVersion::V1_2;
    /// `VCPUOP_initialise`: give an offline, never-initialised vCPU its first
    /// register state ([`VcpuGuestContext`]); it stays down until `VCPUOP_up`.
    VCPUOP_INITIALISE: u64 = 0 => xen("VCPUOP_initialise");
    /// `VCPUOP_up`: let an initialised vCPU run (`-ENOMEM` if its domain's
    /// CPU holds no place for it).
    VCPUOP_UP: u64 = 1 => xen("VCPUOP_up");
    /// `VCPUOP_down`: stop a vCPU (the last one up: the domain powers off).
    VCPUOP_DOWN: u64 = 2 => xen("VCPUOP_down");
    /// `VCPUOP_is_up`: 1 if the vCPU is up, 0 if not.
    VCPUOP_IS_UP: u64 = 3 => xen("VCPUOP_is_up");
    /// `VCPUOP_get_runstate_info`: the vCPU's [`VcpuRunstateInfo`].
    VCPUOP_GET_RUNSTATE_INFO: u64 = 4 => xen("VCPUOP_get_runstate_info");
    /// `VCPUOP_register_vcpu_info`: move the vCPU's `vcpu_info` out of
    /// `shared_info` to a frame and offset of the domain's
    /// ([`VcpuRegisterVcpuInfo`]); once per vCPU.
    VCPUOP_REGISTER_VCPU_INFO: u64 = 10 => xen("VCPUOP_register_vcpu_info");
    /// `RUNSTATE_running`: on a physical CPU.
    RUNSTATE_RUNNING: u32 = 0 => xen("RUNSTATE_running");
    /// `RUNSTATE_runnable`: ready to run, waiting for a CPU.
    RUNSTATE_RUNNABLE: u32 = 1 => xen("RUNSTATE_runnable");
    /// `RUNSTATE_blocked`: waiting for an event (`SCHEDOP_block`, `SCHEDOP_poll`, HLT).
    RUNSTATE_BLOCKED: u32 = 2 => xen("RUNSTATE_blocked");
    /// `RUNSTATE_offline`: not runnable for another reason (down, never
    /// brought up, or its domain paused).
    RUNSTATE_OFFLINE: u32 = 3 => xen("RUNSTATE_offline");
    /// `VGCF_i387_valid` in `vcpu_guest_context.flags`: `fpu_ctxt` holds an
    /// FXSAVE image to load (Keel refuses it: a new vCPU starts with the FPU's
    /// reset state).
    VGCF_I387_VALID: u64 = 1 => xen("VGCF_i387_valid");
    /// `VGCF_in_kernel`: the vCPU starts in kernel mode (Keel requires it).
    VGCF_IN_KERNEL: u64 = 4 => xen("VGCF_in_kernel");
    /// `VGCF_failsafe_disables_events` (PV callbacks: Keel refuses it).
    VGCF_FAILSAFE_DISABLES_EVENTS: u64 = 8 => xen("VGCF_failsafe_disables_events");
    /// `VGCF_syscall_disables_events` (PV callbacks: Keel refuses it).
    VGCF_SYSCALL_DISABLES_EVENTS: u64 = 16 => xen("VGCF_syscall_disables_events");
    /// `VGCF_online`: accepted and ignored, as Xen's `arch_set_info_guest` does
    /// (the vCPU comes up with `VCPUOP_up`).
    VGCF_ONLINE: u64 = 32 => xen("VGCF_online");
}

/// `struct vcpu_runstate_info`: what `VCPUOP_get_runstate_info` writes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRunstateInfo {
    /// The current `RUNSTATE_*`.
    pub state: i32,
    /// System time (ns) at which `state` was entered.
    pub state_entry_time: u64,
    /// Nanoseconds spent in each `RUNSTATE_*`, indexed by it; their sum is
    /// the system time since the vCPU was created.
    pub time: [u64; 4],
}

/// `struct vcpu_register_vcpu_info`: where `VCPUOP_register_vcpu_info` puts the
/// vCPU's `vcpu_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterVcpuInfo {
    /// The frame (a machine frame of the domain: Keel domains are direct-paged).
    pub mfn: u64,
    /// The byte offset of the `vcpu_info` in it: 8-byte aligned, and the 64
    /// bytes must fit in the page.
    pub offset: u32,
    /// Unused.
    pub rsvd: u32,
}

/// `struct cpu_user_regs` (x86_64): the general registers of a
/// [`VcpuGuestContext`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct CpuUserRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    /// Xen's private word (ignored).
    pub error_code: u32,
    /// Xen's private word (ignored).
    pub entry_vector: u32,
    pub rip: u64,
    pub cs: u16,
    pub pad0: [u16; 1],
    /// PV's saved event mask (ignored: Keel's upcall mask is in `vcpu_info`).
    pub saved_upcall_mask: u8,
    pub pad1: [u8; 3],
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u16,
    pub pad2: [u16; 3],
    pub es: u16,
    pub pad3: [u16; 3],
    pub ds: u16,
    pub pad4: [u16; 3],
    pub fs: u16,
    pub pad5: [u16; 3],
    pub gs: u16,
    pub pad6: [u16; 3],
}

/// `struct trap_info`: one entry of a PV virtual IDT (Keel guests own a real
/// IDT, so a context with any nonzero entry is refused).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapInfo {
    /// The exception vector.
    pub vector: u8,
    /// Bits 0-3: privilege level; bit 4: clear the event mask.
    pub flags: u8,
    /// The code selector.
    pub cs: u16,
    /// The handler.
    pub address: u64,
}

/// Entries of [`VcpuGuestContext::trap_ctxt`].
const TRAP_ENTRIES: usize = 256;

/// `struct vcpu_guest_context` (x86_64, as a guest sees it): the register
/// state `VCPUOP_initialise` gives a vCPU. What Keel reads of it is listed
/// on `docs/abi/vcpu.md`; the rest must be zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuGuestContext {
    /// An FXSAVE image, used with `VGCF_i387_valid`.
    pub fpu_ctxt: [u8; 512],
    /// `VGCF_*`.
    pub flags: u64,
    /// The general registers, RIP, RFLAGS, RSP and selectors.
    pub user_regs: CpuUserRegs,
    /// PV's virtual IDT.
    pub trap_ctxt: [TrapInfo; TRAP_ENTRIES],
    /// PV's LDT base.
    pub ldt_base: u64,
    /// PV's LDT entries.
    pub ldt_ents: u64,
    /// PV's GDT frames.
    pub gdt_frames: [u64; 16],
    /// PV's GDT entries.
    pub gdt_ents: u64,
    /// PV's ring-1 stack selector.
    pub kernel_ss: u64,
    /// PV's ring-1 stack pointer.
    pub kernel_sp: u64,
    /// CR0 to CR7; CR3 is `pfn << 12` of the vCPU's L4 (`xen_pfn_to_cr3`);
    /// CR1 holds PV's user page table.
    pub ctrlreg: [u64; 8],
    /// DR0 to DR7.
    pub debugreg: [u64; 8],
    /// PV's event callback.
    pub event_callback_eip: u64,
    /// PV's failsafe callback.
    pub failsafe_callback_eip: u64,
    /// PV's SYSCALL callback.
    pub syscall_callback_eip: u64,
    /// `VMASST_TYPE_*` (vCPU 0 only in Xen).
    pub vm_assist: u64,
    /// FS base.
    pub fs_base: u64,
    /// GS base in kernel mode.
    pub gs_base_kernel: u64,
    /// GS base in user mode (the other half of SWAPGS).
    pub gs_base_user: u64,
}

impl Default for VcpuGuestContext {
    fn default() -> Self {
        VcpuGuestContext {
            fpu_ctxt: [0; 512],
            flags: 0,
            user_regs: CpuUserRegs::default(),
            trap_ctxt: [TrapInfo::default(); TRAP_ENTRIES],
            ldt_base: 0,
            ldt_ents: 0,
            gdt_frames: [0; 16],
            gdt_ents: 0,
            kernel_ss: 0,
            kernel_sp: 0,
            ctrlreg: [0; 8],
            debugreg: [0; 8],
            event_callback_eip: 0,
            failsafe_callback_eip: 0,
            syscall_callback_eip: 0,
            vm_assist: 0,
            fs_base: 0,
            gs_base_kernel: 0,
            gs_base_user: 0,
        }
    }
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<VcpuRunstateInfo>() == 48);
    assert!(offset_of!(VcpuRunstateInfo, state_entry_time) == 8);
    assert!(offset_of!(VcpuRunstateInfo, time) == 16);
    assert!(size_of::<VcpuRegisterVcpuInfo>() == 16);
    assert!(size_of::<CpuUserRegs>() == 200);
    assert!(offset_of!(CpuUserRegs, rip) == 128);
    assert!(offset_of!(CpuUserRegs, rflags) == 144);
    assert!(offset_of!(CpuUserRegs, rsp) == 152);
    assert!(size_of::<TrapInfo>() == 16);
    assert!(size_of::<VcpuGuestContext>() == 5168);
    assert!(offset_of!(VcpuGuestContext, user_regs) == 520);
    assert!(offset_of!(VcpuGuestContext, trap_ctxt) == 720);
    assert!(offset_of!(VcpuGuestContext, ctrlreg) == 4984);
    assert!(offset_of!(VcpuGuestContext, gs_base_user) == 5160);
};

impl Pod for VcpuRunstateInfo {
    const SIZE: usize = 48;
    fn decode(b: &[u8]) -> Self {
        Self {
            state: rd32(b, 0) as i32,
            state_entry_time: rd64(b, 8),
            time: [rd64(b, 16), rd64(b, 24), rd64(b, 32), rd64(b, 40)],
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.state.to_le_bytes());
        wr(o, 4, &[0; 4]);
        wr(o, 8, &self.state_entry_time.to_le_bytes());
        for (i, t) in self.time.iter().enumerate() {
            wr(o, 16 + 8 * i, &t.to_le_bytes());
        }
    }
}

impl Pod for VcpuRegisterVcpuInfo {
    const SIZE: usize = 16;
    fn decode(b: &[u8]) -> Self {
        Self {
            mfn: rd64(b, 0),
            offset: rd32(b, 8),
            rsvd: rd32(b, 12),
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.mfn.to_le_bytes());
        wr(o, 8, &self.offset.to_le_bytes());
        wr(o, 12, &self.rsvd.to_le_bytes());
    }
}

impl Pod for CpuUserRegs {
    const SIZE: usize = 200;
    fn decode(b: &[u8]) -> Self {
        let q = |i: usize| rd64(b, 8 * i);
        let seg = |o: usize| (rd16(b, o), [rd16(b, o + 2), rd16(b, o + 4), rd16(b, o + 6)]);
        let (ss, pad2) = seg(160);
        let (es, pad3) = seg(168);
        let (ds, pad4) = seg(176);
        let (fs, pad5) = seg(184);
        let (gs, pad6) = seg(192);
        Self {
            r15: q(0),
            r14: q(1),
            r13: q(2),
            r12: q(3),
            rbp: q(4),
            rbx: q(5),
            r11: q(6),
            r10: q(7),
            r9: q(8),
            r8: q(9),
            rax: q(10),
            rcx: q(11),
            rdx: q(12),
            rsi: q(13),
            rdi: q(14),
            error_code: rd32(b, 120),
            entry_vector: rd32(b, 124),
            rip: rd64(b, 128),
            cs: rd16(b, 136),
            pad0: [rd16(b, 138)],
            saved_upcall_mask: b.get(140).copied().unwrap_or(0),
            pad1: [
                b.get(141).copied().unwrap_or(0),
                b.get(142).copied().unwrap_or(0),
                b.get(143).copied().unwrap_or(0),
            ],
            rflags: rd64(b, 144),
            rsp: rd64(b, 152),
            ss,
            pad2,
            es,
            pad3,
            ds,
            pad4,
            fs,
            pad5,
            gs,
            pad6,
        }
    }
    fn encode(&self, o: &mut [u8]) {
        let gprs = [
            self.r15, self.r14, self.r13, self.r12, self.rbp, self.rbx, self.r11, self.r10,
            self.r9, self.r8, self.rax, self.rcx, self.rdx, self.rsi, self.rdi,
        ];
        for (i, r) in gprs.iter().enumerate() {
            wr(o, 8 * i, &r.to_le_bytes());
        }
        wr(o, 120, &self.error_code.to_le_bytes());
        wr(o, 124, &self.entry_vector.to_le_bytes());
        wr(o, 128, &self.rip.to_le_bytes());
        wr(o, 136, &self.cs.to_le_bytes());
        wr(o, 138, &self.pad0[0].to_le_bytes());
        wr(o, 140, &[self.saved_upcall_mask]);
        wr(o, 141, &self.pad1);
        wr(o, 144, &self.rflags.to_le_bytes());
        wr(o, 152, &self.rsp.to_le_bytes());
        let segs = [
            (self.ss, self.pad2),
            (self.es, self.pad3),
            (self.ds, self.pad4),
            (self.fs, self.pad5),
            (self.gs, self.pad6),
        ];
        for (i, (sel, pad)) in segs.iter().enumerate() {
            let at = 160 + 8 * i;
            wr(o, at, &sel.to_le_bytes());
            for (j, p) in pad.iter().enumerate() {
                wr(o, at + 2 + 2 * j, &p.to_le_bytes());
            }
        }
    }
}

impl Pod for TrapInfo {
    const SIZE: usize = 16;
    fn decode(b: &[u8]) -> Self {
        Self {
            vector: b.first().copied().unwrap_or(0),
            flags: b.get(1).copied().unwrap_or(0),
            cs: rd16(b, 2),
            address: rd64(b, 8),
        }
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &[self.vector, self.flags]);
        wr(o, 2, &self.cs.to_le_bytes());
        wr(o, 4, &[0; 4]);
        wr(o, 8, &self.address.to_le_bytes());
    }
}

/// Byte offsets in a [`VcpuGuestContext`], for code that reads one from guest
/// memory a piece at a time (the hypervisor) instead of all 5168 bytes at once.
pub mod context_offsets {
    use super::{CpuUserRegs, VcpuGuestContext};
    use core::mem::offset_of;
    /// `flags`.
    pub const fn flags() -> usize {
        offset_of!(VcpuGuestContext, flags)
    }
    /// `user_regs`.
    pub const fn user_regs() -> usize {
        offset_of!(VcpuGuestContext, user_regs)
    }
    /// `user_regs.rip`.
    pub const fn rip() -> usize {
        user_regs() + offset_of!(CpuUserRegs, rip)
    }
    /// `trap_ctxt` (256 entries of 16 bytes).
    pub const fn trap_ctxt() -> usize {
        offset_of!(VcpuGuestContext, trap_ctxt)
    }
    /// `ldt_base`, the first field after `trap_ctxt`.
    pub const fn ldt_base() -> usize {
        offset_of!(VcpuGuestContext, ldt_base)
    }
}

impl Pod for VcpuGuestContext {
    const SIZE: usize = core::mem::size_of::<VcpuGuestContext>();
    fn decode(b: &[u8]) -> Self {
        let sub = |o: usize, n: usize| b.get(o..o + n).unwrap_or(&[]);
        let mut c = VcpuGuestContext::default();
        if let Some(f) = b.get(0..512) {
            c.fpu_ctxt.copy_from_slice(f);
        }
        c.flags = rd64(b, 512);
        c.user_regs = CpuUserRegs::decode(sub(520, CpuUserRegs::SIZE));
        for (i, t) in c.trap_ctxt.iter_mut().enumerate() {
            *t = TrapInfo::decode(sub(720 + 16 * i, TrapInfo::SIZE));
        }
        let mut at = context_offsets::ldt_base();
        let mut next = || {
            let v = rd64(b, at);
            at += 8;
            v
        };
        c.ldt_base = next();
        c.ldt_ents = next();
        for g in c.gdt_frames.iter_mut() {
            *g = next();
        }
        c.gdt_ents = next();
        c.kernel_ss = next();
        c.kernel_sp = next();
        for r in c.ctrlreg.iter_mut() {
            *r = next();
        }
        for r in c.debugreg.iter_mut() {
            *r = next();
        }
        c.event_callback_eip = next();
        c.failsafe_callback_eip = next();
        c.syscall_callback_eip = next();
        c.vm_assist = next();
        c.fs_base = next();
        c.gs_base_kernel = next();
        c.gs_base_user = next();
        c
    }
    fn encode(&self, o: &mut [u8]) {
        wr(o, 0, &self.fpu_ctxt);
        wr(o, 512, &self.flags.to_le_bytes());
        if let Some(u) = o.get_mut(520..520 + CpuUserRegs::SIZE) {
            self.user_regs.encode(u);
        }
        for (i, t) in self.trap_ctxt.iter().enumerate() {
            if let Some(s) = o.get_mut(720 + 16 * i..720 + 16 * (i + 1)) {
                t.encode(s);
            }
        }
        let words = [self.ldt_base, self.ldt_ents]
            .into_iter()
            .chain(self.gdt_frames)
            .chain([self.gdt_ents, self.kernel_ss, self.kernel_sp])
            .chain(self.ctrlreg)
            .chain(self.debugreg)
            .chain([
                self.event_callback_eip,
                self.failsafe_callback_eip,
                self.syscall_callback_eip,
                self.vm_assist,
                self.fs_base,
                self.gs_base_kernel,
                self.gs_base_user,
            ]);
        for (i, w) in words.enumerate() {
            wr(o, context_offsets::ldt_base() + 8 * i, &w.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runstate_info_round_trips() {
        let r = VcpuRunstateInfo {
            state: RUNSTATE_BLOCKED as i32,
            state_entry_time: 0x1234,
            time: [1, 2, 3, u64::MAX],
        };
        let mut b = [0xffu8; 48];
        r.encode(&mut b);
        assert_eq!(&b[4..8], &[0; 4], "the padding is written as zero");
        assert_eq!(VcpuRunstateInfo::decode(&b), r);
    }

    #[test]
    fn guest_context_round_trips_every_field() {
        let mut c = VcpuGuestContext::default();
        c.fpu_ctxt[511] = 7;
        c.flags = VGCF_IN_KERNEL | VGCF_ONLINE;
        c.user_regs.rdi = 0x1111;
        c.user_regs.rip = 0xffff_8000_0000_1000;
        c.user_regs.gs = 0x2b;
        c.user_regs.pad6 = [1, 2, 3];
        c.trap_ctxt[255].address = 0x55;
        c.ldt_base = 0x1000;
        c.gdt_frames[15] = 9;
        c.ctrlreg[3] = 0x42_000;
        c.debugreg[7] = 0x400;
        c.gs_base_user = 0xdead;
        let mut b = std::vec![0u8; VcpuGuestContext::SIZE];
        c.encode(&mut b);
        assert_eq!(VcpuGuestContext::decode(&b), c);
        let at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        use core::mem::offset_of;
        assert_eq!(at(offset_of!(VcpuGuestContext, ctrlreg) + 24), 0x42_000);
        assert_eq!(at(offset_of!(VcpuGuestContext, gs_base_user)), 0xdead);
        assert_eq!(at(context_offsets::rip()), 0xffff_8000_0000_1000);
    }
}
