//! `console_io(CONSOLEIO_write, count, buf)`.

use super::{Ctx, HcResult, HypercallArgs, Outcome};
use crate::addr::{GuestVirt, MachineAddr};
use crate::mem::PhysMem;
use crate::paging::guest_mem::{self, Access};
use crate::paging::walk::bytes_to_page_end;
use keel_abi::console::CONSOLEIO_WRITE_MAX;
use keel_abi::Errno;

/// Translate the guest's buffer (at most two pages: `count <= 4096`), then
/// feed its bytes, read in place, to the domain's line buffer. Every page is
/// translated before the first byte is printed, so a bad buffer prints nothing;
/// the text is printed through the console ring, which never waits for the
/// serial line unless the ring is full (`crate::console`).
#[inline(never)]
pub(super) fn write<M: PhysMem>(ctx: &mut Ctx<'_, M>, a: &HypercallArgs) -> HcResult {
    let (count, buf) = (a.args[1], GuestVirt::new(a.args[2]));
    if count > CONSOLEIO_WRITE_MAX {
        return Err(Errno::EINVAL);
    }
    // count <= 4096, so this cannot truncate.
    let count = count as usize;
    if count == 0 {
        return Ok(Outcome::Return(0));
    }
    if buf.checked_add(count as u64 - 1).is_none() {
        return Err(Errno::EFAULT);
    }
    let (dom, mem) = (&mut *ctx.dom, &*ctx.mem);
    // The pieces: the rest of the first page, then what is left (at most a
    // page, since count <= 4096).
    let first = (bytes_to_page_end(buf) as usize).min(count);
    let second_va = GuestVirt::new(buf.get().wrapping_add(first as u64));
    let pieces = [(buf, first), (second_va, count - first)];
    let mut machine = [MachineAddr::new(0); 2];
    // The first page through the domain's console cache (a guest prints from
    // the same buffer, call after call), the rest with a walk.
    let mut cache = dom.console_cache;
    let first_ma = cache.translate(dom, mem, buf);
    dom.console_cache = cache;
    machine[0] = first_ma?;
    if pieces[1].1 > 0 {
        machine[1] = guest_mem::translate(dom, mem, second_va, Access::Read)?;
    }
    let console = &mut *ctx.console;
    for ((_, len), ma) in pieces.iter().zip(machine) {
        if *len > 0 {
            mem.read_with(ma, *len, &mut |bytes| dom.console_write(console, bytes));
        }
    }
    Ok(Outcome::Return(0))
}
