//! # Control-register accesses, by the `vmx::cr` policy

use super::*;
use crate::paging::job::{Entries, Origin};

impl<M: PhysMem, C: Console> Vcpu<'_, M, C> {
    /// The guest's view of CR0: Keel's copy, plus TS, which the guest owns.
    pub(super) fn cr0_now(&self) -> u64 {
        (self.cr0_visible & !cr_policy::CR0_GUEST_OWNED)
            | (vmread(guest::CR0) & cr_policy::CR0_GUEST_OWNED)
    }

    /// `MMUEXT_NEW_BASEPTR`'s work for a MOV to CR3 of the pinned L4 `l4`,
    /// a bounded piece (one exit's units); the job it leaves part way is this
    /// vCPU's.
    fn new_baseptr_in(&mut self, l4: Mfn) -> crate::paging::job::Finished {
        let r = self.dom.new_baseptr_in(
            &mut *self.mem,
            l4,
            &mut Entries(u64::from(crate::preempt::UNITS_PER_EXIT)),
        );
        self.dom.mm_ran();
        r
    }

    pub(super) fn apply_cr0(&mut self, w: cr_policy::CrWrite) {
        write(guest::CR0, w.real);
        write(control::CR0_READ_SHADOW, w.visible);
        self.cr0_visible = w.visible;
    }

    /// A control-register access (SDM 28.2.1, table 28-3), by the `vmx::cr` policy.
    pub(super) fn cr_access(&mut self, g: &mut GuestGprs) -> Option<DomainEnd> {
        let q = vmread(ro::EXIT_QUALIFICATION);
        self.cr_access_q(g, q)
    }

    /// Whether the access qualified by `q` can be handled on the fast path: a
    /// register the fast path has (not RBX, RBP, R12-R15; RSP is in the VMCS)
    /// and a control register Keel emulates (the others crash the domain, with
    /// every register in the dump).
    pub(super) fn cr_access_is_fast(q: u64) -> bool {
        const SAVED_LATE: [u8; 6] = [3, 5, 12, 13, 14, 15];
        match CrAccess::decode(q) {
            CrAccess::MovTo {
                cr: 0 | 3 | 4 | 8,
                gpr,
            }
            | CrAccess::MovFrom { cr: 3 | 8, gpr } => !SAVED_LATE.contains(&gpr),
            CrAccess::Clts | CrAccess::Lmsw { .. } => true,
            _ => false,
        }
    }

    /// [`Self::cr_access`] with its exit qualification.
    pub(super) fn cr_access_q(&mut self, g: &mut GuestGprs, q: u64) -> Option<DomainEnd> {
        let result = match CrAccess::decode(q) {
            CrAccess::MovTo { cr: 0, gpr } => {
                let v = self.gpr(g, gpr);
                self.policy
                    .write_cr0(self.cr0_now(), v)
                    .map(|w| self.apply_cr0(w))
            }
            CrAccess::MovTo { cr: 3, gpr } => {
                let v = self.gpr(g, gpr);
                match cr_policy::mov_to_cr3(v, self.maxphyaddr) {
                    // Only a pinned, validated L4 of the domain: the trap-and-emulate
                    // form of MMUEXT_NEW_BASEPTR (docs/abi/mmu.md).
                    // Another vCPU's MMU job part way goes first: the MOV
                    // runs again.
                    Ok(_) if self.dom.mm_waits() => return None,
                    Ok(l) => match self.new_baseptr_in(l.l4) {
                        // Settling an earlier MMU call's work stopped at its
                        // bound before the switch: the MOV runs again.
                        None if self.dom.mm_job_origin() != Origin::NewBase(l.l4) => {
                            return None;
                        }
                        // Switched (dropping the old base's references may
                        // go on, bounded, at the next MMU operation).
                        Some(Ok(())) | None => {
                            write(guest::CR3, l.real);
                            self.loaded_base = l.l4;
                            self.cr3_real = l.real;
                            // new_baseptr owes a full flush; sync_mmu does it.
                            self.sync_mmu();
                            Ok(())
                        }
                        Some(Err(e)) => {
                            log::warn!(
                                "vmx: domain {} loaded CR3 with frame {:#x}: {e}: #GP",
                                self.dom.id.0,
                                l.l4.get()
                            );
                            Err(cr_policy::CrFault::GeneralProtection)
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
                cr_policy::mov_to_cr8(v).map(|p| self.cr8 = p)
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
                    ExitReason::CR_ACCESS,
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
            Err(cr_policy::CrFault::GeneralProtection) => self.inject_gp(g),
        }
    }
}
