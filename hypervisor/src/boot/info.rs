//! What the boot protocols produce: the memory map, the modules, the boot-data
//! ranges and the strings, copied into fixed-capacity storage ([`BootInfo`]), and
//! why parsing can fail ([`BootInfoError`]).

use super::{MULTIBOOT1_MAGIC, MULTIBOOT2_MAGIC};
use crate::addr::MachineAddr;
use core::fmt;

/// How many memory-map entries we keep (BIOSes report a few dozen at most).
pub const MAX_REGIONS: usize = 128;
/// How many modules we keep: one per domain, as many as the run loop has
/// slots for (`vmx::run::MAX_DOMAINS`).
pub const MAX_MODULES: usize = 32;
/// How many machine ranges of boot information we record.
pub const MAX_BOOT_DATA: usize = 2 * MAX_MODULES + 8;
/// Longest hypervisor command line kept (longer ones are truncated and flagged).
pub const CMDLINE_MAX: usize = 512;
/// Longest module command line kept.
pub const MODULE_CMDLINE_MAX: usize = 256;

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
            start: MachineAddr::new(start),
            end: MachineAddr::new(start.saturating_add(len)),
        }
    }
    /// Length in bytes (0 for an empty or inverted range).
    pub const fn len(&self) -> u64 {
        self.end.get().saturating_sub(self.start.get())
    }
    /// Whether the range holds no byte.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether the two ranges share a byte.
    pub const fn overlaps(&self, other: &MachineRange) -> bool {
        self.start.get() < other.end.get() && other.start.get() < self.end.get()
    }
}

impl fmt::Display for MachineRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}, {:#x})", self.start.get(), self.end.get())
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
        start: MachineAddr::new(0),
        end: MachineAddr::new(0),
    },
    kind: RegionKind::Reserved,
};

impl BootInfo {
    pub(super) fn empty(protocol: Protocol) -> Self {
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
            .unwrap_or(MachineAddr::new(0))
    }
    /// Total bytes of usable RAM in the map.
    pub fn usable_bytes(&self) -> u64 {
        self.regions()
            .iter()
            .filter(|r| r.kind == RegionKind::Usable)
            .map(|r| r.range.len())
            .fold(0u64, u64::saturating_add)
    }

    pub(super) fn push_region(&mut self, start: u64, len: u64, kind: RegionKind) {
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
    pub(super) fn push_module(&mut self, range: MachineRange, cmdline: &[u8]) {
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
    pub(super) fn push_boot_data(&mut self, start: u64, len: u64) {
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
