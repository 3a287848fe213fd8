//! Address kinds. The guest-visible ones (`Mfn`, `Pfn`, `MachineAddr`, `GuestVirt`)
//! come from the ABI crate; `HostVirt` is the hypervisor's own.

pub use keel_abi::addr::{AddrError, GuestVirt, MachineAddr, Mfn, Pfn, PAGE_SHIFT, PAGE_SIZE};

/// A hypervisor virtual address. The hypervisor maps all machine memory it uses
/// 1:1 (the direct map), so `HostVirt::direct_map(ma).get() == ma.get()`; the
/// conversion is still spelled out so that the two kinds never mix silently. No
/// guest value becomes one: the only constructor goes through a machine address.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostVirt(u64);

impl HostVirt {
    /// Where the direct map puts machine address `ma`.
    #[inline(always)]
    pub const fn direct_map(ma: MachineAddr) -> Self {
        HostVirt(ma.get())
    }
    /// The address as a raw integer (for a pointer cast in the arch module).
    #[inline(always)]
    pub const fn get(self) -> u64 {
        self.0
    }
}
