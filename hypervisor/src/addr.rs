//! Address kinds. The guest-visible ones (`Mfn`, `Pfn`, `MachineAddr`, `GuestVirt`)
//! come from the ABI crate; `HostVirt` is the hypervisor's own.

pub use keel_abi::addr::{GuestVirt, MachineAddr, Mfn, Pfn, PAGE_SHIFT, PAGE_SIZE};

/// A hypervisor virtual address. The hypervisor maps all machine memory it uses
/// 1:1 (the direct map), so `HostVirt::direct_map(ma).0 == ma.0`; the conversion is
/// still spelled out so that the two kinds never mix silently.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostVirt(pub u64);

impl HostVirt {
    /// Where the direct map puts machine address `ma`.
    pub const fn direct_map(ma: MachineAddr) -> Self {
        HostVirt(ma.0)
    }
}
