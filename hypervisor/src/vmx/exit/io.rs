//! # Port I/O, on the bus of `policy::io`

use super::super::io_qual::{string_address_size, string_segment, IoAccess};
use super::*;

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

impl<M: PhysMem, C: Console> Vcpu<'_, M, C> {
    /// Log a port with no device behind it, once per port.
    pub(super) fn log_unhandled(&self, port: Option<u16>, is_in: bool, size: u64) {
        if let Some(port) = port {
            if percpu::this().first_port_log(port) {
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

    /// IN or OUT (no string): the accumulator and the port, on the bus.
    pub(super) fn port_io(&mut self, g: &mut GuestGprs, a: IoAccess) {
        let (port, size) = (a.port, u64::from(a.size));
        if a.is_in {
            let r = self.bus.read(port, a.size);
            self.log_unhandled(r.unhandled, true, size);
            g.rax = match size {
                1 => (g.rax & !0xff) | u64::from(r.value & 0xff),
                2 => (g.rax & !0xffff) | u64::from(r.value & 0xffff),
                // A 32-bit register write zero-extends.
                _ => u64::from(r.value),
            };
        } else {
            let r = self
                .bus
                .write(port, a.size, g.rax as u32, &mut *self.console);
            self.log_unhandled(r.unhandled, false, size);
        }
        self.complete_instruction();
    }

    /// Port I/O (SDM 28.2.1, table 28-5), on the bus of `crate::policy::io`: COM1 is a
    /// second console, port 0x80 is ignored, every other port is empty.
    pub(super) fn io(&mut self, g: &mut GuestGprs) -> Option<DomainEnd> {
        let q = vmread(ro::EXIT_QUALIFICATION);
        let Some(IoAccess {
            size,
            is_in,
            string,
            rep,
            port,
        }) = IoAccess::decode(q)
        else {
            return self.crash(
                g,
                ExitReason::IO,
                q,
                "I/O exit with an undefined access size",
            );
        };
        if !string {
            self.port_io(
                g,
                IoAccess {
                    size,
                    is_in,
                    string,
                    rep,
                    port,
                },
            );
            return None;
        }
        let size = u64::from(size);
        // INS/OUTS. The address size comes from the instruction-information field
        // (SDM 28.2.5) where the CPU reports it; Keel emulates 64-bit addressing only.
        let info = self
            .caps
            .ins_outs_info
            .then(|| vmread(ro::VMEXIT_INSTRUCTION_INFO));
        if let Some(info) = info {
            if string_address_size(info) != 2 {
                return self.crash(
                    g,
                    ExitReason::IO,
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
                Some(i) => Segment::from_info(string_segment(i)).unwrap_or(Segment::Ds),
                None => {
                    let rip = vmread(guest::RIP);
                    let mut insn = [0u8; 15];
                    let n = ((PAGE_SIZE - (rip & (PAGE_SIZE - 1))) as usize).min(insn.len());
                    let bytes = insn.get_mut(..n).unwrap_or(&mut []);
                    match crate::paging::guest_mem::copy_from_guest(
                        &*self.dom,
                        &*self.mem,
                        GuestVirt::new(rip),
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
        //
        // Single-stepping (RFLAGS.TF), the CPU traps after *each* iteration
        // of a REP string instruction, RIP still on it while RCX is not zero
        // (SDM vol. 3, 18.3.1.4): one element per exit then.
        let stepping = rep && vmread(guest::RFLAGS) & RFLAGS_TF != 0;
        let count = match (rep, stepping) {
            (false, _) => 1,
            (true, false) => g.rcx.min(STRING_IO_CHUNK),
            (true, true) => g.rcx.min(1),
        };
        let Some(bytes) = count.checked_mul(size) else {
            return self.crash(g, ExitReason::IO, q, "string I/O count overflows");
        };
        // RFLAGS.DF: the string runs downwards, element by element (rare; the
        // upward case moves 64 bytes per guest-memory access).
        let down = vmread(guest::RFLAGS) & RFLAGS_DF != 0;
        let step = if down { size } else { 64 };
        let at = |base: u64, done: u64| {
            GuestVirt::new(if down {
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
            let fault = first_fault(&*self.dom, &*self.mem, va, n, access, mode);
            let ok = match fault {
                None => n,
                Some(_) if down => 0,
                Some(f) => f.at().get().wrapping_sub(va.get()) / size * size,
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
                    va,
                    chunk,
                    mode,
                )
                .is_err()
                {
                    return self.crash(
                        g,
                        ExitReason::IO,
                        q,
                        "INS: a checked destination became unwritable (hypervisor bug)",
                    );
                }
            } else {
                if crate::paging::guest_mem::copy_from_guest_as(
                    &*self.dom, &*self.mem, va, chunk, mode,
                )
                .is_err()
                {
                    return self.crash(
                        g,
                        ExitReason::IO,
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
                // Not done: execute it again (RIP unchanged), after the
                // single-step trap of this iteration if stepping.
                if stepping {
                    self.step_trap();
                }
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
    pub(super) fn string_io_fault(
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
                set_guest_cr2(cr2.get());
                self.raise(g, None, VEC_PF, Some(error_code))
            }
        }
    }
}
