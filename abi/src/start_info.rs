//! The start-of-day page: Xen's `struct start_info` (x86_64 layout,
//! `xen/include/public/xen.h`).
//!
//! A Keel guest starts in 64-bit mode, paging on, at CPL0 in VMX non-root mode,
//! with RSI holding the guest-virtual address of this page. The initial address
//! space (the "bootstrap region") follows Xen's PV domain builder:
//!
//! - every frame of the domain is mapped, in PFN order, at
//!   `virt_base + pfn * 4096`, where `virt_base` is the guest image's lowest
//!   loadable address (rounded down to a page);
//! - from PFN 0: the guest image, then the frame list (`mfn_list`, one
//!   [`crate::Mfn`] per PFN), this page, the initial page tables (`pt_base`,
//!   `nr_pt_frames` of them, mapped **read-only**: direct paging), the boot stack
//!   (RSP points at its top), and the remaining free frames;
//! - no mapping reaches a frame the domain does not own.
//!
//! Bare-metal difference: there is no firmware memory map and no physical address
//! space to probe; the guest's memory is exactly `nr_pages` frames, named by
//! `mfn_list`.

use crate::addr::{GuestVirt, MachineAddr, Mfn};
use crate::layout::{keel, xen, Family};
use crate::version::AbiVersion;

abi_consts! {
    family: Family::StartInfo, since: AbiVersion::V0_1;
    /// Length of the magic string field.
    MAGIC_LEN: usize = 32 => keel();
    /// The magic Keel writes, as Xen's x86_64 domain builder does
    /// (`"xen-<version>-<platform>"`; Keel always writes `"xen-3.0-x86_64"`).
    MAGIC: &[u8] = b"xen-3.0-x86_64" => @bytes keel();
    /// Length of the command line field.
    MAX_GUEST_CMDLINE: usize = 1024 => xen("MAX_GUEST_CMDLINE");
    /// `SIF_PRIVILEGED`: the domain is privileged (Keel 0.1: never set).
    SIF_PRIVILEGED: u32 = 1 << 0 => xen("SIF_PRIVILEGED");
    /// `SIF_INITDOMAIN`: the domain is the initial domain (Keel 0.1: never set).
    SIF_INITDOMAIN: u32 = 1 << 1 => xen("SIF_INITDOMAIN");
    /// `SIF_MULTIBOOT_MOD`: `mod_start` is a multiboot module list (Keel: never set).
    SIF_MULTIBOOT_MOD: u32 = 1 << 2 => xen("SIF_MULTIBOOT_MOD");
    /// `SIF_MOD_START_PFN`: `mod_start` is a PFN (Keel: never set).
    SIF_MOD_START_PFN: u32 = 1 << 3 => xen("SIF_MOD_START_PFN");
    /// `SIF_VIRT_P2M_4TOOLS`: the toolstack understands a virtually mapped P2M
    /// (Keel: never set; there is no toolstack).
    SIF_VIRT_P2M_4TOOLS: u32 = 1 << 4 => xen("SIF_VIRT_P2M_4TOOLS");
    /// `SIF_PM_MASK`: a byte of flags reserved for power management (Keel: always 0).
    SIF_PM_MASK: u32 = 0xff << 8 => xen("SIF_PM_MASK");
}

/// The domU console description (`start_info.console.domU`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsoleDomU {
    /// Machine frame of the console ring (Keel: 0, no ring console; use `console_io`).
    pub mfn: Mfn,
    /// Event channel of the console ring (Keel: 0).
    pub evtchn: u32,
}

/// `struct start_info`, 1168 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct StartInfo {
    /// `"xen-3.0-x86_64"`, NUL-padded.
    pub magic: [u8; MAGIC_LEN],
    /// Total pages allocated to this domain.
    pub nr_pages: u64,
    /// Machine address of the shared-info page (since 1.0; a 0.1 hypervisor
    /// leaves it 0).
    pub shared_info: MachineAddr,
    /// `SIF_*` flags.
    pub flags: u32,
    /// Machine frame of the xenstore page (Keel: 0, no xenstore).
    pub store_mfn: Mfn,
    /// Xenstore event channel (Keel: 0).
    pub store_evtchn: u32,
    /// Console ring (Keel: zeroes).
    pub console: ConsoleDomU,
    /// Guest-virtual address of the top-level page table (the L4).
    pub pt_base: GuestVirt,
    /// Number of bootstrap page-table frames.
    pub nr_pt_frames: u64,
    /// Guest-virtual address of the frame list: `nr_pages` entries of [`Mfn`], indexed by PFN.
    pub mfn_list: GuestVirt,
    /// Guest-virtual address of the pre-loaded module (Keel: 0).
    pub mod_start: GuestVirt,
    /// Length of the module in bytes (Keel: 0).
    pub mod_len: u64,
    /// The guest's command line, NUL-terminated.
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    /// First PFN of the initial P2M table (Keel: 0).
    pub first_p2m_pfn: u64,
    /// Number of frames of the initial P2M table (Keel: 0).
    pub nr_p2m_frames: u64,
}

// Xen's x86_64 layout, asserted at compile time (and compared with Xen's own
// headers, field by field, by `abi/tests/xen_cross_check.rs`).
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<ConsoleDomU>() == 16);
    assert!(align_of::<ConsoleDomU>() == 8);
    assert!(offset_of!(ConsoleDomU, mfn) == 0);
    assert!(offset_of!(ConsoleDomU, evtchn) == 8);
    assert!(size_of::<StartInfo>() == 1168);
    assert!(align_of::<StartInfo>() == 8);
    assert!(offset_of!(StartInfo, magic) == 0);
    assert!(offset_of!(StartInfo, nr_pages) == 32);
    assert!(offset_of!(StartInfo, shared_info) == 40);
    assert!(offset_of!(StartInfo, flags) == 48);
    assert!(offset_of!(StartInfo, store_mfn) == 56);
    assert!(offset_of!(StartInfo, store_evtchn) == 64);
    assert!(offset_of!(StartInfo, console) == 72);
    assert!(offset_of!(StartInfo, pt_base) == 88);
    assert!(offset_of!(StartInfo, nr_pt_frames) == 96);
    assert!(offset_of!(StartInfo, mfn_list) == 104);
    assert!(offset_of!(StartInfo, mod_start) == 112);
    assert!(offset_of!(StartInfo, mod_len) == 120);
    assert!(offset_of!(StartInfo, cmd_line) == 128);
    assert!(offset_of!(StartInfo, first_p2m_pfn) == 1152);
    assert!(offset_of!(StartInfo, nr_p2m_frames) == 1160);
};

impl StartInfo {
    /// An all-zero start_info with the magic filled in.
    pub const fn new() -> Self {
        let mut magic = [0u8; MAGIC_LEN];
        let mut i = 0;
        while i < MAGIC.len() {
            magic[i] = MAGIC[i];
            i += 1;
        }
        StartInfo {
            magic,
            nr_pages: 0,
            shared_info: MachineAddr::new(0),
            flags: 0,
            store_mfn: Mfn::new(0),
            store_evtchn: 0,
            console: ConsoleDomU {
                mfn: Mfn::new(0),
                evtchn: 0,
            },
            pt_base: GuestVirt::new(0),
            nr_pt_frames: 0,
            mfn_list: GuestVirt::new(0),
            mod_start: GuestVirt::new(0),
            mod_len: 0,
            cmd_line: [0; MAX_GUEST_CMDLINE],
            first_p2m_pfn: 0,
            nr_p2m_frames: 0,
        }
    }

    /// Whether the magic starts with `"xen-"` as every Xen-compatible builder writes.
    pub fn magic_ok(&self) -> bool {
        self.magic.starts_with(b"xen-")
    }

    /// The command line up to its first NUL.
    pub fn cmd_line_bytes(&self) -> &[u8] {
        let end = self
            .cmd_line
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(MAX_GUEST_CMDLINE);
        &self.cmd_line[..end]
    }

    /// Serialise into the exact Xen byte layout (padding zeroed), for copying into
    /// guest memory without reading uninitialised padding. Every field is written at
    /// its `offset_of!`, so the encoding follows the `#[repr(C)]` layout by
    /// construction (and the golden sample in `layout::GOLDEN` freezes the result).
    pub fn encode(&self) -> [u8; START_INFO_SIZE] {
        use core::mem::offset_of;
        let mut b = [0u8; START_INFO_SIZE];
        let mut put = |off: usize, bytes: &[u8]| b[off..off + bytes.len()].copy_from_slice(bytes);
        put(offset_of!(Self, magic), &self.magic);
        put(offset_of!(Self, nr_pages), &self.nr_pages.to_le_bytes());
        put(
            offset_of!(Self, shared_info),
            &self.shared_info.get().to_le_bytes(),
        );
        put(offset_of!(Self, flags), &self.flags.to_le_bytes());
        put(
            offset_of!(Self, store_mfn),
            &self.store_mfn.get().to_le_bytes(),
        );
        put(
            offset_of!(Self, store_evtchn),
            &self.store_evtchn.to_le_bytes(),
        );
        put(
            offset_of!(Self, console.mfn),
            &self.console.mfn.get().to_le_bytes(),
        );
        put(
            offset_of!(Self, console.evtchn),
            &self.console.evtchn.to_le_bytes(),
        );
        put(offset_of!(Self, pt_base), &self.pt_base.get().to_le_bytes());
        put(
            offset_of!(Self, nr_pt_frames),
            &self.nr_pt_frames.to_le_bytes(),
        );
        put(
            offset_of!(Self, mfn_list),
            &self.mfn_list.get().to_le_bytes(),
        );
        put(
            offset_of!(Self, mod_start),
            &self.mod_start.get().to_le_bytes(),
        );
        put(offset_of!(Self, mod_len), &self.mod_len.to_le_bytes());
        put(offset_of!(Self, cmd_line), &self.cmd_line);
        put(
            offset_of!(Self, first_p2m_pfn),
            &self.first_p2m_pfn.to_le_bytes(),
        );
        put(
            offset_of!(Self, nr_p2m_frames),
            &self.nr_p2m_frames.to_le_bytes(),
        );
        b
    }

    /// Parse the Xen byte layout (the inverse of [`StartInfo::encode`]).
    pub fn decode(b: &[u8; START_INFO_SIZE]) -> Self {
        use core::mem::offset_of;
        let u64_at = |off: usize| u64::from_le_bytes(b[off..off + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |off: usize| u32::from_le_bytes(b[off..off + 4].try_into().unwrap_or([0; 4]));
        let mut s = StartInfo::new();
        let m = offset_of!(Self, magic);
        s.magic.copy_from_slice(&b[m..m + MAGIC_LEN]);
        s.nr_pages = u64_at(offset_of!(Self, nr_pages));
        s.shared_info = MachineAddr::new(u64_at(offset_of!(Self, shared_info)));
        s.flags = u32_at(offset_of!(Self, flags));
        s.store_mfn = Mfn::new(u64_at(offset_of!(Self, store_mfn)));
        s.store_evtchn = u32_at(offset_of!(Self, store_evtchn));
        s.console = ConsoleDomU {
            mfn: Mfn::new(u64_at(offset_of!(Self, console.mfn))),
            evtchn: u32_at(offset_of!(Self, console.evtchn)),
        };
        s.pt_base = GuestVirt::new(u64_at(offset_of!(Self, pt_base)));
        s.nr_pt_frames = u64_at(offset_of!(Self, nr_pt_frames));
        s.mfn_list = GuestVirt::new(u64_at(offset_of!(Self, mfn_list)));
        s.mod_start = GuestVirt::new(u64_at(offset_of!(Self, mod_start)));
        s.mod_len = u64_at(offset_of!(Self, mod_len));
        let c = offset_of!(Self, cmd_line);
        s.cmd_line.copy_from_slice(&b[c..c + MAX_GUEST_CMDLINE]);
        s.first_p2m_pfn = u64_at(offset_of!(Self, first_p2m_pfn));
        s.nr_p2m_frames = u64_at(offset_of!(Self, nr_p2m_frames));
        s
    }

    /// Copy `cmd` (truncated to leave room for the NUL) into `cmd_line`.
    pub fn set_cmd_line(&mut self, cmd: &[u8]) {
        let n = cmd.len().min(MAX_GUEST_CMDLINE - 1);
        self.cmd_line = [0; MAX_GUEST_CMDLINE];
        self.cmd_line[..n].copy_from_slice(&cmd[..n]);
    }
}

/// `sizeof(struct start_info)`.
pub const START_INFO_SIZE: usize = core::mem::size_of::<StartInfo>();

impl Default for StartInfo {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let mut s = StartInfo::new();
        s.nr_pages = 2048;
        s.flags = SIF_PRIVILEGED;
        s.pt_base = GuestVirt::new(0x40_5000);
        s.nr_pt_frames = 7;
        s.mfn_list = GuestVirt::new(0x40_3000);
        s.set_cmd_line(b"console=keel");
        let b = s.encode();
        assert_eq!(&b[0..14], MAGIC);
        assert_eq!(u64::from_le_bytes(b[88..96].try_into().unwrap()), 0x40_5000);
        let d = StartInfo::decode(&b);
        assert_eq!(d.encode(), b);
        assert_eq!(d.cmd_line_bytes(), b"console=keel");
        assert!(d.magic_ok());
    }
}
