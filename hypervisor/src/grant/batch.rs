//! `grant_table_op(cmd, uop, count)` as a whole: the batch around the
//! per-operation rules of [`super::ops`].
//!
//! The batch is bounded twice: `count` above `KEEL_GNTTAB_BATCH_MAX` is
//! `-EINVAL` (as is `count != 1` for `setup_table` and `query_size`, Xen's
//! rule), and one exit does at most `units` operations before it returns
//! [`Batch::Preempted`] with how far it got, which the hypercall layer turns
//! into a continuation. Operations are read from and written back to guest
//! memory through [`OpMemory`] (the same world: the caller's memory is part of
//! it); a fault there ends the call with `-EFAULT`, the operations before it
//! done.

use super::ops::{self, States, UNMAP_CHUNK};
use super::{GrantStatus, GrantWorld};
use crate::addr::GuestVirt;
use crate::domain::DomainId;
use keel_abi::errno::Errno;
use keel_abi::event::Pod;
use keel_abi::grant_table::{
    GnttabCopy, GnttabMapGrantRef, GnttabQuerySize, GnttabSetupTable, GnttabUnmapGrantRef,
    GNTTABOP_COPY, GNTTABOP_MAP_GRANT_REF, GNTTABOP_QUERY_SIZE, GNTTABOP_SETUP_TABLE,
    GNTTABOP_UNMAP_GRANT_REF, KEEL_GNTTAB_BATCH_MAX,
};

/// The caller's memory, as the batch reads and writes it (checked accesses:
/// canonical, mapped, permitted, owned; `-EFAULT` otherwise).
pub trait OpMemory {
    /// Read element `i` of the array of `T` at `base`.
    fn read<T: Pod>(&mut self, base: GuestVirt, i: u32) -> Result<T, Errno>;
    /// Write element `i` of the array of `T` at `base`.
    fn write<T: Pod>(&mut self, base: GuestVirt, i: u32, v: &T) -> Result<(), Errno>;
    /// Write `words` as an array of 64-bit words at `at`.
    fn write_words(&mut self, at: GuestVirt, words: &[u64]) -> Result<(), Errno>;
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batch {
    /// Every operation is done: the hypercall returns 0.
    Done,
    /// The exit's budget ran out with `done` operations done (of the whole
    /// call, not only this piece): continue from there.
    Preempted {
        /// Operations done so far.
        done: u32,
    },
}

/// Run `grant_table_op(cmd, uop, count)` for `caller`, from operation `start`
/// (0, or the progress of a continuation), doing at most `units` operations.
#[allow(clippy::too_many_arguments)] // the hypercall's registers, one each
pub fn grant_table_op<const F: usize, const M: usize, W: GrantWorld + OpMemory>(
    st: &mut States<F, M>,
    world: &mut W,
    caller: DomainId,
    cmd: u64,
    uop: GuestVirt,
    count: u32,
    start: u32,
    units: u32,
) -> Result<Batch, Errno> {
    if count > KEEL_GNTTAB_BATCH_MAX || start > count {
        return Err(Errno::EINVAL);
    }
    let single = matches!(cmd, GNTTABOP_SETUP_TABLE | GNTTABOP_QUERY_SIZE);
    if single && count != 1 {
        return Err(Errno::EINVAL);
    }
    match cmd {
        GNTTABOP_SETUP_TABLE => {
            let mut op: GnttabSetupTable = world.read(uop, 0)?;
            op.status = match ops::setup_table(st, world, caller, op.dom, op.nr_frames) {
                Ok(()) => {
                    let frames = st
                        .get(usize::from(caller.0))
                        .map(|s| s.table.frames())
                        .unwrap_or(&[]);
                    let n = (op.nr_frames as usize).min(frames.len());
                    let written = frames.iter().take(n).enumerate().try_for_each(|(k, f)| {
                        let at = op.frame_list.wrapping_add(8 * k as u64);
                        world.write_words(GuestVirt::new(at), &[f.get()])
                    });
                    match written {
                        Ok(()) => GrantStatus::Okay.code(),
                        Err(_) => GrantStatus::BadVirtAddr.code(),
                    }
                }
                Err(e) => e.code(),
            };
            world.write(uop, 0, &op)?;
            Ok(Batch::Done)
        }
        GNTTABOP_QUERY_SIZE => {
            let mut op: GnttabQuerySize = world.read(uop, 0)?;
            match ops::query_size(st, world, caller, op.dom) {
                Ok((n, max)) => {
                    op.nr_frames = n;
                    op.max_nr_frames = max;
                    op.status = GrantStatus::Okay.code();
                }
                Err(e) => op.status = e.code(),
            }
            world.write(uop, 0, &op)?;
            Ok(Batch::Done)
        }
        GNTTABOP_MAP_GRANT_REF => each(count, start, units, |i| {
            let mut op: GnttabMapGrantRef = world.read(uop, i)?;
            match ops::map_grant_ref(st, world, caller, &op) {
                Ok(h) => {
                    op.handle = h;
                    op.dev_bus_addr = 0;
                    op.status = GrantStatus::Okay.code();
                }
                Err(e) => op.status = e.code(),
            }
            world.write(uop, i, &op)
        }),
        GNTTABOP_COPY => each(count, start, units, |i| {
            let mut op: GnttabCopy = world.read(uop, i)?;
            op.status = match ops::copy(st, world, caller, &op) {
                Ok(()) => GrantStatus::Okay.code(),
                Err(e) => e.code(),
            };
            world.write(uop, i, &op)
        }),
        GNTTABOP_UNMAP_GRANT_REF => {
            let end = count.min(start.saturating_add(units.max(1)));
            let mut i = start;
            while i < end {
                let n = (end - i).min(UNMAP_CHUNK as u32);
                let mut chunk = [GnttabUnmapGrantRef::default(); UNMAP_CHUNK];
                let part = chunk.get_mut(..n as usize).unwrap_or(&mut []);
                for (k, op) in part.iter_mut().enumerate() {
                    *op = world.read(uop, i + k as u32)?;
                }
                ops::unmap_grant_refs(st, world, caller, part);
                for (k, op) in part.iter().enumerate() {
                    world.write(uop, i + k as u32, op)?;
                }
                i += n;
            }
            Ok(if end < count {
                Batch::Preempted { done: end }
            } else {
                Batch::Done
            })
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// Run `one` for operations `start..count`, at most `units` of them.
fn each(
    count: u32,
    start: u32,
    units: u32,
    mut one: impl FnMut(u32) -> Result<(), Errno>,
) -> Result<Batch, Errno> {
    let end = count.min(start.saturating_add(units.max(1)));
    for i in start..end {
        one(i)?;
    }
    Ok(if end < count {
        Batch::Preempted { done: end }
    } else {
        Batch::Done
    })
}
