//! # Killing a domain, with everything a developer needs to see why

use super::*;

impl<M: PhysMem, C: Console> Vcpu<'_, M, C> {
    /// Kill the domain, printing everything a developer needs to see why.
    pub(super) fn crash(
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
            GuestVirt::new(rip),
            &mut buf,
        );
        if res.is_err() && to_page_end < 16 {
            n = to_page_end;
            res = crate::paging::guest_mem::copy_from_guest(
                &*self.dom,
                &*self.mem,
                GuestVirt::new(rip),
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

/// Print an exit reason for a VM-entry failure exit (bit 31 set).
pub(super) fn report_entry_failure(reason: ExitReason, qualification: u64) {
    log::error!(
        "vmx: VM entry failed: {reason}, exit qualification {qualification:#x}{}",
        match (reason.without_flags(), qualification) {
            (ExitReason::MSR_LOADING, 0) => "",
            (ExitReason::MSR_LOADING, _) => " (the failing MSR-load entry, counted from 1)",
            (ExitReason::INVALID_GUEST_STATE, 2) => " (invalid guest state: PDPTE)",
            (ExitReason::INVALID_GUEST_STATE, 3) => " (invalid guest state: NMI injection)",
            (ExitReason::INVALID_GUEST_STATE, 4) => " (invalid guest state: VMCS link pointer)",
            _ => "",
        }
    );
}
