//! The two services every policy module needs from the machine, as traits, so that
//! policy code is safe and host-testable:
//!
//! - [`PhysMem`]: read and write machine memory (the hypervisor's direct map on
//!   hardware; a map of fake frames in tests);
//! - [`FrameSource`]: allocate and free machine frames.
//!
//! Both are hypervisor-internal: callers pass only frames the hypervisor has
//! established it may touch (its own, or a domain's after an ownership check).

use crate::addr::{MachineAddr, Mfn, PAGE_SIZE};

/// Access to machine memory.
pub trait PhysMem {
    /// Read `out.len()` bytes starting at `at`. The range must not cross a frame boundary.
    fn read(&self, at: MachineAddr, out: &mut [u8]);
    /// Write `data` starting at `at`. The range must not cross a frame boundary.
    fn write(&mut self, at: MachineAddr, data: &[u8]);

    /// Read a little-endian u64 (8-byte aligned).
    fn read_u64(&self, at: MachineAddr) -> u64 {
        let mut b = [0u8; 8];
        self.read(at, &mut b);
        u64::from_le_bytes(b)
    }
    /// Write a little-endian u64 (8-byte aligned).
    fn write_u64(&mut self, at: MachineAddr, v: u64) {
        self.write(at, &v.to_le_bytes());
    }
    /// Fill a frame with zeroes.
    fn zero_frame(&mut self, f: Mfn) {
        let zeros = [0u8; 512];
        let mut off = 0;
        while off < PAGE_SIZE {
            self.write(MachineAddr(f.addr().0 + off), &zeros);
            off += zeros.len() as u64;
        }
    }
}

/// A source of free machine frames.
pub trait FrameSource {
    /// One frame, or `None` when memory is exhausted.
    fn alloc_frame(&mut self) -> Option<Mfn>;
    /// `n` physically contiguous frames; returns the first.
    fn alloc_contiguous(&mut self, n: u64) -> Option<Mfn>;
    /// Return a frame obtained from this source.
    fn free_frame(&mut self, f: Mfn);
    /// How many frames are free.
    fn free_count(&self) -> u64;
}

/// A console the hypervisor prints guest output on.
pub trait Console {
    /// Write bytes, as they are (the caller adds any prefix).
    fn write_bytes(&mut self, bytes: &[u8]);
}

/// Test doubles shared by the host unit tests of every policy module.
#[cfg(any(test, feature = "test-support"))]
pub mod fake {
    extern crate std;
    use super::*;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    /// Machine memory made of frames created on first touch (zero-filled).
    #[derive(Default)]
    pub struct FakeMem {
        /// The frames, by number.
        pub frames: BTreeMap<u64, Vec<u8>>,
    }

    impl PhysMem for FakeMem {
        fn read(&self, at: MachineAddr, out: &mut [u8]) {
            let off = at.page_offset() as usize;
            assert!(
                off + out.len() <= PAGE_SIZE as usize,
                "read crosses a frame"
            );
            match self.frames.get(&at.frame().0) {
                Some(f) => out.copy_from_slice(&f[off..off + out.len()]),
                None => out.fill(0),
            }
        }
        fn write(&mut self, at: MachineAddr, data: &[u8]) {
            let off = at.page_offset() as usize;
            assert!(
                off + data.len() <= PAGE_SIZE as usize,
                "write crosses a frame"
            );
            let f = self
                .frames
                .entry(at.frame().0)
                .or_insert_with(|| std::vec![0; PAGE_SIZE as usize]);
            f[off..off + data.len()].copy_from_slice(data);
        }
    }

    /// Frames handed out from a range, with a record of what is outstanding.
    pub struct FakeFrames {
        next: u64,
        end: u64,
        free: Vec<u64>,
        /// Frames currently allocated.
        pub outstanding: std::collections::BTreeSet<u64>,
    }

    impl FakeFrames {
        /// Frames `first .. first + count`.
        pub fn new(first: u64, count: u64) -> Self {
            FakeFrames {
                next: first,
                end: first + count,
                free: Vec::new(),
                outstanding: Default::default(),
            }
        }
    }

    impl FrameSource for FakeFrames {
        fn alloc_frame(&mut self) -> Option<Mfn> {
            let f = match self.free.pop() {
                Some(f) => f,
                None if self.next < self.end => {
                    self.next += 1;
                    self.next - 1
                }
                None => return None,
            };
            self.outstanding.insert(f);
            Some(Mfn(f))
        }
        fn alloc_contiguous(&mut self, n: u64) -> Option<Mfn> {
            if self.next + n > self.end {
                return None;
            }
            let first = self.next;
            self.next += n;
            self.outstanding.extend(first..first + n);
            Some(Mfn(first))
        }
        fn free_frame(&mut self, f: Mfn) {
            assert!(
                self.outstanding.remove(&f.0),
                "double free of frame {:#x}",
                f.0
            );
            self.free.push(f.0);
        }
        fn free_count(&self) -> u64 {
            self.end - self.next + self.free.len() as u64
        }
    }

    /// A console that records what was written.
    #[derive(Default)]
    pub struct FakeConsole {
        /// Everything written.
        pub out: Vec<u8>,
    }

    impl Console for FakeConsole {
        fn write_bytes(&mut self, bytes: &[u8]) {
            self.out.extend_from_slice(bytes);
        }
    }
}
