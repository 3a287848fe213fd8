//! `domctl` (hypercall 36): the control domain's interface to the others.
//!
//! New in ABI 1.1: served to a domain whose image knows 1.1
//! (`Domain::serves`); an image of an older version gets `-ENOSYS`, as that
//! version promises. The envelope
//! is read whole (`-EFAULT` if it is not readable); the decision is the pure
//! policy's (`crate::domctl`), reached through the peers (`crate::peers`),
//! which see every domain and the scheduler. Only `getdomaininfo` writes the
//! envelope back (as Xen's `copyback`), so a pause needs no writable buffer.
//!
//! **Bound.** One envelope of 144 bytes in and out, and one look over the
//! domains (at most `MAX_DOMAINS`): no continuation.

use super::{Ctx, HcResult, HypercallArgs, Outcome};
use crate::addr::GuestVirt;
use crate::domctl::Summary;
use crate::mem::PhysMem;
use crate::peers::DomctlDone;
use keel_abi::domctl::XenDomctl;
use keel_abi::event::Pod;
use keel_abi::Errno;

/// `domctl(u_domctl)`.
pub(super) fn domctl<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    if !ctx.dom.serves(keel_abi::version::AbiVersion::V1_1) {
        return Err(Errno::ENOSYS);
    }
    let va = GuestVirt::new(a.args[0]);
    let mut b = [0u8; XenDomctl::SIZE];
    ctx.copy_from(va, &mut b)?;
    let mut op = XenDomctl::decode(&b);
    let me = Summary {
        tot_pages: ctx.dom.owned_pages(),
        max_pages: ctx.dom.nr_pages(),
        shared_info_frame: ctx.ev.shared.map_or(0, |m| m.get()),
        name: ctx.dom.name(),
        shutdown: None,
        dying: false,
    };
    match ctx.peers.domctl(ctx.dom.id, me, &mut op)? {
        DomctlDone::Answered => {
            op.encode(&mut b);
            ctx.copy_to(va, &b)?;
            Ok(Outcome::Return(0))
        }
        DomctlDone::Scheduled => Ok(Outcome::Return(0)),
        // 0 in RAX, and the CPU to the run loop, which tears the domain down
        // before anything else runs.
        DomctlDone::Destroying => Ok(Outcome::Yield),
    }
}
