//! The PV MMU hypercalls, `mmu_update` and `mmuext_op`: batches of requests read
//! from the guest one at a time, bounded per exit ([`crate::preempt`]). The rules
//! are in [`crate::paging`]; these handlers only copy requests in and results out.

use super::{Ctx, HcResult, HypercallArgs, Outcome};
use crate::addr::{GuestVirt, MachineAddr, Mfn};
use crate::domain::{Domain, Level};
use crate::event::EventState;
use crate::mem::PhysMem;
use crate::paging::entry::Pte;
use crate::paging::guest_mem;
use crate::paging::job::{Finished, Meter};
use crate::paging::{Flush, LastTable};
use crate::preempt::{Budget, Progress, CHECK_EVERY, ENTRIES_PER_UNIT, RESTART};
use keel_abi::mmu::{
    MmuUpdate, MmuextOp, DOMID_SELF, MMUEXT_INVLPG_ALL, MMUEXT_INVLPG_LOCAL, MMUEXT_INVLPG_MULTI,
    MMUEXT_NEW_BASEPTR, MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE, MMUEXT_PIN_L3_TABLE,
    MMUEXT_PIN_L4_TABLE, MMUEXT_TLB_FLUSH_ALL, MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_TLB_FLUSH_MULTI,
    MMUEXT_UNPIN_TABLE, MMU_NORMAL_PT_UPDATE,
};
use keel_abi::Errno;

pub(super) fn completed(reg: u64, count: u32, ret: i64) -> Outcome {
    if Progress::resumed(reg) {
        // Batch results are 0 or a negated errno: they fit.
        Outcome::Resumed {
            ret: ret as i32,
            count,
        }
    } else {
        Outcome::Return(ret)
    }
}

/// Stop a batch at `done` (it started this exit at `start`): charge the work,
/// and the continuation. Out of line, so that the loop does not keep the
/// progress word up to date on every request.
#[cold]
#[inline(never)]
fn preempted(work: &mut Budget, count: u32, start: u64, done: u64) -> Outcome {
    work.charge(u32::try_from(done - start).unwrap_or(u32::MAX));
    let left = Progress {
        count,
        done: u32::try_from(done).unwrap_or(u32::MAX),
        in_entry: false,
    };
    Outcome::Preempted(left.encode())
}

/// A [`Meter`] for the validation work of one request: charged to the exit's
/// budget one unit per [`ENTRIES_PER_UNIT`] entries, with the same check
/// points as the requests
/// ([`Budget::stop_here`]).
pub(super) struct WorkMeter<'b> {
    work: &'b mut Budget,
    ev: &'b EventState,
    now: &'b dyn Fn() -> u64,
}

impl<'b> WorkMeter<'b> {
    fn new(work: &'b mut Budget, ev: &'b EventState, now: &'b dyn Fn() -> u64) -> Self {
        WorkMeter { work, ev, now }
    }
}

impl Meter for WorkMeter<'_> {
    #[inline]
    fn quota(&self) -> u32 {
        self.work.until_check().saturating_mul(ENTRIES_PER_UNIT)
    }
    #[inline]
    fn tick(&mut self, n: u32) -> bool {
        // Rounded up: every piece is charged at least one unit.
        self.work.charge(n.div_ceil(ENTRIES_PER_UNIT));
        let (ev, now) = (self.ev, self.now);
        self.work.stop_here(|| tsc(now), || ev.wake_deadline_tsc())
    }
}

/// A request's outcome from the paging rules: `None` (stopped part way) is
/// [`RESTART`], which the batch turns into its continuation.
fn finished(r: Finished) -> Result<(), Errno> {
    match r {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(mm_err(e)),
        None => Err(RESTART),
    }
}

/// The TSC for a check point. On the hypervisor it is the RDTSC that the exit
/// handler passes as `now` anyway, read inline: a check point is then a few
/// instructions, not a call through a trait object (the checks come every few
/// requests, and a request costs little more than a hundred instructions).
#[inline(always)]
pub(super) fn tsc(now: &dyn Fn() -> u64) -> u64 {
    #[cfg(target_os = "none")]
    {
        let _ = now;
        crate::arch::timer::rdtsc()
    }
    #[cfg(not(target_os = "none"))]
    now()
}

/// `foreigndom` must name the caller: Keel runs one domain and has no privileged
/// one, so there is no other domain to act on (`-ESRCH`, as Xen for an unknown id).
fn check_foreigndom(dom: &Domain, fd: u64) -> Result<(), Errno> {
    if fd == DOMID_SELF || fd == u64::from(dom.id.0) {
        Ok(())
    } else {
        Err(Errno::ESRCH)
    }
}

/// Write the number of requests done to `*pdone` (a C `unsigned int`), unless NULL.
fn write_done<M: PhysMem>(c: &mut Ctx<'_, M>, pdone: u64, done: u64) -> Result<(), Errno> {
    if pdone == 0 {
        return Ok(());
    }
    let v = u32::try_from(done).unwrap_or(u32::MAX);
    c.copy_to(GuestVirt::new(pdone), &v.to_le_bytes())
}

/// Run `count` requests of `N` bytes from `list`, `one_fn` per request; stop at
/// the first error; write the count done back. The shape both `mmu_update` and
/// `mmuext_op` share (Xen's `do_mmu_update`/`do_mmuext_op` loops).
///
/// Each request is read just before it runs, through a [`guest_mem::PageReader`]:
/// one page walk per page of requests rather than one per request (the walk
/// costs several times what a small request does). `one_fn` gets the reader
/// too: a request that writes a guest page-table entry reports it
/// ([`guest_mem::PageReader::wrote_entry`]) before the next read, so that the
/// reader forgets a translation the request could change. A request that
/// cannot be read ends the batch with `-EFAULT` after the ones before it have
/// run, as Xen's loop does.
fn batch<M: PhysMem, const N: usize>(
    c: &mut Ctx<'_, M>,
    a: &HypercallArgs,
    mut one_fn: impl FnMut(&mut Ctx<'_, M>, &[u8; N], &mut guest_mem::PageReader) -> Result<(), Errno>,
) -> HcResult {
    let (list, pdone, fd) = (a.args[0], a.args[2], a.args[3]);
    check_foreigndom(c.dom, fd)?;
    let p = Progress::decode(a.args[1], false)?;
    let count = u64::from(p.count);
    let mut reader = guest_mem::PageReader::new();
    let mut done = u64::from(p.done);
    let mut rc = Ok(());
    // Check points ([`crate::preempt`]) come every CHECK_EVERY requests (by
    // index), never before this exit's first. The requests between two run
    // in an inner loop that tests nothing more than before; at a check point
    // the clock is read and compared with the deadline (read once) and the
    // exit's bound.
    let ev = &*c.ev;
    let deadline = c.work.deadline(|| ev.wake_deadline_tsc());
    let start = done;
    // Every piece does at least one request (or one entry of its
    // validation work).
    let limit = start + u64::from(c.work.room().max(1));
    let every = u64::from(CHECK_EVERY);
    let mut stop = count.min((start / every + 1) * every).min(limit);
    loop {
        while done < stop {
            let va = GuestVirt::new(list.wrapping_add(done.wrapping_mul(N as u64)));
            let req = match reader.read::<N, _>(c.dom, c.mem, va) {
                Ok(r) => r,
                Err(e) => {
                    rc = Err(e);
                    break;
                }
            };
            if let Err(e) = one_fn(c, &req, &mut reader) {
                rc = Err(e);
                break;
            }
            done += 1;
        }
        if rc == Err(RESTART) {
            // The request's validation work stopped part way (its units are
            // charged already): the same request goes on in the next piece.
            return Ok(preempted(&mut c.work, p.count, start, done));
        }
        if done >= count || rc.is_err() {
            break;
        }
        // The bound counts the requests of this piece and any validation
        // work they did (charged as it was done).
        let limit = start + u64::from(c.work.room());
        if done >= limit || tsc(c.now) >= deadline {
            return Ok(preempted(&mut c.work, p.count, start, done));
        }
        stop = count.min(done + every).min(limit);
    }
    c.work
        .charge(u32::try_from(done - start).unwrap_or(u32::MAX));
    let wrote = write_done(c, pdone, done);
    let ret = match rc.and(wrote) {
        Ok(()) => 0,
        Err(e) => e.as_return(),
    };
    Ok(completed(a.args[1], p.count, ret))
}

/// A guest-supplied frame number or entry address no machine has: Xen finds no
/// page there and answers `-EINVAL`, as for any other frame the guest does not own.
fn addr_err(e: crate::addr::AddrError) -> Errno {
    log::debug!("mmu: refused: {e}");
    Errno::EINVAL
}

fn mm_err(e: crate::paging::MmError) -> Errno {
    log::debug!("mmu: refused: {e}");
    Errno::EINVAL
}

/// An MMU hypercall of the loaded vCPU, its requests made by `requests`:
/// while the vCPU waits for another's job part way (`Domain::mm_waits`) it
/// is preempted before its first request, its progress word as it came (the
/// exit handler makes the vCPU yield); a job its requests leave part way is
/// its own (`Domain::mm_ran`).
#[inline(always)]
fn mmu_call<M: PhysMem>(
    c: &mut Ctx<'_, M>,
    a: &HypercallArgs,
    requests: impl FnOnce(&mut Ctx<'_, M>, &HypercallArgs) -> HcResult,
) -> HcResult {
    if c.dom.mm_waits() {
        return Ok(Outcome::Preempted(a.args[1]));
    }
    let r = requests(c, a);
    c.dom.mm_ran();
    r
}

/// `mmu_update(reqs, count, success_count, foreigndom)`.
#[inline(never)]
pub(super) fn mmu_update<M: PhysMem>(c: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    mmu_call(c, a, mmu_update_batch)
}

/// [`mmu_update`]'s requests (a function of its own, so that the loop is
/// compiled as one piece with its per-request closure).
#[inline(never)]
fn mmu_update_batch<M: PhysMem>(c: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    // The requests of a batch are a run of updates with nothing between
    // them: consecutive ones to the same table look it up once.
    let mut last = LastTable::default();
    batch::<M, { MmuUpdate::SIZE }>(c, a, |c, b, reader| {
        let req = MmuUpdate::decode(b);
        match req.ptr & 3 {
            MMU_NORMAL_PT_UPDATE => {
                // Bits 0..1 are the command; the entry address is 8-byte
                // aligned, so bit 2 must be clear (checked by update_entry).
                let ma = MachineAddr::from_guest(req.ptr & !3).map_err(addr_err)?;
                // The only guest memory a request writes is the entry it
                // names (a misaligned one is refused unwritten).
                reader.wrote_entry(MachineAddr::new(ma.get() & !7));
                let (work, ev, now) = (&mut c.work, &*c.ev, c.now);
                finished(
                    c.dom
                        .update_entry_in(c.mem, &mut last, ma, Pte(req.val), || {
                            WorkMeter::new(work, ev, now)
                        }),
                )
            }
            _ => Err(Errno::ENOSYS),
        }
    })
}

/// `mmuext_op(ops, count, success_count, foreigndom)`.
#[inline(never)]
pub(super) fn mmuext_op<M: PhysMem>(c: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    mmu_call(c, a, mmuext_batch)
}

/// [`mmuext_op`]'s commands.
#[inline(never)]
fn mmuext_batch<M: PhysMem>(c: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    // No command writes guest memory (NEW_BASEPTR changes the root, which
    // the reader checks on every read).
    batch::<M, { MmuextOp::SIZE }>(c, a, |c, b, _| {
        let op = MmuextOp::decode(b);
        // Only the commands that name a frame check arg1 as one.
        let mfn = || Mfn::from_guest(op.arg1).map_err(addr_err);
        let pin = |c: &mut Ctx<'_, M>, level| {
            let mfn = mfn()?;
            let mut meter = WorkMeter::new(&mut c.work, c.ev, c.now);
            finished(c.dom.pin_in(c.mem, mfn, level, &mut meter))
        };
        match op.cmd {
            MMUEXT_PIN_L1_TABLE => pin(c, Level::L1),
            MMUEXT_PIN_L2_TABLE => pin(c, Level::L2),
            MMUEXT_PIN_L3_TABLE => pin(c, Level::L3),
            MMUEXT_PIN_L4_TABLE => pin(c, Level::L4),
            MMUEXT_UNPIN_TABLE => {
                let mfn = mfn()?;
                let mut meter = WorkMeter::new(&mut c.work, c.ev, c.now);
                finished(c.dom.unpin_in(c.mem, mfn, &mut meter))
            }
            MMUEXT_NEW_BASEPTR => {
                let mfn = mfn()?;
                let mut meter = WorkMeter::new(&mut c.work, c.ev, c.now);
                finished(c.dom.new_baseptr_in(c.mem, mfn, &mut meter))
            }
            MMUEXT_TLB_FLUSH_LOCAL | MMUEXT_TLB_FLUSH_ALL => {
                c.dom.request_flush(Flush::All);
                Ok(())
            }
            MMUEXT_INVLPG_LOCAL | MMUEXT_INVLPG_ALL => {
                c.dom.request_flush(Flush::Page(GuestVirt::new(op.arg1)));
                Ok(())
            }
            MMUEXT_TLB_FLUSH_MULTI | MMUEXT_INVLPG_MULTI => {
                // The vCPU bitmap is a guest pointer. A domain's vCPUs all
                // run on its CPU, and the flush is the domain's: the loaded
                // vCPU is flushed before it runs again, every other when it is
                // next loaded (`Vcpu::switch_vcpu` flushes whole). So any of
                // the domain's vCPUs named asks for it; bits beyond its count
                // name nothing.
                let mask = c.read::<8>(GuestVirt::new(op.arg2))?;
                let vcpus = (1u64 << c.dom.vcpus.count()) - 1;
                if u64::from_le_bytes(mask) & vcpus != 0 {
                    c.dom.request_flush(if op.cmd == MMUEXT_TLB_FLUSH_MULTI {
                        Flush::All
                    } else {
                        Flush::Page(GuestVirt::new(op.arg1))
                    });
                }
                Ok(())
            }
            _ => Err(Errno::ENOSYS),
        }
    })
}
