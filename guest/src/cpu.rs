//! CPUID, as the guest sees it (Keel filters it: hypervisor bit set, VMX hidden,
//! hypervisor leaves from 0x4000_0000).

/// The four result registers of one CPUID leaf.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuidResult {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

/// `CPUID` with EAX = `leaf`, ECX = `subleaf`.
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    crate::arch::cpuid(leaf, subleaf)
}

/// Leaf 1 ECX bit 5: VMX.
pub const LEAF1_ECX_VMX: u32 = 1 << 5;
/// Leaf 1 ECX bit 6: SMX.
pub const LEAF1_ECX_SMX: u32 = 1 << 6;
/// Leaf 1 ECX bit 31: running under a hypervisor.
pub const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;

/// The 12-byte signature of a hypervisor base leaf: EBX, ECX, EDX.
pub fn signature(r: &CpuidResult) -> [u8; 12] {
    let mut s = [0u8; 12];
    s[0..4].copy_from_slice(&r.ebx.to_le_bytes());
    s[4..8].copy_from_slice(&r.ecx.to_le_bytes());
    s[8..12].copy_from_slice(&r.edx.to_le_bytes());
    s
}
