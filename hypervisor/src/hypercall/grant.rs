//! `grant_table_op` (hypercall 20): the batch of [`crate::grant::batch`] on
//! the real frame tables and page tables ([`crate::grant::world`]).
//!
//! Served only to a domain whose image declared the ABI version in progress
//! (`Domain::previews_next_abi`): the call is staged for 1.1, and a domain of a
//! released version gets `-ENOSYS`, as that version promises.
//!
//! **Bound.** One exit does at most [`OPS_PER_EXIT`] operations (each at most
//! one 4 KiB copy or one mapping); a longer batch is continued as Xen
//! continues it: the VMCALL is executed again with the operation pointer (RSI)
//! advanced past the operations done and the count (RDX) reduced by them, so
//! after a preempted call those two registers hold what is left (Xen's
//! behaviour; the guest must not rely on them, as under Xen).

use super::{Ctx, HcResult, HypercallArgs, Outcome};
use crate::addr::GuestVirt;
use crate::grant::batch::{self, Batch};
use crate::grant::world::{Alone, DomainWorld};
use crate::mem::PhysMem;
use keel_abi::event::Pod;
use keel_abi::grant_table::{
    GnttabCopy, GnttabMapGrantRef, GnttabUnmapGrantRef, GNTTABOP_COPY, GNTTABOP_MAP_GRANT_REF,
    GNTTABOP_UNMAP_GRANT_REF,
};
use keel_abi::Errno;

/// Budget units ([`crate::preempt`]) one grant operation is charged: a copy
/// moves up to 4 KiB, a map walks four tables and updates two frame tables,
/// several times an `mmu_update` request (one unit).
pub const UNITS_PER_OP: u32 = 8;

/// The size of one operation of `cmd` in the guest's array (for the
/// continuation's advanced pointer).
fn op_size(cmd: u64) -> u64 {
    match cmd {
        GNTTABOP_MAP_GRANT_REF => GnttabMapGrantRef::SIZE as u64,
        GNTTABOP_UNMAP_GRANT_REF => GnttabUnmapGrantRef::SIZE as u64,
        GNTTABOP_COPY => GnttabCopy::SIZE as u64,
        _ => 0,
    }
}

/// `grant_table_op(cmd, uop, count)`.
pub(super) fn grant_table_op<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    if !ctx.dom.previews_next_abi() {
        return Err(Errno::ENOSYS);
    }
    let (cmd, uop, count) = (a.args[0], a.args[1], a.args[2]);
    // Xen's prototype takes `unsigned int count`; a wider register is refused
    // rather than truncated.
    let count = u32::try_from(count).map_err(|_| Errno::EINVAL)?;
    let units = (ctx.work.room() / UNITS_PER_OP).max(1);
    let mut st = ctx.grants.lock();
    let caller = ctx.dom.id;
    let table_frames = st
        .get(usize::from(caller.0))
        .map_or(0, |s| s.table.frames().len());
    let mut world = DomainWorld {
        me: &mut *ctx.dom,
        peers: &Alone,
        mem: &mut *ctx.mem,
        table_frames,
    };
    let r = batch::grant_table_op(
        &mut st[..],
        &mut world,
        caller,
        cmd,
        GuestVirt::new(uop),
        count,
        0,
        units,
    )?;
    match r {
        Batch::Done => Ok(Outcome::Return(0)),
        Batch::Preempted { done } => {
            ctx.work.charge(done.saturating_mul(UNITS_PER_OP));
            Ok(Outcome::Restart {
                rsi: uop.wrapping_add(u64::from(done).wrapping_mul(op_size(cmd))),
                rdx: u64::from(count - done),
            })
        }
    }
}
