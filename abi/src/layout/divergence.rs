//! Deliberate differences from Xen.

use super::*;

/// One deliberate difference from Xen.
#[derive(Clone, Copy, Debug)]
pub struct Divergence {
    /// The family of the Keel item.
    pub family: Family,
    /// The Keel name within the family.
    pub name: &'static str,
    /// Xen's corresponding item, if any.
    pub xen: Option<&'static str>,
    /// Why.
    pub why: &'static str,
}

/// Differences from Xen that are not a single constant's value: how Keel uses a
/// shared number or structure differently.
pub const BEHAVIOUR_DIVERGENCES: &[Divergence] = &[
    Divergence {
        family: Family::Version,
        name: "XENVER_VERSION",
        xen: Some("XENVER_version"),
        why: "same number and encoding ((major << 16) | minor), but Keel reports its ABI \
              version, not a product version",
    },
    Divergence {
        family: Family::Version,
        name: "features::SUBMAP0",
        xen: Some("XENFEAT_*"),
        why: "XENVER_get_features answers Keel's own feature bits; Xen's XENFEAT_* \
              numbering describes PV/HVM modes Keel does not have",
    },
    Divergence {
        family: Family::StartInfo,
        name: "StartInfo",
        xen: Some("start_info"),
        why: "same layout; Keel fills shared_info since 1.0 (0 in 0.1) and leaves store_*, \
              console, mod_* and the P2M fields zero (no xenstore, console ring or module)",
    },
];

/// Every item marked [`XenRelation::Differs`], then [`BEHAVIOUR_DIVERGENCES`]: the
/// list of deliberate differences from Xen, for the cross-check and the documentation.
pub fn divergences() -> impl Iterator<Item = Divergence> {
    let consts = constants().filter_map(|c| match c.xen {
        XenRelation::Differs { xen, why } => Some(Divergence {
            family: c.family,
            name: c.name,
            xen,
            why,
        }),
        _ => None,
    });
    let structs = STRUCTS.iter().filter_map(|s| match s.xen {
        XenRelation::Differs { xen, why } => Some(Divergence {
            family: s.family,
            name: s.name,
            xen,
            why,
        }),
        _ => None,
    });
    let errnos = crate::errno::ALL
        .iter()
        .filter_map(|&e| match errno_xen(e) {
            XenRelation::Differs { xen, why } => Some(Divergence {
                family: Family::Errno,
                name: e.name().unwrap_or("?"),
                xen,
                why,
            }),
            _ => None,
        });
    consts
        .chain(structs)
        .chain(errnos)
        .chain(BEHAVIOUR_DIVERGENCES.iter().copied())
}
