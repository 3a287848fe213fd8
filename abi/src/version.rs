//! ABI versioning, `xen_version` (hypercall 17) and the hypervisor CPUID leaves.
//!
//! Keel's ABI version is `major.minor`. A guest declares the version it was built
//! against in its image (see [`crate::note`]); the hypervisor refuses a guest that
//! needs a newer version than it implements, and always runs older ones.
//! `xen_version(XENVER_version)` returns `(major << 16) | minor`, as Xen does for its
//! own version, and CPUID leaf `0x4000_0001` returns the same value in EAX.

/// An ABI version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AbiVersion {
    /// Incompatible changes (none are planned: see `docs/abi-versioning.md`).
    pub major: u16,
    /// Additions.
    pub minor: u16,
}

impl AbiVersion {
    /// 0.1: boot, console, version queries, shutdown.
    pub const V0_1: AbiVersion = AbiVersion { major: 0, minor: 1 };
    /// The version this crate describes.
    pub const CURRENT: AbiVersion = Self::V0_1;

    /// The `XENVER_version` encoding: `(major << 16) | minor`.
    pub const fn encode(self) -> u32 {
        ((self.major as u32) << 16) | self.minor as u32
    }
    /// Decode the `XENVER_version` encoding.
    pub const fn decode(v: u32) -> Self {
        AbiVersion {
            major: (v >> 16) as u16,
            minor: v as u16,
        }
    }
    /// Whether a hypervisor implementing `self` can run a guest built against `guest`.
    /// Within one major version every minor is a superset of the ones before it.
    pub const fn can_run(self, guest: AbiVersion) -> bool {
        self.major == guest.major && self.minor >= guest.minor
    }
}

impl core::fmt::Display for AbiVersion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// `XENVER_version`: returns the version encoding in RAX; the argument is ignored.
pub const XENVER_VERSION: u64 = 0;
/// `XENVER_extraversion`: fills a [`XenExtraversion`].
pub const XENVER_EXTRAVERSION: u64 = 1;
/// `XENVER_compile_info` (Keel: `-ENOSYS`).
pub const XENVER_COMPILE_INFO: u64 = 2;
/// `XENVER_capabilities` (Keel: `-ENOSYS`).
pub const XENVER_CAPABILITIES: u64 = 3;
/// `XENVER_changeset` (Keel: `-ENOSYS`).
pub const XENVER_CHANGESET: u64 = 4;
/// `XENVER_platform_parameters` (Keel: `-ENOSYS`).
pub const XENVER_PLATFORM_PARAMETERS: u64 = 5;
/// `XENVER_get_features`: fills a [`XenFeatureInfo`] for the requested submap.
pub const XENVER_GET_FEATURES: u64 = 6;
/// `XENVER_pagesize`: returns 4096.
pub const XENVER_PAGESIZE: u64 = 7;
/// `XENVER_guest_handle` (Keel: `-ENOSYS`).
pub const XENVER_GUEST_HANDLE: u64 = 8;
/// `XENVER_commandline` (Keel: `-ENOSYS`).
pub const XENVER_COMMANDLINE: u64 = 9;
/// `XENVER_build_id` (Keel: `-ENOSYS`).
pub const XENVER_BUILD_ID: u64 = 10;

/// `xen_extraversion_t`: `char[16]`, NUL-terminated.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenExtraversion(pub [u8; 16]);
const _: () = assert!(core::mem::size_of::<XenExtraversion>() == 16);

/// `struct xen_feature_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenFeatureInfo {
    /// IN: which 32-bit submap of the feature bitmap.
    pub submap_idx: u32,
    /// OUT: 32-bit submap.
    pub submap: u32,
}
const _: () = assert!(core::mem::size_of::<XenFeatureInfo>() == 8);
const _: () = assert!(core::mem::offset_of!(XenFeatureInfo, submap) == 4);

/// Keel feature bits reported by `XENVER_get_features`, submap 0. Bits are
/// Keel's own (Xen's `XENFEAT_*` numbering describes Xen PV/HVM modes that do not
/// apply); see `docs/abi/version.md`. No feature bits are defined in 0.1.
pub mod features {
    /// The features this build implements, submap 0.
    pub const SUBMAP0: u32 = 0;
}

/// The first hypervisor CPUID leaf: EAX = highest hypervisor leaf, EBX:ECX:EDX = signature.
pub const CPUID_LEAF_BASE: u32 = 0x4000_0000;
/// Leaf `0x4000_0001`: EAX = ABI version encoding, EBX = feature submap 0.
pub const CPUID_LEAF_VERSION: u32 = 0x4000_0001;
/// Keel's 12-byte CPUID signature, as it appears in EBX, ECX, EDX.
pub const CPUID_SIGNATURE: &[u8; 12] = b"KeelKeelKeel";
