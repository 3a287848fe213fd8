//! # The VMCS for a domain's first entry
//!
//! Allocating, loading and clearing a VMCS, and writing every field: the
//! controls (from `controls::derive`), the host state (taken from the CPU as it
//! runs now, with this CPU's exit stack and the exit stub), and the guest state
//! the contract promises (docs/abi). Host state decides where the CPU goes on
//! every exit, so this file writes with `vmwrite_unchecked` and is allowed
//! `unsafe`; the exit path writes only guest-facing fields.
#![allow(unsafe_code)]

use core::arch::asm;

use x86::vmx::vmcs::{control, guest, host};

use super::checks::{guest_layout, Segment};
use super::control_bits::{ExceptionBitmap, PinbasedControls, PrimaryControls};
use super::cr::{self, CrPolicy};
use super::insn::{vmclear, vmptrld, vmwrite_unchecked, VmFail};
use super::percpu::{PerCpu, VmxCpu};
use super::stub::exit_stub_address;
use crate::addr::Mfn;
use crate::arch::bits::EferFlags;
use crate::arch::cpu::{
    IA32_EFER, IA32_FS_BASE, IA32_GS_BASE, IA32_PAT, IA32_SYSENTER_CS, IA32_SYSENTER_EIP,
    IA32_SYSENTER_ESP,
};
use crate::domain::Domain;
use crate::mem::FrameSource;

/// The power-on PAT (SDM 13.12.4): WB, WT, UC-, UC, repeated.
const PAT_DEFAULT: u64 = 0x0007_0406_0007_0406;

/// The frames a VMCS needs, so they can be given back.
pub struct VmcsFrames {
    /// The VMCS region.
    pub vmcs: Mfn,
    /// The MSR bitmap, when the CPU has MSR bitmaps.
    pub msr_bitmap: Option<Mfn>,
    /// I/O bitmaps A and B, when the CPU has I/O bitmaps.
    pub io_bitmaps: Option<(Mfn, Mfn)>,
}

impl VmcsFrames {
    /// Give the frames back.
    pub fn free(self, frames: &mut impl FrameSource) {
        frames.free_frame(self.vmcs);
        if let Some(f) = self.msr_bitmap {
            frames.free_frame(f);
        }
        if let Some((a, b)) = self.io_bitmaps {
            frames.free_frame(a);
            frames.free_frame(b);
        }
    }
}

/// Read a segment register's selector.
macro_rules! read_sel {
    ($seg:literal) => {{
        let v: u16;
        // SAFETY: reading a segment register has no side effects.
        unsafe {
            asm!(concat!("mov {0:x}, ", $seg), out(reg) v, options(nomem, nostack, preserves_flags))
        };
        v
    }};
}

/// The base address of the host's TSS, read from its GDT descriptor (a 16-byte
/// system descriptor in IA-32e mode, SDM 8.2.3).
fn host_tr_base(gdt_base: u64, tr: u16) -> u64 {
    let at = gdt_base + u64::from(tr & !7);
    // SAFETY: the GDT is ours and mapped; TR names a valid 16-byte TSS descriptor.
    let (lo, hi) = unsafe {
        (
            core::ptr::read_volatile(at as *const u64),
            core::ptr::read_volatile((at + 8) as *const u64),
        )
    };
    ((lo >> 16) & 0xff_ffff) | (((lo >> 56) & 0xff) << 24) | ((hi & 0xffff_ffff) << 32)
}

/// Write every VMCS field of the current VMCS (`load_vmcs`) for `dom`'s first
/// entry on the CPU `pc`, with the bitmaps in `vf` (frames Keel owns). Returns
/// the first failing VMWRITE (with no current VMCS, the first one; an
/// unsupported field would be a Keel bug).
pub fn setup_vmcs(
    pc: &PerCpu,
    cpu: &VmxCpu,
    dom: &Domain,
    vpid: u16,
    vf: &VmcsFrames,
) -> Result<(), (u32, VmFail)> {
    let c = &cpu.controls;
    let w = |field: u32, value: u64| -> Result<(), (u32, VmFail)> {
        // SAFETY: each value below keeps the host intact: host state is the
        // CPU's own as it runs now, with this CPU's exit stack and stub; the
        // bitmaps are frames in `vf`; controls come from `controls::derive`.
        unsafe { vmwrite_unchecked(field, value) }.map_err(|e| (field, e))
    };

    // --- Controls (SDM 25.6 - 25.8), from `controls::derive`.
    // The VMX-preemption timer (guest timers while the guest runs),
    // when the CPU has it; its value is set before each entry, "never" until a
    // timer is armed.
    let preempt = PinbasedControls::PREEMPTION_TIMER;
    let pin = if cpu.caps.pin.can_set(preempt) {
        c.pin | preempt
    } else {
        c.pin
    };
    w(control::PINBASED_EXEC_CONTROLS, pin.bits().into())?;
    if pin.contains(preempt) {
        w(guest::VMX_PREEMPTION_TIMER_VALUE, u32::MAX.into())?;
    }
    w(
        control::PRIMARY_PROCBASED_EXEC_CONTROLS,
        c.proc.bits().into(),
    )?;
    if c.proc
        .contains(PrimaryControls::ACTIVATE_SECONDARY_CONTROLS)
    {
        w(
            control::SECONDARY_PROCBASED_EXEC_CONTROLS,
            c.proc2.bits().into(),
        )?;
    }
    w(control::VMEXIT_CONTROLS, c.exit.bits().into())?;
    w(control::VMENTRY_CONTROLS, c.entry.bits().into())?;
    // Guest exceptions go through the guest's own IDT; none exits. (A fault the
    // guest cannot deliver ends as a triple-fault exit.)
    w(
        control::EXCEPTION_BITMAP,
        ExceptionBitmap::empty().bits().into(),
    )?;
    w(control::PAGE_FAULT_ERR_CODE_MASK, 0)?;
    w(control::PAGE_FAULT_ERR_CODE_MATCH, 0)?;
    // No CR3-target values: every CR3 load exits (direct paging validates each).
    w(control::CR3_TARGET_COUNT, 0)?;
    w(control::VMEXIT_MSR_STORE_COUNT, 0)?;
    w(control::VMEXIT_MSR_LOAD_COUNT, 0)?;
    w(control::VMENTRY_MSR_LOAD_COUNT, 0)?;
    w(control::VMENTRY_INTERRUPTION_INFO_FIELD, 0)?;
    w(control::CR0_GUEST_HOST_MASK, cr::CR0_GUEST_HOST_MASK)?;
    w(control::CR4_GUEST_HOST_MASK, cr::CR4_GUEST_HOST_MASK)?;
    w(control::CR0_READ_SHADOW, cr::GUEST_CR0_INITIAL)?;
    w(control::CR4_READ_SHADOW, cr::GUEST_CR4_INITIAL)?;
    if c.vpid {
        w(control::VPID, vpid.into())?;
    }
    if let Some(f) = vf.msr_bitmap {
        w(control::MSR_BITMAPS_ADDR_FULL, f.addr().get())?;
    }
    if let Some((a, b)) = vf.io_bitmaps {
        w(control::IO_BITMAP_A_ADDR_FULL, a.addr().get())?;
        w(control::IO_BITMAP_B_ADDR_FULL, b.addr().get())?;
    }

    // --- Host state (SDM 25.5): what the CPU loads on every VM exit, taken from
    // the CPU as it runs now.
    let gdtr = crate::arch::cpu::sgdt();
    let idtr = crate::arch::cpu::sidt();
    let tr = crate::arch::cpu::str_selector();
    w(host::CR0, crate::arch::cpu::read_cr0())?;
    w(host::CR3, crate::arch::cpu::read_cr3())?;
    w(host::CR4, crate::arch::cpu::read_cr4())?;
    w(host::CS_SELECTOR, read_sel!("cs").into())?;
    w(host::SS_SELECTOR, read_sel!("ss").into())?;
    w(host::DS_SELECTOR, read_sel!("ds").into())?;
    w(host::ES_SELECTOR, read_sel!("es").into())?;
    // FS and GS selectors: 0 (Keel loads null selectors; the bases come from the
    // MSRs). A non-null host selector with RPL/TI bits would fail 27.2.3.
    w(host::FS_SELECTOR, (read_sel!("fs") & !7).into())?;
    w(host::GS_SELECTOR, (read_sel!("gs") & !7).into())?;
    w(host::TR_SELECTOR, tr.into())?;
    w(host::FS_BASE, crate::arch::cpu::rdmsr(IA32_FS_BASE))?;
    w(host::GS_BASE, crate::arch::cpu::rdmsr(IA32_GS_BASE))?;
    w(host::TR_BASE, host_tr_base(gdtr.base, tr))?;
    w(host::GDTR_BASE, gdtr.base)?;
    w(host::IDTR_BASE, idtr.base)?;
    w(
        host::IA32_SYSENTER_CS,
        crate::arch::cpu::rdmsr(IA32_SYSENTER_CS),
    )?;
    w(
        host::IA32_SYSENTER_ESP,
        crate::arch::cpu::rdmsr(IA32_SYSENTER_ESP),
    )?;
    w(
        host::IA32_SYSENTER_EIP,
        crate::arch::cpu::rdmsr(IA32_SYSENTER_EIP),
    )?;
    if c.load_efer {
        w(host::IA32_EFER_FULL, crate::arch::cpu::rdmsr(IA32_EFER))?;
    }
    if c.load_pat {
        w(host::IA32_PAT_FULL, crate::arch::cpu::rdmsr(IA32_PAT))?;
    }
    // This CPU's exit stack and the stub; GS (above) leads the stub to `pc`.
    let rsp = pc.exit_stack_top().ok_or((host::RSP, VmFail::Invalid))?;
    w(host::RSP, rsp)?;
    w(host::RIP, exit_stub_address())?;

    // --- Guest state (SDM 25.4), per the contract's guest-facing section.
    let policy = CrPolicy::new(&cpu.caps);
    // A CPU whose FIXED1 forbids one of the contract's bits fails the software
    // checks below, by name; so write the value even then.
    let cr0 = policy
        .real_cr0(cr::GUEST_CR0_INITIAL)
        .unwrap_or(cr::GUEST_CR0_INITIAL | cpu.caps.cr0_fixed0);
    let cr4 = policy
        .real_cr4(cr::GUEST_CR4_INITIAL)
        .unwrap_or(cr::GUEST_CR4_INITIAL | cpu.caps.cr4_fixed0);
    w(guest::CR0, cr0)?;
    w(guest::CR3, dom.boot.cr3.addr().get())?;
    w(guest::CR4, cr4)?;
    w(guest::DR7, 0x400)?;
    w(guest::RSP, dom.boot.stack_top.get())?;
    w(guest::RIP, dom.boot.entry.get())?;
    w(guest::RFLAGS, 0x2)?;
    let seg = |sel: u32, base: u32, limit: u32, ar: u32, s: Segment| -> Result<(), (u32, VmFail)> {
        w(sel, s.selector.into())?;
        w(base, s.base)?;
        w(limit, s.limit.into())?;
        w(ar, s.access.into())
    };
    seg(
        guest::CS_SELECTOR,
        guest::CS_BASE,
        guest::CS_LIMIT,
        guest::CS_ACCESS_RIGHTS,
        guest_layout::CS,
    )?;
    for (s, b, l, a) in [
        (
            guest::SS_SELECTOR,
            guest::SS_BASE,
            guest::SS_LIMIT,
            guest::SS_ACCESS_RIGHTS,
        ),
        (
            guest::DS_SELECTOR,
            guest::DS_BASE,
            guest::DS_LIMIT,
            guest::DS_ACCESS_RIGHTS,
        ),
        (
            guest::ES_SELECTOR,
            guest::ES_BASE,
            guest::ES_LIMIT,
            guest::ES_ACCESS_RIGHTS,
        ),
        (
            guest::FS_SELECTOR,
            guest::FS_BASE,
            guest::FS_LIMIT,
            guest::FS_ACCESS_RIGHTS,
        ),
        (
            guest::GS_SELECTOR,
            guest::GS_BASE,
            guest::GS_LIMIT,
            guest::GS_ACCESS_RIGHTS,
        ),
    ] {
        seg(s, b, l, a, guest_layout::DATA)?;
    }
    seg(
        guest::TR_SELECTOR,
        guest::TR_BASE,
        guest::TR_LIMIT,
        guest::TR_ACCESS_RIGHTS,
        guest_layout::TR,
    )?;
    seg(
        guest::LDTR_SELECTOR,
        guest::LDTR_BASE,
        guest::LDTR_LIMIT,
        guest::LDTR_ACCESS_RIGHTS,
        guest_layout::LDTR,
    )?;
    w(guest::GDTR_BASE, 0)?;
    w(guest::GDTR_LIMIT, 0)?;
    w(guest::IDTR_BASE, 0)?;
    w(guest::IDTR_LIMIT, 0)?;
    w(guest::IA32_DEBUGCTL_FULL, 0)?;
    w(guest::IA32_SYSENTER_CS, 0)?;
    w(guest::IA32_SYSENTER_ESP, 0)?;
    w(guest::IA32_SYSENTER_EIP, 0)?;
    let mut efer = EferFlags::LONG_MODE_ENABLE
        | EferFlags::LONG_MODE_ACTIVE
        | EferFlags::SYSTEM_CALL_EXTENSIONS;
    if dom.nx_enabled() {
        efer |= EferFlags::NO_EXECUTE_ENABLE;
    }
    if c.load_efer {
        w(guest::IA32_EFER_FULL, efer.bits())?;
    }
    if c.load_pat {
        w(guest::IA32_PAT_FULL, PAT_DEFAULT)?;
    }
    w(guest::ACTIVITY_STATE, 0)?;
    w(guest::INTERRUPTIBILITY_STATE, 0)?;
    w(guest::PENDING_DBG_EXCEPTIONS, 0)?;
    // No shadow VMCS: the link pointer must be all ones (SDM 27.3.1.5).
    w(guest::LINK_PTR_FULL, u64::MAX)?;
    Ok(())
}

/// VMCLEAR `vmcs` (which also initialises its launch state) and make it current.
/// `vmcs` must be a zeroed frame Keel owns, starting with the revision
/// identifier; `run::run_domains` makes it so.
pub fn load_vmcs(pc: &PerCpu, vmcs: Mfn) -> Result<(), VmFail> {
    // SAFETY: see above: a VMCS region owned by this CPU.
    unsafe { vmclear(vmcs.addr()).and_then(|()| vmptrld(vmcs.addr())) }?;
    pc.vmcs.set(Some(vmcs));
    Ok(())
}

/// The current VMCS (written by [`setup_vmcs`]) starts a vCPU other than
/// vCPU 0 where `VCPUOP_initialise` said (`domain::vcpus::StartState`): its
/// RIP, RSP, RFLAGS, root and FS/GS bases; the rest as vCPU 0 started.
pub fn start_vcpu(start: &crate::domain::vcpus::StartState) -> Result<(), (u32, VmFail)> {
    let w = |field: u32, value: u64| -> Result<(), (u32, VmFail)> {
        // SAFETY: guest-state fields only, with values `check_context`
        // accepted (canonical addresses, RFLAGS with IF set and IOPL clear,
        // a validated L4 of the domain): the host state is untouched.
        unsafe { vmwrite_unchecked(field, value) }.map_err(|e| (field, e))
    };
    w(guest::RIP, start.rip)?;
    w(guest::RSP, start.rsp)?;
    w(guest::RFLAGS, start.rflags | 0x2)?;
    w(guest::CR3, start.cr3.addr().get())?;
    w(guest::FS_BASE, start.fs_base)?;
    w(guest::GS_BASE, start.gs_base)?;
    Ok(())
}

/// VMCLEAR the current VMCS (writes its state back to memory and makes it not
/// current), so its frame can be reused.
pub fn clear_vmcs(pc: &PerCpu) -> Result<(), VmFail> {
    let Some(vmcs) = pc.vmcs.get() else {
        return Ok(());
    };
    // SAFETY: `vmcs` is the VMCS `load_vmcs` loaded on this CPU.
    unsafe { vmclear(vmcs.addr()) }?;
    pc.vmcs.set(None);
    Ok(())
}

/// On CPUs that cannot switch EFER through the VMCS, the guest runs with the
/// host's EFER (LMA/LME come from the entry controls): give the host the bits
/// the guest is promised (SCE; NXE when its tables use NX). Neither changes how
/// the host runs.
pub fn host_efer_for_guest(nx: bool) {
    let mut want = EferFlags::SYSTEM_CALL_EXTENSIONS;
    if nx {
        want |= EferFlags::NO_EXECUTE_ENABLE;
    }
    let efer = EferFlags::from_bits_retain(crate::arch::cpu::rdmsr(IA32_EFER));
    if !efer.contains(want) {
        // SAFETY: SCE and NXE only enable SYSCALL and the NX bit.
        unsafe { crate::arch::cpu::wrmsr(IA32_EFER, (efer | want).bits()) };
    }
}

/// The state VMX does not switch that a new vCPU must find defined: the
/// pass-through MSRs (`policy::msr::initial_values`), and XCR0 at its reset
/// value (x87) when the guest is offered XSAVE.
pub fn init_unswitched_state(msr_env: &crate::policy::msr::MsrEnv, xsave: bool) {
    for (index, value) in crate::policy::msr::initial_values(msr_env) {
        // SAFETY: these MSRs exist (the table includes TSC_AUX only with
        // RDTSCP), the values are valid, and the host does not use them.
        unsafe { crate::arch::cpu::wrmsr(index, value) };
    }
    if xsave {
        // SAFETY: `xsave` is only true when the host has CR4.OSXSAVE (set by
        // `enable`); x87 alone is always a valid XCR0.
        unsafe { super::insn::xsetbv(crate::policy::cpuid::Xcr0::X87.bits()) };
    }
}

/// The guest's WRMSR of `value` to MSR `index`, by the MSR policy
/// (`policy::msr::write`, asked here once): a host write is carried out here
/// (a pass-through MSR, not switched by VMX and unused by the host, or, without
/// EFER switching, EFER with only SCE changed: the host never executes
/// SYSCALL; the value validated as the CPU would); a VMCS field to store is
/// returned; an ignored write is `None`; a refusal is the #GP to inject.
pub fn guest_wrmsr(
    index: u32,
    value: u64,
    current: impl FnOnce() -> u64,
    env: &crate::policy::msr::MsrEnv,
) -> Result<Option<(crate::policy::msr::VmcsMsr, u64)>, crate::policy::msr::GpFault> {
    use crate::policy::msr::{self, WriteOp};
    match msr::write(index, value, current, env)? {
        WriteOp::Vmcs(f, v) => Ok(Some((f, v))),
        WriteOp::Host(v) => {
            // SAFETY: the policy chose this host write (see above).
            unsafe { crate::arch::cpu::wrmsr(index, v) };
            Ok(None)
        }
        WriteOp::Ignore => Ok(None),
    }
}

/// Make a VMCS launched before current again (VMPTRLD alone: a VMCLEAR would
/// reset its launch state, and the next entry must be a VMRESUME).
pub fn make_current(pc: &PerCpu, vmcs: Mfn) -> Result<(), VmFail> {
    if pc.vmcs.get() == Some(vmcs) {
        return Ok(());
    }
    // SAFETY: `vmcs` is a VMCS region `load_vmcs` initialized on this CPU and
    // not yet cleared for good (the run loop owns it until the domain ends).
    unsafe { vmptrld(vmcs.addr()) }?;
    pc.vmcs.set(Some(vmcs));
    Ok(())
}

/// Set the host's CR4.OSFXSR, so that FXSAVE and FXRSTOR include the SSE
/// registers (without it they may leave them out). Before any VMCS takes the
/// host CR4, which every exit loads; the host itself never executes SSE.
pub fn enable_host_fxsr() {
    let cr4 = crate::arch::cpu::read_cr4();
    let fxsr = crate::arch::bits::cr4::OSFXSR;
    if cr4 & fxsr == 0 {
        // SAFETY: OSFXSR only permits SSE instructions and FXSAVE's full
        // format; VMX fixes neither value of it.
        unsafe { crate::arch::cpu::write_cr4(cr4 | fxsr) };
    }
}

/// The most pass-through MSRs a domain's switched state holds.
pub const MAX_SWITCHED_MSRS: usize = 16;

/// The guest state VMX neither saves nor loads, which several domains on one
/// CPU must not share: the x87/SSE/AVX registers (and XCR0), CR2, and the
/// pass-through MSRs (`policy::msr::initial_values`: SYSCALL targets,
/// KERNEL_GS_BASE, TSC_AUX). Saved when a domain leaves the CPU, loaded when
/// it comes back; a domain alone on its CPU never pays for it.
pub struct SwitchedState {
    /// A frame of Keel's own (never a guest's) holding the FXSAVE/XSAVE image.
    area: Mfn,
    /// XSAVE is usable (host CR4.OSXSAVE): save every XCR0 component.
    xsave: bool,
    xcr0: u64,
    cr2: u64,
    msrs: [(u32, u64); MAX_SWITCHED_MSRS],
    nr_msrs: usize,
}

/// FXSAVE image: the x87 control word (offset 0) and MXCSR (offset 24).
const FX_FCW: u64 = 0;
const FX_MXCSR: u64 = 24;

impl SwitchedState {
    /// The state of a vCPU that has not run: x87/SSE at their reset values
    /// (FCW 0x37F, MXCSR 0x1F80, every register zero, XSTATE_BV 0: the other
    /// components in their initial state), XCR0 x87 only (with XSAVE), CR2 0,
    /// the pass-through MSRs at their initial values. `area` must be a zeroed
    /// frame of Keel's own, given back with [`Self::area`] when the domain ends.
    pub fn new(
        area: Mfn,
        mem: &mut impl crate::mem::PhysMem,
        msr_env: &crate::policy::msr::MsrEnv,
        xsave: bool,
    ) -> Self {
        use crate::addr::MachineAddr;
        mem.zero_frame(area);
        mem.write(
            MachineAddr::new(area.addr().get() + FX_FCW),
            &0x37fu16.to_le_bytes(),
        );
        mem.write(
            MachineAddr::new(area.addr().get() + FX_MXCSR),
            &0x1f80u32.to_le_bytes(),
        );
        let mut msrs = [(0, 0); MAX_SWITCHED_MSRS];
        let mut nr_msrs = 0;
        for (slot, m) in msrs
            .iter_mut()
            .zip(crate::policy::msr::initial_values(msr_env))
        {
            *slot = m;
            nr_msrs += 1;
        }
        SwitchedState {
            area,
            xsave,
            xcr0: crate::policy::cpuid::Xcr0::X87.bits(),
            cr2: 0,
            msrs,
            nr_msrs,
        }
    }

    /// The save frame, to give back when the domain ends.
    pub fn area(&self) -> Mfn {
        self.area
    }

    /// The domain leaves the CPU: keep what it left in the registers.
    pub fn save(&mut self) {
        self.cr2 = crate::arch::cpu::read_cr2();
        for (index, value) in self.msrs.iter_mut().take(self.nr_msrs) {
            *value = crate::arch::cpu::rdmsr(*index);
        }
        let p = self.area.addr().get();
        if self.xsave {
            let (lo, hi): (u32, u32);
            // SAFETY: XGETBV(0) with CR4.OSXSAVE set (`xsave`); XSAVE64 of
            // every component XCR0 enables into Keel's own 64-byte aligned
            // 4 KiB frame (the direct map is the identity), which is large
            // enough for every component Keel offers (`policy::cpuid`).
            unsafe {
                asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") hi,
                     options(nostack, nomem, preserves_flags));
                self.xcr0 = u64::from(lo) | (u64::from(hi) << 32);
                asm!("xsave64 [{}]", in(reg) p, in("eax") u32::MAX, in("edx") u32::MAX,
                     options(nostack, preserves_flags));
            }
        } else {
            // SAFETY: FXSAVE64 into Keel's own 16-byte aligned frame.
            unsafe { asm!("fxsave64 [{}]", in(reg) p, options(nostack, preserves_flags)) };
        }
    }

    /// The domain comes back: load what [`Self::save`] kept (or the reset state).
    pub fn restore(&self) {
        let p = self.area.addr().get();
        if self.xsave {
            // SAFETY: XCR0 is a value this CPU accepted before (saved by XGETBV,
            // or x87 alone); XRSTOR64 of an image XSAVE64 wrote under that XCR0,
            // or of the reset image (XSTATE_BV 0, a valid MXCSR).
            unsafe {
                super::insn::xsetbv(self.xcr0);
                asm!("xrstor64 [{}]", in(reg) p, in("eax") u32::MAX, in("edx") u32::MAX,
                     options(nostack, preserves_flags));
            }
        } else {
            // SAFETY: an image FXSAVE64 wrote, or the reset image (valid MXCSR).
            unsafe { asm!("fxrstor64 [{}]", in(reg) p, options(nostack, preserves_flags)) };
        }
        super::insn::set_guest_cr2(self.cr2);
        for &(index, value) in self.msrs.iter().take(self.nr_msrs) {
            // SAFETY: pass-through MSRs this CPU has (the policy lists only
            // those), with a value the CPU accepted before or the initial one.
            unsafe { crate::arch::cpu::wrmsr(index, value) };
        }
    }
}
