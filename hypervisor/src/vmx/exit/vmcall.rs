//! # VMCALL: the hypercall exit
//!
//! The path that matters for speed (docs/performance.md, "the null path"): the
//! CPL check, Keel's benchmark interface, then `Vcpu::call_hypercall`
//! (`hypercall_ctx.rs`), the one place the exit path calls into the hypercall
//! layer, and the outcome carried out on the guest.

use super::*;
use core::sync::atomic::Ordering::Relaxed;

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

/// A snapshot of this CPU's counters (`percpu::VmxStats`) for `keel_debug_op(DEBUGOP_READ_COUNTERS)`. Under
/// another hypervisor, each read is also a mark in that hypervisor's trace, so
/// its exits between two reads can be attributed to what the guest measured.
fn counters() -> PerfCounters {
    crate::arch::cpu::l0_marker(UNDER_HYPERVISOR.load(Relaxed));
    let mut c = PerfCounters::zero();
    let stats = &percpu::this().stats;
    c.vmreads = stats.vmreads.load(Relaxed);
    c.vmwrites = stats.vmwrites.load(Relaxed);
    for (slot, n) in c.exits.iter_mut().zip(stats.exits.iter()) {
        *slot = n.load(Relaxed);
    }
    c
}

// The ABI's slots are the counters' slots, one for one.
const _: () = assert!(keel_abi::debug::PERF_EXIT_SLOTS == percpu::COUNTED_EXIT_REASONS);

/// `FastExit::Resume`, as a value the compiler cannot see through. A path that
/// always resumes would otherwise be called, not jumped to, from the fast
/// handler (which then needs a stack frame of its own for the call: three
/// instructions on every VMCALL, the floor's included); this costs its cold
/// paths a store and a load.
#[inline(always)]
fn resume_opaque() -> FastExit {
    core::hint::black_box(FastExit::Resume)
}

impl<M: PhysMem, C: Console> Vcpu<'_, M, C> {
    /// VMCALL: a hypercall (contract: RAX nr; RDI, RSI, RDX, R10, R8; RAX
    /// result), on the fast path: it uses only call-clobbered registers. Keel's
    /// benchmark no-op, with nothing due before the next entry and no console
    /// output waiting, is answered inline (the floor every other hypercall is
    /// measured against, `crate::perf`, docs/abi/debug.md); the rest is out of
    /// line, one function per kind so that none tests again what this one
    /// decided. What needs every register (blocking, whose failure is a crash
    /// dump) or ends the domain is left to `handle_exit` in `self.deferred`.
    #[inline(always)]
    pub(super) fn vmcall(&mut self, g: &mut GuestGprs, peers: &mut dyn Peers) -> FastExit {
        // Only the guest kernel may make a hypercall: from CPL > 0 it is refused
        // before anything is looked at, so it changes nothing (Xen's HVM rule,
        // `crate::privilege`). This is the one VMCS access the null hypercall
        // pays beyond those of the exit and the retirement.
        if !self.cpl().may_hypercall() {
            return self.vmcall_refused(g);
        }
        if g.rax != perf::KEEL_DEBUG_OP {
            return self.vmcall_hypercall(g, peers);
        }
        if g.rdi == perf::DEBUGOP_NOP && self.quiet && !self.console.has_work() {
            g.rax = perf::NOP_RESULT as u64;
            self.complete_instruction();
            return FastExit::Resume;
        }
        self.vmcall_debug_op(g)
    }

    /// A VMCALL from user mode: -EPERM, nothing else looked at.
    #[inline(never)]
    fn vmcall_refused(&mut self, g: &mut GuestGprs) -> FastExit {
        g.rax = Errno::EPERM.as_return() as u64;
        self.complete_instruction();
        self.before_entry();
        resume_opaque()
    }

    /// Keel's benchmark interface (`crate::perf`) other than the inline no-op.
    #[inline(never)]
    fn vmcall_debug_op(&mut self, g: &mut GuestGprs) -> FastExit {
        let clock = self.ev.clock;
        let served = self.dom.serves(keel_abi::version::AbiVersion::V1_2);
        g.rax = perf::debug_op(
            g.rdi,
            g.rsi,
            counters,
            |va, bytes| {
                crate::paging::guest_mem::copy_to_guest(&*self.dom, &mut *self.mem, va, bytes)
            },
            |since_ns| {
                served.then(|| {
                    let now = crate::arch::timer::rdtsc();
                    let ticks = crate::arch::timer::overdue_within(clock.tsc_at(since_ns), now);
                    clock.scale.ticks_to_ns(ticks)
                })
            },
        ) as u64;
        self.complete_instruction();
        self.before_entry();
        resume_opaque()
    }

    /// A hypercall from the guest kernel, by the hypercall layer.
    #[inline(never)]
    fn vmcall_hypercall(&mut self, g: &mut GuestGprs, peers: &mut dyn Peers) -> FastExit {
        let (out, changed) = self.call_hypercall(g, peers);
        // Some hypercalls cannot change the events or the base pointer (the
        // version and console calls, `Op::may_change_vcpu_state`): after them
        // neither is looked at.
        if changed {
            // The hypercall may have armed a timer, registered an upcall or
            // blocked; it cannot touch the vCPU's own part of `events_quiet`
            // (the interrupt window, the preemption timer). So when
            // `before_entry` had nothing to do, only the event state can have
            // changed that; when it had, its work computes `quiet` again anyway.
            if self.quiet {
                self.quiet = self.events_still_quiet();
            }
            // It woke another domain while this vCPU ran alone without a
            // slice: the run gets an end (armed by `before_entry`).
            if let Some(until) = percpu::this().take_slice_rearm() {
                self.set_slice_end(until);
            }
            // NEW_BASEPTR and validated updates leave a CR3 switch or a TLB
            // flush owed; both happen before the guest runs again.
            self.sync_mmu();
        }
        match out {
            Outcome::Return(v) => {
                g.rax = v as u64;
                self.complete_instruction();
            }
            Outcome::Shutdown(reason) => {
                self.deferred = Some(Deferred::End(DomainEnd::Shutdown(reason)));
                return FastExit::Full;
            }
            Outcome::Block => {
                g.rax = 0;
                self.complete_instruction();
                self.deferred = Some(Deferred::Block);
                return FastExit::Full;
            }
            Outcome::Yield => {
                g.rax = 0;
                self.complete_instruction();
                if self.shared_cpu {
                    // The run loop picks who runs next: leave to it now.
                    self.deferred = Some(Deferred::Switch(GiveUp::Yield));
                    return FastExit::Full;
                }
            }
            // A continuation (`crate::preempt`): RIP stays on the VMCALL, which
            // the guest executes again once whatever is due has been
            // delivered (`before_entry`).
            Outcome::Preempted(progress) => {
                g.rsi = progress;
                // It waits for another vCPU's MMU job (`Domain::mm_waits`):
                // that vCPU runs next, rather than this one spinning on its
                // VMCALL for the rest of its slice.
                if self.shared_cpu && self.dom.mm_waits() {
                    self.deferred = Some(Deferred::Switch(GiveUp::Yield));
                    return FastExit::Full;
                }
            }
            Outcome::PreemptedRdx(progress) => g.rdx = progress,
            Outcome::ResumedRdx { ret, count } => {
                g.rax = i64::from(ret) as u64;
                g.rdx = u64::from(count);
                self.complete_instruction();
            }
            Outcome::Resumed { ret, count } => {
                g.rax = i64::from(ret) as u64;
                g.rsi = u64::from(count);
                self.complete_instruction();
            }
        }
        // Without the VMX-preemption timer a slice ends by the APIC timer's
        // exit, which Bochs does not deliver while the guest has IF clear
        // (docs/platforms.md, "Bochs defects"): a hypercall is a point to end
        // an overdue slice too, so a domain that makes hypercalls shares the
        // CPU on every model.
        if self.preempt.is_none() && self.shared_cpu && self.slice_over() {
            self.deferred = Some(Deferred::Switch(GiveUp::Preempted));
            return FastExit::Full;
        }
        self.before_entry();
        FastExit::Resume
    }
}
