//! The two services every policy module needs from the machine, as traits, so that
//! policy code is safe and host-testable:
//!
//! - [`PhysMem`]: read and write machine memory (the hypervisor's direct map on
//!   hardware; a map of fake frames in tests);
//! - [`FrameSource`]: allocate and free machine frames.
//!
//! Both are hypervisor-internal: callers pass only frames the hypervisor has
//! established it may touch (its own, or a domain's after an ownership check).

pub mod frames;

use crate::addr::{MachineAddr, Mfn, PAGE_SIZE};

/// Access to machine memory.
pub trait PhysMem {
    /// Read `out.len()` bytes starting at `at`. The range must not cross a frame boundary.
    fn read(&self, at: MachineAddr, out: &mut [u8]);
    /// Write `data` starting at `at`. The range must not cross a frame boundary.
    fn write(&mut self, at: MachineAddr, data: &[u8]);

    // The word accessors below are what the hot paths use (frame-table words,
    // page-table entries, the dense M2P index). Their defaults go through the
    // byte accessors; an implementation overrides them with single loads and
    // stores for naturally aligned words (which cannot cross a frame). At any
    // address they must return and store exactly what the byte accessors would:
    // an unaligned word within a frame is still a valid access (slower).

    /// Read a little-endian u32 (meant for 4-byte aligned addresses).
    fn read_u32(&self, at: MachineAddr) -> u32 {
        let mut b = [0u8; 4];
        self.read(at, &mut b);
        u32::from_le_bytes(b)
    }
    /// Read a little-endian u64 (meant for 8-byte aligned addresses).
    fn read_u64(&self, at: MachineAddr) -> u64 {
        let mut b = [0u8; 8];
        self.read(at, &mut b);
        u64::from_le_bytes(b)
    }
    /// Write a little-endian u32 (meant for 4-byte aligned addresses).
    fn write_u32(&mut self, at: MachineAddr, v: u32) {
        self.write(at, &v.to_le_bytes());
    }
    /// Write a little-endian u64 (meant for 8-byte aligned addresses).
    fn write_u64(&mut self, at: MachineAddr, v: u64) {
        self.write(at, &v.to_le_bytes());
    }
    /// Compare the u32 at `at` (4-byte aligned) with `old` and, if equal,
    /// store `new`, as one atomic step for every CPU and for the guest that
    /// shares the word (a grant entry's first word); returns the value found.
    /// The default is a read and a write, right only where nothing else can
    /// touch the word meanwhile (the host fakes); the direct map overrides it
    /// with a locked `CMPXCHG`.
    fn cmpxchg_u32(&mut self, at: MachineAddr, old: u32, new: u32) -> u32 {
        let found = self.read_u32(at);
        if found == old {
            self.write_u32(at, new);
        }
        found
    }
    /// Read the u64 at `at` (8-byte aligned) as one atomic load: the first
    /// guess of a [`Self::cmpxchg_u64`] loop, on a word that other CPUs
    /// change meanwhile. The default is [`Self::read_u64`]; the direct map's
    /// is the same single load, made an atomic one so that the race with
    /// another CPU's exchange is defined.
    fn load_u64(&self, at: MachineAddr) -> u64 {
        self.read_u64(at)
    }
    /// Compare the u64 at `at` (8-byte aligned) with `old` and, if equal,
    /// store `new`, as one atomic step for every CPU; returns the value found
    /// (the store happened if it equals `old`). The frame table's type words
    /// and reference counts change only through it. The default is a read and
    /// a write, right only for memory no other CPU can reach meanwhile (the
    /// host fakes, which `&mut self` keeps to one thread); the direct map
    /// overrides it with a locked `CMPXCHG`.
    fn cmpxchg_u64(&mut self, at: MachineAddr, old: u64, new: u64) -> u64 {
        let found = self.read_u64(at);
        if found == old {
            self.write_u64(at, new);
        }
        found
    }
    /// Clear `bits` in the u32 at `at` (4-byte aligned) as one atomic step
    /// (the direct map: a locked `AND`); returns the value found.
    fn fetch_and_u32(&mut self, at: MachineAddr, bits: u32) -> u32 {
        let found = self.read_u32(at);
        self.write_u32(at, found & bits);
        found
    }
    /// Set bit `bit` (below 64) of the u64 at `at` (8-byte aligned) as one
    /// atomic step for every CPU and for the guest that shares the word (an
    /// event channel's pending or mask word, a vCPU's selector, which the
    /// guest's other vCPUs change with locked instructions meanwhile); whether
    /// it was set. Xen's `guest_test_and_set_bit`. The default is a read and
    /// a write (the host fakes); the direct map's is a locked `BTS`.
    fn test_and_set_bit_u64(&mut self, at: MachineAddr, bit: u32) -> bool {
        let m = 1u64 << (bit % 64);
        let found = self.read_u64(at);
        if found & m == 0 {
            self.write_u64(at, found | m);
        }
        found & m != 0
    }
    /// [`Self::test_and_set_bit_u64`] clearing the bit (a locked `BTR`).
    fn test_and_clear_bit_u64(&mut self, at: MachineAddr, bit: u32) -> bool {
        let m = 1u64 << (bit % 64);
        let found = self.read_u64(at);
        if found & m != 0 {
            self.write_u64(at, found & !m);
        }
        found & m != 0
    }
    /// Hand `f` the `len` bytes at `at` (the range must not cross a frame
    /// boundary), in one or more consecutive pieces. The default copies through
    /// a small buffer; the direct map lends the memory itself (no copy). For
    /// data read once and consumed as it is read (console output).
    fn read_with(&self, at: MachineAddr, len: usize, f: &mut dyn FnMut(&[u8])) {
        let mut chunk = [0u8; 256];
        let mut done = 0usize;
        while done < len {
            let n = chunk.len().min(len - done);
            if let Some(c) = chunk.get_mut(..n) {
                self.read(MachineAddr::new(at.get() + done as u64), c);
                f(c);
            }
            done += n;
        }
    }
    /// Copy `len` bytes from `src` to `dst` (each range inside one frame; the
    /// two may overlap, as a copy within one frame can: the result is as if
    /// through a buffer). The default copies through a small buffer; the
    /// direct map moves the bytes directly, once.
    fn copy(&mut self, src: MachineAddr, dst: MachineAddr, len: usize) {
        let mut buf = [0u8; 256];
        if src.get() < dst.get() && dst.get() < src.get() + len as u64 {
            // Overlapping, the destination higher: from the end down.
            let mut left = len;
            while left > 0 {
                let n = buf.len().min(left);
                left -= n;
                if let Some(b) = buf.get_mut(..n) {
                    self.read(MachineAddr::new(src.get() + left as u64), b);
                    self.write(MachineAddr::new(dst.get() + left as u64), b);
                }
            }
            return;
        }
        let mut done = 0usize;
        while done < len {
            let n = buf.len().min(len - done);
            if let Some(b) = buf.get_mut(..n) {
                self.read(MachineAddr::new(src.get() + done as u64), b);
                self.write(MachineAddr::new(dst.get() + done as u64), b);
            }
            done += n;
        }
    }
    /// Fill a frame with zeroes.
    fn zero_frame(&mut self, f: Mfn) {
        let zeros = [0u8; 512];
        let mut off = 0;
        while off < PAGE_SIZE {
            self.write(MachineAddr::new(f.addr().get() + off), &zeros);
            off += zeros.len() as u64;
        }
    }
}

/// Whether a word of `size` bytes (a power of two, at most 8) at machine address
/// `at` may be accessed with one load or store through a map of `[0, top)`: it is
/// naturally aligned (so it lies within one frame), not at address 0 (a null
/// pointer), and below `top`, which must be a multiple of `size` (so the whole
/// word is below it). The direct map's word accessors take their fast path on
/// this test and fall back to the checked byte accessors otherwise.
#[inline]
pub const fn word_in_map(at: u64, size: u64, top: u64) -> bool {
    at & (size - 1) == 0 && at != 0 && at < top
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

/// A frame source shared by several CPUs: each call takes its lock.
pub struct SharedFrames<F: 'static>(pub &'static spin::Mutex<F>);

impl<F: FrameSource> FrameSource for SharedFrames<F> {
    fn alloc_frame(&mut self) -> Option<Mfn> {
        self.0.lock().alloc_frame()
    }
    fn alloc_contiguous(&mut self, n: u64) -> Option<Mfn> {
        self.0.lock().alloc_contiguous(n)
    }
    fn free_frame(&mut self, f: Mfn) {
        self.0.lock().free_frame(f);
    }
    fn free_count(&self) -> u64 {
        self.0.lock().free_count()
    }
}

/// A console the hypervisor prints guest output on.
pub trait Console {
    /// Write bytes, as they are (the caller adds any prefix and filters the
    /// text); one call is one record (a whole line where the caller has one),
    /// kept together and in order with every other record.
    fn write_bytes(&mut self, bytes: &[u8]);
    /// Write one record made of several pieces (prefix, text, newline), kept
    /// together.
    fn write_parts(&mut self, parts: &[&[u8]]) {
        for p in parts {
            self.write_bytes(p);
        }
    }
    /// Move buffered output towards the device without waiting, if that will be
    /// done before the TSC reaches `before` (the guest's next timer deadline,
    /// `u64::MAX` for none; the exit path calls this after exits that
    /// [`Self::has_work`]). Nothing to do for an unbuffered console.
    #[inline]
    fn pump(&mut self, before: u64) {
        let _ = before;
    }
    /// Whether `pump` would move output now (the exit path's fast route, which
    /// does not pump, is taken only when it would not). False for an
    /// unbuffered console.
    #[inline]
    fn has_work(&self) -> bool {
        false
    }
    /// Move buffered output to the device while that ends before the TSC
    /// reaches `deadline` (the CPU would idle until then otherwise).
    fn drain_until(&mut self, deadline: u64) {
        let _ = deadline;
    }
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
            match self.frames.get(&at.frame().get()) {
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
                .entry(at.frame().get())
                .or_insert_with(|| std::vec![0; PAGE_SIZE as usize]);
            f[off..off + data.len()].copy_from_slice(data);
        }

        // Word accessors of their own (not the byte-based defaults), shaped like
        // the direct map's: aligned words straight from the frame, anything else
        // through the byte accessors. The tests check that both agree.
        fn read_u32(&self, at: MachineAddr) -> u32 {
            match self.word(at, 4) {
                Some(w) => u32::from_le_bytes(w.try_into().unwrap_or([0; 4])),
                None => {
                    let mut b = [0u8; 4];
                    self.read(at, &mut b);
                    u32::from_le_bytes(b)
                }
            }
        }
        fn read_u64(&self, at: MachineAddr) -> u64 {
            match self.word(at, 8) {
                Some(w) => u64::from_le_bytes(w.try_into().unwrap_or([0; 8])),
                None => {
                    let mut b = [0u8; 8];
                    self.read(at, &mut b);
                    u64::from_le_bytes(b)
                }
            }
        }
        fn write_u32(&mut self, at: MachineAddr, v: u32) {
            match self.word_mut(at, 4) {
                Some(w) => w.copy_from_slice(&v.to_le_bytes()),
                None => self.write(at, &v.to_le_bytes()),
            }
        }
        fn write_u64(&mut self, at: MachineAddr, v: u64) {
            match self.word_mut(at, 8) {
                Some(w) => w.copy_from_slice(&v.to_le_bytes()),
                None => self.write(at, &v.to_le_bytes()),
            }
        }
    }

    impl FakeMem {
        /// The bytes of an aligned word of an existing frame (`None`: take the
        /// byte path).
        fn word(&self, at: MachineAddr, size: u64) -> Option<&[u8]> {
            if !word_in_map(at.get(), size, !7u64) {
                return None;
            }
            let off = at.page_offset() as usize;
            self.frames
                .get(&at.frame().get())?
                .get(off..off + size as usize)
        }
        fn word_mut(&mut self, at: MachineAddr, size: u64) -> Option<&mut [u8]> {
            if !word_in_map(at.get(), size, !7u64) {
                return None;
            }
            let off = at.page_offset() as usize;
            self.frames
                .get_mut(&at.frame().get())?
                .get_mut(off..off + size as usize)
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
            Some(Mfn::new(f))
        }
        fn alloc_contiguous(&mut self, n: u64) -> Option<Mfn> {
            if self.next + n > self.end {
                return None;
            }
            let first = self.next;
            self.next += n;
            self.outstanding.extend(first..first + n);
            Some(Mfn::new(first))
        }
        fn free_frame(&mut self, f: Mfn) {
            assert!(
                self.outstanding.remove(&f.get()),
                "double free of frame {:#x}",
                f.get()
            );
            self.free.push(f.get());
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

#[cfg(test)]
mod tests {
    extern crate std;
    use super::fake::FakeMem;
    use super::*;
    use proptest::prelude::*;

    /// Memory with only the byte accessors: every word accessor takes the
    /// trait's defaults.
    #[derive(Default)]
    struct BytesOnly(FakeMem);
    impl PhysMem for BytesOnly {
        fn read(&self, at: MachineAddr, out: &mut [u8]) {
            self.0.read(at, out)
        }
        fn write(&mut self, at: MachineAddr, data: &[u8]) {
            self.0.write(at, data)
        }
    }

    #[test]
    fn word_in_map_edges() {
        let top = 4 << 30;
        assert!(word_in_map(8, 8, top));
        assert!(word_in_map(top - 8, 8, top));
        assert!(word_in_map(top - 4, 4, top));
        assert!(!word_in_map(top - 4, 8, top), "misaligned");
        assert!(!word_in_map(top, 8, top), "at the top");
        assert!(!word_in_map(0, 8, top), "null");
        assert!(!word_in_map(0, 4, top), "null");
        assert!(!word_in_map(0x1004, 8, top), "misaligned");
        assert!(!word_in_map(0x1ffc + 2, 4, top), "misaligned");
        assert!(!word_in_map(!7u64, 8, top));
        assert!(!word_in_map(8, 8, 0), "empty map");
        // An aligned word never crosses a frame.
        for at in (0..0x3000u64).step_by(4) {
            if word_in_map(at, 4, top) {
                assert_eq!(at / 4096, (at + 3) / 4096);
            }
            if word_in_map(at, 8, top) {
                assert_eq!(at / 4096, (at + 7) / 4096);
            }
        }
    }

    proptest! {
        /// `copy` moves exactly the bytes a copy through a whole-range buffer
        /// would, whether the ranges are in two frames or overlap in one
        /// (either way round), and touches nothing else.
        #[test]
        fn copy_is_a_memmove(
            src_off in 0u64..4096,
            dst_off in 0u64..4096,
            len in 0usize..4096,
            same_frame in any::<bool>(),
        ) {
            let len = len.min((4096 - src_off.max(dst_off)) as usize);
            let mut m = BytesOnly::default();
            for f in 1..3u64 {
                let bytes: Vec<u8> = (0..4096u64).map(|i| (i * 7 + f * 13) as u8).collect();
                m.write(MachineAddr::new(f * 4096), &bytes);
            }
            let dst_frame = if same_frame { 1 } else { 2 };
            let (src, dst) = (MachineAddr::new(4096 + src_off), MachineAddr::new(dst_frame * 4096 + dst_off));
            let mut want = [vec![0u8; 4096], vec![0u8; 4096]];
            m.read(MachineAddr::new(4096), &mut want[0]);
            m.read(MachineAddr::new(2 * 4096), &mut want[1]);
            let moved = want[0][src_off as usize..][..len].to_vec();
            want[dst_frame as usize - 1][dst_off as usize..][..len].copy_from_slice(&moved);
            m.copy(src, dst, len);
            let mut got = vec![0u8; 4096];
            for f in 1..3u64 {
                m.read(MachineAddr::new(f * 4096), &mut got);
                prop_assert!(got == want[f as usize - 1], "frame {}", f);
            }
        }

        /// The fake's own word accessors (aligned fast path, unaligned byte
        /// path) and the byte-based defaults read and write the same bytes, at
        /// any address that stays within one frame.
        #[test]
        fn word_accessors_agree_with_the_byte_ones(
            fill in proptest::collection::vec(any::<u8>(), 64),
            frame in 1u64..4,
            off in 0u64..(4096 - 8),
            near_end in any::<bool>(),
            v in any::<u64>(),
        ) {
            let off = if near_end { 4096 - 8 - off % 16 } else { off };
            let at = MachineAddr::new(frame * 4096 + off);
            let mut fast = FakeMem::default();
            let mut slow = BytesOnly::default();
            for (i, c) in fill.chunks(8).enumerate() {
                let base = MachineAddr::new(frame * 4096 + (off & !63) + 8 * i as u64);
                if base.page_offset() + 8 <= 4096 {
                    fast.write(base, c);
                    slow.write(base, c);
                }
            }
            prop_assert_eq!(fast.read_u64(at), slow.read_u64(at));
            prop_assert_eq!(fast.read_u32(at), slow.read_u32(at));
            // A frame never written reads as zeroes either way.
            let untouched = MachineAddr::new(7 * 4096 + off);
            prop_assert_eq!(fast.read_u64(untouched), 0);
            prop_assert_eq!(slow.read_u64(untouched), 0);
            fast.write_u64(at, v);
            slow.write_u64(at, v);
            let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
            let around = MachineAddr::new(at.get() & !7);
            let n = (4096 - around.page_offset()).min(16) as usize;
            fast.read(around, &mut a[..n]);
            slow.read(around, &mut b[..n]);
            prop_assert_eq!(a, b);
            fast.write_u32(MachineAddr::new(at.get() + 4), v as u32);
            slow.write_u32(MachineAddr::new(at.get() + 4), v as u32);
            prop_assert_eq!(fast.read_u64(around), slow.read_u64(around));
            prop_assert_eq!(fast.read_u64(at), slow.read_u64(at));
            prop_assert_eq!(fast.read_u32(MachineAddr::new(at.get() + 4)), v as u32);
        }
    }
}
