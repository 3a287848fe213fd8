//! `xen_version`: the version, the extra version, the feature bits, the page size.

use super::{Ctx, HcResult, HypercallArgs, Outcome};
use crate::addr::{GuestVirt, PAGE_SIZE};
use crate::mem::PhysMem;
use keel_abi::version::{features, XenFeatureInfo, EXTRAVERSION};
use keel_abi::Errno;

/// The version the domain is told (`Domain::abi_version`: the hypervisor's, or
/// 0.2 for a guest built before 1.0).
pub(super) fn version<M: PhysMem>(ctx: &mut Ctx<'_, M>, _: &HypercallArgs) -> HcResult {
    Ok(Outcome::Return(i64::from(ctx.dom.abi_version_encoded())))
}

/// Writes [`EXTRAVERSION`] (`"-keel"`, NUL-padded to 16 bytes).
#[inline(never)]
pub(super) fn extraversion<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    ctx.copy_to(GuestVirt::new(a.args[1]), &EXTRAVERSION.0)?;
    Ok(Outcome::Return(0))
}

/// Xen semantics: read the whole `xen_feature_info`, answer submap 0, refuse any
/// other index with -EINVAL (guests loop over submaps until the call fails), and
/// write the whole struct back.
#[inline(never)]
pub(super) fn get_features<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    let va = GuestVirt::new(a.args[1]);
    let mut fi = XenFeatureInfo::decode(&ctx.read(va)?);
    fi.submap = match fi.submap_idx {
        0 => features::SUBMAP0,
        _ => return Err(Errno::EINVAL),
    };
    ctx.copy_to(va, &fi.encode())?;
    Ok(Outcome::Return(0))
}

/// 4096; a non-NULL argument is refused, as Xen does.
pub(super) fn pagesize<M: PhysMem>(_: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    Ok(Outcome::Return(pagesize_of(a)))
}

/// [`pagesize`]'s answer (it reads nothing else).
pub(super) fn pagesize_of(a: &HypercallArgs) -> i64 {
    if a.args[1] != 0 {
        return Errno::EINVAL.as_return();
    }
    PAGE_SIZE as i64
}
