//! ABI versioning, `xen_version` (hypercall 17) and the hypervisor CPUID leaves.
//!
//! Keel's ABI version is `major.minor`. A guest declares the version it was built
//! against in its image (see [`crate::note`]); the hypervisor refuses a guest that
//! needs a newer version than it implements, and always runs older ones.
//! `xen_version(XENVER_version)` returns `(major << 16) | minor`, as Xen does for its
//! own version, and CPUID leaf `0x4000_0001` returns the same value in EAX
//! (reference: `docs/abi/version.md`; policy: `docs/abi-versioning.md`).
//!
//! Bare-metal difference: bare metal has no hypervisor leaves and no interface
//! version to ask for; a Keel guest asks, and must, to run on older hypervisors.

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
    /// 1.0: the PV MMU (`mmu_update`, `mmuext_op`, `multicall`): direct paging
    /// with validated page-table updates; the shared_info page, event channels,
    /// pvclock time and timers (block, poll), the upcall vector; and
    /// `keel_debug_op`, Keel's benchmark interface (`crate::debug`).
    pub const V1_0: AbiVersion = AbiVersion { major: 1, minor: 0 };
    /// 1.1: several domains: grant tables (v1), interdomain event channels,
    /// the control domain's `domctl` subset and the shared-ring layout.
    pub const V1_1: AbiVersion = AbiVersion { major: 1, minor: 1 };
    /// 1.2 (in progress): several vCPUs per domain: the `vcpu_op` operations
    /// that bring vCPUs up and down, their run states, and `vcpu_info`
    /// placed by the guest.
    pub const V1_2: AbiVersion = AbiVersion { major: 1, minor: 2 };
    /// The version this crate describes.
    pub const CURRENT: AbiVersion = Self::V1_1;

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
    /// Major 0 is the pre-release series of major 1: 1.0 is a superset of every
    /// 0.x, so a 1.x hypervisor runs every 0.x guest. Any other major version is
    /// a different interface. (A 0.x hypervisor, such as the frozen 0.1 image,
    /// runs only its own major version: that is the rule it was built with.)
    pub const fn can_run(self, guest: AbiVersion) -> bool {
        (self.major == guest.major && self.minor >= guest.minor)
            || (self.major == 1 && guest.major == 0)
    }

    /// The version a hypervisor implementing `self` reports (in
    /// `XENVER_version` and CPUID leaf `0x4000_0001`) to a guest whose image was
    /// built with the `keel-abi` of version `built` (its
    /// [`crate::note::NT_KEEL_ABI_BUILT`] note; `None` for an image built before
    /// 1.0, which has no such note).
    ///
    /// A guest that knows 1.x is told the truth. A guest built before 1.0 knows
    /// only the 0.x series and its rule that another major version is another
    /// interface: told "1.0", it would conclude that it should not have been run
    /// at all. So a 1.x hypervisor presents itself to it as
    /// [`Self::PRE_1_0_PRESENTED`], 0.2, the name 1.0 had in the 0.x series while
    /// it was being built: a newer 0.x, which such a guest checks for everything
    /// it knows and trusts with everything else. (Linux did the same when 3.0
    /// broke programs that parsed "2.6.x": the `UNAME26` personality reports
    /// 2.6.40.) The interface itself is the same for both guests.
    pub const fn presented_to(self, built: Option<AbiVersion>) -> AbiVersion {
        let knows_1_x = match built {
            Some(b) => b.major >= 1,
            None => false,
        };
        if self.major == 1 && !knows_1_x {
            Self::PRE_1_0_PRESENTED
        } else {
            self
        }
    }

    /// What a 1.x hypervisor reports to a guest built before 1.0
    /// ([`Self::presented_to`]).
    pub const PRE_1_0_PRESENTED: AbiVersion = AbiVersion::decode(PRE_1_0_XENVER_VERSION);

    /// The newest version whose hypercalls and sub-commands a hypervisor
    /// implementing `self` serves to an image that declares `declared` and was
    /// built with the `keel-abi` of version `built` (`None`: before 1.0); an
    /// item introduced after it answers `-ENOSYS`, as the versions the image
    /// knows promise. `in_progress` is the version being built
    /// (`layout::IN_PROGRESS`).
    ///
    /// An image knows the newer of the version it declares and the one it was
    /// built with: a guest that declares an old version to run on old
    /// hypervisors (the compatibility guest declares 0.1) but was built with 1.1
    /// detects 1.1 at run time and is served it. An image built before 1.0 is
    /// served 1.0, which it is told under its 0.x name (`presented_to`), as
    /// every 1.x hypervisor has served it. A 1.0 image is served 1.0 only: 1.1's
    /// calls stay `-ENOSYS` to it, and 1.1's new answers of 1.0 sub-commands
    /// (an unbound port for another domain) are not given to it.
    ///
    /// Nothing beyond `self` is served, except the version in progress, to an
    /// image that declares exactly it (a test program previewing staged calls).
    pub const fn served_to(
        self,
        declared: AbiVersion,
        built: Option<AbiVersion>,
        in_progress: Option<AbiVersion>,
    ) -> AbiVersion {
        let built = match built {
            Some(b) => b,
            None => Self::V1_0,
        };
        let knows = Self::newer(declared, built);
        let limit = match in_progress {
            Some(next) if next.encode() == declared.encode() => next,
            _ => self,
        };
        if knows.encode() < limit.encode() {
            knows
        } else {
            limit
        }
    }

    const fn newer(a: AbiVersion, b: AbiVersion) -> AbiVersion {
        if a.encode() >= b.encode() {
            a
        } else {
            b
        }
    }
}

abi_consts! {
    family: Family::Version, since: AbiVersion::V1_0, list: PRESENTED_CONSTS;
    /// The `XENVER_version` value (0.2) a 1.x hypervisor reports to a guest whose
    /// image has no `NT_KEEL_ABI_BUILT` note (built before 1.0): see
    /// `AbiVersion::presented_to`.
    PRE_1_0_XENVER_VERSION: u32 = 0x0000_0002 => keel();
}

impl core::fmt::Display for AbiVersion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

use crate::layout::{differs, keel, xen, Family};

abi_consts! {
    family: Family::Version, since: AbiVersion::V0_1;
    /// `XENVER_version`: returns the version encoding in RAX; the argument is ignored.
    /// Bare-metal/Xen difference: Keel reports its *ABI* version, not a product version.
    XENVER_VERSION: u64 = 0 => xen("XENVER_version");
    /// `XENVER_extraversion`: fills a [`XenExtraversion`] (Keel: [`EXTRAVERSION`]).
    XENVER_EXTRAVERSION: u64 = 1 => xen("XENVER_extraversion");
    /// `XENVER_compile_info` (Keel: `-ENOSYS`).
    XENVER_COMPILE_INFO: u64 = 2 => xen("XENVER_compile_info");
    /// `XENVER_capabilities` (Keel: `-ENOSYS`).
    XENVER_CAPABILITIES: u64 = 3 => xen("XENVER_capabilities");
    /// `XENVER_changeset` (Keel: `-ENOSYS`).
    XENVER_CHANGESET: u64 = 4 => xen("XENVER_changeset");
    /// `XENVER_platform_parameters` (Keel: `-ENOSYS`).
    XENVER_PLATFORM_PARAMETERS: u64 = 5 => xen("XENVER_platform_parameters");
    /// `XENVER_get_features`: fills a [`XenFeatureInfo`] for the requested submap.
    XENVER_GET_FEATURES: u64 = 6 => xen("XENVER_get_features");
    /// `XENVER_pagesize`: returns 4096.
    XENVER_PAGESIZE: u64 = 7 => xen("XENVER_pagesize");
    /// `XENVER_guest_handle` (Keel: `-ENOSYS`).
    XENVER_GUEST_HANDLE: u64 = 8 => xen("XENVER_guest_handle");
    /// `XENVER_commandline` (Keel: `-ENOSYS`).
    XENVER_COMMANDLINE: u64 = 9 => xen("XENVER_commandline");
    /// `XENVER_build_id` (Keel: `-ENOSYS`).
    XENVER_BUILD_ID: u64 = 10 => xen("XENVER_build_id");
    /// Length of the `XENVER_extraversion` buffer, `sizeof(xen_extraversion_t)`.
    XEN_EXTRAVERSION_LEN: usize = 16 => xen("XEN_EXTRAVERSION_LEN");
    /// The number of 32-bit feature submaps `XENVER_get_features` answers (index 0
    /// only); a larger index returns `-EINVAL`.
    FEATURE_SUBMAPS: u32 = 1 => xen("XENFEAT_NR_SUBMAPS");
}

/// `xen_extraversion_t`: `char[16]`, NUL-terminated.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenExtraversion(pub [u8; 16]);
const _: () = {
    assert!(core::mem::size_of::<XenExtraversion>() == XEN_EXTRAVERSION_LEN);
    assert!(core::mem::align_of::<XenExtraversion>() == 1);
};

impl XenExtraversion {
    /// An extraversion holding `s` (at most 15 bytes, the rest NUL). Longer input
    /// is truncated so that the string always stays NUL-terminated.
    pub const fn new(s: &[u8]) -> Self {
        let mut b = [0u8; XEN_EXTRAVERSION_LEN];
        let mut i = 0;
        while i < s.len() && i < XEN_EXTRAVERSION_LEN - 1 {
            b[i] = s[i];
            i += 1;
        }
        XenExtraversion(b)
    }

    /// The string up to its first NUL.
    pub fn as_bytes(&self) -> &[u8] {
        let end = self.0.iter().position(|&c| c == 0).unwrap_or(self.0.len());
        &self.0[..end]
    }
}

/// What Keel answers to `XENVER_extraversion`: `"-keel"`. (Xen answers its own
/// extraversion such as `".0"`; a guest can tell it runs on Keel from this or from
/// the CPUID signature.)
pub const EXTRAVERSION: XenExtraversion = XenExtraversion::new(b"-keel");

/// `struct xen_feature_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenFeatureInfo {
    /// IN: which 32-bit submap of the feature bitmap.
    pub submap_idx: u32,
    /// OUT: 32-bit submap.
    pub submap: u32,
}
const _: () = {
    assert!(core::mem::size_of::<XenFeatureInfo>() == 8);
    assert!(core::mem::align_of::<XenFeatureInfo>() == 4);
    assert!(core::mem::offset_of!(XenFeatureInfo, submap_idx) == 0);
    assert!(core::mem::offset_of!(XenFeatureInfo, submap) == 4);
};

impl XenFeatureInfo {
    /// Size of the structure in guest memory.
    pub const SIZE: usize = core::mem::size_of::<XenFeatureInfo>();

    /// The bytes as they lie in guest memory (little endian).
    pub const fn encode(&self) -> [u8; Self::SIZE] {
        let i = self.submap_idx.to_le_bytes();
        let m = self.submap.to_le_bytes();
        [i[0], i[1], i[2], i[3], m[0], m[1], m[2], m[3]]
    }

    /// Parse the bytes copied from guest memory.
    pub const fn decode(b: &[u8; Self::SIZE]) -> Self {
        XenFeatureInfo {
            submap_idx: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            submap: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// Keel feature bits reported by `XENVER_get_features`, submap 0. Bits are
/// Keel's own (Xen's `XENFEAT_*` numbering describes Xen PV/HVM modes that do not
/// apply); see `docs/abi/version.md`. No feature bits are defined in 0.1.
///
/// A feature bit, once released, is never removed or renumbered: the fixture
/// check lets the submap only gain bits. A guest tests a bit before using what it
/// stands for, which is how a new guest runs on an old hypervisor.
pub mod features {
    /// The features this build implements, submap 0.
    pub const SUBMAP0: u32 = 0;
}

abi_consts! {
    family: Family::Version, since: AbiVersion::V0_1, list: CPUID_CONSTS;
    /// The first hypervisor CPUID leaf: EAX = highest hypervisor leaf, EBX:ECX:EDX =
    /// signature. On bare metal these leaves do not exist (`CPUID.1:ECX[31]`, the
    /// hypervisor bit, is clear); under Keel the bit is set.
    CPUID_LEAF_BASE: u32 = 0x4000_0000 => xen("XEN_CPUID_FIRST_LEAF");
    /// Leaf `0x4000_0001`: EAX = ABI version encoding, EBX = feature submap 0.
    CPUID_LEAF_VERSION: u32 = 0x4000_0001 => differs(Some("XEN_CPUID_LEAF(1)"),
        "same leaf and EAX encoding as Xen's version leaf, but EAX holds Keel's ABI \
         version and EBX holds Keel's feature submap 0 (Xen: reserved)");
    /// The highest hypervisor leaf in 0.1 (the value of EAX for leaf `0x4000_0000`).
    CPUID_LEAF_MAX: u32 = 0x4000_0001 => keel();
    /// Keel's 12-byte CPUID signature, as it appears in EBX, ECX, EDX.
    CPUID_SIGNATURE: &[u8; 12] = b"KeelKeelKeel" => @bytes differs(
        Some("XEN_CPUID_SIGNATURE_EBX"),
        "Keel is not Xen: a guest must not mistake it for Xen and use Xen-only \
         interfaces, so the signature is Keel's own (Xen: \"XenVMMXenVMM\")");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_1_0_guests_see_a_newer_0_x() {
        let hv = AbiVersion::V1_0;
        assert_eq!(hv.presented_to(None), AbiVersion { major: 0, minor: 2 });
        assert_eq!(
            hv.presented_to(Some(AbiVersion::V0_1)),
            AbiVersion::PRE_1_0_PRESENTED
        );
        assert_eq!(hv.presented_to(Some(AbiVersion::V1_0)), hv);
        assert_eq!(hv.presented_to(Some(AbiVersion { major: 1, minor: 9 })), hv);
        let later = AbiVersion { major: 1, minor: 4 };
        assert_eq!(later.presented_to(None), AbiVersion::PRE_1_0_PRESENTED);
        assert_eq!(later.presented_to(Some(AbiVersion::V1_0)), later);
        // A 0.x hypervisor has nothing to hide.
        assert_eq!(AbiVersion::V0_1.presented_to(None), AbiVersion::V0_1);
        // What a pre-1.0 guest is told is a 0.x newer than 0.1 that can run it:
        // its own rule (same major, minor not older) accepts it.
        let p = AbiVersion::PRE_1_0_PRESENTED;
        assert!(p.major == 0 && p > AbiVersion::V0_1 && p.can_run(AbiVersion::V0_1));
    }

    #[test]
    fn an_image_is_served_what_it_knows_and_the_hypervisor_has() {
        let (v1_0, v1_1) = (AbiVersion::V1_0, AbiVersion::V1_1);
        let hv = v1_1;
        // Declares 0.1 to run everywhere, built with 1.1: detects and gets 1.1.
        assert_eq!(hv.served_to(AbiVersion::V0_1, Some(v1_1), None), v1_1);
        // Built with 1.0 (a frozen 1.0 image): 1.0 only.
        assert_eq!(hv.served_to(AbiVersion::V0_1, Some(v1_0), None), v1_0);
        assert_eq!(hv.served_to(v1_0, Some(v1_0), None), v1_0);
        // Built before 1.0: 1.0, as every 1.x hypervisor served it.
        assert_eq!(hv.served_to(AbiVersion::V0_1, None, None), v1_0);
        // Built with a newer crate than the hypervisor: the hypervisor's own.
        assert_eq!(hv.served_to(v1_0, Some(v(1, 3)), None), hv);
        // The version in progress, to an image that declares exactly it.
        let next = Some(v(1, 2));
        assert_eq!(hv.served_to(v(1, 2), Some(v1_1), next), v(1, 2));
        assert_eq!(hv.served_to(AbiVersion::V0_1, Some(v(1, 2)), next), hv);
        assert_eq!(hv.served_to(v1_1, Some(v1_1), next), v1_1);
        // The 1.0 hypervisor while 1.1 was in progress: what it did before
        // the release (preview only to images declaring 1.1).
        assert_eq!(
            v1_0.served_to(AbiVersion::V0_1, Some(v1_1), Some(v1_1)),
            v1_0
        );
        assert_eq!(v1_0.served_to(v1_1, Some(v1_1), Some(v1_1)), v1_1);
    }

    #[test]
    fn encodings_round_trip() {
        let v = AbiVersion { major: 1, minor: 7 };
        assert_eq!(v.encode(), 0x0001_0007);
        assert_eq!(AbiVersion::decode(v.encode()), v);
        assert!(v.can_run(AbiVersion { major: 1, minor: 3 }));
        assert!(!v.can_run(AbiVersion { major: 1, minor: 8 }));

        let f = XenFeatureInfo {
            submap_idx: 1,
            submap: 0x8000_0001,
        };
        assert_eq!(f.encode(), [1, 0, 0, 0, 1, 0, 0, 0x80]);
        assert_eq!(XenFeatureInfo::decode(&f.encode()), f);
    }

    const fn v(major: u16, minor: u16) -> AbiVersion {
        AbiVersion { major, minor }
    }

    #[test]
    fn a_1_x_hypervisor_runs_every_0_x_guest_and_no_newer_one() {
        let h = AbiVersion::V1_0;
        assert!(h.can_run(AbiVersion::V0_1));
        assert!(h.can_run(AbiVersion::V1_0));
        assert!(h.can_run(v(0, 9)), "every 0.x is a subset of 1.0");
        assert!(!h.can_run(v(1, 1)));
        assert!(!h.can_run(v(2, 0)));
        let h = AbiVersion::V1_1;
        assert!(h.can_run(AbiVersion::V1_0) && h.can_run(AbiVersion::V1_1));
        assert!(!h.can_run(v(1, 2)));
        // A later 1.x too.
        assert!(v(1, 4).can_run(AbiVersion::V0_1));
        assert!(v(1, 4).can_run(v(1, 3)));
        assert!(!v(1, 4).can_run(v(1, 5)));
    }

    #[test]
    fn a_0_x_hypervisor_runs_only_its_own_major_version() {
        // The rule the frozen 0.1 hypervisor was built with.
        let h = AbiVersion::V0_1;
        assert!(h.can_run(AbiVersion::V0_1));
        assert!(!h.can_run(v(0, 2)));
        assert!(!h.can_run(AbiVersion::V1_0));
    }

    #[test]
    fn another_major_version_is_another_interface() {
        let h = v(2, 0);
        assert!(h.can_run(v(2, 0)));
        assert!(!h.can_run(AbiVersion::V1_0));
        assert!(!h.can_run(AbiVersion::V0_1));
        assert!(!h.can_run(v(2, 1)));
    }

    #[test]
    fn extraversion_is_nul_terminated() {
        assert_eq!(EXTRAVERSION.as_bytes(), b"-keel");
        let long = XenExtraversion::new(b"0123456789abcdefXYZ");
        assert_eq!(long.as_bytes(), b"0123456789abcde");
        assert_eq!(long.0[15], 0);
    }
}
