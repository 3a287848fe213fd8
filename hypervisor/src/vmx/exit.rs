//! # VM-exit dispatch
//!
//! One function per exit reason Keel expects; everything else is a domain crash
//! with a full diagnostic. The guest controls every input here (registers, exit
//! qualifications, memory), so nothing on these paths may panic: refusals become
//! injected exceptions (#GP(0), #UD) or a domain crash, never a hypervisor fault.
//!
//! What the guest's CPU *is* (its CPUID, its MSRs, its I/O bus, what each
//! sensitive instruction does) is not decided here: it is data in the pure policy
//! tables `crate::policy::cpuid`, `crate::policy::msr`, `crate::policy::io` and `crate::policy::insns`, from which
//! `docs/abi/{cpuid,msr,io,insns}.md` are generated. The handlers below only decode
//! the exit, ask the table, and carry out its answer on the VMCS or the host.
//!
//! The VMCALL path is the one that matters for speed: it costs seven VMCS
//! accesses: VMREAD of the exit reason, of SS's access rights (the CPL: only the
//! guest kernel may call), of the instruction length, VMREAD + VMWRITE of the
//! guest RIP, and VMREADs of RFLAGS and the interruptibility state (retiring the
//! instruction as the CPU would: the single-step trap and the interrupt shadow,
//! [`Vcpu::retire`]). The length is read, not assumed to be 3: the field counts
//! any prefixes the instruction carried, and Keel does not rely on a guest never
//! prefixing VMCALL. The guest's CR3 for the hypercall layer
//! comes from Keel's own copy (every CR3 load exits, so the copy is exact).

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use x86::vmx::vmcs::{control, guest, ro};

use super::caps::VmxCaps;
use super::checks::intr_type;
use super::controls::{exit as exit_ctl, Controls};
use super::cr::{self, CrAccess, CrPolicy};
use super::hw::{
    invvpid, report_entry_failure, vmread, vmwrite, DomainEnd, GuestGprs, InvvpidType, VmxCpu,
    STATS,
};
use super::names::{exception_name, ExitReason};
use crate::addr::{GuestVirt, Mfn, PAGE_SIZE};
use crate::domain::Domain;
use crate::event::{Blocked, EventState, UpcallAction};
use crate::exception::{self, Delivering};
use crate::hypercall::{self, HypercallCtx, Outcome};
use crate::mem::{Console, PhysMem};
use crate::paging::access_fault::{first_fault, AccessFault};
use crate::paging::emulate::{decode_store, Source};
use crate::paging::guest_mem::Access;
use crate::paging::Flush;
use crate::perf;
use crate::policy::cpuid::{CpuidPolicy, CpuidResult, GuestCpuFeatures};
use crate::policy::insns::{self, XsetbvFault};
use crate::policy::io::{IoBus, Segment};
use crate::policy::msr::{self, MsrEnv, ReadOp, VmcsMsr, WriteOp};
use crate::privilege::Cpl;
use keel_abi::debug::PerfCounters;
use keel_abi::Errno;

/// Set the CR2 the guest will see with a #PF Keel injects. A #PF VM exit does
/// not write CR2 (SDM 27.1), and neither does event injection, but the guest's
/// handler must find the faulting address there; the guest's CR2 is the CPU's
/// CR2 (it is not switched on VM entry or exit), so Keel writes it.
fn set_guest_cr2(cr2: u64) {
    // SAFETY: CR2 holds no host state (a host #PF is fatal and reports its own
    // CR2); the value only reaches the guest.
    unsafe { core::arch::asm!("mov cr2, {}", in(reg) cr2, options(nostack, preserves_flags)) };
}

/// Move a string I/O instruction's memory pointer (RDI for INS, RSI for OUTS)
/// past `bytes` bytes, downwards when RFLAGS.DF is set.
fn advance_string_pointer(g: &mut GuestGprs, is_in: bool, down: bool, bytes: u64) {
    let r = if is_in { &mut g.rdi } else { &mut g.rsi };
    *r = if down {
        r.wrapping_sub(bytes)
    } else {
        r.wrapping_add(bytes)
    };
}

/// Whether a hypervisor runs beneath Keel (`arch::cpu::under_hypervisor`, read
/// once at boot by [`note_platform`]).
static UNDER_HYPERVISOR: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// Record what Keel runs on (for the bench marks below) and say it.
pub fn note_platform() {
    match crate::arch::cpu::hypervisor_signature() {
        Some(sig) => {
            UNDER_HYPERVISOR.store(true, Relaxed);
            let sig = core::str::from_utf8(&sig).unwrap_or("?");
            log::info!(
                "cpu: running under a hypervisor (CPUID signature {:?}); each counter read marks its trace (CPUID {:#x})",
                sig.trim_end_matches('\0'),
                crate::arch::cpu::L0_MARKER_LEAF
            );
        }
        None => log::info!("cpu: no hypervisor beneath Keel (CPUID.1:ECX[31] clear)"),
    }
}

/// A snapshot of [`STATS`] for `keel_debug_op(DEBUGOP_READ_COUNTERS)`. Under
/// another hypervisor, each read is also a mark in that hypervisor's trace, so
/// its exits between two reads can be attributed to what the guest measured.
fn counters() -> PerfCounters {
    crate::arch::cpu::l0_marker(UNDER_HYPERVISOR.load(Relaxed));
    let mut c = PerfCounters::zero();
    c.vmreads = STATS.vmreads.load(Relaxed);
    c.vmwrites = STATS.vmwrites.load(Relaxed);
    for (slot, n) in c.exits.iter_mut().zip(STATS.exits.iter()) {
        *slot = n.load(Relaxed);
    }
    c
}

// The ABI's slots are the counters' slots, one for one.
const _: () = assert!(keel_abi::debug::PERF_EXIT_SLOTS == super::hw::COUNTED_EXIT_REASONS);

/// What the exit stub calls: handle one exit; `None` resumes the guest.
pub trait ExitEnv {
    /// Handle the exit that just happened, with the guest's GPRs.
    fn handle_exit(&mut self, gprs: &mut GuestGprs) -> Option<DomainEnd>;
}

/// Basic exit reasons Keel handles (SDM appendix C).
mod reason {
    pub const EXCEPTION_OR_NMI: u16 = 0;
    pub const EXTERNAL_INTERRUPT: u16 = 1;
    pub const INTERRUPT_WINDOW: u16 = 7;
    pub const TRIPLE_FAULT: u16 = 2;
    pub const CPUID: u16 = 10;
    pub const HLT: u16 = 12;
    pub const INVLPG: u16 = 14;
    pub const VMCALL: u16 = 18;
    pub const CR_ACCESS: u16 = 28;
    pub const IO: u16 = 30;
    pub const RDMSR: u16 = 31;
    pub const WRMSR: u16 = 32;
    pub const PREEMPTION_TIMER: u16 = 52;
}

const VEC_UD: u8 = 6;
const VEC_DF: u8 = 8;
const VEC_GP: u8 = 13;
const VEC_PF: u8 = 14;
/// #PF error-code bits: present, write, user, reserved bit, instruction fetch.
const PFEC_MASK: u64 = 0b1_1111;
/// Present and write: a write-protection fault at CPL0.
const PFEC_MATCH: u64 = 0b0_0011;
const RFLAGS_DF: u64 = 1 << 10;
const RFLAGS_TF: u64 = 1 << 8;
/// Pending debug exceptions: BS, a single-step trap is pending.
const PENDING_DBG_BS: u64 = 1 << 14;
/// IA32_DEBUGCTL.BTF: single-step on branches only.
const DEBUGCTL_BTF: u64 = 1 << 1;

/// The most elements one exit emulates of a REP INS/OUTS.
const STRING_IO_CHUNK: u64 = 4096;

/// CR4.OSXSAVE.
const CR4_OSXSAVE: u64 = 1 << 18;

/// The host's CPUID (always available in 64-bit mode).
pub(super) fn host_cpuid(leaf: u32, sub: u32) -> CpuidResult {
    #[allow(unused_unsafe)]
    // SAFETY: CPUID has no side effects.
    let h = unsafe { core::arch::x86_64::__cpuid_count(leaf, sub) };
    CpuidResult {
        eax: h.eax,
        ebx: h.ebx,
        ecx: h.ecx,
        edx: h.edx,
    }
}

/// The facts the MSR policy needs for `dom` on `cpu` (also used to build the MSR
/// bitmap, so the bitmap and the exit handler agree).
pub(super) fn msr_env(cpu: &VmxCpu) -> MsrEnv {
    let c = &cpu.controls;
    let base_mhz = if host_cpuid(0, 0).eax >= 0x16 {
        host_cpuid(0x16, 0).eax & 0xffff
    } else {
        0
    };
    MsrEnv {
        rdtscp: c.rdtscp,
        load_efer: c.load_efer,
        load_pat: c.load_pat,
        debug_controls: c.exit & exit_ctl::SAVE_DEBUG_CONTROLS != 0,
        platform_info: MsrEnv::platform_info_from_base_mhz(base_mhz),
    }
}

/// The VMCS guest field holding a VMCS-managed MSR.
fn vmcs_field(m: VmcsMsr) -> u32 {
    match m {
        VmcsMsr::Efer => guest::IA32_EFER_FULL,
        VmcsMsr::Pat => guest::IA32_PAT_FULL,
        VmcsMsr::SysenterCs => guest::IA32_SYSENTER_CS,
        VmcsMsr::SysenterEsp => guest::IA32_SYSENTER_ESP,
        VmcsMsr::SysenterEip => guest::IA32_SYSENTER_EIP,
        VmcsMsr::DebugCtl => guest::IA32_DEBUGCTL_FULL,
        VmcsMsr::FsBase => guest::FS_BASE,
        VmcsMsr::GsBase => guest::GS_BASE,
    }
}

/// One bit per I/O port: logged already.
static PORTS_LOGGED: [AtomicU64; 1024] = [const { AtomicU64::new(0) }; 1024];
/// One bit per host interrupt vector seen while a guest ran.
static VECTORS_LOGGED: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// Set bit `i` of `map`; true if it was clear.
fn first_time(map: &[AtomicU64], i: usize) -> bool {
    match map.get(i / 64) {
        Some(w) => w.fetch_or(1 << (i % 64), Relaxed) & (1 << (i % 64)) == 0,
        None => false,
    }
}

/// A VMWRITE on the exit path. The fields and the current VMCS are Keel's own; a
/// failure would be a Keel bug, and the next entry's check would report it.
fn write(field: u32, value: u64) {
    // SAFETY: only guest-state and entry-control fields are written from the exit
    // path, with values the policy produced; host state is never touched here.
    let _ = unsafe { vmwrite(field, value) };
}

/// The virtual CPU of a running domain: the domain, the machine, and Keel's copy of
/// the guest state it owns (visible CR0/CR4, CR3, CR8).
pub struct Vcpu<'a, M: PhysMem, C: Console> {
    dom: &'a mut Domain,
    mem: &'a mut M,
    console: &'a mut C,
    controls: Controls,
    caps: VmxCaps,
    policy: CrPolicy,
    maxphyaddr: u8,
    vpid: u16,
    /// The guest's L4 frame and the real CR3 value.
    cr3: Mfn,
    cr3_real: u64,
    /// What the guest reads from CR0 (except TS, which is the guest's own) and CR4.
    cr0_visible: u64,
    cr4_visible: u64,
    /// The guest's task-priority class (MOV CR8).
    cr8: u8,
    /// Event channels, timers, the clock (issue 6).
    ev: EventState,
    /// The VMX-preemption timer is active (pin control set in `setup_vmcs`), and
    /// its rate: it counts down once every 2^rate TSC ticks.
    preempt: Option<u32>,
    /// The preemption-timer field holds its "never" value (no timer armed).
    preempt_idle: bool,
    /// Interrupt-window exiting can be used / is on now.
    window_ok: bool,
    window_on: bool,
    /// The CPUID policy folded for this vCPU (`crate::policy::cpuid`).
    cpuid: CpuidPolicy,
    /// What the MSR policy depends on (`crate::policy::msr`).
    msr_env: MsrEnv,
    /// The guest's I/O bus (`crate::policy::io`): COM1 and an empty rest.
    bus: IoBus,
}

/// The preemption-timer value that means "no timer": about 2^32 << rate TSC
/// ticks, re-armed at every exit anyway.
const PREEMPT_NEVER: u64 = u32::MAX as u64;
/// VM-entry interruption information: valid, type external interrupt (0).
const INJECT_VALID: u64 = 1 << 31;
/// RFLAGS.IF.
const RFLAGS_IF: u64 = 1 << 9;

impl<'a, M: PhysMem, C: Console> Vcpu<'a, M, C> {
    /// The vCPU for `dom`'s first entry (state as `hw::setup_vmcs` writes it).
    pub fn new(
        cpu: &VmxCpu,
        dom: &'a mut Domain,
        mem: &'a mut M,
        console: &'a mut C,
        vpid: u16,
        ev: EventState,
    ) -> Self {
        let cr3 = dom.base();
        // Page-table writes are trapped and emulated (docs/abi/mmu.md): #PF exits
        // only when the error code is a supervisor write to a present page with no
        // reserved-bit violation (mask P|W|U|RSVD|I, match P|W). Every other #PF
        // goes straight to the guest's IDT, as before.
        write(control::EXCEPTION_BITMAP, 1 << VEC_PF);
        write(control::PAGE_FAULT_ERR_CODE_MASK, PFEC_MASK);
        write(control::PAGE_FAULT_ERR_CODE_MATCH, PFEC_MATCH);
        let preempt = (cpu.caps.pin.can_set(super::controls::pin::PREEMPTION_TIMER))
            .then(|| cpu.caps.misc.preemption_timer_rate());
        let window_ok = cpu
            .caps
            .proc
            .can_set(super::controls::proc::INTERRUPT_WINDOW_EXITING);
        let msr_env = msr_env(cpu);
        // The pass-through MSRs keep whatever was written last (VMX does not
        // switch them): give the guest defined values (`msr::initial_values`).
        for (index, value) in msr::initial_values(&msr_env) {
            // SAFETY: these MSRs exist (the table includes TSC_AUX only with
            // RDTSCP), the values are valid, and the host does not use them.
            unsafe { crate::arch::cpu::wrmsr(index, value) };
        }
        // XSAVE is offered when the host has it, runs with CR4.OSXSAVE (set by
        // `hw::enable`), and the CPU lets the guest's CR4 carry OSXSAVE. The guest
        // then owns XCR0 (not switched by VMX; the soft-float host never uses XSAVE
        // state) and starts with its reset value, x87 only.
        let base_policy = CrPolicy::new(&cpu.caps);
        let xcr0_allowed = if crate::arch::cpu::read_cr4() & CR4_OSXSAVE != 0
            && base_policy
                .real_cr4(cr::GUEST_CR4_INITIAL | CR4_OSXSAVE)
                .is_some()
        {
            crate::policy::cpuid::xcr0_supported(&host_cpuid)
        } else {
            0
        };
        if xcr0_allowed != 0 {
            // SAFETY: host CR4.OSXSAVE is set and x87 is always valid.
            unsafe { super::hw::xsetbv(crate::policy::cpuid::xcr0::X87) };
        }
        let feat = GuestCpuFeatures {
            rdtscp: cpu.controls.rdtscp,
            xcr0_allowed,
            osxsave: false,
        };
        let id = dom.id.0;
        let abi = dom.abi_version();
        Vcpu {
            dom,
            mem,
            console,
            controls: cpu.controls,
            caps: cpu.caps,
            policy: base_policy.with_osxsave(xcr0_allowed != 0),
            maxphyaddr: cpu.maxphyaddr,
            vpid,
            cr3,
            cr3_real: cr3.addr().0,
            cr0_visible: cr::GUEST_CR0_INITIAL,
            cr4_visible: cr::GUEST_CR4_INITIAL,
            cr8: 0,
            ev,
            preempt,
            preempt_idle: true,
            window_ok,
            window_on: false,
            cpuid: CpuidPolicy::new(&host_cpuid, feat).presenting(abi),
            msr_env,
            bus: IoBus::new(id),
        }
    }

    /// The guest's current privilege level (the DPL of its SS).
    fn cpl(&self) -> Cpl {
        Cpl::from_ss_access_rights(vmread(guest::SS_ACCESS_RIGHTS) as u32)
    }

    /// Finish an instruction Keel emulated, the way the CPU finishes one: move
    /// RIP past it (by the VM-exit instruction length, valid for instruction
    /// exits, SDM 28.2.5), end any interrupt shadow, and raise the single-step
    /// trap if the guest was stepping ([`Self::retire`]). Every path that
    /// completes a guest instruction for the guest ends here or in `retire`.
    fn complete_instruction(&mut self) {
        let len = vmread(ro::VMEXIT_INSTRUCTION_LEN);
        self.retire(len);
    }

    /// Retire the `len`-byte instruction at RIP: RIP moves past it; blocking by
    /// STI or MOV SS ends (it lasts only until the next instruction completes,
    /// SDM vol. 2 STI, vol. 3 6.8.3), so an upcall can be delivered right after
    /// it; and if RFLAGS.TF was set (and DEBUGCTL.BTF clear: BTF steps branches
    /// only, and no emulated instruction is one) the single-step #DB becomes
    /// pending: the BS bit of the pending-debug-exceptions field, delivered
    /// after VM entry with DR6.BS set (SDM 27.7.3), exactly one per instruction.
    fn retire(&mut self, len: u64) {
        let rip = vmread(guest::RIP);
        write(guest::RIP, rip.wrapping_add(len));
        let rflags = vmread(guest::RFLAGS);
        let intr = vmread(guest::INTERRUPTIBILITY_STATE);
        if intr & 3 != 0 {
            write(guest::INTERRUPTIBILITY_STATE, intr & !3);
        }
        if rflags & RFLAGS_TF != 0
            && !(self.msr_env.debug_controls
                && vmread(guest::IA32_DEBUGCTL_FULL) & DEBUGCTL_BTF != 0)
        {
            let pending = vmread(guest::PENDING_DBG_EXCEPTIONS);
            write(guest::PENDING_DBG_EXCEPTIONS, pending | PENDING_DBG_BS);
        }
    }

    /// Inject a hardware exception on the next entry (SDM 27.6, event injection).
    /// RIP is left at the faulting instruction, as the fault semantics require.
    fn inject(&mut self, vector: u8, error_code: Option<u32>) {
        let mut info = (1u32 << 31) | (intr_type::HARDWARE_EXCEPTION << 8) | u32::from(vector);
        if let Some(ec) = error_code {
            info |= 1 << 11;
            write(control::VMENTRY_EXCEPTION_ERR_CODE, ec.into());
        }
        write(control::VMENTRY_INTERRUPTION_INFO_FIELD, info.into());
        log::debug!(
            "vmx: injecting {} into domain {}",
            exception_name(vector),
            self.dom.id.0
        );
    }

    /// Raise hardware exception `vector` in the guest, which arose while
    /// `during` was being delivered (`None` for the faults of an instruction
    /// Keel emulates: an instruction exit never interrupts an event delivery, and
    /// every VM exit clears the entry's interruption field). The SDM's
    /// double-fault rule decides (`crate::exception`): the fault itself, `#DF`,
    /// or a triple fault, which crashes the domain.
    fn raise(
        &mut self,
        g: &GuestGprs,
        during: Option<Delivering>,
        vector: u8,
        error_code: Option<u32>,
    ) -> Option<DomainEnd> {
        match exception::combine(during, vector) {
            exception::Outcome::Deliver => {
                self.inject(vector, error_code);
                None
            }
            exception::Outcome::DoubleFault => {
                self.inject(VEC_DF, Some(0));
                None
            }
            exception::Outcome::TripleFault => {
                let what = match during {
                    Some(Delivering::Exception(v)) => exception_name(v),
                    _ => "an event",
                };
                log::error!(
                    "vmx: domain {}: {} while delivering {what}: triple fault",
                    self.dom.id.0,
                    exception_name(vector)
                );
                self.crash(
                    g,
                    ExitReason { raw: 2 },
                    u64::from(vector),
                    "triple fault (a contributory fault or #PF while the CPU delivered #DF: the processor would shut down)",
                )
            }
        }
    }

    fn inject_gp(&mut self, g: &GuestGprs) -> Option<DomainEnd> {
        self.raise(g, None, VEC_GP, Some(0))
    }

    fn inject_ud(&mut self, g: &GuestGprs) -> Option<DomainEnd> {
        self.raise(g, None, VEC_UD, None)
    }

    /// An exit that interrupted the delivery of an event through the guest's IDT
    /// (an external interrupt or NMI arriving mid-delivery, SDM 28.2.4) must not
    /// lose that event: inject it again.
    fn reinject_idt_vectoring(&mut self) {
        let idt = vmread(ro::IDT_VECTORING_INFO) as u32;
        if idt & (1 << 31) == 0 {
            return;
        }
        // Bit 12 is undefined in IDT-vectoring information and reserved in the
        // entry field.
        let info = idt & !(1 << 12);
        if idt & (1 << 11) != 0 {
            write(
                control::VMENTRY_EXCEPTION_ERR_CODE,
                vmread(ro::IDT_VECTORING_ERR_CODE),
            );
        }
        let ty = (idt >> 8) & 7;
        if matches!(
            ty,
            intr_type::SOFTWARE_INTERRUPT
                | intr_type::PRIV_SOFTWARE_EXCEPTION
                | intr_type::SOFTWARE_EXCEPTION
        ) {
            write(
                control::VMENTRY_INSTRUCTION_LEN,
                vmread(ro::VMEXIT_INSTRUCTION_LEN),
            );
        }
        write(control::VMENTRY_INTERRUPTION_INFO_FIELD, info.into());
    }

    /// Register `n` in the SDM's encoding (0 RAX, 1 RCX, 2 RDX, 3 RBX, 4 RSP,
    /// 5 RBP, 6 RSI, 7 RDI, 8-15 R8-R15).
    fn gpr(&self, g: &GuestGprs, n: u8) -> u64 {
        match n {
            0 => g.rax,
            1 => g.rcx,
            2 => g.rdx,
            3 => g.rbx,
            4 => vmread(guest::RSP),
            5 => g.rbp,
            6 => g.rsi,
            7 => g.rdi,
            8 => g.r8,
            9 => g.r9,
            10 => g.r10,
            11 => g.r11,
            12 => g.r12,
            13 => g.r13,
            14 => g.r14,
            _ => g.r15,
        }
    }

    fn set_gpr(&self, g: &mut GuestGprs, n: u8, v: u64) {
        match n {
            0 => g.rax = v,
            1 => g.rcx = v,
            2 => g.rdx = v,
            3 => g.rbx = v,
            4 => write(guest::RSP, v),
            5 => g.rbp = v,
            6 => g.rsi = v,
            7 => g.rdi = v,
            8 => g.r8 = v,
            9 => g.r9 = v,
            10 => g.r10 = v,
            11 => g.r11 = v,
            12 => g.r12 = v,
            13 => g.r13 = v,
            14 => g.r14 = v,
            _ => g.r15 = v,
        }
    }

    // --- The handlers -----------------------------------------------------------

    /// VMCALL: a hypercall (contract: RAX nr; RDI, RSI, RDX, R10, R8; RAX result).
    fn vmcall(&mut self, g: &mut GuestGprs) -> Option<DomainEnd> {
        // Only the guest kernel may make a hypercall: from CPL > 0 it is refused
        // before anything is looked at, so it changes nothing (Xen's HVM rule,
        // `crate::privilege`). This is the one VMCS access the null hypercall
        // pays beyond the four of the exit itself.
        if !self.cpl().may_hypercall() {
            g.rax = Errno::EPERM.as_return() as u64;
            self.complete_instruction();
            return None;
        }
        // Keel's benchmark interface comes first, before any of the work below:
        // its no-op is the floor every other hypercall is measured against
        // (`crate::perf`, docs/abi/debug.md).
        if g.rax == perf::KEEL_DEBUG_OP {
            g.rax = perf::debug_op(g.rdi, g.rsi, counters, |va, bytes| {
                crate::paging::guest_mem::copy_to_guest(
                    &*self.dom,
                    &mut *self.mem,
                    self.cr3,
                    va,
                    bytes,
                )
            }) as u64;
            self.complete_instruction();
            return None;
        }
        let mut ctx = HypercallCtx {
            dom: &mut *self.dom,
            mem: &mut *self.mem,
            console: &mut *self.console,
            cr3: self.cr3,
            ev: &mut self.ev,
            now: &crate::arch::timer::rdtsc,
            work: crate::preempt::Budget::new(),
        };
        // The saved registers are the arguments, in place (`GuestGprs`' layout).
        let out = hypercall::dispatch(&mut ctx, g.hypercall_args());
        // NEW_BASEPTR and validated updates leave a CR3 switch or a TLB flush
        // owed; both happen before the guest runs again.
        self.sync_mmu();
        match out {
            Outcome::Return(v) => {
                g.rax = v as u64;
                self.complete_instruction();
                None
            }
            Outcome::Shutdown(reason) => Some(DomainEnd::Shutdown(reason)),
            Outcome::Block => {
                g.rax = 0;
                self.complete_instruction();
                self.block(g)
            }
            // A continuation (`crate::preempt`): RIP stays on the VMCALL, which
            // the guest executes again once whatever is due has been
            // delivered (`before_entry`).
            Outcome::Preempted(progress) => {
                g.rsi = progress;
                None
            }
            Outcome::Resumed { ret, count } => {
                g.rax = i64::from(ret) as u64;
                g.rsi = u64::from(count);
                self.complete_instruction();
                None
            }
        }
    }

    /// CPUID: the host's answer, edited by `crate::policy::cpuid`'s tables.
    fn cpuid(&mut self, g: &mut GuestGprs) -> Option<DomainEnd> {
        let r = self
            .cpuid
            .guest_cpuid(g.rax as u32, g.rcx as u32, &host_cpuid);
        // CPUID writes 32-bit registers: the upper halves become 0.
        g.rax = r.eax.into();
        g.rbx = r.ebx.into();
        g.rcx = r.ecx.into();
        g.rdx = r.edx.into();
        self.complete_instruction();
        None
    }

    /// Apply what the MMU layer left owed: a new base pointer (MMUEXT_NEW_BASEPTR
    /// switches CR3 without the guest executing MOV CR3) and a TLB flush.
    ///
    /// Every hypercall ends here, and almost none leaves anything owed: the test
    /// is inline and the work out of line, so a null hypercall pays two compares.
    #[inline(always)]
    fn sync_mmu(&mut self) {
        if self.dom.base() != self.cr3 || self.dom.flush_owed() {
            self.sync_mmu_owed();
        }
    }

    #[inline(never)]
    fn sync_mmu_owed(&mut self) {
        let base = self.dom.base();
        if base != self.cr3 {
            write(guest::CR3, base.addr().0);
            self.cr3 = base;
            self.cr3_real = base.addr().0;
        }
        match self.dom.take_flush() {
            Flush::None => {}
            // Everything, global translations included: an update may have removed
            // access through a G=1 entry, which a CR3-style flush (retaining
            // globals) would leave cached (XSA-286's class).
            Flush::All => self.flush_all(),
            Flush::Page(va) => self.flush_page(va),
        }
    }

    /// Drop one page's translation from the guest's VPID.
    fn flush_page(&mut self, va: u64) {
        if !self.controls.vpid {
            return; // every VM entry flushes VPID 0
        }
        if !self.caps.ept_vpid.invvpid_individual_address() || !GuestVirt(va).is_canonical() {
            self.flush_all();
            return;
        }
        if let Err(e) = invvpid(InvvpidType::IndividualAddress, self.vpid, va) {
            log::error!("vmx: INVVPID of one page failed: {e}");
        }
    }

    /// A write-protection #PF (the only kind that exits). If it is an 8-byte store
    /// to an entry of a validated page table, apply it as a validated update and
    /// skip the instruction; otherwise reflect the #PF unchanged.
    fn page_fault(&mut self, g: &mut GuestGprs) -> Option<DomainEnd> {
        let cr2 = vmread(ro::EXIT_QUALIFICATION);
        let ec = vmread(ro::VMEXIT_INTERRUPTION_ERR_CODE) as u32;
        let during = Delivering::from_info(vmread(ro::IDT_VECTORING_INFO) as u32);
        if during.is_none() {
            match self.emulate_pte_write(g, cr2) {
                Ok(len) => {
                    self.retire(len);
                    self.sync_mmu();
                    return None;
                }
                Err(why) => log::debug!(
                    "vmx: domain {} #PF[{ec:#x}] at {cr2:#x} reflected: {why}",
                    self.dom.id.0
                ),
            }
        }
        // The fault hit while delivering an event (e.g. pushing a frame onto a
        // read-only stack) is never emulated: it combines with that event by the
        // SDM's double-fault rule (`crate::exception`).
        set_guest_cr2(cr2);
        self.raise(g, during, VEC_PF, Some(ec))
    }

    /// Decode and apply the store at RIP (see `crate::paging::emulate`); its length.
    fn emulate_pte_write(&mut self, g: &GuestGprs, cr2: u64) -> Result<u64, &'static str> {
        // Only the exit filter's supervisor writes get here, but a supervisor
        // access can come from CPL3 (an implicit one, to a system structure):
        // the store emulated is a kernel instruction's, or none.
        if self.cpl() != Cpl::KERNEL {
            return Err("not a kernel instruction (CPL > 0)");
        }
        let rip = vmread(guest::RIP);
        let mut insn = [0u8; 15];
        let n = ((PAGE_SIZE - (rip & (PAGE_SIZE - 1))) as usize).min(insn.len());
        let bytes = insn.get_mut(..n).ok_or("instruction")?;
        crate::paging::guest_mem::copy_from_guest(
            &*self.dom,
            &*self.mem,
            self.cr3,
            GuestVirt(rip),
            bytes,
        )
        .map_err(|_| "instruction unreadable")?;
        let store = decode_store(bytes).ok_or("not an emulated store (MOV r/m64, r64 or imm32)")?;
        if !cr2.is_multiple_of(8) {
            return Err("misaligned store");
        }
        let ma = crate::paging::guest_mem::translate(
            &*self.dom,
            &*self.mem,
            self.cr3,
            GuestVirt(cr2),
            crate::paging::guest_mem::Access::Read,
        )
        .map_err(|_| "target not mapped")?;
        match self.dom.page_info(&*self.mem, ma.frame()) {
            Some(i) if i.validated && i.ty.level().is_some() => {}
            _ => return Err("target is not a validated page table"),
        }
        let value = match store.src {
            Source::Reg(r) => self.gpr(g, r),
            Source::Imm(v) => v,
        };
        self.dom
            .update_entry(&mut *self.mem, ma, value)
            .map_err(|_| "the new entry is refused")?;
        Ok(store.len)
    }

    /// Invalidate everything the guest has cached, globals included (CR4.PGE change).
    fn flush_all(&mut self) {
        if !self.controls.vpid {
            return;
        }
        let ty = if self.caps.ept_vpid.invvpid_single_context() {
            InvvpidType::SingleContext
        } else {
            InvvpidType::AllContext
        };
        if let Err(e) = invvpid(ty, self.vpid, 0) {
            log::error!("vmx: INVVPID after a CR4 change failed: {e}");
        }
    }

    /// The guest's view of CR0: Keel's copy, plus TS, which the guest owns.
    fn cr0_now(&self) -> u64 {
        (self.cr0_visible & !cr::CR0_GUEST_OWNED) | (vmread(guest::CR0) & cr::CR0_GUEST_OWNED)
    }

    fn apply_cr0(&mut self, w: cr::CrWrite) {
        write(guest::CR0, w.real);
        write(control::CR0_READ_SHADOW, w.visible);
        self.cr0_visible = w.visible;
    }

    /// A control-register access (SDM 28.2.1, table 28-3), by the `vmx::cr` policy.
    fn cr_access(&mut self, g: &mut GuestGprs) -> Option<DomainEnd> {
        let q = vmread(ro::EXIT_QUALIFICATION);
        let result = match CrAccess::decode(q) {
            CrAccess::MovTo { cr: 0, gpr } => {
                let v = self.gpr(g, gpr);
                self.policy
                    .write_cr0(self.cr0_now(), v)
                    .map(|w| self.apply_cr0(w))
            }
            CrAccess::MovTo { cr: 3, gpr } => {
                let v = self.gpr(g, gpr);
                match cr::mov_to_cr3(v, self.maxphyaddr) {
                    // Only a pinned, validated L4 of the domain: the trap-and-emulate
                    // form of MMUEXT_NEW_BASEPTR (docs/abi/mmu.md).
                    Ok(l) => match self.dom.new_baseptr(&mut *self.mem, l.l4) {
                        Ok(()) => {
                            write(guest::CR3, l.real);
                            self.cr3 = l.l4;
                            self.cr3_real = l.real;
                            // new_baseptr owes a full flush; sync_mmu does it.
                            self.sync_mmu();
                            Ok(())
                        }
                        Err(e) => {
                            log::warn!(
                                "vmx: domain {} loaded CR3 with frame {:#x}: {e}: #GP",
                                self.dom.id.0,
                                l.l4.0
                            );
                            Err(cr::CrFault::GeneralProtection)
                        }
                    },
                    Err(e) => Err(e),
                }
            }
            CrAccess::MovTo { cr: 4, gpr } => {
                let v = self.gpr(g, gpr);
                self.policy.write_cr4(self.cr4_visible, v).map(|w| {
                    write(guest::CR4, w.real);
                    write(control::CR4_READ_SHADOW, w.visible);
                    self.cr4_visible = w.visible;
                    // CPUID.1:ECX.OSXSAVE mirrors CR4.OSXSAVE.
                    self.cpuid.set_osxsave(w.visible & CR4_OSXSAVE != 0);
                    if w.flush_tlb {
                        self.flush_all();
                    }
                })
            }
            CrAccess::MovTo { cr: 8, gpr } => {
                let v = self.gpr(g, gpr);
                cr::mov_to_cr8(v).map(|p| self.cr8 = p)
            }
            CrAccess::MovFrom { cr: 3, gpr } => {
                // Only with CR3-store exiting, which CPUs without TRUE controls force.
                self.set_gpr(g, gpr, self.cr3_real);
                Ok(())
            }
            CrAccess::MovFrom { cr: 8, gpr } => {
                self.set_gpr(g, gpr, self.cr8.into());
                Ok(())
            }
            CrAccess::Clts => self.policy.clts(self.cr0_now()).map(|w| self.apply_cr0(w)),
            CrAccess::Lmsw { source } => self
                .policy
                .lmsw(self.cr0_now(), source)
                .map(|w| self.apply_cr0(w)),
            other => {
                return self.crash(
                    g,
                    ExitReason { raw: 28 },
                    q,
                    match other {
                        CrAccess::MovTo { .. } => "MOV to an unexpected control register",
                        _ => "MOV from an unexpected control register",
                    },
                )
            }
        };
        match result {
            Ok(()) => {
                self.complete_instruction();
                None
            }
            Err(cr::CrFault::GeneralProtection) => self.inject_gp(g),
        }
    }

    /// Log a port with no device behind it, once per port.
    fn log_unhandled(&self, port: Option<u16>, is_in: bool, size: u64) {
        if let Some(port) = port {
            if first_time(&PORTS_LOGGED, usize::from(port)) {
                log::info!(
                    "vmx: domain {} {} port {port:#x} ({size} byte{}): no device; {} (logged once per port)",
                    self.dom.id.0,
                    if is_in { "reads" } else { "writes" },
                    if size == 1 { "" } else { "s" },
                    if is_in { "reads return all ones" } else { "writes are dropped" }
                );
            }
        }
    }

    /// Port I/O (SDM 28.2.1, table 28-5), on the bus of `crate::policy::io`: COM1 is a
    /// second console, port 0x80 is ignored, every other port is empty.
    fn io(&mut self, g: &mut GuestGprs) -> Option<DomainEnd> {
        let q = vmread(ro::EXIT_QUALIFICATION);
        let size = (q & 7) + 1; // 1, 2 or 4 bytes
        let is_in = q & (1 << 3) != 0;
        let string = q & (1 << 4) != 0;
        let rep = q & (1 << 5) != 0;
        let port = (q >> 16) as u16;
        if !string {
            if is_in {
                let a = self.bus.read(port, size as u8);
                self.log_unhandled(a.unhandled, true, size);
                g.rax = match size {
                    1 => (g.rax & !0xff) | u64::from(a.value & 0xff),
                    2 => (g.rax & !0xffff) | u64::from(a.value & 0xffff),
                    // A 32-bit register write zero-extends.
                    _ => u64::from(a.value),
                };
            } else {
                let a = self
                    .bus
                    .write(port, size as u8, g.rax as u32, &mut *self.console);
                self.log_unhandled(a.unhandled, false, size);
            }
            self.complete_instruction();
            return None;
        }
        // INS/OUTS. The address size comes from the instruction-information field
        // (SDM 28.2.5) where the CPU reports it; Keel emulates 64-bit addressing only.
        let info = self
            .caps
            .ins_outs_info
            .then(|| vmread(ro::VMEXIT_INSTRUCTION_INFO));
        if let Some(info) = info {
            let asz = (info >> 7) & 7;
            if asz != 2 {
                return self.crash(
                    g,
                    ExitReason { raw: 30 },
                    q,
                    "string I/O with 16/32-bit addressing is not emulated",
                );
            }
        }
        // The memory operand's segment: INS writes ES:RDI (no override); OUTS
        // reads DS:RSI or the override's segment, from the instruction-
        // information field (bits 17:15) or else from the instruction's
        // prefixes. In 64-bit mode only an FS or GS base is added.
        let base = if is_in {
            0
        } else {
            let seg = match info {
                Some(i) => Segment::from_info(i >> 15).unwrap_or(Segment::Ds),
                None => {
                    let rip = vmread(guest::RIP);
                    let mut insn = [0u8; 15];
                    let n = ((PAGE_SIZE - (rip & (PAGE_SIZE - 1))) as usize).min(insn.len());
                    let bytes = insn.get_mut(..n).unwrap_or(&mut []);
                    match crate::paging::guest_mem::copy_from_guest(
                        &*self.dom,
                        &*self.mem,
                        self.cr3,
                        GuestVirt(rip),
                        bytes,
                    ) {
                        Ok(()) => crate::policy::io::outs_segment(bytes),
                        Err(_) => Segment::Ds,
                    }
                }
            };
            match seg {
                Segment::Fs => vmread(guest::FS_BASE),
                Segment::Gs => vmread(guest::GS_BASE),
                _ => 0,
            }
        };
        // A REP prefix with a huge RCX must not keep Keel in one exit for long
        // (the guest may alias one page at many addresses): emulate at most
        // STRING_IO_CHUNK elements, leave RIP on the instruction with RCX
        // decremented, and let it exit again, as the CPU itself may interrupt a
        // REP string instruction between iterations.
        let count = if rep { g.rcx.min(STRING_IO_CHUNK) } else { 1 };
        let Some(bytes) = count.checked_mul(size) else {
            return self.crash(g, ExitReason { raw: 30 }, q, "string I/O count overflows");
        };
        // RFLAGS.DF: the string runs downwards, element by element (rare; the
        // upward case moves 64 bytes per guest-memory access).
        let down = vmread(guest::RFLAGS) & RFLAGS_DF != 0;
        let step = if down { size } else { 64 };
        let at = |base: u64, done: u64| {
            GuestVirt(if down {
                base.wrapping_sub(done)
            } else {
                base.wrapping_add(done)
            })
        };
        // The memory operand is accessed with the permissions of the level that
        // executed the instruction (user mode reaches it with IOPL=3).
        let mode = self.cpl().access_mode();
        // A chunk at a time, through the guest's page tables with its permissions:
        // INS reads the device into the buffer and copies it out, OUTS copies in
        // and writes each element to the device.
        let mut buf = [0u8; 64];
        let mut done = 0u64;
        while done < bytes {
            let n = (bytes - done).min(step);
            let va = at(
                if is_in {
                    g.rdi
                } else {
                    base.wrapping_add(g.rsi)
                },
                done,
            );
            // Find the first element the guest cannot access before touching
            // the device (a faulting INS element must not consume input) and do
            // the whole elements before it (a downward chunk is one element).
            let access = if is_in { Access::Write } else { Access::Read };
            let fault = first_fault(&*self.dom, &*self.mem, self.cr3, va, n, access, mode);
            let ok = match fault {
                None => n,
                Some(_) if down => 0,
                Some(f) => f.at().0.wrapping_sub(va.0) / size * size,
            };
            let Some(chunk) = buf.get_mut(..ok as usize) else {
                break;
            };
            if is_in {
                for el in chunk.chunks_mut(size as usize) {
                    let a = self.bus.read(port, size as u8);
                    self.log_unhandled(a.unhandled, true, size);
                    for (d, b) in el.iter_mut().zip(a.value.to_le_bytes()) {
                        *d = b;
                    }
                }
                if crate::paging::guest_mem::copy_to_guest_as(
                    &*self.dom,
                    &mut *self.mem,
                    self.cr3,
                    va,
                    chunk,
                    mode,
                )
                .is_err()
                {
                    return self.crash(
                        g,
                        ExitReason { raw: 30 },
                        q,
                        "INS: a checked destination became unwritable (hypervisor bug)",
                    );
                }
            } else {
                if crate::paging::guest_mem::copy_from_guest_as(
                    &*self.dom, &*self.mem, self.cr3, va, chunk, mode,
                )
                .is_err()
                {
                    return self.crash(
                        g,
                        ExitReason { raw: 30 },
                        q,
                        "OUTS: a checked source became unreadable (hypervisor bug)",
                    );
                }
                for el in chunk.chunks(size as usize) {
                    let mut v = [0u8; 4];
                    for (d, b) in v.iter_mut().zip(el) {
                        *d = *b;
                    }
                    let a =
                        self.bus
                            .write(port, size as u8, u32::from_le_bytes(v), &mut *self.console);
                    self.log_unhandled(a.unhandled, false, size);
                }
            }
            done += ok;
            if let Some(f) = fault {
                return self.string_io_fault(g, f, is_in, down, rep, done, size);
            }
        }
        advance_string_pointer(g, is_in, down, bytes);
        if rep {
            g.rcx -= count;
            if g.rcx != 0 {
                // Not done: execute it again (RIP unchanged).
                return None;
            }
        }
        self.complete_instruction();
        None
    }

    /// A string I/O element faulted (`crate::paging::access_fault`): end the
    /// instruction as the CPU would. The elements before it are done, so RSI or
    /// RDI has moved past them and, under REP, RCX counts them off (a REP string
    /// instruction is restartable between iterations); RIP stays on the
    /// instruction, and the fault is injected (#PF with CR2, or #GP(0)).
    #[allow(clippy::too_many_arguments)]
    fn string_io_fault(
        &mut self,
        g: &mut GuestGprs,
        f: AccessFault,
        is_in: bool,
        down: bool,
        rep: bool,
        done_bytes: u64,
        size: u64,
    ) -> Option<DomainEnd> {
        advance_string_pointer(g, is_in, down, done_bytes);
        if rep {
            g.rcx = g.rcx.wrapping_sub(done_bytes / size);
        }
        match f {
            AccessFault::GeneralProtection { .. } => self.inject_gp(g),
            AccessFault::PageFault { cr2, error_code } => {
                set_guest_cr2(cr2.0);
                self.raise(g, None, VEC_PF, Some(error_code))
            }
        }
    }

    /// RDMSR/WRMSR, by the table of `crate::policy::msr`: the policy says what to do, this
    /// does it. Accesses to pass-through MSRs only get here on a CPU without MSR
    /// bitmaps.
    fn msr(&mut self, g: &mut GuestGprs, is_write: bool) -> Option<DomainEnd> {
        let index = g.rcx as u32;
        let read_op = |op: ReadOp| match op {
            ReadOp::Value(v) => v,
            ReadOp::Vmcs(f) => vmread(vmcs_field(f)),
            // The table only names MSRs that exist on the host for `Host`.
            ReadOp::Host => crate::arch::cpu::rdmsr(index),
        };
        let ok = if is_write {
            let value = (g.rdx << 32) | (g.rax & 0xffff_ffff);
            let env = self.msr_env;
            let current = || msr::read(index, &env).map_or(0, read_op);
            match msr::write(index, value, current, &env) {
                Ok(WriteOp::Vmcs(f, v)) => {
                    write(vmcs_field(f), v);
                    true
                }
                Ok(WriteOp::Host(v)) => {
                    // SAFETY: a pass-through MSR (not switched by VMX, unused by the
                    // host) or, without EFER switching, EFER with only SCE changed
                    // (the host never executes SYSCALL); the policy validated the
                    // value as the CPU would.
                    unsafe { crate::arch::cpu::wrmsr(index, v) };
                    true
                }
                Ok(WriteOp::Ignore) => true,
                Err(msr::GpFault) => false,
            }
        } else {
            match msr::read(index, &self.msr_env) {
                Ok(op) => {
                    let v = read_op(op);
                    g.rax = v & 0xffff_ffff;
                    g.rdx = v >> 32;
                    true
                }
                Err(msr::GpFault) => false,
            }
        };
        if ok {
            self.complete_instruction();
        } else {
            log::debug!(
                "vmx: domain {} {} MSR {index:#x}: #GP(0) (msr policy)",
                self.dom.id.0,
                if is_write { "wrote" } else { "read" }
            );
            return self.inject_gp(g);
        }
        None
    }

    /// XSETBV (always exits): validated by `insns::xsetbv` against the XCR0 values
    /// CPUID offers, then executed on the host (XCR0 is not switched by VMX and the
    /// soft-float host never uses XSAVE state, so the guest's XCR0 stays loaded).
    fn xsetbv(&mut self, g: &mut GuestGprs) -> Option<DomainEnd> {
        let value = (g.rdx << 32) | (g.rax & 0xffff_ffff);
        let feat = self.cpuid.features();
        let osxsave = self.cr4_visible & CR4_OSXSAVE != 0;
        match insns::xsetbv(osxsave, g.rcx as u32, value, feat.xcr0_allowed) {
            Ok(v) => {
                // SAFETY: `v` is a subset of what the host supports with x87 set
                // and AVX only with SSE (validated above), so XSETBV cannot fault;
                // the host's CR4.OSXSAVE is set whenever `xcr0_allowed` is nonzero.
                unsafe { super::hw::xsetbv(v) };
                self.complete_instruction();
            }
            Err(XsetbvFault::Ud) => return self.inject_ud(g),
            Err(XsetbvFault::Gp) => return self.inject_gp(g),
        }
        None
    }

    /// A host interrupt arrived while the guest ran. Keel 0.1 has no interrupt
    /// source of its own; with "acknowledge interrupt on exit" the CPU has already
    /// taken the vector from the interrupt controller. Keel leaves it in service
    /// (no EOI), which keeps that source and lower-priority ones quiet, logs the
    /// vector once, and resumes the guest.
    fn external_interrupt(&mut self, g: &GuestGprs) -> Option<DomainEnd> {
        if self.controls.exit & exit_ctl::ACK_INTERRUPT_ON_EXIT == 0 {
            return self.crash(
                g,
                ExitReason { raw: 1 },
                0,
                "host interrupt pending, and without \"acknowledge interrupt on exit\" Keel 0.1 cannot take it",
            );
        }
        let info = vmread(ro::VMEXIT_INTERRUPTION_INFO);
        let vector = (info & 0xff) as usize;
        if vector == usize::from(crate::arch::timer::TIMER_VECTOR) {
            // Keel's own APIC timer, left pending from an idle period: acknowledge
            // it (the timers are looked at before the next entry anyway).
            crate::arch::timer::eoi();
        } else if vector == usize::from(crate::arch::timer::SPURIOUS_VECTOR) {
            // Spurious: no EOI.
        } else if first_time(&VECTORS_LOGGED, vector) {
            log::warn!("vmx: host interrupt vector {vector:#x} arrived while domain {} ran: acknowledged and left in service (0.1 has no interrupt sources)", self.dom.id.0);
        }
        self.reinject_idt_vectoring();
        None
    }

    /// An NMI, or a write-protection #PF (the only exception the bitmap
    /// intercepts, filtered by the error-code mask and match).
    fn exception_or_nmi(&mut self, g: &mut GuestGprs) -> Option<DomainEnd> {
        let info = vmread(ro::VMEXIT_INTERRUPTION_INFO) as u32;
        if (info >> 8) & 7 == intr_type::HARDWARE_EXCEPTION && info & 0xff == u32::from(VEC_PF) {
            return self.page_fault(g);
        }
        if (info >> 8) & 7 == intr_type::NMI {
            log::warn!(
                "vmx: NMI while domain {} ran: ignored (0.1 has no NMI sources)",
                self.dom.id.0
            );
            self.reinject_idt_vectoring();
            return None;
        }
        self.crash(
            g,
            ExitReason { raw: 0 },
            u64::from(info),
            "unexpected exception exit (only #PF is intercepted)",
        )
    }

    /// INVLPG exiting is off where the TRUE controls exist; a CPU without them
    /// forces it. Emulate: drop the page's translation for the guest's VPID.
    fn invlpg(&mut self) -> Option<DomainEnd> {
        let va = vmread(ro::EXIT_QUALIFICATION);
        if self.controls.vpid {
            let r = if self.caps.ept_vpid.invvpid_individual_address() {
                invvpid(InvvpidType::IndividualAddress, self.vpid, va)
            } else {
                invvpid(
                    if self.caps.ept_vpid.invvpid_single_context() {
                        InvvpidType::SingleContext
                    } else {
                        InvvpidType::AllContext
                    },
                    self.vpid,
                    0,
                )
            };
            if let Err(e) = r {
                log::error!("vmx: INVVPID for INVLPG failed: {e}");
            }
        }
        self.complete_instruction();
        None
    }

    /// Block the vCPU (`SCHEDOP_block`, `SCHEDOP_poll`, HLT) until what
    /// `self.ev.blocked` waits for happens: fire timers as they come due, and
    /// between them idle the CPU in HLT with the local APIC timer set for the next
    /// deadline. A vCPU with nothing that could ever wake it is killed.
    fn block(&mut self, g: &GuestGprs) -> Option<DomainEnd> {
        if self.ev.blocked.is_none() {
            self.ev.blocked = Some(Blocked::Block);
        }
        loop {
            let tsc = crate::arch::timer::rdtsc();
            self.ev.expire_timers(&*self.dom, &mut *self.mem, tsc);
            if self.ev.should_wake(&*self.dom, &mut *self.mem, tsc) {
                break;
            }
            match self.ev.wake_deadline_tsc() {
                Some(d) => {
                    // Idle time is the console's: drain until the deadline.
                    self.console.drain_until(d);
                    crate::arch::timer::idle_until(d)
                }
                None => {
                    self.ev.blocked = None;
                    return self.crash(
                        g,
                        ExitReason { raw: 12 },
                        0,
                        "blocked with no event source (no event pending or deliverable, no timer armed): it would sleep forever",
                    );
                }
            }
        }
        self.ev.blocked = None;
        // Refresh the pvclock record at wake-up (Xen updates it when a vCPU is
        // scheduled; with a constant TSC the values are the same).
        let rec = self.ev.clock.time_info();
        if let Some(mut page) = self.ev.page(&*self.dom, &mut *self.mem) {
            page.publish_time(&rec);
        }
        None
    }

    fn set_window_exiting(&mut self, on: bool) {
        if on == self.window_on || !self.window_ok {
            return;
        }
        let bit = u64::from(super::controls::proc::INTERRUPT_WINDOW_EXITING);
        let procv = vmread(control::PRIMARY_PROCBASED_EXEC_CONTROLS);
        write(
            control::PRIMARY_PROCBASED_EXEC_CONTROLS,
            if on { procv | bit } else { procv & !bit },
        );
        self.window_on = on;
    }

    /// Before every VM entry: fire due timers, inject the upcall vector when the
    /// guest can take it (else ask for an interrupt-window exit), and set the
    /// VMX-preemption timer for the next deadline. Costs nothing (no VMCS access)
    /// when no timer is armed and no upcall is wanted: the VMCALL fast path keeps
    /// its four accesses.
    #[inline(always)]
    fn before_entry(&mut self) {
        // The common case, first and cheap, and inline in the exit handler: no
        // timer armed, no upcall vector registered, no interrupt window
        // requested and the preemption timer already parked. Then every step of
        // the work would do nothing (no timer to fire, `upcall_wanted` is None
        // without a vector, the window is already off, the deadline is None and
        // the timer idle), so skip it all.
        if self.ev.callback_vector.is_none()
            && self.ev.timers.next_deadline().is_none()
            && !self.window_on
            && self.preempt_idle
            && self.ev.blocked.is_none()
        {
            if self.console.pump_due() {
                self.console.pump(u64::MAX);
            }
            return;
        }
        self.before_entry_work();
    }

    /// The work of [`Self::before_entry`] when something is live.
    #[inline(never)]
    fn before_entry_work(&mut self) {
        if self.ev.timers.next_deadline().is_some() {
            let tsc = crate::arch::timer::rdtsc();
            self.ev.expire_timers(&*self.dom, &mut *self.mem, tsc);
        }
        let upcall = self.ev.upcall_wanted(&*self.dom, &mut *self.mem);
        // A console burst (see `handle_exit`) only if no event waits to be
        // delivered (a timer that fired while the vCPU was blocked included) and
        // it will have gone before the next deadline: a burst can cost
        // milliseconds where each port access exits to a hypervisor beneath
        // Keel. Before the VMX-preemption timer is set, which reads the TSC.
        if upcall.is_none() && self.console.pump_due() {
            self.console
                .pump(self.ev.wake_deadline_tsc().unwrap_or(u64::MAX));
        }
        match upcall {
            Some(vector) => {
                let rflags = vmread(guest::RFLAGS);
                let shadow = vmread(guest::INTERRUPTIBILITY_STATE) & 3;
                let busy = vmread(control::VMENTRY_INTERRUPTION_INFO_FIELD) & INJECT_VALID != 0;
                match crate::event::upcall_action(rflags & RFLAGS_IF != 0, shadow != 0, busy) {
                    UpcallAction::Inject => {
                        write(
                            control::VMENTRY_INTERRUPTION_INFO_FIELD,
                            // Type 0: external interrupt.
                            INJECT_VALID | u64::from(vector),
                        );
                        self.set_window_exiting(false);
                    }
                    UpcallAction::WaitForWindow => self.set_window_exiting(true),
                }
            }
            None => self.set_window_exiting(false),
        }
        let Some(rate) = self.preempt else {
            // No VMX-preemption timer: the host's APIC timer ends the guest's run
            // at the deadline (an external-interrupt exit, acknowledged above).
            match self.ev.wake_deadline_tsc() {
                Some(d) => {
                    crate::arch::timer::arm(d);
                    self.preempt_idle = false;
                }
                None if !self.preempt_idle => {
                    crate::arch::timer::disarm();
                    self.preempt_idle = true;
                }
                None => {}
            }
            return;
        };
        match self.ev.wake_deadline_tsc() {
            Some(d) => {
                // Read the TSC as late as possible: the timer counts from the
                // entry, so every tick spent after this read makes it late.
                let tsc = crate::arch::timer::rdtsc();
                let ticks = d.saturating_sub(tsc);
                // Round up: the exit must not come before the deadline (it would
                // only cost one more exit, but keep it exact).
                let v = (ticks >> rate) + u64::from(ticks & ((1 << rate) - 1) != 0);
                write(guest::VMX_PREEMPTION_TIMER_VALUE, v.min(PREEMPT_NEVER));
                self.preempt_idle = false;
            }
            None if !self.preempt_idle => {
                write(guest::VMX_PREEMPTION_TIMER_VALUE, PREEMPT_NEVER);
                self.preempt_idle = true;
            }
            None => {}
        }
    }

    /// Kill the domain, printing everything a developer needs to see why.
    fn crash(
        &mut self,
        g: &GuestGprs,
        reason: ExitReason,
        qual: u64,
        why: &str,
    ) -> Option<DomainEnd> {
        // Whatever the guest printed last may explain the crash.
        self.dom.console_flush(&mut *self.console);
        let id = self.dom.id.0;
        let rip = vmread(guest::RIP);
        log::error!("vmx: domain {id} crashed: {why}");
        log::error!("vmx:   {reason}, exit qualification {qual:#x}");
        log::error!(
            "vmx:   RIP {rip:#018x} RSP {:#018x} RFLAGS {:#x}",
            vmread(guest::RSP),
            vmread(guest::RFLAGS)
        );
        log::error!(
            "vmx:   CR0 {:#x} (guest sees {:#x}) CR3 {:#x} CR4 {:#x} (guest sees {:#x})",
            vmread(guest::CR0),
            self.cr0_now(),
            vmread(guest::CR3),
            vmread(guest::CR4),
            self.cr4_visible
        );
        log::error!(
            "vmx:   RAX {:#018x} RBX {:#018x} RCX {:#018x} RDX {:#018x}",
            g.rax,
            g.rbx,
            g.rcx,
            g.rdx
        );
        log::error!(
            "vmx:   RSI {:#018x} RDI {:#018x} RBP {:#018x} R8  {:#018x}",
            g.rsi,
            g.rdi,
            g.rbp,
            g.r8
        );
        log::error!(
            "vmx:   R9  {:#018x} R10 {:#018x} R11 {:#018x} R12 {:#018x}",
            g.r9,
            g.r10,
            g.r11,
            g.r12
        );
        log::error!(
            "vmx:   R13 {:#018x} R14 {:#018x} R15 {:#018x}",
            g.r13,
            g.r14,
            g.r15
        );
        // The instruction bytes at RIP, through the guest's own page tables (up to
        // 16, not past the end of RIP's page if the next one is unreadable).
        let mut buf = [0u8; 16];
        let to_page_end = (PAGE_SIZE - (rip & (PAGE_SIZE - 1))).min(16) as usize;
        let mut n = 16;
        let mut res = crate::paging::guest_mem::copy_from_guest(
            &*self.dom,
            &*self.mem,
            self.cr3,
            GuestVirt(rip),
            &mut buf,
        );
        if res.is_err() && to_page_end < 16 {
            n = to_page_end;
            res = crate::paging::guest_mem::copy_from_guest(
                &*self.dom,
                &*self.mem,
                self.cr3,
                GuestVirt(rip),
                &mut buf[..n],
            );
        }
        match res {
            Ok(()) => {
                let mut line = [0u8; 16 * 3];
                let mut len = 0;
                for b in &buf[..n] {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    if let Some(s) = line.get_mut(len..len + 3) {
                        s.copy_from_slice(&[
                            HEX[usize::from(b >> 4)],
                            HEX[usize::from(b & 0xf)],
                            b' ',
                        ]);
                        len += 3;
                    }
                }
                log::error!(
                    "vmx:   code at RIP: {}",
                    core::str::from_utf8(&line[..len]).unwrap_or("?")
                );
            }
            Err(e) => log::error!("vmx:   code at RIP: unreadable ({e:?})"),
        }
        Some(DomainEnd::Crashed)
    }
}

impl<M: PhysMem, C: Console> ExitEnv for Vcpu<'_, M, C> {
    fn handle_exit(&mut self, g: &mut GuestGprs) -> Option<DomainEnd> {
        let end = self.dispatch(g);
        // Drain the console ring by one burst if the UART takes it now (one load
        // when the ring is empty): output moves while the guest runs, and no
        // exit waits for the serial line. `before_entry` does it for a guest
        // that goes on running, where it knows the timers and the upcall.
        if end.is_none() {
            self.before_entry();
        } else if self.console.pump_due() {
            self.console.pump(u64::MAX);
        }
        // A partial COM1 line is printed when the domain ends.
        if end.is_some() && self.bus.com1.pending() {
            self.bus.com1.flush(&mut *self.console);
        }
        end
    }
}

impl<M: PhysMem, C: Console> Vcpu<'_, M, C> {
    /// Handle one exit by its basic reason.
    fn dispatch(&mut self, g: &mut GuestGprs) -> Option<DomainEnd> {
        let reason = ExitReason {
            raw: vmread(ro::EXIT_REASON) as u32,
        };
        STATS.count_exit(reason.basic());
        if reason.entry_failure() {
            // SDM 27.8: VM entry failed after the control and host checks passed
            // (invalid guest state, MSR loading, machine check).
            report_entry_failure(reason, vmread(ro::EXIT_QUALIFICATION));
            return Some(DomainEnd::EntryFailed);
        }
        match reason.basic() {
            reason::VMCALL => self.vmcall(g),
            reason::CPUID => self.cpuid(g),
            reason::CR_ACCESS => self.cr_access(g),
            reason::IO => self.io(g),
            reason::RDMSR => self.msr(g, false),
            reason::WRMSR => self.msr(g, true),
            // HLT blocks like SCHEDOP_block, without touching evtchn_upcall_mask.
            reason::HLT => {
                self.complete_instruction();
                self.ev.blocked = Some(Blocked::Block);
                self.block(g)
            }
            reason::INTERRUPT_WINDOW => {
                // The guest can take an interrupt now: `before_entry` injects.
                self.set_window_exiting(false);
                None
            }
            reason::PREEMPTION_TIMER => {
                // A timer is due: `before_entry` fires it.
                self.reinject_idt_vectoring();
                None
            }
            reason::EXTERNAL_INTERRUPT => self.external_interrupt(g),
            reason::EXCEPTION_OR_NMI => self.exception_or_nmi(g),
            reason::TRIPLE_FAULT => self.crash(
                g,
                reason,
                0,
                "triple fault (an exception the guest could not deliver; before the guest loads its own IDT, every exception is one)",
            ),
            reason::INVLPG => self.invlpg(),
            // The other sensitive instructions: `crate::policy::insns`' table.
            other => match insns::on_exit(other) {
                Some(insns::Action::Ud) => self.inject_ud(g),
                Some(insns::Action::Gp0) => self.inject_gp(g),
                Some(insns::Action::Skip) => {
                    self.complete_instruction();
                    None
                }
                Some(insns::Action::Xsetbv) => self.xsetbv(g),
                Some(insns::Action::Table(_) | insns::Action::Native) | None => {
                    let q = vmread(ro::EXIT_QUALIFICATION);
                    self.crash(g, reason, q, "unexpected VM exit")
                }
            },
        }
    }
}
