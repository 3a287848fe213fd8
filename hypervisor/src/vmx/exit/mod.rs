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

mod cpuid;
mod cr;
mod crash;
mod events;
mod hypercall_ctx;
mod insns;
mod interrupt;
mod io;
mod mmu;
mod msr;
mod sharing;
mod vmcall;

pub use msr::msr_env;
pub use sharing::{RunFields, VcpuParked, Visitor};
pub use vmcall::note_platform;

use x86::vmx::vmcs::{control, guest, ro};

use super::caps::VmxCaps;
use super::checks::intr_type;
use super::control_bits::{ExceptionBitmap, ExitControls, PinbasedControls, PrimaryControls};
use super::controls::Controls;
use super::cr::{self as cr_policy, CrAccess, CrPolicy};
use super::frame::{DomainEnd, FastExit, GuestGprs};
use super::insn::{invvpid, set_guest_cr2, vmread, vmread_current, vmwrite_guest, InvvpidType};
use super::io_qual::IoAccess;
use super::names::{exception_name, ExitReason};
use super::percpu;
use super::percpu::VmxCpu;
use crate::addr::{GuestVirt, Mfn, PAGE_SIZE};
use crate::arch::bits::{rflags, Interruptibility, PendingDebug};
use crate::arch::cpu::cpuid as host_cpuid;
use crate::domain::Domain;
use crate::event::advance::TimerAdvance;
use crate::event::{Blocked, EventState, UpcallAction};
use crate::exception::{self, Delivering};
use crate::hypercall::{self, Outcome};
use crate::mem::{Console, PhysMem};
use crate::paging::access_fault::{first_fault, AccessFault};
use crate::paging::emulate::{decode_store, Source};
use crate::paging::guest_mem::Access;
use crate::paging::Flush;
use crate::peers::Peers;
use crate::perf;
use crate::policy::cpuid::{CpuidPolicy, GuestCpuFeatures, Xcr0};
use crate::policy::insns::{self as insns_policy, XsetbvFault};
use crate::policy::io::{IoBus, Segment};
use crate::policy::msr::{self as msr_policy, MsrEnv, ReadOp, VmcsMsr};
use crate::privilege::Cpl;
use keel_abi::debug::PerfCounters;
use keel_abi::Errno;

const VEC_UD: u8 = 6;
const VEC_DF: u8 = 8;
const VEC_GP: u8 = 13;
const VEC_PF: u8 = 14;
/// #PF error-code bits: present, write, user, reserved bit, instruction fetch.
const PFEC_MASK: u64 = 0b1_1111;
/// Present and write: a write-protection fault at CPL0.
const PFEC_MATCH: u64 = 0b0_0011;
const RFLAGS_DF: u64 = rflags::DF;
/// Blocking by STI or by MOV SS: what completing an instruction ends.
const BLOCKING_STI_MOV_SS: u64 = Interruptibility::STI.bits() | Interruptibility::MOV_SS.bits();
const RFLAGS_TF: u64 = rflags::TF;
/// Pending debug exceptions: BS, a single-step trap is pending.
const PENDING_DBG_BS: u64 = PendingDebug::BS.bits();
/// IA32_DEBUGCTL.BTF: single-step on branches only.
const DEBUGCTL_BTF: u64 = crate::arch::bits::debugctl::BTF;

/// The most elements one exit emulates of a REP INS/OUTS.
const STRING_IO_CHUNK: u64 = 4096;

/// CR4.OSXSAVE.
const CR4_OSXSAVE: u64 = crate::arch::bits::cr4::OSXSAVE;

/// A VMWRITE on the exit path, of a guest-facing field (`insn::vmwrite_guest`).
/// A failure would be a Keel bug, and the next entry's check would report it.
#[inline(always)]
fn write(field: u32, value: u64) {
    vmwrite_guest(field, value);
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
    /// The L4 frame the VMCS's guest CR3 points at now, and the CR3 value the
    /// guest reads back. A copy of the hardware field (a compare on every
    /// hypercall is cheaper than a VMREAD), never a second root: the domain's
    /// root is `Domain::base`, and `sync_mmu` makes the VMCS follow it.
    loaded_base: Mfn,
    cr3_real: u64,
    /// What the guest reads from CR0 (except TS, which is the guest's own) and CR4.
    cr0_visible: u64,
    cr4_visible: u64,
    /// The guest's task-priority class (MOV CR8).
    cr8: u8,
    /// Event channels, timers, the clock.
    ev: EventState,
    /// The VMX-preemption timer is active (pin control set in `setup_vmcs`), and
    /// its rate: it counts down once every 2^rate TSC ticks.
    preempt: Option<u32>,
    /// The preemption-timer field holds its "never" value (no timer armed).
    preempt_idle: bool,
    /// The guest's deadline (TSC) the preemption timer is armed for, `advance`
    /// early (`None` when it is armed for the end of a slice, or not at all).
    preempt_for: Option<u64>,
    /// The TSC by which the armed VMX-preemption timer expires at the latest
    /// (`u64::MAX`: parked): its exit after that is overdue (`crate::overdue`).
    preempt_due: u64,
    /// The learned latency of the preemption timer's exit (`crate::event::advance`).
    advance: TimerAdvance,
    /// Interrupt-window exiting can be used / is on now.
    window_ok: bool,
    window_on: bool,
    /// The CPUID policy folded for this vCPU (`crate::policy::cpuid`).
    cpuid: CpuidPolicy,
    /// What the MSR policy depends on (`crate::policy::msr`).
    msr_env: MsrEnv,
    /// The guest's I/O bus (`crate::policy::io`): COM1 and an empty rest.
    bus: IoBus,
    /// `before_entry` has nothing to do: no upcall vector, no timer armed, no
    /// interrupt window asked for, the preemption timer parked, not blocked.
    /// Computed again by every path that can change one of those: after
    /// `before_entry`'s work, a hypercall, or any exit but VMCALL.
    quiet: bool,
    /// The exit being handled (read by `fast_exit`).
    reason: ExitReason,
    /// What the fast path left for `handle_exit` to finish with every register.
    deferred: Option<Deferred>,
    /// Other domains share this CPU: blocking and yielding give it up to the
    /// run loop (`vmx::run`) instead of idling or continuing in place.
    shared_cpu: bool,
    /// When this vCPU's time slice ends (TSC), if the run loop set one: the
    /// VMX-preemption timer (or the APIC timer) is armed for it too.
    slice_end: Option<u64>,
    /// Why the vCPU gives the CPU up, once decided (read by the run loop).
    give_up: Option<GiveUp>,
    /// The domain is served the vCPU operations (ABI 1.2), so its run state
    /// is kept (`enter_runstate`); no other domain can ask for it, and none
    /// pays for it.
    runstates: bool,
}

/// Why a vCPU leaves the CPU to the run loop while its domain goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveUp {
    /// It blocked (`SCHEDOP_block`, `SCHEDOP_poll`, HLT) with nothing to deliver.
    Block,
    /// `SCHEDOP_yield`.
    Yield,
    /// Its time slice ended.
    Preempted,
}

/// The part of an exit the fast path leaves to `handle_exit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deferred {
    /// Block the vCPU (a crash, if nothing can wake it, dumps every register).
    Block,
    /// The domain ends.
    End(DomainEnd),
    /// The vCPU gives the CPU up.
    Switch(GiveUp),
}

/// The preemption-timer value that means "no timer": about 2^32 << rate TSC
/// ticks, re-armed at every exit anyway.
const PREEMPT_NEVER: u64 = crate::vmx::caps::PREEMPTION_TIMER_MAX;
/// The VMX-preemption timer's rate (TSC ticks per timer tick, as a shift),
/// if this CPU has the timer.
fn preempt_rate(cpu: &VmxCpu) -> Option<u32> {
    (cpu.caps.pin.can_set(PinbasedControls::PREEMPTION_TIMER))
        .then(|| cpu.caps.misc.preemption_timer_rate())
}

/// VM-entry interruption information: valid, type external interrupt (0).
const INJECT_VALID: u64 = 1 << 31;
/// RFLAGS.IF.
const RFLAGS_IF: u64 = rflags::IF;

/// The exits the exit handlers expect of the current VMCS, beyond what
/// `setup::setup_vmcs` writes (for each vCPU's VMCS).
pub fn init_vmcs_exits() {
    // Page-table writes are trapped and emulated (docs/abi/mmu.md): #PF exits
    // only when the error code is a supervisor write to a present page with no
    // reserved-bit violation (mask P|W|U|RSVD|I, match P|W). Every other #PF
    // goes straight to the guest's IDT, as before.
    write(
        control::EXCEPTION_BITMAP,
        ExceptionBitmap::PAGE_FAULT.bits().into(),
    );
    write(control::PAGE_FAULT_ERR_CODE_MASK, PFEC_MASK);
    write(control::PAGE_FAULT_ERR_CODE_MATCH, PFEC_MATCH);
}

impl<'a, M: PhysMem, C: Console> Vcpu<'a, M, C> {
    /// The vCPU for `dom`'s first entry (state as `setup::setup_vmcs` writes it).
    pub fn new(
        cpu: &VmxCpu,
        dom: &'a mut Domain,
        mem: &'a mut M,
        console: &'a mut C,
        vpid: u16,
        ev: EventState,
    ) -> Self {
        // The vCPUs' run states count TSC ticks from the domain's clock's
        // start (system time 0).
        dom.vcpus.set_created(ev.clock.tsc0);
        let runstates = dom.serves(crate::domain::vcpus::SINCE);
        let cr3 = dom.base();
        init_vmcs_exits();
        let preempt = preempt_rate(cpu);
        let window_ok = cpu
            .caps
            .proc
            .can_set(PrimaryControls::INTERRUPT_WINDOW_EXITING);
        let msr_env = msr_env(cpu);
        // XSAVE is offered when the host has it, runs with CR4.OSXSAVE (set by
        // `enable::enable`), and the CPU lets the guest's CR4 carry OSXSAVE. The guest
        // then owns XCR0 (not switched by VMX; the soft-float host never uses XSAVE
        // state) and starts with its reset value, x87 only.
        let base_policy = CrPolicy::new(&cpu.caps);
        let xcr0_allowed = if crate::arch::cpu::read_cr4() & CR4_OSXSAVE != 0
            && base_policy
                .real_cr4(cr_policy::GUEST_CR4_INITIAL | CR4_OSXSAVE)
                .is_some()
        {
            crate::policy::cpuid::xcr0_supported(&host_cpuid)
        } else {
            Xcr0::empty()
        };
        // The pass-through MSRs keep whatever was written last (VMX does not
        // switch them), and so does XCR0: give the guest defined values.
        super::setup::init_unswitched_state(&msr_env, !xcr0_allowed.is_empty());
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
            policy: base_policy.with_osxsave(!xcr0_allowed.is_empty()),
            maxphyaddr: cpu.maxphyaddr,
            vpid,
            loaded_base: cr3,
            cr3_real: cr3.addr().get(),
            cr0_visible: cr_policy::GUEST_CR0_INITIAL,
            cr4_visible: cr_policy::GUEST_CR4_INITIAL,
            cr8: 0,
            ev,
            preempt,
            preempt_idle: true,
            preempt_for: None,
            preempt_due: u64::MAX,
            advance: TimerAdvance::new(),
            window_ok,
            window_on: false,
            cpuid: CpuidPolicy::new(&host_cpuid, feat).presenting(abi),
            msr_env,
            bus: IoBus::new(id),
            quiet: false,
            reason: ExitReason::from_raw(0),
            deferred: None,
            shared_cpu: false,
            slice_end: None,
            give_up: None,
            runstates,
        }
    }

    /// The guest's current privilege level (the DPL of its SS).
    #[inline(always)]
    fn cpl(&self) -> Cpl {
        Cpl::from_ss_access_rights(vmread_current(guest::SS_ACCESS_RIGHTS) as u32)
    }

    /// Finish an instruction Keel emulated, the way the CPU finishes one: move
    /// RIP past it (by the VM-exit instruction length, valid for instruction
    /// exits, SDM 28.2.5), end any interrupt shadow, and raise the single-step
    /// trap if the guest was stepping ([`Self::retire`]). Every path that
    /// completes a guest instruction for the guest ends here or in `retire`.
    #[inline(always)]
    fn complete_instruction(&mut self) {
        let len = vmread_current(ro::VMEXIT_INSTRUCTION_LEN);
        self.retire(len);
    }

    /// Retire the `len`-byte instruction at RIP: RIP moves past it; blocking by
    /// STI or MOV SS ends (it lasts only until the next instruction completes,
    /// SDM vol. 2 STI, vol. 3 6.8.3), so an upcall can be delivered right after
    /// it; and if RFLAGS.TF was set (and DEBUGCTL.BTF clear: BTF steps branches
    /// only, and no emulated instruction is one) the single-step #DB becomes
    /// pending: the BS bit of the pending-debug-exceptions field, delivered
    /// after VM entry with DR6.BS set (SDM 27.7.3), exactly one per instruction.
    ///
    /// The common case (no shadow, not stepping) is inline and costs four VMCS
    /// accesses; the rest is out of line.
    #[inline(always)]
    fn retire(&mut self, len: u64) {
        let rip = vmread_current(guest::RIP);
        write(guest::RIP, rip.wrapping_add(len));
        let rflags = vmread_current(guest::RFLAGS);
        let intr = vmread_current(guest::INTERRUPTIBILITY_STATE);
        if intr & BLOCKING_STI_MOV_SS != 0 || rflags & RFLAGS_TF != 0 {
            self.retire_rare(rflags, intr);
        }
    }

    /// The shadow and single-step parts of [`Self::retire`].
    #[inline(never)]
    fn retire_rare(&mut self, rflags: u64, intr: u64) {
        if intr & BLOCKING_STI_MOV_SS != 0 {
            write(guest::INTERRUPTIBILITY_STATE, intr & !BLOCKING_STI_MOV_SS);
        }
        if rflags & RFLAGS_TF != 0 {
            self.step_trap();
        }
    }

    /// The single-step trap of a step the guest took with RFLAGS.TF set (an
    /// instruction retired, or one iteration of a REP string instruction):
    /// BS in the pending debug exceptions, unless DEBUGCTL.BTF (which steps
    /// branches only, and no emulated instruction is one).
    fn step_trap(&mut self) {
        if self.msr_env.debug_controls && vmread(guest::IA32_DEBUGCTL_FULL) & DEBUGCTL_BTF != 0 {
            return;
        }
        let pending = vmread(guest::PENDING_DBG_EXCEPTIONS);
        write(guest::PENDING_DBG_EXCEPTIONS, pending | PENDING_DBG_BS);
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
                    ExitReason::TRIPLE_FAULT,
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
}

/// The current VMCS's exit reason.
#[inline(always)]
pub fn exit_reason() -> ExitReason {
    ExitReason::from_raw(vmread_current(ro::EXIT_REASON) as u32)
}

/// What the run loop's exit environment (`vmx::run`) calls: the stub's
/// `ExitEnv` contract, with the other domains a hypercall may reach.
impl<M: PhysMem, C: Console> Vcpu<'_, M, C> {
    /// The exits whose handlers use only the call-clobbered registers (RAX,
    /// RCX, RDX, RSI, RDI, R8-R11) and cannot crash the domain: VMCALL (the
    /// null path inline, docs/performance.md), CPUID (which also writes RBX:
    /// `FastExit::ResumeWithRbx`), RDMSR/WRMSR, port I/O without a string,
    /// control-register accesses with such a register, the interrupt-window
    /// and preemption-timer exits. Everything else
    /// declines, with the exit reason read and counted for `handle_exit`.
    #[inline(always)]
    pub fn fast_exit(&mut self, g: &mut GuestGprs, peers: &mut dyn Peers) -> FastExit {
        self.fast_exit_as(exit_reason(), g, peers)
    }

    /// [`Self::fast_exit`] with the exit reason already read
    /// ([`exit_reason`]).
    #[inline(always)]
    pub fn fast_exit_as(
        &mut self,
        reason: ExitReason,
        g: &mut GuestGprs,
        peers: &mut dyn Peers,
    ) -> FastExit {
        percpu::count_exit(reason.basic());
        self.reason = reason;
        if reason == ExitReason::VMCALL {
            return self.vmcall(g, peers);
        }
        self.fast_other(g, reason)
    }

    /// Every exit the fast path declined, and what it deferred.
    #[inline(always)]
    pub fn handle_exit(&mut self, g: &mut GuestGprs) -> Option<DomainEnd> {
        let end = match self.deferred.take() {
            Some(Deferred::Block) => self.block(g),
            Some(Deferred::End(end)) => Some(end),
            Some(Deferred::Switch(why)) => {
                self.give_cpu_up(why);
                None
            }
            None => self.dispatch(g, self.reason),
        };
        // `before_entry` also drains the console ring by one burst if the UART
        // takes it now (one load when the ring is empty): output moves while the
        // guest runs, and no exit waits for the serial line.
        match end {
            None => self.before_entry(),
            Some(_) => {
                self.ending();
                if self.console.has_work() {
                    self.console.pump(u64::MAX);
                }
            }
        }
        end
    }

    /// After `handle_exit` answered `None`: whether this vCPU gives the CPU up.
    pub fn take_switch(&mut self) -> bool {
        self.give_up.is_some()
    }
}

impl<M: PhysMem, C: Console> Vcpu<'_, M, C> {
    /// The fast path's exits other than VMCALL (see `fast_exit`).
    #[inline(never)]
    fn fast_other(&mut self, g: &mut GuestGprs, reason: ExitReason) -> FastExit {
        let (end, rbx) = match reason {
            ExitReason::CPUID => (self.cpuid(g), true),
            ExitReason::RDMSR => (self.msr(g, false), false),
            ExitReason::WRMSR => (self.msr(g, true), false),
            ExitReason::IO => {
                let q = vmread_current(ro::EXIT_QUALIFICATION);
                match IoAccess::decode(q) {
                    Some(a) if !a.string => self.port_io(g, a),
                    _ => return FastExit::Full,
                }
                (None, false)
            }
            ExitReason::CR_ACCESS => {
                let q = vmread_current(ro::EXIT_QUALIFICATION);
                if !Self::cr_access_is_fast(q) {
                    return FastExit::Full;
                }
                (self.cr_access_q(g, q), false)
            }
            ExitReason::INTERRUPT_WINDOW => {
                // The guest can take an interrupt now: `before_entry` injects.
                self.set_window_exiting(false);
                (None, false)
            }
            ExitReason::PREEMPTION_TIMER => {
                // A timer is due: `before_entry` fires it.
                self.reinject_idt_vectoring();
                self.timer_exit();
                if self.slice_over() {
                    self.deferred = Some(Deferred::Switch(GiveUp::Preempted));
                    return FastExit::Full;
                }
                (None, false)
            }
            _ => return FastExit::Full,
        };
        if let Some(end) = end {
            self.deferred = Some(Deferred::End(end));
            return FastExit::Full;
        }
        self.quiet = self.events_quiet();
        self.before_entry();
        if rbx {
            FastExit::ResumeWithRbx
        } else {
            FastExit::Resume
        }
    }

    /// The domain is ending: a partial COM1 line is printed.
    #[inline(never)]
    fn ending(&mut self) {
        if self.bus.com1.pending() {
            self.bus.com1.flush(&mut *self.console);
        }
        if self.advance.ticks() != 0 {
            log::info!(
                "vmx: the VMX-preemption timer's exit came {} TSC ticks after it expired (learned; the timer is armed that much early)",
                self.advance.ticks()
            );
        }
    }

    /// Handle one exit other than VMCALL by its basic reason.
    #[inline(never)]
    fn dispatch(&mut self, g: &mut GuestGprs, reason: ExitReason) -> Option<DomainEnd> {
        let end = self.dispatch_other(g, reason);
        // The exit may have changed what `before_entry` must do.
        self.quiet = self.events_quiet();
        end
    }

    #[inline(always)]
    fn dispatch_other(&mut self, g: &mut GuestGprs, reason: ExitReason) -> Option<DomainEnd> {
        if reason.entry_failure() {
            // SDM 27.8: VM entry failed after the control and host checks passed
            // (invalid guest state, MSR loading, machine check).
            crash::report_entry_failure(reason, vmread(ro::EXIT_QUALIFICATION));
            return Some(DomainEnd::EntryFailed);
        }
        match reason.without_flags() {
            ExitReason::CPUID => self.cpuid(g),
            ExitReason::CR_ACCESS => self.cr_access(g),
            ExitReason::IO => self.io(g),
            ExitReason::RDMSR => self.msr(g, false),
            ExitReason::WRMSR => self.msr(g, true),
            // HLT blocks like SCHEDOP_block, without touching evtchn_upcall_mask.
            ExitReason::HLT => {
                self.complete_instruction();
                self.ev.blocked = Some(Blocked::Block);
                self.block(g)
            }
            ExitReason::INTERRUPT_WINDOW => {
                // The guest can take an interrupt now: `before_entry` injects.
                self.set_window_exiting(false);
                None
            }
            ExitReason::PREEMPTION_TIMER => {
                // A timer is due: `before_entry` fires it.
                self.reinject_idt_vectoring();
                self.timer_exit();
                if self.slice_over() {
                    self.give_cpu_up(GiveUp::Preempted);
                }
                None
            }
            ExitReason::EXTERNAL_INTERRUPT => {
                let end = self.external_interrupt(g);
                // Without the VMX-preemption timer the APIC timer ends a slice.
                if end.is_none() && self.slice_over() {
                    self.give_cpu_up(GiveUp::Preempted);
                }
                end
            }
            ExitReason::EXCEPTION_OR_NMI => self.exception_or_nmi(g),
            ExitReason::TRIPLE_FAULT => self.crash(
                g,
                reason,
                0,
                "triple fault (an exception the guest could not deliver; before the guest loads its own IDT, every exception is one)",
            ),
            ExitReason::INVLPG => self.invlpg(),
            // The other sensitive instructions: `crate::policy::insns`' table.
            other => match insns_policy::on_exit(other) {
                Some(insns_policy::Action::Ud) => self.inject_ud(g),
                Some(insns_policy::Action::Gp0) => self.inject_gp(g),
                Some(insns_policy::Action::Skip) => {
                    self.complete_instruction();
                    None
                }
                Some(insns_policy::Action::Xsetbv) => self.xsetbv(g),
                Some(insns_policy::Action::Table(_) | insns_policy::Action::Native) | None => {
                    let q = vmread(ro::EXIT_QUALIFICATION);
                    self.crash(g, reason, q, "unexpected VM exit")
                }
            },
        }
    }
}
