//! # What the CPU would raise for a guest access Keel performs for the guest
//!
//! Some instructions Keel emulates access guest memory on the guest's behalf
//! (INS and OUTS today: the VM exit comes before the CPU touches the memory
//! operand, SDM 25.1.1, so the memory access is Keel's to do). When the guest's
//! own page tables do not permit that access, the instruction must end the way
//! it would have on the CPU, with the exception the guest's handler expects, not
//! with the domain killed:
//!
//! - a non-canonical address: `#GP(0)`;
//! - otherwise `#PF`, with CR2 the first address of the page the access could
//!   not reach, and the error code built as the CPU builds it: P (bit 0) when the
//!   translation exists but does not permit the access (a write to a read-only
//!   page, a reserved bit), clear when an entry is not present; W/R (bit 1) for
//!   a write; RSVD (bit 3) for a reserved bit; U/S (bit 2) set when the
//!   instruction ran at CPL3 (a user-mode access, which also needs U/S at every
//!   level of the walk, [`crate::privilege`]); I/D (bit 4) clear: never a fetch.
//!
//! [`first_fault`] walks the range a page at a time with exactly the rules
//! [`crate::paging::guest_mem`] copies with, so an access it finds no fault in is an
//! access the copy will make. A page the guest's tables *do* permit but Keel
//! refuses (a frame whose type forbids a write through a hypercall copy: a page
//! table the guest has mapped writable cannot exist, so this does not happen on a
//! consistent domain) is reported as a protection fault too, which is what the
//! guest would see had it made the access itself.

use crate::addr::GuestVirt;
use crate::domain::Domain;
use crate::mem::PhysMem;
use crate::paging::guest_mem::{self, Access};
use crate::paging::walk::{bytes_to_page_end, walk, WalkFault};
use crate::privilege::Mode;

/// #PF error code: the translation was present (a protection fault).
pub const PF_PRESENT: u32 = 1 << 0;
/// #PF error code: the access was a write.
pub const PF_WRITE: u32 = 1 << 1;
/// #PF error code: the access was a user-mode access (CPL3).
pub const PF_USER: u32 = 1 << 2;
/// #PF error code: a reserved bit was set in an entry.
pub const PF_RSVD: u32 = 1 << 3;

/// The exception the access raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessFault {
    /// `#GP(0)`: a non-canonical address.
    GeneralProtection {
        /// The first non-canonical address of the access.
        at: GuestVirt,
    },
    /// `#PF` with this CR2 and error code.
    PageFault {
        /// The faulting linear address.
        cr2: GuestVirt,
        /// The error code.
        error_code: u32,
    },
}

impl AccessFault {
    /// The first address of the access that faults (everything below it, in
    /// the range asked about, is accessible).
    pub const fn at(self) -> GuestVirt {
        match self {
            AccessFault::GeneralProtection { at } => at,
            AccessFault::PageFault { cr2, .. } => cr2,
        }
    }
}

/// The fault the first inaccessible byte of `va .. va + len` raises for
/// `access`, or `None` if the whole range is accessible (and
/// [`crate::paging::guest_mem`] will copy it).
pub fn first_fault<M: PhysMem + ?Sized>(
    dom: &Domain,
    mem: &M,
    va: GuestVirt,
    len: u64,
    access: Access,
    mode: Mode,
) -> Option<AccessFault> {
    let mut done = 0u64;
    while done < len {
        // Wrapping past 2^64 leaves the canonical range on the way, so the
        // canonical check below catches it.
        let cur = GuestVirt::new(va.get().wrapping_add(done));
        if !cur.is_canonical() {
            return Some(AccessFault::GeneralProtection { at: cur });
        }
        if guest_mem::translate_as(dom, mem, cur, access, mode).is_err() {
            return Some(AccessFault::PageFault {
                cr2: cur,
                error_code: error_code(dom, mem, cur, access, mode),
            });
        }
        done = done.saturating_add(bytes_to_page_end(cur)).min(len);
    }
    None
}

/// The #PF error code for an access at `va` that [`guest_mem::translate`]
/// refused.
fn error_code<M: PhysMem + ?Sized>(
    dom: &Domain,
    mem: &M,
    va: GuestVirt,
    access: Access,
    mode: Mode,
) -> u32 {
    let w = if access == Access::Write { PF_WRITE } else { 0 }
        | if mode == Mode::User { PF_USER } else { 0 };
    let walked = walk(mem, dom.base(), va, dom.nx_enabled(), |_, table| {
        dom.owns(mem, table)
    });
    match walked {
        Err(WalkFault::NotPresent { .. }) => w,
        Err(WalkFault::Reserved { .. }) => PF_PRESENT | PF_RSVD | w,
        // Present but not permitted; a superpage or an unowned table frame
        // cannot be reached through validated tables and reads as a protection
        // fault (see the module documentation). NonCanonical is handled first.
        Ok(_) | Err(_) => PF_PRESENT | w,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::domain::elf::testimg::typical;
    use crate::domain::elf::GuestImage;
    use crate::domain::{build, DomainConfig, DomainId};
    use crate::mem::fake::{FakeFrames, FakeMem};
    use crate::paging::entry::{entry_addr, pte_frame, PTE_P, PTE_RW, PTE_US};

    fn setup() -> (Domain, FakeMem) {
        let bytes = typical();
        let img = GuestImage::parse(&bytes).unwrap();
        let mut mem = FakeMem::default();
        let mut frames = FakeFrames::new(0x1000, 200);
        let cfg = DomainConfig {
            nr_pages: 64,
            ..DomainConfig::new(DomainId(1))
        };
        let dom = build(&img, &bytes, &cfg, &mut mem, &mut frames).unwrap();
        (dom, mem)
    }

    /// The machine address of the L1 entry that maps `va` (bootstrap tables).
    fn l1_slot(dom: &Domain, mem: &FakeMem, va: u64) -> crate::addr::MachineAddr {
        let mut table = dom.base();
        for shift in [39u32, 30, 21] {
            let e = mem.read_u64(entry_addr(table, ((va >> shift) & 511) as usize));
            table = pte_frame(e);
        }
        entry_addr(table, ((va >> 12) & 511) as usize)
    }

    /// The guest-virtual address of `pfn` in the bootstrap mapping.
    fn va(dom: &Domain, pfn: crate::addr::Pfn) -> u64 {
        dom.layout().virt_base.get() + pfn.get() * 4096
    }

    fn pf(cr2: u64, error_code: u32) -> Option<AccessFault> {
        Some(AccessFault::PageFault {
            cr2: GuestVirt::new(cr2),
            error_code,
        })
    }

    #[test]
    fn accessible_ranges_have_no_fault() {
        let (dom, mem) = setup();
        let base = dom.layout().virt_base.get();
        let free = va(&dom, dom.layout().first_free);
        assert_eq!(
            first_fault(
                &dom,
                &mem,
                GuestVirt::new(base),
                3 * 4096,
                Access::Read,
                Mode::Supervisor
            ),
            None
        );
        assert_eq!(
            first_fault(
                &dom,
                &mem,
                GuestVirt::new(free + 100),
                4096,
                Access::Write,
                Mode::Supervisor
            ),
            None,
            "two writable pages"
        );
        assert_eq!(
            first_fault(
                &dom,
                &mem,
                GuestVirt::new(0),
                0,
                Access::Write,
                Mode::Supervisor
            ),
            None,
            "an empty range touches nothing"
        );
    }

    #[test]
    fn not_present_pages() {
        let (dom, mem) = setup();
        let end = dom.layout().virt_base.get() + 64 * 4096;
        // Starts 4 bytes before the end of the mapped region: the fault is at
        // the first unmapped page, not at the start of the range.
        assert_eq!(
            first_fault(
                &dom,
                &mem,
                GuestVirt::new(end - 4),
                8,
                Access::Read,
                Mode::Supervisor
            ),
            pf(end, 0)
        );
        assert_eq!(
            first_fault(
                &dom,
                &mem,
                GuestVirt::new(end - 4),
                8,
                Access::Write,
                Mode::Supervisor
            ),
            pf(end, PF_WRITE)
        );
        assert_eq!(
            first_fault(
                &dom,
                &mem,
                GuestVirt::new(0x10),
                1,
                Access::Read,
                Mode::Supervisor
            ),
            pf(0x10, 0),
            "NULL"
        );
    }

    #[test]
    fn protection_and_reserved_bit_faults() {
        let (dom, mut mem) = setup();
        // The bootstrap page tables are mapped read-only.
        let pt = va(&dom, dom.layout().page_tables);
        assert_eq!(
            first_fault(
                &dom,
                &mem,
                GuestVirt::new(pt + 8),
                8,
                Access::Write,
                Mode::Supervisor
            ),
            pf(pt + 8, PF_PRESENT | PF_WRITE)
        );
        assert_eq!(
            first_fault(
                &dom,
                &mem,
                GuestVirt::new(pt + 8),
                8,
                Access::Read,
                Mode::Supervisor
            ),
            None
        );
        // A writable page, edited in its L1 entry (a direct write of the fake
        // memory: the test plays the validated update).
        let data = va(&dom, dom.layout().first_free);
        let slot = l1_slot(&dom, &mem, data);
        let e = mem.read_u64(slot);
        assert_ne!(e & PTE_RW, 0);
        mem.write_u64(slot, e & !PTE_RW);
        assert_eq!(
            first_fault(
                &dom,
                &mem,
                GuestVirt::new(data),
                1,
                Access::Write,
                Mode::Supervisor
            ),
            pf(data, PF_PRESENT | PF_WRITE)
        );
        mem.write_u64(slot, e & !PTE_P);
        assert_eq!(
            first_fault(
                &dom,
                &mem,
                GuestVirt::new(data),
                1,
                Access::Read,
                Mode::Supervisor
            ),
            pf(data, 0)
        );
        // A reserved bit: NX without EFER.NXE.
        mem.write_u64(slot, e | (1 << 63));
        assert_eq!(
            first_fault(
                &dom,
                &mem,
                GuestVirt::new(data),
                1,
                Access::Read,
                Mode::Supervisor
            ),
            pf(data, PF_PRESENT | PF_RSVD)
        );
    }

    #[test]
    fn user_mode_needs_us_at_every_level_and_sets_u() {
        let (dom, mut mem) = setup();
        let cr3 = dom.base();
        let data = va(&dom, dom.layout().first_free);
        // The builder leaves U/S clear everywhere: a user access is a
        // protection fault with U set, a supervisor one is fine.
        assert_eq!(
            first_fault(
                &dom,
                &mem,
                GuestVirt::new(data),
                1,
                Access::Read,
                Mode::User
            ),
            pf(data, PF_PRESENT | PF_USER)
        );
        assert_eq!(
            first_fault(
                &dom,
                &mem,
                GuestVirt::new(data),
                1,
                Access::Write,
                Mode::User
            ),
            pf(data, PF_PRESENT | PF_WRITE | PF_USER)
        );
        // U/S on the leaf only: still not a user page (the CPU ANDs the levels).
        let slot = l1_slot(&dom, &mem, data);
        let e = mem.read_u64(slot);
        mem.write_u64(slot, e | PTE_US);
        assert_eq!(
            first_fault(
                &dom,
                &mem,
                GuestVirt::new(data),
                1,
                Access::Read,
                Mode::User
            ),
            pf(data, PF_PRESENT | PF_USER)
        );
        // U/S at every level: accessible from user mode.
        let mut table = cr3;
        for shift in [39u32, 30, 21] {
            let at = entry_addr(table, ((data >> shift) & 511) as usize);
            let e = mem.read_u64(at);
            mem.write_u64(at, e | PTE_US);
            table = pte_frame(e);
        }
        assert_eq!(
            first_fault(
                &dom,
                &mem,
                GuestVirt::new(data),
                8,
                Access::Write,
                Mode::User
            ),
            None
        );
        // A not-present page from user mode: U set, P clear.
        let end = dom.layout().virt_base.get() + 64 * 4096;
        assert_eq!(
            first_fault(
                &dom,
                &mem,
                GuestVirt::new(end),
                1,
                Access::Write,
                Mode::User
            ),
            pf(end, PF_WRITE | PF_USER)
        );
    }

    #[test]
    fn non_canonical_is_gp() {
        let (dom, mem) = setup();
        for (va, len) in [
            (0x0000_8000_0000_0000u64, 1u64),
            (0x8000_0000_0040_0000, 8),
            // Runs off the top of the lower half.
            (0x0000_7fff_ffff_fffc, 8),
            // Wraps past 2^64.
            (u64::MAX - 3, 8),
        ] {
            let f = first_fault(
                &dom,
                &mem,
                GuestVirt::new(va),
                len,
                Access::Read,
                Mode::Supervisor,
            );
            match f {
                Some(AccessFault::GeneralProtection { at }) => {
                    assert!(!at.is_canonical());
                    assert!(at.get().wrapping_sub(va) < len, "inside the range");
                }
                // The first page may be unmapped before the range leaves the
                // canonical space: a #PF there is what the CPU raises first.
                Some(AccessFault::PageFault { cr2, .. }) => assert!(cr2.is_canonical()),
                None => panic!("{va:#x}+{len}: no fault"),
            }
        }
        assert_eq!(
            first_fault(
                &dom,
                &mem,
                GuestVirt::new(0x0000_8000_0000_0000),
                1,
                Access::Write,
                Mode::Supervisor
            ),
            Some(AccessFault::GeneralProtection {
                at: GuestVirt::new(0x0000_8000_0000_0000)
            })
        );
    }
}
