//! The `shared_info` page in machine memory: [`EventBits`] for the event-channel
//! state machine, and the pvclock / wall-clock records with Xen's version
//! protocol.
//!
//! The page is one of the domain's own frames (see `docs/abi/time.md`). Every
//! access goes through [`PhysMem`] at an offset inside the page taken from
//! `keel_abi::time::offsets`, so nothing here can reach outside that frame; the
//! caller checks, before making a [`SharedPage`], that the frame is still the
//! domain's and still `Writable` (never a page table).
//!
//! The event bits (pending and mask words, each vCPU's selector) change by
//! one atomic bit operation each ([`PhysMem::test_and_set_bit_u64`]): the
//! guest's vCPUs change the same words with locked instructions, and with a
//! domain's vCPUs on several CPUs one may run while the hypervisor raises an
//! event for it on another.

use super::{EventBits, BITS_PER_WORD};
use crate::addr::{MachineAddr, Mfn};
use crate::domain::{Domain, FrameKind};
use crate::mem::PhysMem;
use keel_abi::event::Pod;
use keel_abi::time::{offsets, VcpuInfo, VcpuTimeInfo};

/// Bytes of a `vcpu_info` record.
pub const VCPU_INFO_SIZE: usize = core::mem::size_of::<VcpuInfo>();

/// Where the opened vCPU's `vcpu_info` record is, as a type: a
/// [`SharedPage`] is made for one or the other, so the code for vCPU 0's
/// record that never moved is the code for a fixed offset in the page, with
/// nothing to test or to compute on each access (a domain that does not use
/// ABI 1.2 pays nothing for a record that could move, or for other vCPUs).
pub trait VcpuInfoAt: Copy {
    /// The record's machine address, for the page at `base`.
    fn at(self, base: MachineAddr) -> MachineAddr;
    /// The vCPU whose record it is (the opened vCPU): a constant for
    /// [`InShared`], so that an event for vCPU 0 there is told apart from one
    /// for another vCPU at compile time ([`super::set_pending_vcpu0`]).
    fn vcpu(self) -> u32;
}

/// Entry 0 of `shared_info` (where every domain's vCPU 0 record starts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InShared;

impl VcpuInfoAt for InShared {
    fn at(self, base: MachineAddr) -> MachineAddr {
        MachineAddr::new(base.get() + offsets::vcpu_info(0) as u64)
    }
    fn vcpu(self) -> u32 {
        0
    }
}

/// Anywhere else: another vCPU's entry of `shared_info`, or where the guest
/// placed the record (`VCPUOP_register_vcpu_info`): 64 bytes inside one of
/// its frames, the place and the frame checked by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    /// The record's machine address.
    pub at: MachineAddr,
    /// Whose record it is.
    pub vcpu: u32,
}

impl VcpuInfoAt for Placed {
    fn at(self, _base: MachineAddr) -> MachineAddr {
        self.at
    }
    fn vcpu(self) -> u32 {
        self.vcpu
    }
}

/// A domain's `shared_info` page, opened for one of its vCPUs (the running
/// one: [`EventBits`]' flags without a vCPU are its) with that vCPU's
/// `vcpu_info`: entry 0 of the page for vCPU 0 ([`InShared`]), or elsewhere
/// ([`Placed`]). An event for another vCPU reaches that vCPU's record, found
/// through the domain's vCPU table ([`Self::for_domain`]) or, without one,
/// its entry of the page.
pub struct SharedPage<'a, M: PhysMem + ?Sized, V: VcpuInfoAt = InShared> {
    mem: &'a mut M,
    base: MachineAddr,
    /// The opened vCPU and its `vcpu_info` record.
    vi: V,
    /// The domain, to find another vCPU's record where it placed it (and to
    /// check that frame); without it, every other vCPU's is its entry of the
    /// page.
    dom: Option<&'a Domain>,
}

impl<'a, M: PhysMem + ?Sized> SharedPage<'a, M> {
    /// The page at frame `mfn`, opened for vCPU 0 with its `vcpu_info` in it.
    #[inline(always)]
    pub fn new(mem: &'a mut M, mfn: Mfn) -> Self {
        SharedPage {
            mem,
            base: mfn.addr(),
            vi: InShared,
            dom: None,
        }
    }

    /// [`Self::new`] for domain `dom` (another vCPU's record is found
    /// through its vCPU table).
    #[inline(always)]
    pub fn of_domain(mem: &'a mut M, mfn: Mfn, dom: &'a Domain) -> Self {
        SharedPage {
            mem,
            base: mfn.addr(),
            vi: InShared,
            dom: Some(dom),
        }
    }
}

impl<'a, M: PhysMem + ?Sized> SharedPage<'a, M, Placed> {
    /// The page at frame `mfn`, opened for vCPU 0 with its `vcpu_info` at
    /// `vi` (64 bytes inside one frame: the caller checked the place and the
    /// frame).
    pub fn with_vcpu_info(mem: &'a mut M, mfn: Mfn, vi: MachineAddr) -> Self {
        SharedPage {
            mem,
            base: mfn.addr(),
            vi: Placed { at: vi, vcpu: 0 },
            dom: None,
        }
    }

    /// Domain `dom`'s page at frame `mfn`, opened for vCPU `vcpu` whose
    /// record is at `vi` (checked by the caller); the other vCPUs' records
    /// are found through `dom`'s vCPU table.
    pub fn for_domain(
        mem: &'a mut M,
        mfn: Mfn,
        dom: Option<&'a Domain>,
        vcpu: u32,
        vi: MachineAddr,
    ) -> Self {
        SharedPage {
            mem,
            base: mfn.addr(),
            vi: Placed { at: vi, vcpu },
            dom,
        }
    }
}

impl<'a, M: PhysMem + ?Sized, V: VcpuInfoAt> SharedPage<'a, M, V> {
    /// The vCPU the page was opened for (0, a constant, for [`InShared`]).
    #[inline(always)]
    pub fn vcpu(&self) -> u32 {
        self.vi.vcpu()
    }

    /// Where vCPU `v`'s `vcpu_info` is: the opened vCPU's as given; another's
    /// where its domain placed it if that frame is still an ordinary writable
    /// frame of the domain (else `None`: nothing is written there), or its
    /// entry of the page.
    #[inline(always)]
    fn vi_of(&self, v: u32) -> Option<MachineAddr> {
        if v == self.vi.vcpu() {
            Some(self.vi.at(self.base))
        } else {
            self.vi_of_other(v)
        }
    }

    /// [`Self::vi_of`] for a vCPU other than the opened one (out of line:
    /// the event paths of a one-vCPU domain never come here).
    #[cold]
    #[inline(never)]
    fn vi_of_other(&self, v: u32) -> Option<MachineAddr> {
        let entry = || MachineAddr::new(self.base.get() + offsets::vcpu_info(v as usize) as u64);
        let Some(dom) = self.dom else {
            return (v < super::MAX_VCPUS as u32).then(entry);
        };
        match dom.vcpus.get(u64::from(v)).ok()?.vcpu_info {
            None => Some(entry()),
            Some(p) if dom.frame_kind(&*self.mem, p.mfn) == FrameKind::Writable => Some(p.addr()),
            Some(_) => None,
        }
    }
}

impl<'a, M: PhysMem + ?Sized, V: VcpuInfoAt> SharedPage<'a, M, V> {
    fn at(&self, off: usize) -> MachineAddr {
        MachineAddr::new(self.base.get() + off as u64)
    }
    /// `off` bytes into the `vcpu_info` record (`offsets::*(0)` are offsets
    /// in the record: entry 0 starts the page).
    fn at_vi(&self, off: usize) -> MachineAddr {
        MachineAddr::new(self.vi.at(self.base).get() + off as u64)
    }
    fn rd8_vi(&self, off: usize) -> u8 {
        let mut b = [0u8; 1];
        self.mem.read(self.at_vi(off), &mut b);
        b[0]
    }
    fn wr8_vi(&mut self, off: usize, v: u8) {
        self.mem.write(self.at_vi(off), &[v]);
    }
    fn rd64(&self, off: usize) -> u64 {
        self.mem.read_u64(self.at(off))
    }
    fn rd32(&self, off: usize) -> u32 {
        let mut b = [0u8; 4];
        self.mem.read(self.at(off), &mut b);
        u32::from_le_bytes(b)
    }
    fn wr32(&mut self, off: usize, v: u32) {
        self.mem.write(self.at(off), &v.to_le_bytes());
    }

    /// Bit `p` of the bitmap at `word_off(word)`: (offset, mask).
    fn bit(word_off: fn(usize) -> usize, p: u32) -> (usize, u64) {
        (
            word_off((p / BITS_PER_WORD) as usize),
            1u64 << (p % BITS_PER_WORD),
        )
    }

    /// Zero the whole page (at domain start).
    pub fn clear(&mut self) {
        self.mem.zero_frame(self.base.frame());
    }

    /// The published pvclock record.
    pub fn time_info(&self) -> VcpuTimeInfo {
        let mut b = [0u8; 32];
        self.mem.read(self.at_vi(offsets::time(0)), &mut b);
        VcpuTimeInfo::decode(&b)
    }

    /// vCPU 0's whole `vcpu_info` record.
    pub fn vcpu_info(&self) -> [u8; VCPU_INFO_SIZE] {
        let mut b = [0u8; VCPU_INFO_SIZE];
        self.mem.read(self.vi.at(self.base), &mut b);
        b
    }

    /// Write vCPU 0's whole `vcpu_info` record.
    pub fn set_vcpu_info(&mut self, b: &[u8; VCPU_INFO_SIZE]) {
        self.mem.write(self.vi.at(self.base), b);
    }

    /// Mark every word of `evtchn_pending_sel` and `evtchn_upcall_pending`:
    /// after the record moved, the guest rescans every port (Xen's
    /// `map_vcpu_info`), so an event pending at the move is not lost.
    pub fn mark_all_pending(&mut self) {
        self.mem
            .write_u64(self.at_vi(offsets::pending_sel(0)), u64::MAX);
        self.wr8_vi(offsets::upcall_pending(0), 1);
    }

    /// Publish vCPU 0's pvclock with the version protocol: version made odd,
    /// the fields, version made even (one more than the odd value).
    #[inline(always)]
    pub fn publish_time(&mut self, t: &VcpuTimeInfo) {
        let at = self.at_vi(offsets::time(0));
        let odd = self.mem.read_u32(at).wrapping_add(1) | 1;
        self.mem.write_u32(at, odd);
        let mut rec = *t;
        rec.version = odd;
        let mut b = [0u8; 32];
        rec.encode(&mut b);
        // Everything but the version word.
        self.mem.write(MachineAddr::new(at.get() + 4), &b[4..]);
        self.mem.write_u32(at, odd.wrapping_add(1));
    }

    /// Publish the wall clock (seconds and nanoseconds since the epoch at system
    /// time 0) with the version protocol of `wc_version`.
    pub fn publish_wallclock(&mut self, sec: u64, nsec: u32) {
        let v = self.rd32(offsets::wc_version());
        let odd = v.wrapping_add(1) | 1;
        self.wr32(offsets::wc_version(), odd);
        self.wr32(offsets::wc_sec(), sec as u32);
        self.wr32(offsets::wc_sec_hi(), (sec >> 32) as u32);
        self.wr32(offsets::wc_nsec(), nsec);
        self.wr32(offsets::wc_version(), odd.wrapping_add(1));
    }
}

impl<M: PhysMem + ?Sized, V: VcpuInfoAt> EventBits for SharedPage<'_, M, V> {
    // The pending and mask words and the selectors are shared with the
    // guest's vCPUs, which may run on other CPUs meanwhile and change other
    // bits of the same word with locked instructions: every change here is
    // one atomic bit operation (Xen's `guest_test_and_set_bit`), so none of
    // theirs is lost.
    fn test_and_set_pending(&mut self, p: u32) -> bool {
        let (o, _) = Self::bit(offsets::pending_word, p);
        self.mem.test_and_set_bit_u64(self.at(o), p % BITS_PER_WORD)
    }
    fn clear_pending(&mut self, p: u32) {
        let (o, _) = Self::bit(offsets::pending_word, p);
        self.mem
            .test_and_clear_bit_u64(self.at(o), p % BITS_PER_WORD);
    }
    fn is_pending(&self, p: u32) -> bool {
        let (o, m) = Self::bit(offsets::pending_word, p);
        self.rd64(o) & m != 0
    }
    fn is_masked(&self, p: u32) -> bool {
        let (o, m) = Self::bit(offsets::mask_word, p);
        self.rd64(o) & m != 0
    }
    fn test_and_clear_mask(&mut self, p: u32) -> bool {
        let (o, _) = Self::bit(offsets::mask_word, p);
        self.mem
            .test_and_clear_bit_u64(self.at(o), p % BITS_PER_WORD)
    }
    fn test_and_set_sel(&mut self, vcpu: u32, w: u32) -> bool {
        let Some(vi) = self.vi_of(vcpu) else {
            return true;
        };
        let at = MachineAddr::new(vi.get() + offsets::pending_sel(0) as u64);
        self.mem.test_and_set_bit_u64(at, w % BITS_PER_WORD)
    }
    fn set_upcall_pending(&mut self, vcpu: u32) {
        if let Some(vi) = self.vi_of(vcpu) {
            let at = MachineAddr::new(vi.get() + offsets::upcall_pending(0) as u64);
            self.mem.write(at, &[1]);
        }
    }
    fn upcall_pending(&self) -> bool {
        self.rd8_vi(offsets::upcall_pending(0)) != 0
    }
    fn upcall_mask(&self) -> bool {
        self.rd8_vi(offsets::upcall_mask(0)) != 0
    }
    fn set_upcall_mask(&mut self, masked: bool) {
        self.wr8_vi(offsets::upcall_mask(0), u8::from(masked));
    }
}
