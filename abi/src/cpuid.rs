//! What one CPUID instruction returns, as the hypervisor computes it and a guest
//! reads it. The hypervisor's leaves and their numbers are in [`crate::version`];
//! what the other leaves show is policy (`docs/abi/cpuid.md`).

/// The four output registers of one CPUID leaf and subleaf.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
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

bitflags::bitflags! {
    /// CPUID leaf 1 ECX: the feature bits that both sides name (the hypervisor's
    /// allow-list, `docs/abi/cpuid.md`, says which of all the bits a guest sees).
    /// Other bits are kept as they are.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Leaf1Ecx: u32 {
        /// MONITOR/MWAIT (hidden from Keel guests).
        const MONITOR = 1 << 3;
        /// VMX (hidden from Keel guests).
        const VMX = 1 << 5;
        /// SMX (hidden from Keel guests).
        const SMX = 1 << 6;
        /// XSAVE/XRSTOR, XSETBV/XGETBV and XCR0 exist.
        const XSAVE = 1 << 26;
        /// CR4.OSXSAVE is set (the OS enabled XSAVE).
        const OSXSAVE = 1 << 27;
        /// AVX.
        const AVX = 1 << 28;
        /// Running under a hypervisor.
        const HYPERVISOR = 1 << 31;
        const _ = !0;
    }
}

impl CpuidResult {
    /// EBX, ECX and EDX as 12 bytes, in that order: the vendor string of leaf 0
    /// and the signature of a hypervisor base leaf.
    pub fn signature(&self) -> [u8; 12] {
        let mut s = [0u8; 12];
        s[0..4].copy_from_slice(&self.ebx.to_le_bytes());
        s[4..8].copy_from_slice(&self.ecx.to_le_bytes());
        s[8..12].copy_from_slice(&self.edx.to_le_bytes());
        s
    }

    /// ECX read as leaf 1's feature bits.
    pub const fn leaf1_ecx(&self) -> Leaf1Ecx {
        Leaf1Ecx::from_bits_retain(self.ecx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_ebx_ecx_edx() {
        let r = CpuidResult {
            eax: 0x4000_0001,
            ebx: u32::from_le_bytes(*b"Keel"),
            ecx: u32::from_le_bytes(*b"Xen "),
            edx: u32::from_le_bytes(*b"Intl"),
        };
        assert_eq!(&r.signature(), b"KeelXen Intl");
    }
}
