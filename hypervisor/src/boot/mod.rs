//! What the boot loader told us: the memory map, the hypervisor command line, the
//! modules (guest images) and, from multiboot2, the ACPI RSDP.
//!
//! Two protocols deliver this, with different shapes, each parsed in its own file:
//!
//! - **multiboot2** (GRUB, `multiboot2.rs`): one self-contained block of 8-byte-aligned tags
//!   (`total_size`, reserved, then `type, size, payload` until an end tag). Every
//!   string and the RSDP copy live inside the block, so it parses from one byte slice.
//! - **multiboot1** (QEMU `-kernel`, `multiboot1.rs`): a fixed 116-byte structure whose fields are
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
//!
//! What both produce is in `info.rs`; the hypervisor's own command line
//! ([`Options`]) is read from the result by `cmdline.rs`.

mod cmdline;
mod info;
mod multiboot1;
mod multiboot2;
#[cfg(test)]
mod tests;

pub use cmdline::{DomainOptions, Options, SelfTest, VcpuCpus, DEFAULT_GUEST_MEM_MIB, MAX_RUN_CPU};
pub use info::*;
pub use multiboot1::parse_multiboot1;
pub use multiboot2::{parse_multiboot2, MB2_MAX_TOTAL_SIZE};

/// Multiboot1: the magic value the loader leaves in EAX.
pub const MULTIBOOT1_MAGIC: u32 = 0x2BAD_B002;
/// Multiboot2: the magic value the loader leaves in EAX.
pub const MULTIBOOT2_MAGIC: u32 = 0x36D7_6289;

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
