//! The TLB flush an MMU operation leaves owed to the guest.

use crate::addr::GuestVirt;
use crate::paging::entry::{Pte, PteFlags};

/// What must happen to the guest's TLB before it runs again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Flush {
    /// Nothing.
    #[default]
    None,
    /// One page's translation (INVLPG of this guest-virtual address; a
    /// non-canonical one is flushed as `All`).
    Page(GuestVirt),
    /// Everything (the whole VPID, or a CR3 reload).
    All,
}

impl Flush {
    /// Both flushes (anything with `All` is `All`; two different pages are `All`).
    pub const fn merge(self, other: Flush) -> Flush {
        match (self, other) {
            (Flush::None, x) | (x, Flush::None) => x,
            (Flush::Page(a), Flush::Page(b)) if a.get() == b.get() => Flush::Page(a),
            _ => Flush::All,
        }
    }
}

/// Whether replacing `old` by `new` needs a TLB flush: whenever a present entry
/// changes in anything but its accessed/dirty bits (a permission or a mapping
/// removed, or a frame or memory type changed). Flushing on every such change
/// (not only on removals) also spares the guest spurious faults on stale
/// read-only translations.
pub const fn flush_for(old: Pte, new: Pte) -> Flush {
    let ad = PteFlags::ACCESSED.union(PteFlags::DIRTY);
    if old.is_present() && old.without(ad).raw() != new.without(ad).raw() {
        Flush::All
    } else {
        Flush::None
    }
}
