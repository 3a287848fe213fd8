//! CPUID, as the guest sees it (Keel filters it: hypervisor bit set, VMX hidden,
//! hypervisor leaves from 0x4000_0000).

pub use crate::abi::cpuid::{CpuidResult, Leaf1Ecx};

/// `CPUID` with EAX = `leaf`, ECX = `subleaf`.
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    crate::arch::cpuid(leaf, subleaf)
}

/// Leaf 1 ECX bit 5: VMX.
pub const LEAF1_ECX_VMX: u32 = Leaf1Ecx::VMX.bits();
/// Leaf 1 ECX bit 6: SMX.
pub const LEAF1_ECX_SMX: u32 = Leaf1Ecx::SMX.bits();
/// Leaf 1 ECX bit 31: running under a hypervisor.
pub const LEAF1_ECX_HYPERVISOR: u32 = Leaf1Ecx::HYPERVISOR.bits();

/// The 12-byte signature of a hypervisor base leaf: EBX, ECX, EDX.
pub fn signature(r: &CpuidResult) -> [u8; 12] {
    r.signature()
}
