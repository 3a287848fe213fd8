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
mod tests;
