//! The table: one struct of function pointers per group.

use super::*;

/// Why an MMU operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmuError {
    /// The hypervisor refused the hypercall.
    Refused(Errno),
    /// The instruction faulted (a refused trap-and-emulate is the fault itself).
    Fault(Fault),
    /// A table the guest does not own (no address to write it at).
    NotOwned(Mfn),
}

impl core::fmt::Display for MmuError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MmuError::Refused(e) => write!(f, "refused: {e}"),
            MmuError::Fault(x) => write!(f, "faulted: {x}"),
            MmuError::NotOwned(m) => write!(f, "frame {:#x} not owned", m.get()),
        }
    }
}

/// The cpu group.
#[derive(Clone, Copy)]
pub struct CpuOps {
    /// CPUID.
    pub cpuid: fn(u32, u32) -> CpuidResult,
    /// RDMSR.
    pub read_msr: fn(u32) -> Result<u64, Fault>,
    /// WRMSR.
    pub write_msr: fn(u32, u64) -> Result<(), Fault>,
    /// Read CR0, CR3 or CR4.
    pub read_cr: fn(Cr) -> u64,
    /// Write CR0 or CR4 (CR3 is the mmu group's root).
    pub write_cr: fn(Cr, u64) -> Result<(), Fault>,
    /// Stop interrupts (events).
    pub irq_disable: fn(),
    /// Allow interrupts (events).
    pub irq_enable: fn(),
    /// Allow interrupts and wait for one.
    pub safe_halt: fn(),
}

/// The mmu group. Entries are named by their machine address (`table << 12 |
/// index * 8`), as `mmu_update` names them.
#[derive(Clone, Copy)]
pub struct MmuOps {
    /// Write one entry.
    pub set_pte: fn(u64, u64) -> Result<(), MmuError>,
    /// Load a root (an L4 announced with `alloc_table`).
    pub load_root: fn(Mfn) -> Result<(), MmuError>,
    /// Flush one page's translation.
    pub flush_one: fn(GuestVirt) -> Result<(), MmuError>,
    /// Flush the TLB.
    pub flush_all: fn() -> Result<(), MmuError>,
    /// A frame becomes a table of `level` (the platform's, see the module doc).
    pub alloc_table: fn(u32, Mfn) -> Result<(), MmuError>,
    /// A frame stops being a table (the platform's).
    pub release_table: fn(Mfn) -> Result<(), MmuError>,
}

/// The time group.
#[derive(Clone, Copy)]
pub struct TimeOps {
    /// Nanoseconds of the platform's clock.
    pub clock_ns: fn() -> u64,
    /// Arm the one-shot timer for an absolute time on that clock (0 stops it).
    pub set_timer: fn(u64) -> Result<(), Errno>,
}

/// The irq group.
#[derive(Clone, Copy)]
pub struct IrqOps {
    /// Deliver the timer as an interrupt that calls `handler` (with interrupts
    /// enabled through the cpu group).
    pub bind_timer: fn(fn()) -> Result<(), Errno>,
}

/// The console group.
#[derive(Clone, Copy)]
pub struct ConsoleOps {
    /// Write bytes (a whole line at a time).
    pub write: fn(&[u8]) -> Result<(), Errno>,
}

/// The whole table.
#[derive(Clone, Copy)]
pub struct Ops {
    /// CPU.
    pub cpu: CpuOps,
    /// MMU.
    pub mmu: MmuOps,
    /// Time.
    pub time: TimeOps,
    /// Interrupts.
    pub irq: IrqOps,
    /// Console.
    pub console: ConsoleOps,
}
