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
