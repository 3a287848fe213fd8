//! What the boot loader told us: the memory map, the hypervisor command line, the
//! modules (guest images) and, from multiboot2, the ACPI RSDP.
//!
//! Two protocols deliver this, with different shapes:
//!
//! - **multiboot2** (GRUB): one self-contained block of 8-byte-aligned tags
//!   (`total_size`, reserved, then `type, size, payload` until an end tag). Every
//!   string and the RSDP copy live inside the block, so it parses from one byte slice.
//! - **multiboot1** (QEMU `-kernel`): a fixed 116-byte structure whose fields are
//!   32-bit *physical pointers* to the memory map, the command line, the module list
//!   and each module's command line. Parsing it means reading other memory, through
//!   the [`BootMemory`] trait (the direct map on hardware, a byte buffer in tests).
//!
//! The result is a fixed-capacity [`BootInfo`] that owns copies of everything (no
//! borrow of loader memory outlives parsing) and also records which machine ranges
//! the boot information itself occupied, so the frame allocator leaves them alone
//! while they may still be read.
//!
//! The loader is trusted in the sense that we boot from it, but its data is still
//! input: nothing here panics on any byte sequence (lengths are checked, arithmetic
//! is checked, capacities are bounded and overflow is counted, not fatal).

use crate::addr::MachineAddr;
use core::fmt;

/// Multiboot1: the magic value the loader leaves in EAX.
pub const MULTIBOOT1_MAGIC: u32 = 0x2BAD_B002;
/// Multiboot2: the magic value the loader leaves in EAX.
pub const MULTIBOOT2_MAGIC: u32 = 0x36D7_6289;

/// How many memory-map entries we keep (BIOSes report a few dozen at most).
pub const MAX_REGIONS: usize = 128;
/// How many modules we keep.
pub const MAX_MODULES: usize = 16;
/// How many machine ranges of boot information we record.
pub const MAX_BOOT_DATA: usize = 2 * MAX_MODULES + 8;
/// Longest hypervisor command line kept (longer ones are truncated and flagged).
pub const CMDLINE_MAX: usize = 512;
/// Longest module command line kept.
pub const MODULE_CMDLINE_MAX: usize = 256;
/// The largest multiboot2 information block we accept (GRUB's are a few KiB).
pub const MB2_MAX_TOTAL_SIZE: u32 = 1 << 20;

/// A half-open range of machine addresses `[start, end)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct MachineRange {
    /// First byte.
    pub start: MachineAddr,
    /// One past the last byte.
    pub end: MachineAddr,
}

impl MachineRange {
    /// `[start, start + len)`, saturating at the top of the address space.
    pub const fn from_len(start: u64, len: u64) -> Self {
        MachineRange {
            start: MachineAddr(start),
            end: MachineAddr(start.saturating_add(len)),
        }
    }
    /// Length in bytes (0 for an empty or inverted range).
    pub const fn len(&self) -> u64 {
        self.end.0.saturating_sub(self.start.0)
    }
    /// Whether the range holds no byte.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether the two ranges share a byte.
    pub const fn overlaps(&self, other: &MachineRange) -> bool {
        self.start.0 < other.end.0 && other.start.0 < self.end.0
    }
}

impl fmt::Display for MachineRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}, {:#x})", self.start.0, self.end.0)
    }
}

/// The type of a memory-map region (the E820 types both protocols pass on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// RAM free for the OS (type 1).
    Usable,
    /// Reserved by firmware (type 2, and any type we do not know).
    Reserved,
    /// ACPI tables; reusable once they have been read (type 3). Keel keeps them.
    AcpiReclaimable,
    /// ACPI non-volatile storage (type 4).
    AcpiNvs,
    /// Defective RAM (type 5).
    BadMemory,
    /// A type number this code does not know; treated as reserved.
    Unknown(u32),
}

impl RegionKind {
    /// Decode an E820/multiboot memory type.
    pub const fn from_raw(t: u32) -> Self {
        match t {
            1 => RegionKind::Usable,
            2 => RegionKind::Reserved,
            3 => RegionKind::AcpiReclaimable,
            4 => RegionKind::AcpiNvs,
            5 => RegionKind::BadMemory,
            other => RegionKind::Unknown(other),
        }
    }
    /// Short name for the boot log.
    pub const fn name(self) -> &'static str {
        match self {
            RegionKind::Usable => "usable",
            RegionKind::Reserved => "reserved",
            RegionKind::AcpiReclaimable => "ACPI data",
            RegionKind::AcpiNvs => "ACPI NVS",
            RegionKind::BadMemory => "bad",
            RegionKind::Unknown(_) => "unknown",
        }
    }
}

/// One memory-map entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemRegion {
    /// The machine addresses it covers.
    pub range: MachineRange,
    /// What they are.
    pub kind: RegionKind,
}

/// A string of at most `N` bytes copied out of loader memory.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FixedStr<const N: usize> {
    buf: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> Default for FixedStr<N> {
    fn default() -> Self {
        FixedStr {
            buf: [0; N],
            len: 0,
            truncated: false,
        }
    }
}

impl<const N: usize> FixedStr<N> {
    /// Copy `bytes` (up to the first NUL), truncating to `N` bytes.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let bytes = match bytes.iter().position(|&b| b == 0) {
            Some(nul) => &bytes[..nul],
            None => bytes,
        };
        let mut s = Self::default();
        let n = bytes.len().min(N);
        s.buf[..n].copy_from_slice(&bytes[..n]);
        s.len = n;
        s.truncated = bytes.len() > N;
        s
    }
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    /// The text: the longest valid UTF-8 prefix (command lines are ASCII in practice).
    pub fn as_str(&self) -> &str {
        match core::str::from_utf8(self.as_bytes()) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&self.buf[..e.valid_up_to()]).unwrap_or(""),
        }
    }
    /// Whether the source was longer than `N` bytes.
    pub const fn truncated(&self) -> bool {
        self.truncated
    }
}

impl<const N: usize> fmt::Debug for FixedStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A boot module: a file the loader put in memory for us (the first is the guest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Module {
    /// Where its bytes are.
    pub range: MachineRange,
    /// The module's command line (for a guest image: the guest's command line).
    pub cmdline: FixedStr<MODULE_CMDLINE_MAX>,
}

/// Where the ACPI RSDP is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RsdpLocation {
    /// Machine address of the RSDP structure (for multiboot2: of the loader's copy
    /// inside the information block, which is a valid, checksummed RSDP).
    pub addr: MachineAddr,
    /// 0 for ACPI 1.0 (RSDT), 2 or more for ACPI 2.0+ (XSDT).
    pub revision: u8,
}

/// Which protocol delivered the boot information.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Multiboot 0.6.96 (QEMU `-kernel`, GRUB's `multiboot`).
    Multiboot1,
    /// Multiboot2 (GRUB's `multiboot2`).
    Multiboot2,
}

/// Everything the loader told us, copied into fixed-capacity storage.
#[derive(Clone, Debug)]
pub struct BootInfo {
    /// The protocol.
    pub protocol: Protocol,
    regions: [MemRegion; MAX_REGIONS],
    n_regions: usize,
    modules: [Module; MAX_MODULES],
    n_modules: usize,
    boot_data: [MachineRange; MAX_BOOT_DATA],
    n_boot_data: usize,
    /// The hypervisor command line.
    pub cmdline: FixedStr<CMDLINE_MAX>,
    /// The boot loader's name, if it gave one.
    pub loader_name: FixedStr<64>,
    /// The ACPI RSDP, if the loader passed one (multiboot2 only).
    pub rsdp: Option<RsdpLocation>,
    /// Entries that did not fit (memory regions, modules, boot-data ranges): the
    /// boot log reports them; nothing is silently lost.
    pub dropped: u32,
}

const EMPTY_REGION: MemRegion = MemRegion {
    range: MachineRange {
        start: MachineAddr(0),
        end: MachineAddr(0),
    },
    kind: RegionKind::Reserved,
};

impl BootInfo {
    fn empty(protocol: Protocol) -> Self {
        BootInfo {
            protocol,
            regions: [EMPTY_REGION; MAX_REGIONS],
            n_regions: 0,
            modules: [Module {
                range: MachineRange::default(),
                cmdline: FixedStr::default(),
            }; MAX_MODULES],
            n_modules: 0,
            boot_data: [MachineRange::default(); MAX_BOOT_DATA],
            n_boot_data: 0,
            cmdline: FixedStr::default(),
            loader_name: FixedStr::default(),
            rsdp: None,
            dropped: 0,
        }
    }

    /// The memory map, in the loader's order.
    pub fn regions(&self) -> &[MemRegion] {
        &self.regions[..self.n_regions]
    }
    /// The modules, in the loader's order.
    pub fn modules(&self) -> &[Module] {
        &self.modules[..self.n_modules]
    }
    /// The machine ranges the boot information itself occupies (the information
    /// block, the memory map, the command lines, the module list).
    pub fn boot_data(&self) -> &[MachineRange] {
        &self.boot_data[..self.n_boot_data]
    }
    /// The highest address of RAM the memory map reports (usable or ACPI), i.e. how
    /// far the direct map must reach.
    pub fn ram_top(&self) -> MachineAddr {
        self.regions()
            .iter()
            .filter(|r| {
                matches!(
                    r.kind,
                    RegionKind::Usable | RegionKind::AcpiReclaimable | RegionKind::AcpiNvs
                )
            })
            .map(|r| r.range.end)
            .max()
            .unwrap_or(MachineAddr(0))
    }
    /// Total bytes of usable RAM in the map.
    pub fn usable_bytes(&self) -> u64 {
        self.regions()
            .iter()
            .filter(|r| r.kind == RegionKind::Usable)
            .map(|r| r.range.len())
            .fold(0u64, u64::saturating_add)
    }

    fn push_region(&mut self, start: u64, len: u64, kind: RegionKind) {
        if len == 0 {
            return;
        }
        if self.n_regions < MAX_REGIONS {
            self.regions[self.n_regions] = MemRegion {
                range: MachineRange::from_len(start, len),
                kind,
            };
            self.n_regions += 1;
        } else {
            self.dropped += 1;
        }
    }
    fn push_module(&mut self, range: MachineRange, cmdline: &[u8]) {
        if self.n_modules < MAX_MODULES {
            self.modules[self.n_modules] = Module {
                range,
                cmdline: FixedStr::from_bytes(cmdline),
            };
            self.n_modules += 1;
        } else {
            self.dropped += 1;
        }
    }
    fn push_boot_data(&mut self, start: u64, len: u64) {
        if len == 0 {
            return;
        }
        if self.n_boot_data < MAX_BOOT_DATA {
            self.boot_data[self.n_boot_data] = MachineRange::from_len(start, len);
            self.n_boot_data += 1;
        } else {
            self.dropped += 1;
        }
    }
}

/// Why the boot information could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootInfoError {
    /// EAX did not hold either protocol's magic.
    BadMagic(u32),
    /// The information block (or a structure it points to) is not readable memory.
    Unreadable {
        /// What we tried to read.
        what: &'static str,
        /// Where.
        addr: u64,
    },
    /// The multiboot2 block's `total_size` is too small, too large or unaligned.
    BadTotalSize(u32),
    /// A multiboot2 tag's size is smaller than its header or runs past the block.
    BadTag {
        /// Offset of the tag in the block.
        offset: u32,
        /// Its type.
        tag_type: u32,
    },
    /// The multiboot2 block has no end tag.
    MissingEndTag,
}

impl fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BootInfoError::BadMagic(m) => write!(
                f,
                "boot magic {m:#x} is neither multiboot1 ({MULTIBOOT1_MAGIC:#x}) nor multiboot2 ({MULTIBOOT2_MAGIC:#x})"
            ),
            BootInfoError::Unreadable { what, addr } => {
                write!(f, "cannot read the {what} at {addr:#x}")
            }
            BootInfoError::BadTotalSize(s) => {
                write!(f, "multiboot2 information block has a bad total_size {s:#x}")
            }
            BootInfoError::BadTag { offset, tag_type } => write!(
                f,
                "multiboot2 tag type {tag_type} at offset {offset:#x} has a bad size"
            ),
            BootInfoError::MissingEndTag => write!(f, "multiboot2 information block has no end tag"),
        }
    }
}

/// Read access to machine memory for the parser.
pub trait BootMemory {
    /// The `len` bytes at machine address `addr`, or `None` if any of them is not
    /// readable memory.
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]>;
}

/// A buffer standing for machine memory `[base, base + bytes.len())`.
#[derive(Clone, Copy, Debug)]
pub struct Window<'a> {
    /// Machine address of `bytes[0]`.
    pub base: u64,
    /// The memory.
    pub bytes: &'a [u8],
}

impl BootMemory for Window<'_> {
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let off = usize::try_from(addr.checked_sub(self.base)?).ok()?;
        self.bytes.get(off..off.checked_add(len)?)
    }
}

fn le_u32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn le_u64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// Parse the boot information the loader left at `info_addr`, choosing the protocol
/// by `magic` (the value the loader left in EAX).
pub fn parse(magic: u32, info_addr: u64, mem: &impl BootMemory) -> Result<BootInfo, BootInfoError> {
    match magic {
        MULTIBOOT1_MAGIC => parse_multiboot1(info_addr, mem),
        MULTIBOOT2_MAGIC => {
            let unreadable = BootInfoError::Unreadable {
                what: "multiboot2 information block",
                addr: info_addr,
            };
            let head = mem.bytes(info_addr, 8).ok_or(unreadable)?;
            let total = le_u32(head, 0).ok_or(unreadable)?;
            if !(16..=MB2_MAX_TOTAL_SIZE).contains(&total) {
                return Err(BootInfoError::BadTotalSize(total));
            }
            let block = mem.bytes(info_addr, total as usize).ok_or(unreadable)?;
            parse_multiboot2(info_addr, block)
        }
        other => Err(BootInfoError::BadMagic(other)),
    }
}

// ------------------------------------------------------------------------------
// Multiboot1 (Multiboot Specification 0.6.96, section 3.3).
// ------------------------------------------------------------------------------

const MB1_INFO_SIZE: usize = 116;
const MB1_FLAG_MEM: u32 = 1 << 0;
const MB1_FLAG_CMDLINE: u32 = 1 << 2;
const MB1_FLAG_MODS: u32 = 1 << 3;
const MB1_FLAG_MMAP: u32 = 1 << 6;
const MB1_FLAG_LOADER_NAME: u32 = 1 << 9;
const MB1_MOD_ENTRY_SIZE: usize = 16;
/// Strings are read up to this many bytes looking for their NUL.
const CSTR_SCAN_MAX: usize = 4096;

/// Copy the NUL-terminated string at `addr` (at most `CSTR_SCAN_MAX` bytes) and
/// return it with the number of bytes it occupies (NUL included).
fn read_cstr(mem: &impl BootMemory, addr: u64) -> Option<(&[u8], u64)> {
    // Read in growing chunks: a string near the end of readable memory must not
    // fail just because a fixed-size read would run past it.
    let mut len = 0usize;
    while len < CSTR_SCAN_MAX {
        let chunk = mem.bytes(addr.checked_add(len as u64)?, 1)?;
        if chunk[0] == 0 {
            let s = mem.bytes(addr, len)?;
            return Some((s, len as u64 + 1));
        }
        len += 1;
    }
    // No NUL within the scan limit: keep what we saw (truncated by the copy).
    Some((mem.bytes(addr, len)?, len as u64))
}

/// Parse a multiboot1 information structure at `info_addr`.
pub fn parse_multiboot1(info_addr: u64, mem: &impl BootMemory) -> Result<BootInfo, BootInfoError> {
    let info = mem
        .bytes(info_addr, MB1_INFO_SIZE)
        .ok_or(BootInfoError::Unreadable {
            what: "multiboot1 information structure",
            addr: info_addr,
        })?;
    let rd32 = |off: usize| le_u32(info, off).unwrap_or(0);
    let mut bi = BootInfo::empty(Protocol::Multiboot1);
    bi.push_boot_data(info_addr, MB1_INFO_SIZE as u64);
    let flags = rd32(0);

    if flags & MB1_FLAG_CMDLINE != 0 {
        let addr = u64::from(rd32(16));
        if let Some((s, used)) = read_cstr(mem, addr) {
            bi.cmdline = FixedStr::from_bytes(s);
            bi.push_boot_data(addr, used);
        } else {
            return Err(BootInfoError::Unreadable {
                what: "command line",
                addr,
            });
        }
    }

    if flags & MB1_FLAG_LOADER_NAME != 0 {
        let addr = u64::from(rd32(64));
        if let Some((s, used)) = read_cstr(mem, addr) {
            bi.loader_name = FixedStr::from_bytes(s);
            bi.push_boot_data(addr, used);
        }
    }

    if flags & MB1_FLAG_MODS != 0 {
        let count = rd32(20) as usize;
        let addr = u64::from(rd32(24));
        // Do not trust `count` for the size of a read: walk the list entry by entry.
        for i in 0..count.min(MAX_MODULES + 1) {
            let e_addr = addr + (i * MB1_MOD_ENTRY_SIZE) as u64;
            let e = mem
                .bytes(e_addr, MB1_MOD_ENTRY_SIZE)
                .ok_or(BootInfoError::Unreadable {
                    what: "module list",
                    addr: e_addr,
                })?;
            let start = u64::from(le_u32(e, 0).unwrap_or(0));
            let end = u64::from(le_u32(e, 4).unwrap_or(0));
            let cmd_addr = u64::from(le_u32(e, 8).unwrap_or(0));
            let (cmd, used) = if cmd_addr != 0 {
                read_cstr(mem, cmd_addr).unwrap_or((&[], 0))
            } else {
                (&[][..], 0)
            };
            bi.push_boot_data(cmd_addr, used);
            bi.push_module(
                MachineRange {
                    start: MachineAddr(start),
                    end: MachineAddr(end.max(start)),
                },
                cmd,
            );
        }
        if count > MAX_MODULES + 1 {
            bi.dropped += (count - MAX_MODULES - 1) as u32;
        }
        bi.push_boot_data(
            addr,
            (count.min(MAX_MODULES + 1) * MB1_MOD_ENTRY_SIZE) as u64,
        );
    }

    if flags & MB1_FLAG_MMAP != 0 {
        let len = u64::from(rd32(44));
        let addr = u64::from(rd32(48));
        bi.push_boot_data(addr, len);
        // Entries: `size: u32` then `size` bytes of {base: u64, length: u64, type: u32};
        // `size` does not count itself, and may be larger than 20 in later versions.
        let mut off = 0u64;
        while off + 4 <= len {
            let e_addr = addr + off;
            let size_b = mem.bytes(e_addr, 4).ok_or(BootInfoError::Unreadable {
                what: "memory map",
                addr: e_addr,
            })?;
            let size = u64::from(le_u32(size_b, 0).unwrap_or(0));
            if size < 20 || off + 4 + size > len {
                // A malformed entry ends the walk: what came before is still good.
                bi.dropped += 1;
                break;
            }
            let e = mem.bytes(e_addr + 4, 20).ok_or(BootInfoError::Unreadable {
                what: "memory map",
                addr: e_addr,
            })?;
            let base = le_u64(e, 0).unwrap_or(0);
            let length = le_u64(e, 8).unwrap_or(0);
            let kind = RegionKind::from_raw(le_u32(e, 16).unwrap_or(0));
            bi.push_region(base, length, kind);
            off += 4 + size;
        }
    } else if flags & MB1_FLAG_MEM != 0 {
        // No map: synthesize one from mem_lower (KiB from 0) and mem_upper (KiB from 1 MiB).
        bi.push_region(0, u64::from(rd32(4)) * 1024, RegionKind::Usable);
        bi.push_region(0x10_0000, u64::from(rd32(8)) * 1024, RegionKind::Usable);
    }
    Ok(bi)
}

// ------------------------------------------------------------------------------
// Multiboot2 (Multiboot2 Specification 2.0, section 3.6).
// ------------------------------------------------------------------------------

const MB2_TAG_END: u32 = 0;
const MB2_TAG_CMDLINE: u32 = 1;
const MB2_TAG_LOADER_NAME: u32 = 2;
const MB2_TAG_MODULE: u32 = 3;
const MB2_TAG_BASIC_MEMINFO: u32 = 4;
const MB2_TAG_MMAP: u32 = 6;
const MB2_TAG_ACPI_OLD: u32 = 14;
const MB2_TAG_ACPI_NEW: u32 = 15;

/// Parse a multiboot2 information block: `block` holds its bytes, which lie at
/// machine address `base` (needed to give the RSDP copy a machine address).
pub fn parse_multiboot2(base: u64, block: &[u8]) -> Result<BootInfo, BootInfoError> {
    let total = le_u32(block, 0).ok_or(BootInfoError::BadTotalSize(block.len() as u32))?;
    if (total as usize) > block.len() || total < 16 || total % 8 != 0 {
        return Err(BootInfoError::BadTotalSize(total));
    }
    let block = &block[..total as usize];
    let mut bi = BootInfo::empty(Protocol::Multiboot2);
    bi.push_boot_data(base, u64::from(total));
    let mut have_mmap = false;
    let mut basic_mem: Option<(u32, u32)> = None;
    let mut rsdp_new = None;
    let mut rsdp_old = None;

    let mut off = 8usize;
    loop {
        let (tag_type, size) = match (le_u32(block, off), le_u32(block, off + 4)) {
            (Some(t), Some(s)) => (t, s as usize),
            _ => return Err(BootInfoError::MissingEndTag),
        };
        let bad = BootInfoError::BadTag {
            offset: off as u32,
            tag_type,
        };
        if size < 8 {
            return Err(bad);
        }
        let payload = block
            .get(off + 8..off.checked_add(size).ok_or(bad)?)
            .ok_or(bad)?;
        match tag_type {
            MB2_TAG_END => break,
            MB2_TAG_CMDLINE => bi.cmdline = FixedStr::from_bytes(payload),
            MB2_TAG_LOADER_NAME => bi.loader_name = FixedStr::from_bytes(payload),
            MB2_TAG_MODULE => {
                let start = u64::from(le_u32(payload, 0).ok_or(bad)?);
                let end = u64::from(le_u32(payload, 4).ok_or(bad)?);
                bi.push_module(
                    MachineRange {
                        start: MachineAddr(start),
                        end: MachineAddr(end.max(start)),
                    },
                    payload.get(8..).unwrap_or(&[]),
                );
            }
            MB2_TAG_BASIC_MEMINFO => {
                basic_mem = Some((
                    le_u32(payload, 0).ok_or(bad)?,
                    le_u32(payload, 4).ok_or(bad)?,
                ));
            }
            MB2_TAG_MMAP => {
                let entry_size = le_u32(payload, 0).ok_or(bad)? as usize;
                if entry_size < 24 {
                    return Err(bad);
                }
                have_mmap = true;
                // Entries start after entry_size and entry_version.
                for e in payload.get(8..).unwrap_or(&[]).chunks_exact(entry_size) {
                    let base_addr = le_u64(e, 0).unwrap_or(0);
                    let length = le_u64(e, 8).unwrap_or(0);
                    let kind = RegionKind::from_raw(le_u32(e, 16).unwrap_or(0));
                    bi.push_region(base_addr, length, kind);
                }
            }
            // The payload is a copy of the RSDP; byte 15 is its revision. We need at
            // least the 20-byte ACPI 1.0 part.
            MB2_TAG_ACPI_OLD | MB2_TAG_ACPI_NEW if payload.len() >= 20 => {
                let loc = RsdpLocation {
                    addr: MachineAddr(base + off as u64 + 8),
                    revision: payload[15],
                };
                if tag_type == MB2_TAG_ACPI_NEW {
                    rsdp_new = Some(loc);
                } else {
                    rsdp_old = Some(loc);
                }
            }
            _ => {}
        }
        // Tags are padded to 8 bytes.
        off = match off.checked_add((size + 7) & !7) {
            Some(n) if n < block.len() => n,
            _ => return Err(BootInfoError::MissingEndTag),
        };
    }
    // Prefer the ACPI 2.0+ RSDP (XSDT, 64-bit table pointers).
    bi.rsdp = rsdp_new.or(rsdp_old);
    if !have_mmap {
        if let Some((lower, upper)) = basic_mem {
            bi.push_region(0, u64::from(lower) * 1024, RegionKind::Usable);
            bi.push_region(0x10_0000, u64::from(upper) * 1024, RegionKind::Usable);
        }
    }
    Ok(bi)
}

// ------------------------------------------------------------------------------
// The hypervisor command line.
// ------------------------------------------------------------------------------

/// A fault to provoke deliberately once the platform is up (exception handlers,
/// page protections), to check the failure paths on a real machine or emulator:
/// `keel_selftest=<name>`. Each ends the run with a report and status 3
/// (hypervisor panic) instead of starting VMX. The boot tests use them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelfTest {
    /// `ud2`: execute `ud2`: invalid opcode (#UD, vector 6).
    Ud2,
    /// `pagefault`: read an unmapped address (#PF, vector 14, CR2 = the address).
    PageFault,
    /// `null`: read through a null pointer (page 0 is unmapped: #PF, CR2 = 0).
    NullRead,
    /// `wptext`: write to the hypervisor's own code (read-only: #PF, error code W|P).
    WriteText,
    /// `stack`: overflow the boot stack into its guard page: #PF on a dead stack
    /// becomes #DF (vector 8), reported from its IST stack.
    StackOverflow,
    /// `panic`: call `panic!`: the panic handler's report.
    Panic,
}

impl SelfTest {
    /// Every self-test with its command-line name (the table is the documentation).
    pub const ALL: [(&'static str, SelfTest); 6] = [
        ("ud2", SelfTest::Ud2),
        ("pagefault", SelfTest::PageFault),
        ("null", SelfTest::NullRead),
        ("wptext", SelfTest::WriteText),
        ("stack", SelfTest::StackOverflow),
        ("panic", SelfTest::Panic),
    ];

    /// Look a self-test up by its command-line name.
    pub fn from_name(name: &str) -> Option<SelfTest> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|&(_, t)| t)
    }
    /// The command-line name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("?", |&(n, _)| n)
    }
}

/// Options on the hypervisor command line, `key=value` words separated by spaces.
/// Unknown words are ignored (multiboot1 loaders put the kernel's path first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// `guest_mem=<MiB>`: memory for the guest (default 8).
    pub guest_mem_mib: u64,
    /// `keel_selftest=<name>`: provoke a fault after boot (see [`SelfTest::ALL`]).
    pub selftest: Option<SelfTest>,
    /// `loglevel=error|warn|info|debug|trace` (default info).
    pub log_level: log::LevelFilter,
    /// Words that looked like options but had bad values (reported in the boot log).
    pub bad_values: u32,
}

/// Default guest memory in MiB.
pub const DEFAULT_GUEST_MEM_MIB: u64 = 8;

impl Default for Options {
    fn default() -> Self {
        Options {
            guest_mem_mib: DEFAULT_GUEST_MEM_MIB,
            selftest: None,
            log_level: log::LevelFilter::Info,
            bad_values: 0,
        }
    }
}

impl Options {
    /// Parse a command line. Later words override earlier ones.
    pub fn parse(cmdline: &str) -> Self {
        let mut o = Options::default();
        for word in cmdline.split_ascii_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            match key {
                "guest_mem" => match value.parse::<u64>() {
                    Ok(m) if m > 0 && m <= 1 << 20 => o.guest_mem_mib = m,
                    _ => o.bad_values += 1,
                },
                "keel_selftest" => match SelfTest::from_name(value) {
                    Some(t) => o.selftest = Some(t),
                    None => o.bad_values += 1,
                },
                "loglevel" => match value {
                    "error" => o.log_level = log::LevelFilter::Error,
                    "warn" => o.log_level = log::LevelFilter::Warn,
                    "info" => o.log_level = log::LevelFilter::Info,
                    "debug" => o.log_level = log::LevelFilter::Debug,
                    "trace" => o.log_level = log::LevelFilter::Trace,
                    _ => o.bad_values += 1,
                },
                _ => {}
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    // ---- buffer builders -------------------------------------------------------

    /// A little-endian byte buffer standing for memory at `base`.
    struct Mem {
        base: u64,
        bytes: Vec<u8>,
    }

    impl Mem {
        fn new(base: u64, size: usize) -> Self {
            Mem {
                base,
                bytes: std::vec![0; size],
            }
        }
        fn put(&mut self, addr: u64, data: &[u8]) {
            let off = (addr - self.base) as usize;
            self.bytes[off..off + data.len()].copy_from_slice(data);
        }
        fn put32(&mut self, addr: u64, v: u32) {
            self.put(addr, &v.to_le_bytes());
        }
        fn window(&self) -> Window<'_> {
            Window {
                base: self.base,
                bytes: &self.bytes,
            }
        }
    }

    fn mb1_mmap_entry(base: u64, len: u64, t: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&20u32.to_le_bytes());
        v.extend_from_slice(&base.to_le_bytes());
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(&t.to_le_bytes());
        v
    }

    /// A multiboot1 layout like QEMU's: info at 0x9000, strings and lists after it.
    fn qemu_like_mb1() -> Mem {
        let mut m = Mem::new(0x9000, 0x1000);
        let info = 0x9000;
        m.put32(
            info,
            MB1_FLAG_MEM | MB1_FLAG_CMDLINE | MB1_FLAG_MODS | MB1_FLAG_MMAP | MB1_FLAG_LOADER_NAME,
        );
        m.put32(info + 4, 639);
        m.put32(info + 8, 130_048);
        // cmdline
        m.put32(info + 16, 0x9200);
        m.put(0x9200, b"/boot/keel guest_mem=16 keel_selftest=ud2\0");
        // modules
        m.put32(info + 20, 2);
        m.put32(info + 24, 0x9300);
        m.put32(0x9300, 0x40_0000);
        m.put32(0x9304, 0x40_1234);
        m.put32(0x9308, 0x9400);
        m.put32(0x9310, 0x50_0000);
        m.put32(0x9314, 0x50_0010);
        m.put32(0x9318, 0); // no command line
        m.put(0x9400, b"guest.elf console=hvc\0");
        // mmap
        let mut mm = Vec::new();
        mm.extend(mb1_mmap_entry(0, 0x9fc00, 1));
        mm.extend(mb1_mmap_entry(0x9fc00, 0x400, 2));
        mm.extend(mb1_mmap_entry(0x10_0000, 0x7ee_0000, 1));
        mm.extend(mb1_mmap_entry(0x7fe_0000, 0x2_0000, 3));
        m.put(0x9500, &mm);
        m.put32(info + 44, mm.len() as u32);
        m.put32(info + 48, 0x9500);
        // loader name
        m.put32(info + 64, 0x9600);
        m.put(0x9600, b"qemu\0");
        m
    }

    struct Mb2 {
        bytes: Vec<u8>,
    }

    impl Mb2 {
        fn new() -> Self {
            Mb2 {
                bytes: std::vec![0; 8],
            }
        }
        fn tag(&mut self, t: u32, payload: &[u8]) -> &mut Self {
            self.bytes.extend_from_slice(&t.to_le_bytes());
            self.bytes
                .extend_from_slice(&((8 + payload.len()) as u32).to_le_bytes());
            self.bytes.extend_from_slice(payload);
            while !self.bytes.len().is_multiple_of(8) {
                self.bytes.push(0);
            }
            self
        }
        fn finish(&mut self) -> Vec<u8> {
            self.tag(MB2_TAG_END, &[]);
            let n = self.bytes.len() as u32;
            self.bytes[0..4].copy_from_slice(&n.to_le_bytes());
            self.bytes.clone()
        }
    }

    fn mb2_module(start: u32, end: u32, cmd: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&start.to_le_bytes());
        v.extend_from_slice(&end.to_le_bytes());
        v.extend_from_slice(cmd);
        v.push(0);
        v
    }

    fn mb2_mmap(entries: &[(u64, u64, u32)]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&24u32.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        for &(b, l, t) in entries {
            v.extend_from_slice(&b.to_le_bytes());
            v.extend_from_slice(&l.to_le_bytes());
            v.extend_from_slice(&t.to_le_bytes());
            v.extend_from_slice(&0u32.to_le_bytes());
        }
        v
    }

    fn rsdp_v1() -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(b"RSD PTR ");
        v.push(0); // checksum (not checked here)
        v.extend_from_slice(b"BOCHS ");
        v.push(0); // revision
        v.extend_from_slice(&0x7fe_0000u32.to_le_bytes());
        v
    }

    fn grub_like_mb2() -> Vec<u8> {
        let mut rsdp2 = rsdp_v1();
        rsdp2[15] = 2;
        rsdp2.extend_from_slice(&36u32.to_le_bytes());
        rsdp2.extend_from_slice(&0x7fe_1000u64.to_le_bytes());
        rsdp2.extend_from_slice(&[0, 0, 0, 0]);
        Mb2::new()
            .tag(MB2_TAG_CMDLINE, b"guest_mem=32\0")
            .tag(MB2_TAG_LOADER_NAME, b"GRUB 2.06\0")
            .tag(
                MB2_TAG_MODULE,
                &mb2_module(0x11_0000, 0x11_8000, b"demo hello"),
            )
            .tag(MB2_TAG_MODULE, &mb2_module(0x11_8000, 0x11_9000, b""))
            .tag(MB2_TAG_BASIC_MEMINFO, &[0x7f, 2, 0, 0, 0, 0xfc, 1, 0])
            .tag(
                MB2_TAG_MMAP,
                &mb2_mmap(&[
                    (0, 0x9f000, 1),
                    (0xf0000, 0x10000, 2),
                    (0x10_0000, 0x7ef_0000, 1),
                    (0x7ff_0000, 0x1_0000, 3),
                    (0xfffc_0000, 0x4_0000, 2),
                    (0x1_0000_0000, 0x4000_0000, 1),
                ]),
            )
            .tag(MB2_TAG_ACPI_OLD, &rsdp_v1())
            .tag(MB2_TAG_ACPI_NEW, &rsdp2)
            .finish()
    }

    // ---- multiboot1 -----------------------------------------------------------

    #[test]
    fn mb1_qemu_like() {
        let m = qemu_like_mb1();
        let bi = parse(MULTIBOOT1_MAGIC, 0x9000, &m.window()).unwrap();
        assert_eq!(bi.protocol, Protocol::Multiboot1);
        assert_eq!(
            bi.cmdline.as_str(),
            "/boot/keel guest_mem=16 keel_selftest=ud2"
        );
        assert_eq!(bi.loader_name.as_str(), "qemu");
        assert_eq!(bi.modules().len(), 2);
        assert_eq!(
            bi.modules()[0].range,
            MachineRange::from_len(0x40_0000, 0x1234)
        );
        assert_eq!(bi.modules()[0].cmdline.as_str(), "guest.elf console=hvc");
        assert_eq!(bi.modules()[1].cmdline.as_str(), "");
        assert_eq!(bi.regions().len(), 4);
        assert_eq!(bi.regions()[2].kind, RegionKind::Usable);
        assert_eq!(
            bi.regions()[2].range,
            MachineRange::from_len(0x10_0000, 0x7ee_0000)
        );
        assert_eq!(bi.regions()[3].kind, RegionKind::AcpiReclaimable);
        assert_eq!(bi.ram_top(), MachineAddr(0x800_0000));
        assert_eq!(bi.rsdp, None);
        assert_eq!(bi.dropped, 0);
        // The info structure, the strings, the module list and the map are all
        // recorded as boot data.
        let bd = bi.boot_data();
        for addr in [0x9000u64, 0x9200, 0x9300, 0x9400, 0x9500, 0x9600] {
            assert!(
                bd.iter().any(|r| r.start.0 <= addr && addr < r.end.0),
                "{addr:#x} not recorded"
            );
        }
        let o = Options::parse(bi.cmdline.as_str());
        assert_eq!(o.guest_mem_mib, 16);
        assert_eq!(o.selftest, Some(SelfTest::Ud2));
    }

    #[test]
    fn mb1_without_map_uses_mem_fields() {
        let mut m = Mem::new(0x9000, 0x200);
        m.put32(0x9000, MB1_FLAG_MEM);
        m.put32(0x9004, 640);
        m.put32(0x9008, 1024);
        let bi = parse(MULTIBOOT1_MAGIC, 0x9000, &m.window()).unwrap();
        assert_eq!(bi.regions().len(), 2);
        assert_eq!(
            bi.regions()[1].range,
            MachineRange::from_len(0x10_0000, 0x10_0000)
        );
        assert_eq!(bi.modules().len(), 0);
        assert_eq!(bi.cmdline.as_str(), "");
    }

    #[test]
    fn mb1_bad_pointers_are_errors_not_panics() {
        let mut m = Mem::new(0x9000, 0x200);
        m.put32(0x9000, MB1_FLAG_CMDLINE);
        m.put32(0x9010, 0xdead_0000);
        assert_eq!(
            parse(MULTIBOOT1_MAGIC, 0x9000, &m.window()).unwrap_err(),
            BootInfoError::Unreadable {
                what: "command line",
                addr: 0xdead_0000
            }
        );
        // The info structure itself out of reach.
        assert!(matches!(
            parse(MULTIBOOT1_MAGIC, 0x1_0000, &m.window()),
            Err(BootInfoError::Unreadable { .. })
        ));
        assert_eq!(
            parse(0x1234, 0x9000, &m.window()).unwrap_err(),
            BootInfoError::BadMagic(0x1234)
        );
    }

    #[test]
    fn mb1_malformed_mmap_entry_ends_walk() {
        let mut m = qemu_like_mb1();
        // Second entry claims size 4 (< 20).
        m.put32(0x9500 + 24, 4);
        let bi = parse(MULTIBOOT1_MAGIC, 0x9000, &m.window()).unwrap();
        assert_eq!(bi.regions().len(), 1);
        assert_eq!(bi.dropped, 1);
    }

    #[test]
    fn mb1_huge_module_count_is_bounded() {
        let mut m = Mem::new(0x9000, 0x1000);
        m.put32(0x9000, MB1_FLAG_MODS);
        m.put32(0x9014, 1000);
        m.put32(0x9018, 0x9100);
        let bi = parse(MULTIBOOT1_MAGIC, 0x9000, &m.window()).unwrap();
        assert_eq!(bi.modules().len(), MAX_MODULES);
        assert!(bi.dropped >= 1000 - MAX_MODULES as u32 - 1);
    }

    #[test]
    fn unterminated_cmdline_is_truncated() {
        let mut m = Mem::new(0x9000, 0x2000);
        m.put32(0x9000, MB1_FLAG_CMDLINE);
        m.put32(0x9010, 0x9100);
        for i in 0..0x1000u64 {
            m.put(0x9100 + i, b"x");
        }
        // The buffer ends before a NUL: the read stops at readable memory.
        let bi = parse(MULTIBOOT1_MAGIC, 0x9000, &m.window()).unwrap();
        assert_eq!(bi.cmdline.as_bytes().len(), CMDLINE_MAX);
        assert!(bi.cmdline.truncated());
    }

    // ---- multiboot2 -----------------------------------------------------------

    #[test]
    fn mb2_grub_like() {
        let block = grub_like_mb2();
        let base = 0x1_0000u64;
        let w = Window {
            base,
            bytes: &block,
        };
        let bi = parse(MULTIBOOT2_MAGIC, base, &w).unwrap();
        assert_eq!(bi.protocol, Protocol::Multiboot2);
        assert_eq!(bi.cmdline.as_str(), "guest_mem=32");
        assert_eq!(bi.loader_name.as_str(), "GRUB 2.06");
        assert_eq!(bi.modules().len(), 2);
        assert_eq!(bi.modules()[0].cmdline.as_str(), "demo hello");
        assert_eq!(
            bi.modules()[0].range,
            MachineRange::from_len(0x11_0000, 0x8000)
        );
        assert_eq!(bi.regions().len(), 6);
        assert_eq!(bi.ram_top(), MachineAddr(0x1_4000_0000));
        assert_eq!(bi.usable_bytes(), 0x9f000 + 0x7ef_0000 + 0x4000_0000);
        // The new RSDP wins, and its address points at the copy inside the block.
        let rsdp = bi.rsdp.unwrap();
        assert_eq!(rsdp.revision, 2);
        let off = (rsdp.addr.0 - base) as usize;
        assert_eq!(&block[off..off + 8], b"RSD PTR ");
        assert_eq!(block[off + 15], 2);
        assert_eq!(
            bi.boot_data(),
            &[MachineRange::from_len(base, block.len() as u64)]
        );
        assert_eq!(Options::parse(bi.cmdline.as_str()).guest_mem_mib, 32);
    }

    #[test]
    fn mb2_old_rsdp_only_and_basic_meminfo_fallback() {
        let block = Mb2::new()
            .tag(MB2_TAG_BASIC_MEMINFO, &[0x80, 2, 0, 0, 0, 4, 0, 0])
            .tag(MB2_TAG_ACPI_OLD, &rsdp_v1())
            .finish();
        let bi = parse_multiboot2(0x2000, &block).unwrap();
        assert_eq!(bi.rsdp.unwrap().revision, 0);
        assert_eq!(bi.regions().len(), 2);
        assert_eq!(
            bi.regions()[1].range,
            MachineRange::from_len(0x10_0000, 0x400 * 1024)
        );
    }

    #[test]
    fn mb2_malformed() {
        let good = grub_like_mb2();
        // Tag size smaller than the header.
        let mut b = good.clone();
        b[12..16].copy_from_slice(&4u32.to_le_bytes());
        assert!(matches!(
            parse_multiboot2(0, &b),
            Err(BootInfoError::BadTag { .. })
        ));
        // Tag size running past the block.
        let mut b = good.clone();
        b[12..16].copy_from_slice(&0x10_0000u32.to_le_bytes());
        assert!(matches!(
            parse_multiboot2(0, &b),
            Err(BootInfoError::BadTag { .. })
        ));
        // total_size larger than the buffer / unaligned / tiny.
        let mut b = good.clone();
        b[0..4].copy_from_slice(&((good.len() + 8) as u32).to_le_bytes());
        assert!(matches!(
            parse_multiboot2(0, &b),
            Err(BootInfoError::BadTotalSize(_))
        ));
        let mut b = good.clone();
        b[0..4].copy_from_slice(&9u32.to_le_bytes());
        assert!(matches!(
            parse_multiboot2(0, &b),
            Err(BootInfoError::BadTotalSize(_))
        ));
        // No end tag: cut the block before it.
        let mut b = good[..good.len() - 8].to_vec();
        let n = b.len() as u32;
        b[0..4].copy_from_slice(&n.to_le_bytes());
        assert_eq!(
            parse_multiboot2(0, &b).unwrap_err(),
            BootInfoError::MissingEndTag
        );
        // An mmap tag with a too-small entry size.
        let bad_mmap = Mb2::new()
            .tag(MB2_TAG_MMAP, &[8, 0, 0, 0, 0, 0, 0, 0])
            .finish();
        assert!(matches!(
            parse_multiboot2(0, &bad_mmap),
            Err(BootInfoError::BadTag { .. })
        ));
        // Empty and short inputs.
        assert!(parse_multiboot2(0, &[]).is_err());
        assert!(parse(
            MULTIBOOT2_MAGIC,
            0,
            &Window {
                base: 0,
                bytes: &[1, 2, 3]
            }
        )
        .is_err());
    }

    #[test]
    fn too_many_modules_are_counted() {
        let mut mb = Mb2::new();
        for i in 0..(MAX_MODULES as u32 + 3) {
            mb.tag(
                MB2_TAG_MODULE,
                &mb2_module(i * 0x1000, i * 0x1000 + 0x800, b"m"),
            );
        }
        let bi = parse_multiboot2(0, &mb.finish()).unwrap();
        assert_eq!(bi.modules().len(), MAX_MODULES);
        assert_eq!(bi.dropped, 3);
    }

    #[test]
    fn options() {
        let o = Options::parse("");
        assert_eq!(o, Options::default());
        let o = Options::parse(
            "kernel guest_mem=64 guest_mem=x keel_selftest=pagefault loglevel=debug foo=bar",
        );
        assert_eq!(o.guest_mem_mib, 64);
        assert_eq!(o.selftest, Some(SelfTest::PageFault));
        assert_eq!(o.log_level, log::LevelFilter::Debug);
        assert_eq!(o.bad_values, 1);
        assert_eq!(
            Options::parse("guest_mem=0").guest_mem_mib,
            DEFAULT_GUEST_MEM_MIB
        );
        assert_eq!(
            Options::parse("keel_selftest=panic").selftest,
            Some(SelfTest::Panic)
        );
    }

    #[test]
    fn fixed_str_invalid_utf8_gives_valid_prefix() {
        let s = FixedStr::<16>::from_bytes(b"ab\xffcd");
        assert_eq!(s.as_str(), "ab");
        assert_eq!(s.as_bytes(), b"ab\xffcd");
    }

    proptest! {
        /// Arbitrary bytes (and arbitrary mutations of a good block) never panic the
        /// multiboot2 parser, and whatever it returns stays within its capacities.
        #[test]
        fn mb2_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_multiboot2(0x1000, &bytes);
            let _ = parse(MULTIBOOT2_MAGIC, 0x1000, &Window { base: 0x1000, bytes: &bytes });
        }

        #[test]
        fn mb2_mutated_never_panics(flips in proptest::collection::vec((0usize..400, any::<u8>()), 1..8)) {
            let mut b = grub_like_mb2();
            for (i, v) in flips {
                let n = b.len();
                b[i % n] = v;
            }
            if let Ok(bi) = parse_multiboot2(0, &b) {
                prop_assert!(bi.regions().len() <= MAX_REGIONS);
                prop_assert!(bi.modules().len() <= MAX_MODULES);
            }
        }

        /// Same for multiboot1, whose structure is all pointers.
        #[test]
        fn mb1_mutated_never_panics(flips in proptest::collection::vec((0usize..0x700, any::<u8>()), 1..12)) {
            let mut m = qemu_like_mb1();
            for (i, v) in flips {
                m.bytes[i] = v;
            }
            let _ = parse(MULTIBOOT1_MAGIC, 0x9000, &m.window());
        }
    }
}
