//! # Domains
//!
//! A domain is a guest: its machine frames, what each of them is
//! ([`frame_table`]), the state its vCPU starts in ([`BootState`]), and a little
//! per-domain hypervisor state (the partial console line, hypercall counters).
//! [`build()`] makes one from a [`GuestImage`]; [`Domain::teardown`] gives every
//! frame back.
//!
//! The memory model is Xen's direct paging: the guest's page tables hold machine
//! frame numbers and the CPU walks them with no second stage, so the only thing
//! standing between a guest and the rest of the machine is the rule that no page
//! table the CPU can reach maps a frame the domain does not own, or maps a
//! page-table frame writable. In 0.1 the guest can only use the bootstrap tables
//! built here (it has no `mmu_update` or CR3-load path yet); issue 5 adds validated
//! updates on top of the same [`FrameKind`] accounting.

pub mod build;
pub mod frame_table;
pub mod pagetable;

pub use build::{build, BuildError, DomainConfig, Layout, BOOT_STACK_PAGES, DEFAULT_NR_PAGES};
pub use frame_table::FrameKind;
pub use pagetable::Level;

use crate::addr::{GuestVirt, Mfn, Pfn};
use crate::mem::{Console, FrameSource, PhysMem};
use frame_table::FrameTable;

/// A domain identifier (Xen's `domid_t`). Keel's first guest is domain 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainId(pub u16);

/// Where the domain's vCPU starts (the guest-facing contract in `CONTRACT.md`:
/// RIP = entry, RSP = stack_top, RSI = start_info, CR3 = cr3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootState {
    /// The ELF entry point.
    pub entry: GuestVirt,
    /// Top of the boot stack (16-byte aligned; the first push lands just below).
    pub stack_top: GuestVirt,
    /// The start_info page.
    pub start_info: GuestVirt,
    /// The bootstrap L4 (what CR3 holds).
    pub cr3: Mfn,
}

/// The longest partial console line buffered per domain; a longer line is
/// printed in pieces (Xen does the same with its per-domain buffer).
pub const CONSOLE_LINE_MAX: usize = 160;

/// Hypercall numbers counted individually; higher numbers share one counter.
pub const COUNTED_HYPERCALLS: usize = 64;

/// A domain. Made by [`build()`]; must be ended with [`Domain::teardown`] to give
/// its frames back (dropping it leaks them).
#[derive(Debug)]
pub struct Domain {
    /// The domain's identifier.
    pub id: DomainId,
    /// The vCPU's initial state.
    pub boot: BootState,
    layout: Layout,
    nx: bool,
    frames: FrameTable,
    console_line: [u8; CONSOLE_LINE_MAX],
    console_len: usize,
    hypercall_counts: [u64; COUNTED_HYPERCALLS],
    other_hypercalls: u64,
}

impl Domain {
    /// Number of frames the domain owns (`start_info.nr_pages`).
    pub const fn nr_pages(&self) -> u64 {
        self.frames.nr_pages()
    }
    /// Where everything was put at build time.
    pub const fn layout(&self) -> &Layout {
        &self.layout
    }
    /// Whether the domain's page tables may use NX (its EFER.NXE is set): the
    /// builder set NX on non-executable pages, and page walks treat NX as reserved
    /// when this is false.
    pub const fn nx_enabled(&self) -> bool {
        self.nx
    }

    /// Whether the domain owns machine frame `mfn`. O(log n).
    pub fn owns<M: PhysMem + ?Sized>(&self, mem: &M, mfn: Mfn) -> bool {
        self.frames.pfn(mem, mfn).is_some()
    }
    /// The PFN of an owned frame.
    pub fn pfn_of<M: PhysMem + ?Sized>(&self, mem: &M, mfn: Mfn) -> Option<Pfn> {
        self.frames.pfn(mem, mfn)
    }
    /// The machine frame of `pfn`.
    pub fn mfn_of<M: PhysMem + ?Sized>(&self, mem: &M, pfn: Pfn) -> Option<Mfn> {
        self.frames.mfn(mem, pfn)
    }
    /// What `mfn` is to this domain (`NotOwned` if it is not the domain's).
    pub fn frame_kind<M: PhysMem + ?Sized>(&self, mem: &M, mfn: Mfn) -> FrameKind {
        match self.frames.pfn(mem, mfn) {
            Some(pfn) => self.frames.kind_of_pfn(mem, pfn),
            None => FrameKind::NotOwned,
        }
    }

    /// Give every frame back: the domain's own frames (scrubbed, so no guest data
    /// outlives the guest) and the hypervisor frames of its frame table.
    pub fn teardown<M: PhysMem + ?Sized, F: FrameSource + ?Sized>(
        self,
        mem: &mut M,
        frames: &mut F,
    ) {
        self.frames.free(mem, frames);
    }

    /// Append guest console output; complete lines go to `console` as
    /// `(d<id>) <text>\n`. Control characters other than tab are dropped so that a
    /// guest cannot drive the operator's terminal (escape sequences) or forge the
    /// start of a hypervisor line (carriage return).
    pub fn console_write<C: Console + ?Sized>(&mut self, console: &mut C, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\n' => self.console_flush(console),
                b'\t' | 0x20..=0x7e | 0x80..=0xff => {
                    if self.console_len >= CONSOLE_LINE_MAX {
                        self.console_flush(console);
                    }
                    if let Some(slot) = self.console_line.get_mut(self.console_len) {
                        *slot = b;
                        self.console_len += 1;
                    }
                }
                _ => {}
            }
        }
    }

    /// Print the buffered partial line, if any (at shutdown, or when full).
    pub fn console_flush<C: Console + ?Sized>(&mut self, console: &mut C) {
        if self.console_len == 0 {
            return;
        }
        let mut prefix = [0u8; 10]; // "(d65535) " is 9 bytes
        let n = format_prefix(self.id, &mut prefix);
        console.write_bytes(prefix.get(..n).unwrap_or(&[]));
        console.write_bytes(self.console_line.get(..self.console_len).unwrap_or(&[]));
        console.write_bytes(b"\n");
        self.console_len = 0;
    }

    /// The partial console line not yet printed.
    pub fn console_pending(&self) -> &[u8] {
        self.console_line.get(..self.console_len).unwrap_or(&[])
    }

    /// Count one hypercall of number `nr` (for benchmarks and diagnostics).
    pub fn count_hypercall(&mut self, nr: u64) {
        let slot = usize::try_from(nr)
            .ok()
            .and_then(|i| self.hypercall_counts.get_mut(i));
        match slot {
            Some(c) => *c = c.wrapping_add(1),
            None => self.other_hypercalls = self.other_hypercalls.wrapping_add(1),
        }
    }
    /// How many hypercalls of number `nr` the domain made (numbers at or above
    /// [`COUNTED_HYPERCALLS`] share one counter).
    pub fn hypercall_count(&self, nr: u64) -> u64 {
        usize::try_from(nr)
            .ok()
            .and_then(|i| self.hypercall_counts.get(i).copied())
            .unwrap_or(self.other_hypercalls)
    }
}

/// Write `"(d<id>) "` into `out`; returns its length.
fn format_prefix(id: DomainId, out: &mut [u8; 10]) -> usize {
    let mut digits = [0u8; 5];
    let mut v = id.0;
    let mut nd = 0;
    loop {
        if let Some(d) = digits.get_mut(nd) {
            *d = b'0' + (v % 10) as u8;
        }
        nd += 1;
        v /= 10;
        if v == 0 || nd >= digits.len() {
            break;
        }
    }
    let mut n = 0;
    let mut put = |b: u8| {
        if let Some(s) = out.get_mut(n) {
            *s = b;
            n += 1;
        }
    };
    put(b'(');
    put(b'd');
    for i in (0..nd).rev() {
        put(digits.get(i).copied().unwrap_or(b'?'));
    }
    put(b')');
    put(b' ');
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let mut b = [0u8; 10];
        for (id, want) in [
            (0u16, "(d0) "),
            (1, "(d1) "),
            (42, "(d42) "),
            (65535, "(d65535) "),
        ] {
            let n = format_prefix(DomainId(id), &mut b);
            assert_eq!(&b[..n], want.as_bytes());
        }
    }
}
