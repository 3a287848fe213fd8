//! `grant_table_op` (hypercall 20): the batch of [`crate::grant::batch`] on
//! the real frame tables and page tables ([`crate::grant::world`]).
//!
//! ABI 1.1: served to a domain whose image knows 1.1 (`Domain::serves`); one
//! whose image knows only an older version gets `-ENOSYS`, as that version
//! promises.
//!
//! **Bound.** One exit does at most `UNITS_PER_EXIT / UNITS_PER_OP` (128)
//! operations, each at most one 4 KiB copy or one mapping. A longer batch is
//! continued as `mmu_update` is ([`crate::preempt`]), with the count register
//! (RDX here) carrying the progress word between the pieces and the original
//! count again when the call completes: the guest's registers are as after one
//! uninterrupted call. (Xen rewrites the pointer and count arguments instead,
//! and leaves them rewritten.)

use super::{Ctx, HcResult, HypercallArgs, Outcome};
use crate::addr::GuestVirt;
use crate::grant::batch::{self, Batch};
use crate::grant::world::DomainWorld;
use crate::mem::PhysMem;
use crate::preempt::Progress;
use keel_abi::version::AbiVersion;
use keel_abi::Errno;

/// Budget units ([`crate::preempt`]) one grant operation is charged: a copy
/// moves up to 4 KiB, a map walks four tables and updates two frame tables,
/// several times an `mmu_update` request (one unit).
pub const UNITS_PER_OP: u32 = 8;

/// `grant_table_op(cmd, uop, count)`.
pub(super) fn grant_table_op<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    if !ctx.dom.serves(AbiVersion::V1_1) {
        return Err(Errno::ENOSYS);
    }
    let (cmd, uop) = (a.args[0], a.args[1]);
    // Xen's prototype takes `unsigned int count`; a count above the batch
    // bound is -EINVAL (the policy), a wider register too (Progress).
    let p = Progress::decode(a.args[2], false)?;
    let units = (ctx.work.room() / UNITS_PER_OP).max(1);
    let mut st = ctx.grants.lock();
    let caller = ctx.dom.id;
    let table_frames = st
        .get(usize::from(caller.0))
        .map_or(0, |s| s.table.frames().len());
    let mut world = DomainWorld {
        me: &mut *ctx.dom,
        peers: &*ctx.peers,
        mem: &mut *ctx.mem,
        table_frames,
    };
    let r = batch::grant_table_op(
        &mut st[..],
        &mut world,
        caller,
        cmd,
        GuestVirt::new(uop),
        p.count,
        p.done,
        units,
    );
    crate::grant::world::note_reap(&st[..]);
    let resumed = Progress::resumed(a.args[2]);
    let finish = |ret: i64| {
        if resumed {
            Outcome::ResumedRdx {
                // 0 or a negated errno: it fits.
                ret: ret as i32,
                count: p.count,
            }
        } else {
            Outcome::Return(ret)
        }
    };
    match r {
        Err(e) => Ok(finish(e.as_return())),
        Ok(Batch::Done) => Ok(finish(0)),
        Ok(Batch::Preempted { done }) => {
            ctx.work
                .charge(done.saturating_sub(p.done).saturating_mul(UNITS_PER_OP));
            let left = Progress {
                count: p.count,
                done,
                in_entry: false,
            };
            Ok(Outcome::PreemptedRdx(left.encode()))
        }
    }
}
