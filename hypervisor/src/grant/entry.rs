//! The grant entry's first word and the hypervisor's atomic updates of it.
//!
//! `flags` (16 bits) and `domid` (16 bits) are read and updated together, as
//! one little-endian 32-bit word (Xen's `grant_combo`), so the check "does this
//! entry grant *me* access?" and the setting of `GTF_reading`/`GTF_writing`
//! happen in one compare-and-exchange. The granter may change the word at any
//! time (it is its memory): a changed word makes the exchange fail, and the
//! hypervisor re-checks the new word. A granter that keeps changing it gets
//! [`GrantStatus::GeneralError`] after [`CMPXCHG_TRIES`] attempts, so one
//! operation's work stays bounded.

use super::{GrantStatus, GrantWorld};
use crate::addr::Mfn;
use crate::domain::DomainId;
use keel_abi::grant_table::{entries_per_frame, GrantEntryV1, GrantFlags, GTF_PERMIT_ACCESS};

/// Attempts at the compare-and-exchange before a racing granter is refused.
pub const CMPXCHG_TRIES: u32 = 5;

/// Bytes per entry.
pub const ENTRY_SIZE: u64 = core::mem::size_of::<GrantEntryV1>() as u64;

/// The entry's first word: flags in the low half, domid in the high half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Combo(pub u32);

impl Combo {
    /// The flags.
    pub const fn flags(self) -> GrantFlags {
        GrantFlags::from_bits_retain(self.0 as u16)
    }
    /// The domain granted access.
    pub const fn domid(self) -> u16 {
        (self.0 >> 16) as u16
    }
    /// The same word with `f` added.
    pub const fn with(self, f: GrantFlags) -> Combo {
        Combo(self.0 | f.bits() as u32)
    }
}

/// How a grant is about to be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read only: sets `GTF_reading`.
    Read,
    /// Read and write: sets `GTF_reading | GTF_writing`; refused on a
    /// `GTF_readonly` entry.
    Write,
}

impl Access {
    /// The flags the hypervisor sets while the grant is in this use.
    pub const fn in_use_flags(self) -> GrantFlags {
        match self {
            Access::Read => GrantFlags::READING,
            Access::Write => GrantFlags::READING.union(GrantFlags::WRITING),
        }
    }
}

/// Whether `combo` grants `grantee` this access; the word to write if so. Pure:
/// the rule of the exchange.
pub fn permits(combo: Combo, grantee: DomainId, access: Access) -> Result<Combo, GrantStatus> {
    let f = combo.flags();
    if f.entry_type() != GTF_PERMIT_ACCESS || combo.domid() != grantee.0 {
        return Err(GrantStatus::GeneralError);
    }
    if access == Access::Write && f.contains(GrantFlags::READONLY) {
        return Err(GrantStatus::GeneralError);
    }
    Ok(combo.with(access.in_use_flags()))
}

/// Where entry `gref` lives among the table `frames`: the frame and the byte
/// offset. `None` beyond the table.
pub fn locate(frames: &[Mfn], gref: u32) -> Option<(Mfn, u64)> {
    let per = entries_per_frame();
    let frame = frames.get((gref / per) as usize).copied()?;
    Some((frame, u64::from(gref % per) * ENTRY_SIZE))
}

/// Read the whole entry.
pub fn read(world: &impl GrantWorld, at: (Mfn, u64)) -> GrantEntryV1 {
    let raw = world.read_u64(at.0, at.1);
    GrantEntryV1 {
        flags: raw as u16,
        domid: (raw >> 16) as u16,
        frame: (raw >> 32) as u32,
    }
}

/// Check the entry at `at` for `grantee` and `access` and set its in-use flags,
/// atomically (bounded retries). Returns the entry as it was when the exchange
/// succeeded.
pub fn acquire(
    world: &mut impl GrantWorld,
    at: (Mfn, u64),
    grantee: DomainId,
    access: Access,
) -> Result<GrantEntryV1, GrantStatus> {
    let mut seen = Combo(world.read_u64(at.0, at.1) as u32);
    for _ in 0..CMPXCHG_TRIES {
        let new = permits(seen, grantee, access)?;
        let prev = Combo(world.cmpxchg_u32(at.0, at.1, seen.0, new.0));
        if prev == seen {
            let frame = (world.read_u64(at.0, at.1) >> 32) as u32;
            return Ok(GrantEntryV1 {
                flags: seen.0 as u16,
                domid: seen.domid(),
                frame,
            });
        }
        seen = prev;
    }
    Err(GrantStatus::GeneralError)
}

/// Clear in-use flags (when the last use of that kind ends).
pub fn release(world: &mut impl GrantWorld, at: (Mfn, u64), flags: GrantFlags) {
    if !flags.is_empty() {
        world.clear_bits_u16(at.0, at.1, flags.bits());
    }
}
