//! # The domain builder
//!
//! Turns a validated [`GuestImage`] into a runnable [`Domain`], laying out its
//! memory exactly as `abi/src/start_info.rs` documents (the layout of Xen's PV
//! domain builder, `xen/arch/x86/pv/dom0_build.c`, simplified):
//!
//! ```text
//!  PFN 0                                                         nr_pages
//!  | image ... | mfn_list | start_info | L4 L3.. L2.. L1.. | stack | free ... |
//!  ^ virt_base                          ^ pt_base (read-only) ^ stack_top
//! ```
//!
//! Every PFN `p` is mapped at `virt_base + p * 4096`, with 4 KiB pages only:
//!
//! | region        | RW | NX (if enabled)          | frame kind        |
//! |---------------|----|--------------------------|-------------------|
//! | image pages   | if a segment on it is `PF_W` | unless a segment on it is `PF_X` | `Writable` |
//! | mfn_list      | yes | yes                     | `Writable`        |
//! | start_info    | yes | yes                     | `Writable`        |
//! | page tables   | **no** | yes                  | `PageTable(level)`|
//! | stack, free   | yes | yes                     | `Writable`        |
//!
//! Pages of the image not covered by any segment (gaps between segments) are
//! ordinary writable, non-executable memory. A page shared by two segments gets the
//! union of their permissions.
//!
//! **NX assumption.** The NX bit is a *reserved* bit unless the guest runs with
//! EFER.NXE=1, and a reserved bit in a page-table entry faults on every access. So
//! the builder sets NX only when [`DomainConfig::nx`] says the guest's EFER.NXE will
//! be set: the caller must set it to exactly what the VMX code puts in the guest's
//! EFER (the vmx worker enables NXE when the CPU has it).
//!
//! The builder never writes outside the domain's own frames (and its hypervisor
//! frame table), and the tables it builds reference only the domain's frames.
//! Before the guest runs, its L4 is pinned and made the base ([`crate::paging`]), so
//! the bootstrap tables are validated and typed like any the guest builds later.

use super::{BootState, Domain, DomainId, COUNTED_HYPERCALLS, GRANT_TABLE_FRAMES};
use crate::addr::{GuestVirt, MachineAddr, Mfn, Pfn, PAGE_SIZE};
use crate::domain::elf::GuestImage;
use crate::mem::{FrameSource, PhysMem};
use crate::paging::entry::{entry_addr, EntryMem, Level, Pte, PteFlags};
use crate::paging::frame_table::{FrameTable, FrameTableError, MAX_DOMAIN_PAGES};
use crate::paging::{Flush, Mm};
use keel_abi::platform::ExitStatus;
use keel_abi::start_info::{StartInfo, MAX_GUEST_CMDLINE};
use keel_abi::version::AbiVersion;

/// The default guest memory: 8 MiB.
pub const DEFAULT_NR_PAGES: u64 = 2048;
/// Pages of boot stack.
pub const BOOT_STACK_PAGES: u64 = 4;

/// What to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainConfig<'a> {
    /// The domain's identifier.
    pub id: DomainId,
    /// How many frames the domain gets (`start_info.nr_pages`).
    pub nr_pages: u64,
    /// The guest's command line (at most `MAX_GUEST_CMDLINE - 1` bytes, no NUL).
    pub cmd_line: &'a [u8],
    /// Whether the guest will run with EFER.NXE=1, so that the builder may set NX
    /// on non-executable pages. See the module documentation.
    pub nx: bool,
}

impl<'a> DomainConfig<'a> {
    /// Defaults: 8 MiB, empty command line, no NX.
    pub const fn new(id: DomainId) -> Self {
        DomainConfig {
            id,
            nr_pages: DEFAULT_NR_PAGES,
            cmd_line: b"",
            nx: false,
        }
    }
}

/// Why a domain could not be built. Displayed as one line for the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The image was built against an ABI this hypervisor does not implement.
    AbiUnsupported {
        /// The image's `NT_KEEL_ABI_VERSION`.
        guest: AbiVersion,
        /// [`AbiVersion::CURRENT`].
        hypervisor: AbiVersion,
    },
    /// `nr_pages` is zero or above the maximum.
    BadNrPages {
        /// The requested number.
        nr_pages: u64,
    },
    /// The command line does not fit `start_info.cmd_line`, or contains a NUL.
    BadCmdLine {
        /// Its length.
        len: usize,
    },
    /// The bytes passed are not the image the [`GuestImage`] was parsed from
    /// (a segment's file range lies outside them).
    ImageMismatch,
    /// The image, frame list, start_info, page tables and stack need more pages
    /// than the domain has.
    TooSmall {
        /// Pages needed.
        needed: u64,
        /// Pages the domain has.
        nr_pages: u64,
    },
    /// `virt_base + nr_pages * 4096` leaves the canonical half the image is in.
    AddressSpace,
    /// Not enough free machine frames.
    OutOfMemory {
        /// Pages requested.
        nr_pages: u64,
    },
    /// The frame source returned a frame twice or beyond the architectural maximum.
    BadFrame(Mfn),
    /// The bootstrap tables failed validation (a builder bug).
    BootstrapTables,
}

impl BuildError {
    /// The power-off status for this failure.
    pub const fn exit_status(&self) -> ExitStatus {
        match self {
            BuildError::OutOfMemory { .. } => ExitStatus::OutOfMemory,
            _ => ExitStatus::BadGuestImage,
        }
    }
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BuildError::AbiUnsupported { guest, hypervisor } => write!(
                f,
                "guest needs ABI {guest}, this hypervisor implements {hypervisor}"
            ),
            BuildError::BadNrPages { nr_pages } => write!(
                f,
                "bad guest memory size: {nr_pages} pages (1..={MAX_DOMAIN_PAGES})"
            ),
            BuildError::BadCmdLine { len } => write!(
                f,
                "guest command line of {len} bytes does not fit ({} max, no NUL)",
                MAX_GUEST_CMDLINE - 1
            ),
            BuildError::ImageMismatch => write!(f, "image bytes do not match the parsed image"),
            BuildError::TooSmall { needed, nr_pages } => write!(
                f,
                "guest needs at least {needed} pages ({} KiB) for its image and boot data, \
                 the domain has {nr_pages}",
                needed * 4
            ),
            BuildError::AddressSpace => write!(
                f,
                "guest memory mapped at the image base would leave the canonical address range"
            ),
            BuildError::OutOfMemory { nr_pages } => write!(
                f,
                "out of memory allocating {nr_pages} guest pages ({} KiB)",
                nr_pages * 4
            ),
            BuildError::BadFrame(m) => {
                write!(f, "frame allocator returned a bad frame {:#x}", m.get())
            }
            BuildError::BootstrapTables => {
                write!(
                    f,
                    "the bootstrap page tables failed validation (builder bug)"
                )
            }
        }
    }
}

/// Where everything goes: the bootstrap layout, computed before any frame is
/// allocated (so a guest that does not fit costs nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Where PFN 0 is mapped: the lowest loadable address, rounded down to a page.
    pub virt_base: GuestVirt,
    /// Total frames.
    pub nr_pages: u64,
    /// Image pages: PFN 0 .. image_pages.
    pub image_pages: u64,
    /// First PFN of the frame list.
    pub mfn_list: Pfn,
    /// Pages of the frame list (8 bytes per PFN).
    pub mfn_list_pages: u64,
    /// The start_info page.
    pub start_info: Pfn,
    /// The first page-table frame (the L4); then L3s, L2s, L1s.
    pub page_tables: Pfn,
    /// Number of L3 tables.
    pub nr_l3: u64,
    /// Number of L2 tables.
    pub nr_l2: u64,
    /// Number of L1 tables.
    pub nr_l1: u64,
    /// First stack page.
    pub stack: Pfn,
    /// First free page (nothing of the builder's after this).
    pub first_free: Pfn,
}

impl Layout {
    /// Compute the layout for `img` in `nr_pages` frames.
    pub fn compute(img: &GuestImage, nr_pages: u64) -> Result<Layout, BuildError> {
        if nr_pages == 0 || nr_pages > MAX_DOMAIN_PAGES {
            return Err(BuildError::BadNrPages { nr_pages });
        }
        let virt_base = img.virt_base();
        // The whole domain is mapped contiguously from virt_base: that range must
        // be canonical and stay in one half (nr_pages <= 2^24, so no overflow in
        // the multiplication).
        let span = nr_pages * PAGE_SIZE;
        let last = virt_base
            .get()
            .checked_add(span - 1)
            .ok_or(BuildError::AddressSpace)?;
        if !GuestVirt::new(last).is_canonical() || (last >> 63) != (virt_base.get() >> 63) {
            return Err(BuildError::AddressSpace);
        }
        // Tables needed to map [virt_base, last]: one per distinct index at each level.
        let count = |shift: u32| (last >> shift) - (virt_base.get() >> shift) + 1;
        let (nr_l3, nr_l2, nr_l1) = (count(39), count(30), count(21));

        let image_pages = img.nr_image_pages();
        let mfn_list_pages = (nr_pages * 8).div_ceil(PAGE_SIZE);
        let mfn_list = Pfn::new(image_pages);
        let start_info = Pfn::new(mfn_list.get() + mfn_list_pages);
        let page_tables = Pfn::new(start_info.get() + 1);
        let stack = Pfn::new(page_tables.get() + 1 + nr_l3 + nr_l2 + nr_l1);
        let first_free = Pfn::new(stack.get() + BOOT_STACK_PAGES);
        if first_free.get() > nr_pages {
            return Err(BuildError::TooSmall {
                needed: first_free.get(),
                nr_pages,
            });
        }
        Ok(Layout {
            virt_base,
            nr_pages,
            image_pages,
            mfn_list,
            mfn_list_pages,
            start_info,
            page_tables,
            nr_l3,
            nr_l2,
            nr_l1,
            stack,
            first_free,
        })
    }

    /// Where PFN `pfn` is mapped.
    pub const fn va(&self, pfn: Pfn) -> GuestVirt {
        GuestVirt::new(self.virt_base.get() + pfn.get() * PAGE_SIZE)
    }
    /// Number of bootstrap page-table frames (`start_info.nr_pt_frames`).
    pub const fn nr_pt_frames(&self) -> u64 {
        1 + self.nr_l3 + self.nr_l2 + self.nr_l1
    }
    /// The level of the bootstrap table at `pfn`, if it is one.
    pub const fn table_level(&self, pfn: Pfn) -> Option<Level> {
        let Some(i) = pfn.get().checked_sub(self.page_tables.get()) else {
            return None;
        };
        if i == 0 {
            Some(Level::L4)
        } else if i < 1 + self.nr_l3 {
            Some(Level::L3)
        } else if i < 1 + self.nr_l3 + self.nr_l2 {
            Some(Level::L2)
        } else if i < self.nr_pt_frames() {
            Some(Level::L1)
        } else {
            None
        }
    }
    /// The PFN of the bootstrap table at `level` that translates `va` (for L4,
    /// the root).
    fn table_for(&self, level: Level, va: GuestVirt) -> Pfn {
        // Tables of one level are in address order: the j-th covers the j-th
        // distinct value of va >> span_shift from virt_base on.
        let j = |shift: u32| (va.get() >> shift) - (self.virt_base.get() >> shift);
        let base = self.page_tables.get();
        match level {
            Level::L4 => Pfn::new(base),
            Level::L3 => Pfn::new(base + 1 + j(Level::L3.table_span_shift())),
            Level::L2 => Pfn::new(base + 1 + self.nr_l3 + j(Level::L2.table_span_shift())),
            Level::L1 => {
                Pfn::new(base + 1 + self.nr_l3 + self.nr_l2 + j(Level::L1.table_span_shift()))
            }
        }
    }
}

/// Build a domain from `img` (parsed from `bytes`). On failure every frame taken
/// is given back.
pub fn build<M: PhysMem + ?Sized, F: FrameSource + ?Sized>(
    img: &GuestImage,
    bytes: &[u8],
    cfg: &DomainConfig<'_>,
    mem: &mut M,
    frames: &mut F,
) -> Result<Domain, BuildError> {
    // GuestImage::parse already refused an image without the ABI note; here the
    // version decides (`AbiVersion::can_run`: same major and minor not newer, or
    // a 0.x guest on a 1.x hypervisor).
    // A guest may also declare the version in progress (when one is): it is
    // then served the staged calls that are already wired.
    let preview = Some(img.abi_version()) == keel_abi::layout::IN_PROGRESS;
    if !AbiVersion::CURRENT.can_run(img.abi_version()) && !preview {
        return Err(BuildError::AbiUnsupported {
            guest: img.abi_version(),
            hypervisor: AbiVersion::CURRENT,
        });
    }
    let presented = AbiVersion::CURRENT.presented_to(img.abi_built());
    // What it is served: what its image knows, up to this hypervisor's version
    // (`Domain::serves`).
    let served = AbiVersion::CURRENT.served_to(
        img.abi_version(),
        img.abi_built(),
        keel_abi::layout::IN_PROGRESS,
    );
    if presented != AbiVersion::CURRENT {
        log::info!(
            "domain {}: built against ABI {} before 1.0: presenting ABI {} as {presented}",
            cfg.id.0,
            img.abi_version(),
            AbiVersion::CURRENT
        );
    }
    if cfg.cmd_line.len() >= MAX_GUEST_CMDLINE || cfg.cmd_line.contains(&0) {
        return Err(BuildError::BadCmdLine {
            len: cfg.cmd_line.len(),
        });
    }
    let in_bytes = |s: &crate::domain::elf::Segment| {
        s.offset
            .checked_add(s.filesz)
            .is_some_and(|e| e <= bytes.len() as u64)
    };
    if !img.segments().iter().all(in_bytes) {
        return Err(BuildError::ImageMismatch);
    }
    let layout = Layout::compute(img, cfg.nr_pages)?;

    // The grant-table frames follow the guest's memory (PFNs nr_pages and up):
    // the domain owns them, so it may map them, but they are not in its frame
    // list and nothing else uses them (`GNTTABOP_setup_table` hands them out).
    let owned = cfg.nr_pages + GRANT_TABLE_FRAMES;
    let table = FrameTable::alloc(owned, mem, frames).map_err(|e| match e {
        FrameTableError::OutOfMemory => BuildError::OutOfMemory {
            nr_pages: cfg.nr_pages,
        },
        FrameTableError::BadFrame(m) => BuildError::BadFrame(m),
    })?;
    // From here on nothing can fail: every PFN below nr_pages has a frame.
    let mfn = |mem: &M, pfn: Pfn| table.mfn(mem, pfn).unwrap_or(Mfn::new(0));

    load_segments(img, bytes, &layout, mem, &mfn);
    write_mfn_list(&layout, mem, &mfn);
    write_start_info(&layout, cfg.cmd_line, mem, &mfn);
    build_page_tables(img, &layout, cfg.nx, mem, &mfn);

    // The guest starts consistent: its bootstrap L4 is pinned (validating every
    // table under it, which types the table frames and every writable-mapped
    // frame) and is the vCPU's base. Validation cannot fail on tables built to the
    // rules; if it did, that is a builder bug, reported rather than run.
    let cr3 = mfn(mem, layout.page_tables);
    let mut mm = Mm {
        ft: &table,
        mem: &mut *mem,
        nx: cfg.nx,
    };
    if let Err(e) = mm.pin(cr3, Level::L4).and_then(|()| mm.set_base(None, cr3)) {
        let _ = e;
        mm.release_all(None);
        table.free(mem, frames);
        return Err(BuildError::BootstrapTables);
    }
    Ok(Domain {
        id: cfg.id,
        boot: BootState {
            entry: img.entry(),
            // The top of the last stack page is page aligned, so 16-byte aligned.
            stack_top: layout.va(layout.first_free),
            start_info: layout.va(layout.start_info),
            cr3,
        },
        layout,
        nx: cfg.nx,
        frames: table,
        base: cr3,
        vcpu_bases: [None; super::vcpus::MAX_VCPUS],
        loaded: 0,
        flush: Flush::None,
        console: crate::console::LineBuf::new(),
        console_prefix: super::console_prefix_for(cfg.id),
        console_cache: crate::paging::read_cache::ReadCache::new(),
        mm_job: crate::paging::job::Job::IDLE,
        mm_owner: 0,
        hypercall_counts: [0; COUNTED_HYPERCALLS],
        other_hypercalls: 0,
        abi_encoded: presented.encode(),
        served,
        name: name_of(cfg.cmd_line),
        vcpus: super::vcpus::VcpuTable::new(vcpus_of(cfg.cmd_line), 0),
    })
}

/// A domain's number of vCPUs: `keel.vcpus=` on its command line, else 1.
fn vcpus_of(cmd_line: &[u8]) -> u8 {
    core::str::from_utf8(cmd_line)
        .ok()
        .and_then(|c| crate::boot::DomainOptions::parse(c).vcpus)
        .unwrap_or(1)
}

/// A domain's name: the first word of its command line (the loader puts the
/// image's name there), cut to 16 bytes, zero-padded.
fn name_of(cmd_line: &[u8]) -> [u8; 16] {
    let mut name = [0u8; 16];
    let word = cmd_line
        .split(|b| b.is_ascii_whitespace())
        .find(|w| !w.is_empty())
        .unwrap_or(&[]);
    for (d, s) in name.iter_mut().zip(word) {
        *d = *s;
    }
    name
}

/// Copy each segment's file bytes into its frames, page by page (frames are
/// already zero, which provides `.bss`).
fn load_segments<M: PhysMem + ?Sized>(
    img: &GuestImage,
    bytes: &[u8],
    layout: &Layout,
    mem: &mut M,
    mfn: &impl Fn(&M, Pfn) -> Mfn,
) {
    for s in img.segments() {
        let mut done = 0u64;
        while done < s.filesz {
            let va = s.vaddr.get() + done;
            let off_in_page = va % PAGE_SIZE;
            let n = (PAGE_SIZE - off_in_page).min(s.filesz - done);
            let pfn = Pfn::new((va - layout.virt_base.get()) / PAGE_SIZE);
            let src = usize::try_from(s.offset + done)
                .ok()
                .and_then(|a| Some((a, a.checked_add(usize::try_from(n).ok()?)?)))
                .and_then(|(a, b)| bytes.get(a..b));
            if let Some(src) = src {
                let dst = mfn(mem, pfn);
                mem.write(MachineAddr::new(dst.addr().get() + off_in_page), src);
            }
            done += n;
        }
    }
}

/// The guest's frame list: one little-endian MFN per PFN.
fn write_mfn_list<M: PhysMem + ?Sized>(
    layout: &Layout,
    mem: &mut M,
    mfn: &impl Fn(&M, Pfn) -> Mfn,
) {
    let per_page = PAGE_SIZE / 8;
    for pfn in 0..layout.nr_pages {
        let page = mfn(mem, Pfn::new(layout.mfn_list.get() + pfn / per_page));
        let value = mfn(mem, Pfn::new(pfn)).get();
        mem.write_u64(
            MachineAddr::new(page.addr().get() + (pfn % per_page) * 8),
            value,
        );
    }
}

fn write_start_info<M: PhysMem + ?Sized>(
    layout: &Layout,
    cmd_line: &[u8],
    mem: &mut M,
    mfn: &impl Fn(&M, Pfn) -> Mfn,
) {
    let mut si = StartInfo::new();
    si.nr_pages = layout.nr_pages;
    si.flags = 0;
    si.pt_base = layout.va(layout.page_tables);
    si.nr_pt_frames = layout.nr_pt_frames();
    si.mfn_list = layout.va(layout.mfn_list);
    si.set_cmd_line(cmd_line);
    let page = mfn(mem, layout.start_info);
    mem.write(page.addr(), &si.encode());
}

/// Fill the bootstrap tables: every PFN mapped at `virt_base + pfn * 4096`.
fn build_page_tables<M: PhysMem + ?Sized>(
    img: &GuestImage,
    layout: &Layout,
    nx: bool,
    mem: &mut M,
    mfn: &impl Fn(&M, Pfn) -> Mfn,
) {
    // Non-leaf entries allow everything; the leaf decides (the effective
    // permission is the AND of all levels). A is preset so the CPU need not set it.
    let nonleaf = PteFlags::PRESENT | PteFlags::WRITABLE | PteFlags::ACCESSED;
    for pfn in 0..layout.nr_pages {
        let va = layout.va(Pfn::new(pfn));
        // Link the upper levels the first time a table is reached, i.e. when va
        // is the first address of the table below (or of the domain).
        for (upper, lower) in [
            (Level::L4, Level::L3),
            (Level::L3, Level::L2),
            (Level::L2, Level::L1),
        ] {
            let span = 1u64 << lower.table_span_shift();
            if pfn == 0 || va.get().is_multiple_of(span) {
                let t = mfn(mem, layout.table_for(upper, va));
                let child = mfn(mem, layout.table_for(lower, va));
                mem.write_pte(
                    entry_addr(t, va.table_index(upper.number())),
                    Pte::new(child, nonleaf),
                );
            }
        }
        let (writable, exec) = page_permissions(img, layout, Pfn::new(pfn));
        let mut flags = PteFlags::PRESENT | PteFlags::ACCESSED;
        if writable {
            flags |= PteFlags::WRITABLE | PteFlags::DIRTY;
        }
        if nx && !exec {
            flags |= PteFlags::NO_EXECUTE;
        }
        let l1 = mfn(mem, layout.table_for(Level::L1, va));
        mem.write_pte(
            entry_addr(l1, va.table_index(1)),
            Pte::new(mfn(mem, Pfn::new(pfn)), flags),
        );
    }
}

/// (writable, executable) for the page at `pfn`.
fn page_permissions(img: &GuestImage, layout: &Layout, pfn: Pfn) -> (bool, bool) {
    if layout.table_level(pfn).is_some() {
        return (false, false);
    }
    if pfn.get() >= layout.image_pages {
        return (true, false);
    }
    let start = layout.va(pfn).get();
    let end = start + PAGE_SIZE;
    let mut covered = false;
    let (mut w, mut x) = (false, false);
    for s in img
        .segments()
        .iter()
        .filter(|s| s.vaddr.get() < end && s.end() > start)
    {
        covered = true;
        w |= s.writable();
        x |= s.executable();
    }
    if covered {
        (w, x)
    } else {
        (true, false)
    }
}

#[cfg(test)]
mod tests;
