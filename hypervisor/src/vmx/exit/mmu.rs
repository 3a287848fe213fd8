//! # Paging exits: write-protection #PF (emulated page-table stores), INVLPG,
//! and the CR3 switches and TLB flushes the MMU layer leaves owed

use super::*;
use crate::paging::entry::Pte;
use crate::paging::job::Entries;
use crate::paging::LastTable;

impl<M: PhysMem, C: Console> Vcpu<'_, M, C> {
    /// Apply what the MMU layer left owed: a new base pointer (MMUEXT_NEW_BASEPTR
    /// switches CR3 without the guest executing MOV CR3) and a TLB flush.
    ///
    /// Every hypercall that may change the base pointer or owe a flush
    /// (`hypercall::Op::may_change_vcpu_state`) ends here, and almost none
    /// leaves anything owed: the test is inline and the work out of line.
    #[inline(always)]
    pub(super) fn sync_mmu(&mut self) {
        if self.dom.base() != self.loaded_base || self.dom.flush_owed() {
            self.sync_mmu_owed();
        }
    }

    #[inline(never)]
    pub(super) fn sync_mmu_owed(&mut self) {
        let base = self.dom.base();
        if base != self.loaded_base {
            write(guest::CR3, base.addr().get());
            self.loaded_base = base;
            self.cr3_real = base.addr().get();
        }
        let flush = self.dom.take_flush();
        // The domain's vCPUs on other CPUs are flushed there before they
        // run again (`vmx::run`'s shootdown).
        if flush != Flush::None {
            crate::smp::remote::flushed(self.dom.id);
        }
        match flush {
            Flush::None => {}
            // Everything, global translations included: an update may have removed
            // access through a G=1 entry, which a CR3-style flush (retaining
            // globals) would leave cached (XSA-286's class).
            Flush::All => self.flush_all(),
            Flush::Page(va) => self.flush_page(va.get()),
        }
    }

    /// Drop one page's translation from the guest's VPID.
    pub(super) fn flush_page(&mut self, va: u64) {
        if !self.controls.vpid {
            return; // every VM entry flushes VPID 0
        }
        if !self.caps.ept_vpid.invvpid_individual_address() || !GuestVirt::new(va).is_canonical() {
            self.flush_all();
            return;
        }
        if let Err(e) = invvpid(InvvpidType::IndividualAddress, self.vpid, va) {
            log::error!("vmx: INVVPID of one page failed: {e}");
        }
    }

    /// Invalidate everything the guest has cached, globals included (CR4.PGE change).
    pub(super) fn flush_all(&mut self) {
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

    /// A write-protection #PF (the only kind that exits). If it is an 8-byte store
    /// to an entry of a validated page table, apply it as a validated update and
    /// skip the instruction; otherwise reflect the #PF unchanged.
    pub(super) fn page_fault(&mut self, g: &mut GuestGprs) -> Option<DomainEnd> {
        let cr2 = vmread(ro::EXIT_QUALIFICATION);
        let ec = vmread(ro::VMEXIT_INTERRUPTION_ERR_CODE) as u32;
        let during = Delivering::from_info(vmread(ro::IDT_VECTORING_INFO) as u32);
        if during.is_none() {
            match self.emulate_pte_write(g, cr2) {
                Ok(Some(len)) => {
                    self.retire(len);
                    self.sync_mmu();
                    return None;
                }
                // The validation work stopped at its bound: the store runs
                // again (and faults again) after whatever is due, and the
                // update goes on where it stopped (`crate::paging::job`).
                Ok(None) => {
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

    /// Decode and apply the store at RIP (see `crate::paging::emulate`); its
    /// length, or `None` if the update's validation work stopped part way.
    pub(super) fn emulate_pte_write(
        &mut self,
        g: &GuestGprs,
        cr2: u64,
    ) -> Result<Option<u64>, &'static str> {
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
            GuestVirt::new(rip),
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
            GuestVirt::new(cr2),
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
        // Another vCPU's MMU job part way goes first: the store runs again.
        if self.dom.mm_waits() {
            return Ok(None);
        }
        let r = self.dom.update_entry_in(
            &mut *self.mem,
            &mut LastTable::default(),
            ma,
            Pte(value),
            || Entries(u64::from(crate::preempt::UNITS_PER_EXIT)),
        );
        self.dom.mm_ran();
        match r {
            Some(Ok(())) => Ok(Some(store.len)),
            Some(Err(_)) => Err("the new entry is refused"),
            None => Ok(None),
        }
    }

    /// INVLPG exiting is off where the TRUE controls exist; a CPU without them
    /// forces it. Emulate: drop the page's translation for the guest's VPID.
    pub(super) fn invlpg(&mut self) -> Option<DomainEnd> {
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
}
