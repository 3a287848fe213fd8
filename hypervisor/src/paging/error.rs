//! Why an MMU operation was refused.

use crate::addr::Mfn;
use crate::paging::entry::{Level, Pte};
use crate::paging::frame_table::PageType;

/// Why an MMU operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmError {
    /// The frame is not the domain's.
    NotOwned(Mfn),
    /// The frame is in use as another type.
    TypeConflict {
        /// The frame.
        mfn: Mfn,
        /// Its type.
        have: PageType,
        /// The type asked for.
        want: PageType,
    },
    /// The frame is being validated or devalidated: higher up the same chain
    /// (a table that references itself at its own level: a linear mapping),
    /// or by another CPU, which alone may finish it.
    Recursive(Mfn),
    /// An entry has a bit set that Keel does not accept at that level.
    Reserved {
        /// The level of the table the entry is in.
        level: Level,
        /// The entry.
        entry: Pte,
    },
    /// PS in an L2 or L3 entry.
    Superpage {
        /// The level of the table the entry is in.
        level: Level,
    },
    /// A count would overflow.
    Overflow(Mfn),
    /// The frame is already pinned.
    AlreadyPinned(Mfn),
    /// The frame is not pinned.
    NotPinned(Mfn),
    /// The frame is not a pinned, validated L4 (NEW_BASEPTR, MOV to CR3).
    NotPinnedL4(Mfn),
    /// The address of an entry is not 8-byte aligned.
    Misaligned,
}

impl core::fmt::Display for MmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MmError::NotOwned(m) => write!(f, "frame {:#x} is not the domain's", m.get()),
            MmError::TypeConflict { mfn, have, want } => write!(
                f,
                "frame {:#x} is in use as {have:?}, cannot become {want:?}",
                mfn.get()
            ),
            MmError::Recursive(m) => write!(
                f,
                "frame {:#x} references itself at its own level (linear page tables are refused)",
                m.get()
            ),
            MmError::Reserved { level, entry } => {
                write!(
                    f,
                    "L{} entry {:#x} has a refused bit set",
                    level.number(),
                    entry.raw()
                )
            }
            MmError::Superpage { level } => {
                write!(f, "PS in an L{} entry: no superpages", level.number())
            }
            MmError::Overflow(m) => write!(f, "count of frame {:#x} would overflow", m.get()),
            MmError::AlreadyPinned(m) => write!(f, "frame {:#x} is already pinned", m.get()),
            MmError::NotPinned(m) => write!(f, "frame {:#x} is not pinned", m.get()),
            MmError::NotPinnedL4(m) => {
                write!(f, "frame {:#x} is not a pinned, validated L4", m.get())
            }
            MmError::Misaligned => write!(f, "entry address not 8-byte aligned"),
        }
    }
}
