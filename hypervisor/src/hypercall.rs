//! # The hypercall table
//!
//! A guest traps in with `VMCALL`; the VMX exit handler passes the saved
//! registers as [`HypercallArgs`] and one [`Ctx`] to [`dispatch`], which looks the
//! call up in [`TABLE`], runs its handler, and turns the handler's
//! `Result<Outcome, Errno>` into the [`Outcome`] the exit handler applies (an
//! error is a negated errno in RAX).
//!
//! The table is data: one [`Row`] per implemented hypercall *and sub-command*
//! (`console_io` / `CONSOLEIO_write` is a row; `CONSOLEIO_read` is not, so it is
//! `-ENOSYS`). Everything not in the table answers `-ENOSYS`, as Xen does for
//! hypercalls it does not implement. Because the table is data, the tests check it
//! against the ABI crate's "implemented since" list, and [`write_markdown`] renders
//! it for `docs/` so documentation cannot drift from the code.
//!
//! All three 0.1 hypercalls take the sub-command in the first argument (RDI) and a
//! guest pointer or value in the second (RSI), as on Xen. Keel compares the full
//! 64-bit register where Xen's C prototypes truncate to `int`/`unsigned int`; a
//! guest that sets the upper half gets `-ENOSYS`/`-EINVAL` instead of an alias.
//! Every guest pointer goes through [`crate::paging::guest_mem`].

use crate::addr::GuestVirt;
use crate::domain::Domain;
use crate::event::EventState;
use crate::mem::{Console, PhysMem};
use crate::paging::guest_mem;
use crate::preempt::Budget;
pub use keel_abi::hypercall::HypercallArgs;
use keel_abi::Errno;

mod console_io;
mod domctl;
mod events;
mod grant;
mod mmu;
mod multicall;
mod sched;
mod table;
mod vcpu;
mod xen_version;

pub use table::{lookup, own_answer, write_markdown, BuiltFacts, Op, Row, TABLE};

/// What the exit handler does after a hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Put this value in RAX and resume the guest.
    Return(i64),
    /// The domain asked to shut down with this `SHUTDOWN_*` reason (a known one:
    /// unknown reasons are refused with `-EINVAL`). Its partial console line has
    /// been flushed.
    Shutdown(u32),
    /// Put 0 in RAX, move past the VMCALL, and block the vCPU until what
    /// `EventState::blocked` describes (`SCHEDOP_block`, `SCHEDOP_poll`).
    Block,
    /// Put 0 in RAX, move past the VMCALL, and give the rest of the time slice
    /// to the other domains (`SCHEDOP_yield`); with none runnable the vCPU
    /// continues at once.
    Yield,
    /// The call did a bounded piece of its work and must be executed again
    /// ([`crate::preempt`]): put this progress word in the count register (RSI),
    /// leave RAX and RIP (on the VMCALL) as they are, and deliver whatever is
    /// due before the guest re-executes it.
    Preempted(u64),
    /// [`Outcome::Preempted`] of a call whose count is its third argument
    /// (`grant_table_op`): the progress word goes in RDX.
    PreemptedRdx(u64),
    /// [`Outcome::Resumed`] of a call whose count is its third argument: the
    /// count goes back in RDX.
    ResumedRdx {
        /// The result.
        ret: i32,
        /// The original count (argument 3).
        count: u32,
    },
    /// A continuation completed: put `ret` in RAX as [`Outcome::Return`] does,
    /// and the count the guest passed back in RSI (which held progress words
    /// between the pieces), so that the guest's registers are as after one
    /// uninterrupted call.
    Resumed {
        /// The result.
        ret: i32,
        /// The original count (argument 2).
        count: u32,
    },
}

/// What a handler returns: an [`Outcome`], or the error [`dispatch`] puts in
/// RAX as a negated errno (so handlers propagate errors with `?`).
pub type HcResult = Result<Outcome, Errno>;

/// Everything a hypercall handler may touch: the calling domain (whose base
/// pointer, [`Domain::base`], is the root guest pointers are translated with),
/// machine memory (only through [`crate::paging::guest_mem`] and the domain's
/// own methods), the console, the domain's events and timers, the clock and
/// the work this exit has done.
///
/// Generic over the memory: on the hypervisor it is the direct map, and every
/// frame-table and page-table word a handler touches is an inlined load or
/// store; the host tests pass fake memory.
pub struct Ctx<'a, M: PhysMem> {
    /// The calling domain.
    pub dom: &'a mut Domain,
    /// Machine memory.
    pub mem: &'a mut M,
    /// The hypervisor console guest output goes to.
    pub console: &'a mut dyn Console,
    /// The domain's event channels, timers and clock.
    pub ev: &'a mut EventState,
    /// Reads the TSC: "now" for the timer hypercalls. A function rather than a
    /// value read at every exit, so that only the handlers that need the time
    /// pay for reading it. The exit handler passes the CPU's RDTSC; tests pass
    /// a fake clock.
    pub now: &'a dyn Fn() -> u64,
    /// The work this exit has done so far ([`crate::preempt`]): the exit
    /// handler passes `Budget::new()`; a `multicall` shares it with its calls.
    pub work: Budget,
    /// Every domain's grant state ([`crate::grant::STORE`] on the hypervisor),
    /// locked only by `grant_table_op`.
    pub grants: &'a crate::grant::Store,
    /// The other live domains (`crate::peers`): what a grant or event
    /// operation naming another domain reaches.
    pub peers: &'a mut dyn crate::peers::Peers,
}

impl<M: PhysMem> Ctx<'_, M> {
    /// The TSC now (see [`Self::now`]).
    pub fn tsc(&self) -> u64 {
        (self.now)()
    }

    /// Read `N` bytes at guest-virtual `va` (a supervisor read, checked by
    /// [`guest_mem`]).
    pub fn read<const N: usize>(&self, va: GuestVirt) -> Result<[u8; N], Errno> {
        guest_mem::read_bytes(self.dom, self.mem, va)
    }

    /// Fill `out` from guest-virtual `va`.
    pub fn copy_from(&self, va: GuestVirt, out: &mut [u8]) -> Result<(), Errno> {
        guest_mem::copy_from_guest(self.dom, self.mem, va, out)
    }

    /// Fill `out` from guest-virtual `va`, a range within one page, through
    /// the argument cache (`EventState::arg_cache`): the same answer
    /// or the same error as [`Self::copy_from`], with four entry loads and
    /// compares instead of a walk when the page is the one read last and
    /// its walk's entries still hold what they held. A range that crosses a
    /// page is read by [`Self::copy_from`], the cache left alone.
    pub fn read_arg(&mut self, va: GuestVirt, out: &mut [u8]) -> Result<(), Errno> {
        let end = va.page_offset() + out.len() as u64;
        if out.is_empty() || end > crate::addr::PAGE_SIZE {
            return self.copy_from(va, out);
        }
        let ma = self.ev.arg_cache.translate(self.dom, &*self.mem, va)?;
        self.mem.read(ma, out);
        Ok(())
    }

    /// Write `data` at guest-virtual `va` (all or nothing).
    pub fn copy_to(&mut self, va: GuestVirt, data: &[u8]) -> Result<(), Errno> {
        guest_mem::copy_to_guest(self.dom, self.mem, va, data)
    }
}

/// Handle one hypercall from `ctx.dom`: count it, look it up, run it (also
/// each call of a `multicall`). Anything not in the table is `-ENOSYS`.
#[inline(always)]
pub fn dispatch<M: PhysMem>(ctx: &mut Ctx<'_, M>, args: &HypercallArgs) -> Outcome {
    dispatch_noting_changes(ctx, args).0
}

/// [`dispatch`], and whether the handler may have changed the vCPU state the
/// exit path keeps between exits ([`table::Op::may_change_vcpu_state`]; an
/// unknown hypercall changes nothing): if not, the exit path need not look at
/// the domain's events and base pointer again.
#[inline(always)]
pub fn dispatch_noting_changes<M: PhysMem>(
    ctx: &mut Ctx<'_, M>,
    args: &HypercallArgs,
) -> (Outcome, bool) {
    ctx.dom.count_hypercall(args.nr);
    let (r, changes) = match lookup(args.nr, args.args[0]) {
        Some(row) => (
            row.handler.run(ctx, args),
            row.handler.may_change_vcpu_state(),
        ),
        None => (Err(Errno::ENOSYS), false),
    };
    let out = match r {
        Ok(out) => out,
        Err(e) => Outcome::Return(e.as_return()),
    };
    (out, changes)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_domctl;
#[cfg(test)]
mod tests_events;
#[cfg(test)]
mod tests_fuzz;
#[cfg(test)]
mod tests_grant;
#[cfg(test)]
mod tests_preempt;
#[cfg(test)]
mod tests_vcpu;
#[cfg(test)]
mod tests_vcpus;
#[cfg(test)]
mod tests_xen_docs;
