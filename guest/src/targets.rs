//! Addresses tests aim hypercalls at: the classic bad pointers, and the guest's
//! own sensitive memory.
//!
//! A hypervisor that copies to or from guest memory must refuse (`-EFAULT`) every
//! address that is not canonical, not mapped, not the guest's, or not writable for
//! a write — including addresses that would be valid *in the hypervisor's* address
//! space. The list is shared by the pointer tests and the fuzzer.

use crate::abi::{GuestVirt, PAGE_SIZE};
use crate::start;

/// Why an address is bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadKind {
    /// NULL or the first page.
    Null,
    /// Canonical but not mapped by the guest's tables.
    Unmapped,
    /// Not canonical (bits 63..47 differ).
    NonCanonical,
    /// Where a hypervisor's own mappings typically live (higher half, or a
    /// machine address of the direct map that the guest has no mapping for).
    HypervisorLike,
}

/// A bad pointer with a name for messages.
#[derive(Clone, Copy, Debug)]
pub struct BadPointer {
    /// For messages.
    pub name: &'static str,
    /// The category.
    pub kind: BadKind,
    /// The address.
    pub va: GuestVirt,
}

/// The first address after the bootstrap region (every owned frame is mapped below).
pub fn region_end() -> GuestVirt {
    let b = start::boot();
    GuestVirt::new(b.virt_base.get() + b.info.nr_pages * PAGE_SIZE)
}

/// The bad pointers every copy-in/copy-out path must refuse. None of them is mapped
/// in a Keel guest: the bootstrap region is the guest's only mapping.
pub fn bad_pointers() -> [BadPointer; 12] {
    let end = region_end().get();
    let base = start::boot().virt_base.get();
    let p = |name, kind, va| BadPointer {
        name,
        kind,
        va: GuestVirt::new(va),
    };
    [
        p("NULL", BadKind::Null, 0),
        p("NULL+0x10", BadKind::Null, 0x10),
        p("last byte of page 0", BadKind::Null, 0xfff),
        p("page below the image", BadKind::Unmapped, base - PAGE_SIZE),
        p("first page after the region", BadKind::Unmapped, end),
        p("1 GiB after the region", BadKind::Unmapped, end + (1 << 30)),
        p(
            "lowest non-canonical",
            BadKind::NonCanonical,
            0x0000_8000_0000_0000,
        ),
        p(
            "non-canonical high",
            BadKind::NonCanonical,
            0x8000_0000_0040_0000,
        ),
        p(
            "higher half start",
            BadKind::HypervisorLike,
            0xffff_8000_0000_0000,
        ),
        p(
            "kernel-text-like",
            BadKind::HypervisorLike,
            0xffff_ffff_8000_0000,
        ),
        p("top page", BadKind::HypervisorLike, 0xffff_ffff_ffff_f000),
        // The local APIC's machine address: mapped 1:1 in many hypervisors' direct
        // maps, never in a Keel guest.
        p(
            "LAPIC machine address",
            BadKind::HypervisorLike,
            0xfee0_0000,
        ),
    ]
}
