//! # Slot tables that start empty at no cost in the image
//!
//! A `static` `[Option<T>; N]` starts as `N` copies of `None`, and `None` is
//! all zeroes only when `T`'s niche happens to make it so; otherwise every byte
//! of the table is in the hypervisor image's `.data` (the domain and vCPU
//! tables are hundreds of KB). [`EmptySlots`] keeps the same table as zeroed
//! bytes (`.bss`, cleared by the loader) and writes `None` into each slot, in
//! place (no table-sized temporary on the stack), when it is taken.
//! `slots_in_frames` (bare metal only) does the same in frames from the allocator, for a
//! table that should cost the loader nothing either.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering::AcqRel};

/// `N` optional `T`s, handed out once as `&'static mut [Option<T>; N]` with
/// every slot `None`.
pub struct EmptySlots<T, const N: usize> {
    taken: AtomicBool,
    slots: UnsafeCell<MaybeUninit<[Option<T>; N]>>,
}

// SAFETY: the table is reached only through `take`, which hands out the one
// `&mut` once (the flag is swapped atomically); sending it to another CPU
// moves `T`s, hence `T: Send`.
unsafe impl<T: Send, const N: usize> Sync for EmptySlots<T, N> {}

impl<T, const N: usize> EmptySlots<T, N> {
    /// Not taken yet; all zero bytes.
    pub const fn new() -> Self {
        EmptySlots {
            taken: AtomicBool::new(false),
            slots: UnsafeCell::new(MaybeUninit::zeroed()),
        }
    }

    /// The table with every slot `None`, the first time; `None` after that.
    // The `&mut` from `&self` is sound for the reason `MutexGuard::leak`'s is:
    // it is handed out once, and the table is reached no other way.
    #[allow(clippy::mut_from_ref)]
    pub fn take(&'static self) -> Option<&'static mut [Option<T>; N]> {
        if self.taken.swap(true, AcqRel) {
            return None;
        }
        // `MaybeUninit<[Option<T>; N]>` has the layout of `[Option<T>; N]`.
        let first = self.slots.get().cast::<Option<T>>();
        for i in 0..N {
            // SAFETY: `i < N` is inside the table, which nothing else
            // references (the flag was clear); `write` drops nothing.
            unsafe { first.add(i).write(None) };
        }
        // SAFETY: every slot is now an initialised `Option<T>`; the flag makes
        // this the only reference ever handed out.
        Some(unsafe { &mut *self.slots.get().cast::<[Option<T>; N]>() })
    }
}

/// `N` optional `T`s, every slot `None`, in machine frames taken from
/// `frames` for the rest of the run (reached through the direct map); `None`
/// when no run of that many frames is free.
///
/// For the tables too large to keep in the image even as `.bss`: the boot
/// loader zeroes `.bss` byte by byte, and under Bochs GRUB's loop over the
/// vCPU tables (8 CPUs' worth, 3.8 MiB) was a fifth of every test's boot.
/// Here only the slots a CPU that runs domains uses are written, once.
#[cfg(target_os = "none")]
pub fn slots_in_frames<T, const N: usize>(
    frames: &mut impl crate::mem::FrameSource,
) -> Option<&'static mut [Option<T>; N]> {
    const {
        assert!(core::mem::align_of::<[Option<T>; N]>() <= crate::addr::PAGE_SIZE as usize);
    }
    let bytes = core::mem::size_of::<[Option<T>; N]>();
    let first = frames.alloc_contiguous(bytes.div_ceil(crate::addr::PAGE_SIZE as usize) as u64)?;
    let table = super::mem::direct_ptr(first.addr().get(), bytes).cast::<Option<T>>();
    for i in 0..N {
        // SAFETY: the frames were just allocated (no one else reaches them)
        // and the direct map maps all `bytes` (checked by `direct_ptr`); a
        // frame is aligned for `T` (checked above); `write` drops nothing.
        unsafe { table.add(i).write(None) };
    }
    // SAFETY: every slot is initialised; the frames are never freed, and
    // this is the only reference to them.
    Some(unsafe { &mut *table.cast::<[Option<T>; N]>() })
}

impl<T, const N: usize> Default for EmptySlots<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::EmptySlots;

    fn leaked<T, const N: usize>() -> &'static EmptySlots<T, N> {
        Box::leak(Box::new(EmptySlots::new()))
    }

    #[test]
    fn taken_once_all_none() {
        // `Option<bool>`'s `None` is 2, not the zero the table starts as.
        let s = leaked::<bool, 5>();
        let t = s.take().expect("first take");
        assert_eq!(*t, [None; 5]);
        t[3] = Some(true);
        assert_eq!(t[3], Some(true));
        assert!(s.take().is_none());
    }

    #[test]
    fn large_slots() {
        let s = leaked::<([u64; 64], bool), 3>();
        let t = s.take().expect("first take");
        assert!(t.iter().all(Option::is_none));
        t[1] = Some(([7; 64], false));
        assert!(t[1].is_some() && t[0].is_none() && t[2].is_none());
    }
}
