//! The ABI as data: a machine-readable description of everything in this crate
//! that a guest or a frozen hypervisor binary depends on.
//!
//! Keel promises that a released ABI version never changes: a guest built against
//! 0.1 runs on every later 0.x hypervisor, and the current guest copes with a 0.1
//! hypervisor. A promise like that is only as good as its checking, so the ABI is
//! described here *as data derived from the real types and constants*:
//!
//! - [`STRUCTS`]: each `#[repr(C)]` structure's size and alignment and each field's
//!   offset and size, computed by `size_of`/`align_of`/`offset_of!` (the
//!   `abi_struct!` macro also destructures the type without `..`, so a field added
//!   to a structure and forgotten here is a compile error);
//! - [`constants`]: every constant, registered by the same macro that defines it
//!   (`abi_consts!` in `lib.rs`), so the number a program uses and the number
//!   frozen in a fixture are one and the same;
//! - the hypercall numbers and their implementation status
//!   ([`crate::hypercall::ALL`]), the error codes ([`crate::errno::ALL`]), the
//!   power-off statuses and test categories;
//! - [`GOLDEN`]: byte encodings of sample arguments produced by the real encoders
//!   ([`crate::start_info::StartInfo::encode`] and friends), which catch what a
//!   layout cannot: an encoder that writes a field at the wrong offset.
//!
//! [`write_fixture`] renders all of it in the fixture format, one item per line
//! (`abi/fixtures/<version>/layout.txt` is its output at release time), and, with
//! the `alloc` feature, [`dump`] returns it as a `String` and [`check`] compares a
//! released fixture with the current crate, naming every item that changed or
//! vanished. `cargo keel abi dump|check` and this crate's tests call them.
//!
//! The data also says how each item relates to Xen ([`XenRelation`]):
//! `ci/xen-abi-check` prints Xen's values from Debian's `libxen-dev` headers and a
//! test compares every item that claims to be Xen's; deliberate differences are
//! listed by [`divergences`] and documented in `docs/abi/`.

use crate::mmu::{MmuUpdate, MmuextOp, MulticallEntry};
use core::fmt;
use core::mem::{align_of, offset_of, size_of};

use crate::debug::PerfCounters;
use crate::domctl::{XenDomctl, XenDomctlGetdomaininfo};
use crate::event::{
    EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindVcpu, EvtchnBindVirq,
    EvtchnPort, EvtchnStatus, XenHvmParam,
};
use crate::grant_table::{
    GnttabCopy, GnttabCopyPtr, GnttabMapGrantRef, GnttabQuerySize, GnttabSetupTable,
    GnttabUnmapGrantRef, GrantEntryV1,
};
use crate::hypercall::Hypercall;
use crate::note;
use crate::platform::ExitStatus;
use crate::ring::SringHeader;
use crate::sched::{SchedPoll, SchedShutdown};
use crate::start_info::{ConsoleDomU, StartInfo};
use crate::time::{
    ArchSharedInfo, ArchVcpuInfo, SharedInfo, VcpuInfo, VcpuSetPeriodicTimer,
    VcpuSetSingleshotTimer, VcpuTimeInfo,
};
use crate::version::{AbiVersion, XenExtraversion, XenFeatureInfo};

mod xen_scope;
pub use xen_scope::{XenAbsent, XenScope, XEN_NOT_ADOPTED, XEN_SCOPE, XEN_STRUCT_ALIASES};

#[cfg(feature = "alloc")]
mod check;
#[cfg(feature = "alloc")]
pub mod markdown;
#[cfg(feature = "alloc")]
pub use check::{check, check_against, dump, Problem, Violation};

/// Every ABI version that has been released, oldest first. A released version has
/// a frozen fixture directory `abi/fixtures/<version>/`; the crate's tests check the
/// current crate against every one of them (see `docs/abi-versioning.md`).
pub const RELEASED: &[AbiVersion] = &[AbiVersion::V0_1, AbiVersion::V1_0];

/// The oldest released version a hypervisor of version `hv` runs
/// ([`AbiVersion::can_run`]): the version a guest declares when it wants to run on
/// every released hypervisor `hv` can stand for and detects newer features at run
/// time, as the compatibility guest does. For a 1.x hypervisor that is 0.1: major
/// 0 is the pre-release series of 1, and 1.0 runs every 0.x guest.
pub const fn oldest_release_runnable_by(hv: AbiVersion) -> Option<AbiVersion> {
    let mut i = 0;
    while i < RELEASED.len() {
        if hv.can_run(RELEASED[i]) {
            return Some(RELEASED[i]);
        }
        i += 1;
    }
    None
}

/// The part of the ABI an item belongs to. Each family has one page in
/// `docs/abi/` ([`Family::doc_page`]) that must describe every item of the family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// Page size and address conventions ([`crate::addr`]).
    Addr,
    /// `console_io` ([`crate::console`]).
    Console,
    /// Error codes ([`crate::errno`]).
    Errno,
    /// Hypercall numbers ([`crate::hypercall`]).
    Hypercall,
    /// The guest image notes ([`crate::note`]).
    Note,
    /// The power-off protocol ([`crate::platform`]).
    Platform,
    /// `sched_op` ([`crate::sched`]).
    Sched,
    /// The start-of-day page ([`crate::start_info`]).
    StartInfo,
    /// `xen_version`, versioning and CPUID leaves ([`crate::version`]).
    Version,
    /// Event channels and the upcall vector ([`crate::event`]).
    Event,
    /// `shared_info`, pvclock and timers ([`crate::time`]).
    Time,
    /// `mmu_update`, `mmuext_op`, `multicall` ([`crate::mmu`]).
    Mmu,
    /// `keel_debug_op`: the floor hypercall and the VMX counters ([`crate::debug`]).
    Debug,
    /// `grant_table_op`: grant tables v1 ([`crate::grant_table`]; 1.1, in progress).
    Grant,
    /// `domctl`: the control domain's subset ([`crate::domctl`]; 1.1, in progress).
    Domctl,
    /// The split-driver shared ring of `io/ring.h` ([`crate::ring`]; 1.1, in progress).
    Ring,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 16] = [
        Family::Addr,
        Family::Console,
        Family::Errno,
        Family::Hypercall,
        Family::Note,
        Family::Platform,
        Family::Sched,
        Family::StartInfo,
        Family::Version,
        Family::Event,
        Family::Time,
        Family::Mmu,
        Family::Debug,
        Family::Grant,
        Family::Domctl,
        Family::Ring,
    ];

    /// The module name, used as the prefix of item names in fixtures (`sched.SCHEDOP_YIELD`).
    pub const fn module(self) -> &'static str {
        match self {
            Family::Addr => "addr",
            Family::Console => "console",
            Family::Errno => "errno",
            Family::Hypercall => "hypercall",
            Family::Note => "note",
            Family::Platform => "platform",
            Family::Sched => "sched",
            Family::StartInfo => "start_info",
            Family::Version => "version",
            Family::Event => "event",
            Family::Time => "time",
            Family::Mmu => "mmu",
            Family::Debug => "debug",
            Family::Grant => "grant_table",
            Family::Domctl => "domctl",
            Family::Ring => "ring",
        }
    }

    /// The page of `docs/abi/` that documents this family.
    pub const fn doc_page(self) -> &'static str {
        match self {
            Family::Addr | Family::StartInfo => "start_info.md",
            Family::Console => "console.md",
            Family::Errno => "errno.md",
            Family::Hypercall => "README.md",
            Family::Note => "image.md",
            Family::Platform => "platform.md",
            Family::Sched => "sched.md",
            Family::Version => "version.md",
            Family::Event => "events.md",
            Family::Time => "time.md",
            Family::Mmu => "mmu.md",
            Family::Debug => "debug.md",
            Family::Grant | Family::Ring => "grant.md",
            Family::Domctl => "domains.md",
        }
    }

    /// The hypercall this family is the interface of, if any (the first of
    /// [`Family::hypercalls`]).
    pub const fn hypercall(self) -> Option<Hypercall> {
        match self.hypercalls() {
            [h, ..] => Some(*h),
            [] => None,
        }
    }

    /// The hypercalls this family is the interface of (documented on its page).
    pub const fn hypercalls(self) -> &'static [Hypercall] {
        match self {
            Family::Console => &[Hypercall::CONSOLE_IO],
            Family::Sched => &[Hypercall::SCHED_OP],
            Family::Version => &[Hypercall::XEN_VERSION],
            Family::Event => &[Hypercall::EVENT_CHANNEL_OP, Hypercall::HVM_OP],
            Family::Time => &[Hypercall::SET_TIMER_OP, Hypercall::VCPU_OP],
            Family::Mmu => &[
                Hypercall::MMU_UPDATE,
                Hypercall::MMUEXT_OP,
                Hypercall::MULTICALL,
            ],
            Family::Grant => &[Hypercall::GRANT_TABLE_OP],
            Family::Domctl => &[Hypercall::DOMCTL],
            _ => &[],
        }
    }

    /// The family whose page documents hypercall `h` in detail, if Keel implements it.
    pub fn of_hypercall(h: Hypercall) -> Option<Family> {
        Family::ALL
            .into_iter()
            .find(|f| f.hypercalls().contains(&h))
    }
}

/// How an item relates to Xen's public interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XenRelation {
    /// The item *is* Xen's item of this name (Xen's spelling, e.g. `"SCHEDOP_yield"`
    /// or `"start_info"`), with the same value or layout: `ci/xen-abi-check` and
    /// `abi/tests/xen_cross_check.rs` verify it against Xen's headers.
    Same(&'static str),
    /// The item differs from Xen *on purpose*. `xen` names Xen's corresponding item
    /// when there is one (the cross-check then verifies that it exists and shows both
    /// values); `why` is the reason, repeated in the documentation.
    Differs {
        /// Xen's corresponding item, if any.
        xen: Option<&'static str>,
        /// Why Keel differs.
        why: &'static str,
    },
    /// Keel's own item with no Xen counterpart (ELF notes, power-off protocol).
    KeelOnly,
}

/// `=> xen("NAME")` in `abi_consts!`: the constant is Xen's `NAME`.
pub(crate) const fn xen(name: &'static str) -> XenRelation {
    XenRelation::Same(name)
}
/// `=> keel()` in `abi_consts!`: Keel's own constant.
pub(crate) const fn keel() -> XenRelation {
    XenRelation::KeelOnly
}
/// `=> differs(Some("XEN_NAME"), "why")` in `abi_consts!`: a deliberate difference.
pub(crate) const fn differs(xen: Option<&'static str>, why: &'static str) -> XenRelation {
    XenRelation::Differs { xen, why }
}

/// The value of a constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConstValue {
    /// A non-negative integer.
    Int(u64),
    /// A byte string (magic strings, signatures, note names).
    Bytes(&'static [u8]),
    /// A negative integer (Xen's `GNTST_*` status codes); C sees it as the
    /// two's-complement `unsigned long long`.
    Signed(i64),
}

impl fmt::Display for ConstValue {
    /// Decimal for integers; `b"..."` with `\xNN` escapes for byte strings.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConstValue::Int(v) => write!(f, "{v}"),
            ConstValue::Signed(v) => write!(f, "{v}"),
            ConstValue::Bytes(b) => {
                f.write_str("b\"")?;
                for &c in b.iter() {
                    if c.is_ascii_graphic() && c != b'"' && c != b'\\' || c == b' ' {
                        write!(f, "{}", c as char)?;
                    } else {
                        write!(f, "\\x{c:02x}")?;
                    }
                }
                f.write_str("\"")
            }
        }
    }
}

/// One constant of the ABI.
#[derive(Clone, Copy, Debug)]
pub struct Constant {
    /// The Rust name (`"SCHEDOP_YIELD"`).
    pub name: &'static str,
    /// The family (and module) it belongs to.
    pub family: Family,
    /// Its value.
    pub value: ConstValue,
    /// Its relation to Xen.
    pub xen: XenRelation,
    /// The ABI version that introduced it.
    pub since: AbiVersion,
    /// Its rustdoc, one string per line.
    pub doc: &'static [&'static str],
}

/// One field of a structure.
#[derive(Clone, Copy, Debug)]
pub struct FieldLayout {
    /// The Rust field name (`"nr_pages"`, or `"0"` for a tuple struct).
    pub name: &'static str,
    /// Byte offset from the start of the structure (`offset_of!`).
    pub offset: usize,
    /// Size in bytes (`size_of` of the field's type).
    pub size: usize,
    /// Xen's name for the field, when the structure is Xen's
    /// (`"console.domU"` for `StartInfo::console`); `None` when Xen has no such field.
    pub xen: Option<&'static str>,
}

/// The layout of one `#[repr(C)]` structure.
#[derive(Clone, Copy, Debug)]
pub struct StructLayout {
    /// The Rust type name (`"StartInfo"`).
    pub name: &'static str,
    /// The family (and module) it belongs to.
    pub family: Family,
    /// `size_of`.
    pub size: usize,
    /// `align_of`.
    pub align: usize,
    /// Every field, in declaration order.
    pub fields: &'static [FieldLayout],
    /// Its relation to Xen (for `Same`, Xen's type name, e.g. `"start_info"`).
    pub xen: XenRelation,
    /// The ABI version that introduced it.
    pub since: AbiVersion,
}

/// `size_of` of a field's type, given a (never called) accessor: lets a `const`
/// name a field's type without naming it, the way `offset_of!` names its offset.
const fn field_size<T, F>(_accessor: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// Describe a `#[repr(C)]` structure from the real type.
///
/// `abi_struct!(Type in Family, since V, xen Relation, { field, field => Some("xen.name"), .. })`.
/// The generated exhaustive destructuring (`let Type { a: _, b: _ } = ..`, no `..`)
/// makes the build fail when the type gains a field this list does not mention.
macro_rules! abi_struct {
    ($ty:ident in $fam:expr, since $since:expr, xen $xen:expr,
     { $($field:tt $(=> $xf:expr)?),* $(,)? }) => {{
        const _: fn($ty) = |s| {
            let $ty { $($field: _),* } = s;
        };
        StructLayout {
            name: stringify!($ty),
            family: $fam,
            size: size_of::<$ty>(),
            align: align_of::<$ty>(),
            xen: $xen,
            since: $since,
            fields: &[$(FieldLayout {
                name: stringify!($field),
                offset: offset_of!($ty, $field),
                size: field_size(|s: &$ty| &s.$field),
                xen: abi_struct!(@xen $field $($xf)?),
            }),*],
        }
    }};
    (@xen $field:tt) => { Some(stringify!($field)) };
    (@xen $field:tt $xf:expr) => { $xf };
}

const V0_1: AbiVersion = AbiVersion::V0_1;
const V1_0: AbiVersion = AbiVersion::V1_0;
const V1_1: AbiVersion = AbiVersion::V1_1;

/// The next minor version while its items are being added but not yet served:
/// an item with this `since` is in the crate, compared with Xen's headers and
/// documented (its tables say "in progress"), but it is not part of the
/// description of [`AbiVersion::CURRENT`]: [`write_fixture`] leaves it out, so no
/// fixture changes and no guest is told it exists. Bumping `CURRENT` to it (when
/// the hypervisor serves the items) makes them part of the description; nothing
/// else needs to move.
pub const IN_PROGRESS: Option<AbiVersion> = Some(V1_1);

/// Whether an item introduced in `since` belongs to the description of
/// [`AbiVersion::CURRENT`] (it does unless it is staged for [`IN_PROGRESS`]).
pub const fn described(since: AbiVersion) -> bool {
    since.encode() <= AbiVersion::CURRENT.encode()
}

/// Every structure of the ABI.
pub const STRUCTS: &[StructLayout] = &[
    abi_struct!(StartInfo in Family::StartInfo, since V0_1, xen XenRelation::Same("start_info"), {
        magic, nr_pages, shared_info, flags, store_mfn, store_evtchn,
        console => Some("console.domU"),
        pt_base, nr_pt_frames, mfn_list, mod_start, mod_len, cmd_line,
        first_p2m_pfn, nr_p2m_frames,
    }),
    abi_struct!(ConsoleDomU in Family::StartInfo, since V0_1, xen XenRelation::Same("start_info.console.domU"), {
        mfn, evtchn,
    }),
    abi_struct!(SchedShutdown in Family::Sched, since V0_1, xen XenRelation::Same("sched_shutdown"), {
        reason,
    }),
    abi_struct!(XenFeatureInfo in Family::Version, since V0_1, xen XenRelation::Same("xen_feature_info"), {
        submap_idx, submap,
    }),
    // `xen_extraversion_t` is a bare `char[16]` in C: no named field.
    abi_struct!(XenExtraversion in Family::Version, since V0_1, xen XenRelation::Same("xen_extraversion_t"), {
        0 => None,
    }),
    abi_struct!(SchedPoll in Family::Sched, since V1_0, xen XenRelation::Same("sched_poll"), {
        ports, nr_ports, timeout,
    }),
    abi_struct!(EvtchnAllocUnbound in Family::Event, since V1_0, xen XenRelation::Same("evtchn_alloc_unbound"), {
        dom, remote_dom, port,
    }),
    abi_struct!(EvtchnBindVirq in Family::Event, since V1_0, xen XenRelation::Same("evtchn_bind_virq"), {
        virq, vcpu, port,
    }),
    abi_struct!(EvtchnBindIpi in Family::Event, since V1_0, xen XenRelation::Same("evtchn_bind_ipi"), {
        vcpu, port,
    }),
    abi_struct!(EvtchnPort in Family::Event, since V1_0, xen XenRelation::Same("evtchn_send"), {
        port,
    }),
    abi_struct!(EvtchnStatus in Family::Event, since V1_0, xen XenRelation::Same("evtchn_status"), {
        dom, port, status, vcpu, u,
    }),
    abi_struct!(EvtchnBindVcpu in Family::Event, since V1_0, xen XenRelation::Same("evtchn_bind_vcpu"), {
        port, vcpu,
    }),
    abi_struct!(XenHvmParam in Family::Event, since V1_0, xen XenRelation::Same("xen_hvm_param"), {
        domid, index, value,
    }),
    abi_struct!(SharedInfo in Family::Time, since V1_0, xen XenRelation::Same("shared_info"), {
        vcpu_info, evtchn_pending, evtchn_mask, wc_version, wc_sec, wc_nsec, wc_sec_hi, arch,
    }),
    abi_struct!(VcpuInfo in Family::Time, since V1_0, xen XenRelation::Same("vcpu_info"), {
        evtchn_upcall_pending, evtchn_upcall_mask, evtchn_pending_sel, arch, time,
    }),
    abi_struct!(ArchVcpuInfo in Family::Time, since V1_0, xen XenRelation::Same("arch_vcpu_info"), {
        cr2, pad,
    }),
    abi_struct!(VcpuTimeInfo in Family::Time, since V1_0, xen XenRelation::Same("vcpu_time_info"), {
        version, pad0, tsc_timestamp, system_time, tsc_to_system_mul, tsc_shift, flags, pad1,
    }),
    abi_struct!(ArchSharedInfo in Family::Time, since V1_0, xen XenRelation::Same("arch_shared_info"), {
        max_pfn, pfn_to_mfn_frame_list_list, nmi_reason, p2m_cr3, p2m_vaddr, p2m_generation,
    }),
    abi_struct!(VcpuSetPeriodicTimer in Family::Time, since V1_0, xen XenRelation::Same("vcpu_set_periodic_timer"), {
        period_ns,
    }),
    abi_struct!(VcpuSetSingleshotTimer in Family::Time, since V1_0, xen XenRelation::Same("vcpu_set_singleshot_timer"), {
        timeout_abs_ns, flags,
    }),
    abi_struct!(MmuUpdate in Family::Mmu, since V1_0, xen XenRelation::Same("mmu_update"), {
        ptr, val,
    }),
    abi_struct!(MmuextOp in Family::Mmu, since V1_0, xen XenRelation::Same("mmuext_op"), {
        cmd, pad => None, arg1, arg2,
    }),
    abi_struct!(MulticallEntry in Family::Mmu, since V1_0, xen XenRelation::Same("multicall_entry"), {
        op, result, args,
    }),
    abi_struct!(PerfCounters in Family::Debug, since V1_0, xen XenRelation::KeelOnly, {
        vmreads => None, vmwrites => None, exits => None,
    }),
    abi_struct!(EvtchnBindInterdomain in Family::Event, since V1_1, xen XenRelation::Same("evtchn_bind_interdomain"), {
        remote_dom, remote_port, local_port,
    }),
    abi_struct!(GrantEntryV1 in Family::Grant, since V1_1, xen XenRelation::Same("grant_entry_v1"), {
        flags, domid, frame,
    }),
    abi_struct!(GnttabSetupTable in Family::Grant, since V1_1, xen XenRelation::Same("gnttab_setup_table"), {
        dom, nr_frames, status, frame_list,
    }),
    abi_struct!(GnttabQuerySize in Family::Grant, since V1_1, xen XenRelation::Same("gnttab_query_size"), {
        dom, nr_frames, max_nr_frames, status,
    }),
    abi_struct!(GnttabMapGrantRef in Family::Grant, since V1_1, xen XenRelation::Same("gnttab_map_grant_ref"), {
        host_addr, flags, gref => Some("ref"), dom, status, handle, dev_bus_addr,
    }),
    abi_struct!(GnttabUnmapGrantRef in Family::Grant, since V1_1, xen XenRelation::Same("gnttab_unmap_grant_ref"), {
        host_addr, dev_bus_addr, handle, status,
    }),
    abi_struct!(GnttabCopyPtr in Family::Grant, since V1_1, xen XenRelation::Same("gnttab_copy_ptr"), {
        u, domid, offset,
    }),
    abi_struct!(GnttabCopy in Family::Grant, since V1_1, xen XenRelation::Same("gnttab_copy"), {
        source, dest, len, flags, status,
    }),
    abi_struct!(XenDomctl in Family::Domctl, since V1_1, xen XenRelation::Same("xen_domctl"), {
        cmd, interface_version, domain, pad => Some("_pad"), u,
    }),
    abi_struct!(XenDomctlGetdomaininfo in Family::Domctl, since V1_1, xen XenRelation::Same("xen_domctl_getdomaininfo"), {
        domain, pad1, flags, tot_pages, max_pages, outstanding_pages, shr_pages, paged_pages,
        shared_info_frame, cpu_time, nr_online_vcpus, max_vcpu_id, ssidref, handle, cpupool,
        gpaddr_bits, pad2, arch_config,
    }),
    abi_struct!(SringHeader in Family::Ring, since V1_1, xen XenRelation::Same("sring_header"), {
        req_prod, req_event, rsp_prod, rsp_event, pvt, pad => Some("__pad"),
    }),
];

/// The per-module constant lists, in [`Family`] order.
const CONSTANT_GROUPS: &[&[Constant]] = &[
    crate::addr::ABI_CONSTS,
    crate::console::ABI_CONSTS,
    crate::note::ABI_CONSTS,
    crate::note::BUILT_CONSTS,
    crate::platform::ABI_CONSTS,
    crate::sched::ABI_CONSTS,
    crate::sched::SHUTDOWN_CONSTS,
    crate::sched::POLL_CONSTS,
    crate::start_info::ABI_CONSTS,
    crate::version::ABI_CONSTS,
    crate::version::CPUID_CONSTS,
    crate::version::PRESENTED_CONSTS,
    crate::event::ABI_CONSTS,
    crate::event::INTERDOMAIN_CONSTS,
    crate::time::ABI_CONSTS,
    crate::mmu::ABI_CONSTS,
    crate::debug::ABI_CONSTS,
    crate::grant_table::ABI_CONSTS,
    crate::grant_table::STATUS_CONSTS,
    crate::domctl::ABI_CONSTS,
];

/// Every constant of the ABI except error codes and hypercall numbers (which have
/// their own lists, [`crate::errno::ALL`] and [`crate::hypercall::ALL`]).
pub fn constants() -> impl Iterator<Item = &'static Constant> {
    CONSTANT_GROUPS.iter().flat_map(|g| g.iter())
}

/// How an error code relates to Xen: all are Xen's values; `EINTR` is one Xen keeps
/// inside the hypervisor (`#ifdef __XEN__` in `xen/errno.h`).
pub fn errno_xen(e: crate::Errno) -> XenRelation {
    match e {
        crate::Errno::EINTR => XenRelation::Differs {
            xen: Some("EINTR"),
            why: "Xen defines EINTR (4) only inside the hypervisor and never returns it to \
                  guests; Keel reserves the same number with the same meaning",
        },
        e => XenRelation::Same(e.name().unwrap_or("?")),
    }
}

/// The largest golden sample, in bytes.
pub const GOLDEN_MAX: usize = 4096;

/// A golden sample: the bytes a real encoder produces for a fixed sample argument.
#[derive(Clone, Copy, Debug)]
pub struct Golden {
    /// Name (`"start_info.StartInfo.sample"`).
    pub name: &'static str,
    /// The family it belongs to.
    pub family: Family,
    /// The ABI version that introduced it.
    pub since: AbiVersion,
    /// What the sample is.
    pub doc: &'static str,
    /// Run the encoder: write the bytes into the buffer and return their length.
    pub encode: fn(&mut [u8; GOLDEN_MAX]) -> usize,
}

impl Golden {
    /// Run the encoder and hand the bytes to `f`.
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        let mut buf = [0u8; GOLDEN_MAX];
        let n = (self.encode)(&mut buf).min(GOLDEN_MAX);
        f(&buf[..n])
    }
}

/// Copy `bytes` to the front of `buf`; return the length.
fn put(buf: &mut [u8; GOLDEN_MAX], bytes: &[u8]) -> usize {
    let n = bytes.len().min(GOLDEN_MAX);
    buf[..n].copy_from_slice(&bytes[..n]);
    n
}

/// The sample `start_info`: every field holds a different, recognisable value (the
/// field's offset in its low byte), so an encoder that swaps or shifts two fields
/// produces different bytes.
pub fn sample_start_info() -> StartInfo {
    use crate::addr::{GuestVirt, MachineAddr, Mfn};
    let mut s = StartInfo::new();
    s.nr_pages = 0x0820;
    s.shared_info = MachineAddr::new(0x1111_2222_3333_4028);
    s.flags = crate::start_info::SIF_PRIVILEGED | crate::start_info::SIF_INITDOMAIN;
    s.store_mfn = Mfn::new(0x0a0b_0c38);
    s.store_evtchn = 0x40;
    s.console = ConsoleDomU {
        mfn: Mfn::new(0x0d0e_0f48),
        evtchn: 0x50,
    };
    s.pt_base = GuestVirt::new(0x0040_5058);
    s.nr_pt_frames = 0x60;
    s.mfn_list = GuestVirt::new(0x0040_3068);
    s.mod_start = GuestVirt::new(0x0070_0070);
    s.mod_len = 0x78;
    s.set_cmd_line(b"console=com1 keel.sample=0x80");
    s.first_p2m_pfn = 0x0480;
    s.nr_p2m_frames = 0x0488;
    s
}

/// Encode a [`Pod`](crate::event::Pod) value into the buffer; return its length.
fn put_pod<T: crate::event::Pod>(buf: &mut [u8; GOLDEN_MAX], v: &T) -> usize {
    let n = T::SIZE.min(GOLDEN_MAX);
    v.encode(&mut buf[..n]);
    n
}

/// The samples of the 1.0 structures follow `sample_start_info`'s rule: each
/// field's low byte is its offset in the structure (so an encoder that moves a
/// field is caught by `every_sample_puts_each_field_at_its_offset`), and the other
/// bytes differ from field to field.
pub fn sample_vcpu_time_info() -> VcpuTimeInfo {
    VcpuTimeInfo {
        version: 0x0000_0a00,
        pad0: 0x0000_0b04,
        tsc_timestamp: 0x0000_1234_5678_9a08,
        system_time: 0x0000_0fed_cba9_8710,
        tsc_to_system_mul: 0x8000_0018,
        tsc_shift: 0x1c,
        flags: 0x1d,
        pad1: [0x1e, 0x1f],
    }
}

/// See [`sample_vcpu_time_info`]; the nested `arch` and `time` samples are at their
/// offsets in `vcpu_info` too.
pub fn sample_vcpu_info() -> VcpuInfo {
    VcpuInfo {
        evtchn_upcall_pending: 0,
        evtchn_upcall_mask: 1,
        evtchn_pending_sel: 0x8000_0000_0000_0108,
        arch: ArchVcpuInfo {
            cr2: 0x0000_7fff_dead_b010,
            pad: 0x0000_0000_0000_0118,
        },
        time: VcpuTimeInfo {
            version: 0x0000_0a20,
            pad0: 0x0000_0b24,
            tsc_timestamp: 0x0000_1234_5678_9a28,
            system_time: 0x0000_0fed_cba9_8730,
            tsc_to_system_mul: 0x8000_0038,
            tsc_shift: 0x3c,
            flags: 0x3d,
            pad1: [0x3e, 0x3f],
        },
    }
}

/// See [`sample_vcpu_time_info`].
pub fn sample_arch_shared_info() -> ArchSharedInfo {
    ArchSharedInfo {
        max_pfn: 0x0000_0000_0001_0000,
        pfn_to_mfn_frame_list_list: 0x0000_0000_0002_0008,
        nmi_reason: 0x0000_0000_0003_0010,
        p2m_cr3: 0x0000_0000_0004_0018,
        p2m_vaddr: 0xffff_8000_0005_0020,
        p2m_generation: 0x0000_0000_0006_0028,
    }
}

/// The sample `shared_info`: vCPU 0 holds [`sample_vcpu_info`] (at offset 0, so its
/// fields' low bytes are their offsets in the page), vCPU 31 marks the end of the
/// array, and the bitmaps, wall clock and `arch` hold offset-valued words.
pub fn sample_shared_info() -> SharedInfo {
    let mut vcpu_info = [VcpuInfo::default(); crate::time::XEN_LEGACY_MAX_VCPUS];
    vcpu_info[0] = sample_vcpu_info();
    vcpu_info[31].evtchn_upcall_pending = 0x7c0u32 as u8;
    vcpu_info[31].evtchn_pending_sel = 0x0000_0000_0000_07c8 | 1 << 63;
    let mut evtchn_pending = [0u64; 64];
    evtchn_pending[0] = 0x8000_0000_0000_0800;
    evtchn_pending[63] = 0x0000_0000_0000_09f8 | 1 << 62;
    let mut evtchn_mask = [0u64; 64];
    evtchn_mask[0] = 0x4000_0000_0000_0a00;
    evtchn_mask[63] = 0x0000_0000_0000_0bf8 | 1 << 61;
    // `arch` at 0xc10: the words of `sample_arch_shared_info` moved there.
    let arch = ArchSharedInfo {
        max_pfn: 0x0000_0000_0001_0c10,
        pfn_to_mfn_frame_list_list: 0x0000_0000_0002_0c18,
        nmi_reason: 0x0000_0000_0003_0c20,
        p2m_cr3: 0x0000_0000_0004_0c28,
        p2m_vaddr: 0xffff_8000_0005_0c30,
        p2m_generation: 0x0000_0000_0006_0c38,
    };
    SharedInfo {
        vcpu_info,
        evtchn_pending,
        evtchn_mask,
        wc_version: 0x0000_0c00,
        wc_sec: 0x6000_0c04,
        wc_nsec: 0x0000_0c08,
        wc_sec_hi: 0x0000_0c0c,
        arch,
    }
}

/// The sample `PerfCounters`: `vmreads`, `vmwrites`, then each exit slot `i`
/// holding `i` in its second byte and its offset in the low byte.
pub fn sample_perf_counters() -> PerfCounters {
    let mut c = PerfCounters::zero();
    c.vmreads = 0x0000_0001_0000_0000;
    c.vmwrites = 0x0000_0002_0000_0008;
    for (i, e) in c.exits.iter_mut().enumerate() {
        *e = ((i as u64) << 8) | ((16 + 8 * i as u64) & 0xff);
    }
    c
}

/// The sample `getdomaininfo` answer: each field's low byte is its offset (the
/// 64-bit words hold their index in the upper half).
pub fn sample_getdomaininfo() -> XenDomctlGetdomaininfo {
    let w = |i: u64, off: u64| (i << 32) | off;
    let mut handle = [0u8; 16];
    for (i, h) in handle.iter_mut().enumerate() {
        *h = 0x4c + i as u8;
    }
    XenDomctlGetdomaininfo {
        domain: 0x0100,
        pad1: 0x0102,
        flags: 0x0003_0004,
        tot_pages: w(1, 0x08),
        max_pages: w(2, 0x10),
        outstanding_pages: w(3, 0x18),
        shr_pages: w(4, 0x20),
        paged_pages: w(5, 0x28),
        shared_info_frame: w(6, 0x30),
        cpu_time: w(7, 0x38),
        nr_online_vcpus: 0x0140,
        max_vcpu_id: 0x0144,
        ssidref: 0x0148,
        handle,
        cpupool: 0x015c,
        gpaddr_bits: 0x60,
        pad2: [0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67],
        arch_config: [0x0168, 0x016c],
    }
}

/// Every golden sample of the ABI.
pub const GOLDEN: &[Golden] = &[
    Golden {
        name: "start_info.StartInfo.sample",
        family: Family::StartInfo,
        since: V0_1,
        doc: "StartInfo::encode of layout::sample_start_info()",
        encode: |b| put(b, &sample_start_info().encode()),
    },
    Golden {
        name: "sched.SchedShutdown.crash",
        family: Family::Sched,
        since: V0_1,
        doc: "SchedShutdown { reason: SHUTDOWN_CRASH }.encode()",
        encode: |b| {
            put(
                b,
                &SchedShutdown {
                    reason: crate::sched::SHUTDOWN_CRASH,
                }
                .encode(),
            )
        },
    },
    Golden {
        name: "version.XenFeatureInfo.sample",
        family: Family::Version,
        since: V0_1,
        doc: "XenFeatureInfo { submap_idx: 0x11223344, submap: 0x55667788 }.encode()",
        encode: |b| {
            put(
                b,
                &XenFeatureInfo {
                    submap_idx: 0x1122_3344,
                    submap: 0x5566_7788,
                }
                .encode(),
            )
        },
    },
    Golden {
        name: "version.EXTRAVERSION",
        family: Family::Version,
        since: V0_1,
        doc: "the XENVER_extraversion answer",
        encode: |b| put(b, &crate::version::EXTRAVERSION.0),
    },
    Golden {
        name: "version.AbiVersion.V0_1",
        family: Family::Version,
        since: V0_1,
        doc: "AbiVersion::V0_1.encode() (the XENVER_version result), little endian",
        encode: |b| put(b, &AbiVersion::V0_1.encode().to_le_bytes()),
    },
    Golden {
        name: "note.abi_version_note.V0_1",
        family: Family::Note,
        since: V0_1,
        doc: "note::abi_version_note(AbiVersion::V0_1): the whole ELF note",
        encode: |b| put(b, &note::abi_version_note(AbiVersion::V0_1)),
    },
    Golden {
        name: "version.AbiVersion.V1_0",
        family: Family::Version,
        since: V1_0,
        doc: "AbiVersion::V1_0.encode() (the XENVER_version result), little endian",
        encode: |b| put(b, &AbiVersion::V1_0.encode().to_le_bytes()),
    },
    Golden {
        name: "note.abi_version_note.V1_0",
        family: Family::Note,
        since: V1_0,
        doc: "note::abi_version_note(AbiVersion::V1_0): the whole ELF note",
        encode: |b| put(b, &note::abi_version_note(AbiVersion::V1_0)),
    },
    Golden {
        name: "note.abi_built_note.V1_0",
        family: Family::Note,
        since: V1_0,
        doc: "note::abi_built_note(AbiVersion::V1_0): the whole ELF note",
        encode: |b| put(b, &note::abi_built_note(AbiVersion::V1_0)),
    },
    Golden {
        name: "sched.SchedPoll.sample",
        family: Family::Sched,
        since: V1_0,
        doc: "SchedPoll { ports: 0x7fff_ffff_e000, nr_ports: 8, timeout: 0x1_0000_0010 }.encode()",
        encode: |b| {
            put(
                b,
                &SchedPoll {
                    ports: 0x0000_7fff_ffff_e000,
                    nr_ports: 8,
                    timeout: 0x0000_0001_0000_0010,
                }
                .encode(),
            )
        },
    },
    Golden {
        name: "event.EvtchnAllocUnbound.sample",
        family: Family::Event,
        since: V1_0,
        doc: "EvtchnAllocUnbound { dom: DOMID_SELF, remote_dom: 0x7f02, port: 0x304 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &EvtchnAllocUnbound {
                    dom: crate::event::DOMID_SELF,
                    remote_dom: 0x7f02,
                    port: 0x0304,
                },
            )
        },
    },
    Golden {
        name: "event.EvtchnBindVirq.sample",
        family: Family::Event,
        since: V1_0,
        doc: "EvtchnBindVirq { virq: VIRQ_TIMER, vcpu: 0x104, port: 0x208 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &EvtchnBindVirq {
                    virq: crate::event::VIRQ_TIMER,
                    vcpu: 0x0104,
                    port: 0x0208,
                },
            )
        },
    },
    Golden {
        name: "event.EvtchnBindIpi.sample",
        family: Family::Event,
        since: V1_0,
        doc: "EvtchnBindIpi { vcpu: 0x100, port: 0x204 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &EvtchnBindIpi {
                    vcpu: 0x0100,
                    port: 0x0204,
                },
            )
        },
    },
    Golden {
        name: "event.EvtchnPort.sample",
        family: Family::Event,
        since: V1_0,
        doc: "EvtchnPort { port: 0x3ff00 }.encode()",
        encode: |b| put_pod(b, &EvtchnPort { port: 0x0003_ff00 }),
    },
    Golden {
        name: "event.EvtchnStatus.sample",
        family: Family::Event,
        since: V1_0,
        doc: "EvtchnStatus { dom: DOMID_SELF, port: 0x104, status: 0x5_0008, vcpu: 0x20c, u: [0x510, 0x614] }.encode()",
        encode: |b| {
            put_pod(
                b,
                &EvtchnStatus {
                    dom: crate::event::DOMID_SELF,
                    port: 0x0104,
                    status: 0x0005_0008,
                    vcpu: 0x0000_020c,
                    u: [0x0000_0510, 0x0000_0614],
                },
            )
        },
    },
    Golden {
        name: "event.EvtchnBindVcpu.sample",
        family: Family::Event,
        since: V1_0,
        doc: "EvtchnBindVcpu { port: 0x300, vcpu: 0x104 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &EvtchnBindVcpu {
                    port: 0x0300,
                    vcpu: 0x0104,
                },
            )
        },
    },
    Golden {
        name: "event.XenHvmParam.sample",
        family: Family::Event,
        since: V1_0,
        doc: "XenHvmParam { domid: DOMID_SELF, index: 0x104, value: 0x0200_0000_0000_0008 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &XenHvmParam {
                    domid: crate::event::DOMID_SELF,
                    index: 0x0104,
                    value: 0x0200_0000_0000_0008,
                },
            )
        },
    },
    Golden {
        name: "event.callback_vector.0xf3",
        family: Family::Event,
        since: V1_0,
        doc: "XenHvmParam { DOMID_SELF, HVM_PARAM_CALLBACK_IRQ, callback_vector(0xf3) }.encode(): registering vector 0xf3",
        encode: |b| {
            put_pod(
                b,
                &XenHvmParam {
                    domid: crate::event::DOMID_SELF,
                    index: crate::event::HVM_PARAM_CALLBACK_IRQ,
                    value: crate::event::callback_vector(0xf3),
                },
            )
        },
    },
    Golden {
        name: "time.SharedInfo.sample",
        family: Family::Time,
        since: V1_0,
        doc: "SharedInfo::encode of layout::sample_shared_info() (placed by time::offsets)",
        encode: |b| put_pod(b, &sample_shared_info()),
    },
    Golden {
        name: "time.VcpuInfo.sample",
        family: Family::Time,
        since: V1_0,
        doc: "VcpuInfo::encode of layout::sample_vcpu_info()",
        encode: |b| put_pod(b, &sample_vcpu_info()),
    },
    Golden {
        name: "time.ArchVcpuInfo.sample",
        family: Family::Time,
        since: V1_0,
        doc: "ArchVcpuInfo { cr2: 0x7fff_dead_b000, pad: 0x108 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &ArchVcpuInfo {
                    cr2: 0x0000_7fff_dead_b000,
                    pad: 0x0000_0000_0000_0108,
                },
            )
        },
    },
    Golden {
        name: "time.VcpuTimeInfo.sample",
        family: Family::Time,
        since: V1_0,
        doc: "VcpuTimeInfo::encode of layout::sample_vcpu_time_info()",
        encode: |b| put_pod(b, &sample_vcpu_time_info()),
    },
    Golden {
        name: "time.ArchSharedInfo.sample",
        family: Family::Time,
        since: V1_0,
        doc: "ArchSharedInfo::encode of layout::sample_arch_shared_info()",
        encode: |b| put_pod(b, &sample_arch_shared_info()),
    },
    Golden {
        name: "time.VcpuSetPeriodicTimer.sample",
        family: Family::Time,
        since: V1_0,
        doc: "VcpuSetPeriodicTimer { period_ns: 0x3b9a_ca00 (1 s) }.encode()",
        encode: |b| {
            put_pod(
                b,
                &VcpuSetPeriodicTimer {
                    period_ns: 1_000_000_000,
                },
            )
        },
    },
    Golden {
        name: "time.VcpuSetSingleshotTimer.sample",
        family: Family::Time,
        since: V1_0,
        doc: "VcpuSetSingleshotTimer { timeout_abs_ns: 0x1234_5678_9abc_de00, flags: VCPU_SSHOTTMR_FUTURE << 16 | 8 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &VcpuSetSingleshotTimer {
                    timeout_abs_ns: 0x1234_5678_9abc_de00,
                    flags: crate::time::VCPU_SSHOTTMR_FUTURE << 16 | 0x08,
                },
            )
        },
    },
    Golden {
        name: "mmu.MmuUpdate.sample",
        family: Family::Mmu,
        since: V1_0,
        doc: "MmuUpdate { ptr: 0x12_3456_7000 | MMU_NORMAL_PT_UPDATE, val: 0x8000_0001_2345_6008 }.encode()",
        encode: |b| {
            put(
                b,
                &MmuUpdate {
                    ptr: 0x0000_0012_3456_7000 | crate::mmu::MMU_NORMAL_PT_UPDATE,
                    val: 0x8000_0001_2345_6008,
                }
                .encode(),
            )
        },
    },
    Golden {
        name: "mmu.MmuextOp.sample",
        family: Family::Mmu,
        since: V1_0,
        doc: "MmuextOp { cmd: MMUEXT_PIN_L4_TABLE | 0x100, pad: 0x204, arg1: 0xabc_d008, arg2: 0x7fff_0010 }.encode()",
        encode: |b| {
            put(
                b,
                &MmuextOp {
                    cmd: crate::mmu::MMUEXT_PIN_L4_TABLE | 0x0100,
                    pad: 0x0204,
                    arg1: 0x0000_0000_0abc_d008,
                    arg2: 0x0000_0000_7fff_0010,
                }
                .encode(),
            )
        },
    },
    Golden {
        name: "mmu.MulticallEntry.sample",
        family: Family::Mmu,
        since: V1_0,
        doc: "MulticallEntry { op: MMUEXT_OP << 8, result: 0x8000_0000_0000_0008, args[i]: (i + 1) << 32 | 16 + 8 i }.encode()",
        encode: |b| {
            let mut args = [0u64; 6];
            for (i, a) in args.iter_mut().enumerate() {
                *a = ((i as u64 + 1) << 32) | (16 + 8 * i as u64);
            }
            put(
                b,
                &MulticallEntry {
                    op: Hypercall::MMUEXT_OP.0 << 8,
                    result: 0x8000_0000_0000_0008,
                    args,
                }
                .encode(),
            )
        },
    },
    Golden {
        name: "debug.PerfCounters.sample",
        family: Family::Debug,
        since: V1_0,
        doc: "PerfCounters::encode of layout::sample_perf_counters()",
        encode: |b| {
            let mut out = [0u8; core::mem::size_of::<PerfCounters>()];
            sample_perf_counters().encode(&mut out);
            put(b, &out)
        },
    },

    Golden {
        name: "event.EvtchnBindInterdomain.sample",
        family: Family::Event,
        since: V1_1,
        doc: "EvtchnBindInterdomain { remote_dom: 0x100, remote_port: 0x204, local_port: 0x308 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &EvtchnBindInterdomain {
                    remote_dom: 0x0100,
                    remote_port: 0x0204,
                    local_port: 0x0308,
                },
            )
        },
    },
    Golden {
        name: "grant_table.GrantEntryV1.sample",
        family: Family::Grant,
        since: V1_1,
        doc: "GrantEntryV1 { flags: GTF_PERMIT_ACCESS | GTF_READONLY, domid: 0x102, frame: 0x12_3404 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &GrantEntryV1 {
                    flags: crate::grant_table::GTF_PERMIT_ACCESS
                        | crate::grant_table::GTF_READONLY,
                    domid: 0x0102,
                    frame: 0x0012_3404,
                },
            )
        },
    },
    Golden {
        name: "grant_table.GnttabSetupTable.sample",
        family: Family::Grant,
        since: V1_1,
        doc: "GnttabSetupTable { dom: DOMID_SELF, nr_frames: 0x204, status: 0x308, frame_list: 0x7fff_ffff_e010 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &GnttabSetupTable {
                    dom: crate::event::DOMID_SELF,
                    nr_frames: 0x0204,
                    status: 0x0308,
                    frame_list: 0x0000_7fff_ffff_e010,
                },
            )
        },
    },
    Golden {
        name: "grant_table.GnttabQuerySize.sample",
        family: Family::Grant,
        since: V1_1,
        doc: "GnttabQuerySize { dom: DOMID_SELF, nr_frames: 0x104, max_nr_frames: 0x208, status: 0x30c }.encode()",
        encode: |b| {
            put_pod(
                b,
                &GnttabQuerySize {
                    dom: crate::event::DOMID_SELF,
                    nr_frames: 0x0104,
                    max_nr_frames: 0x0208,
                    status: 0x030c,
                },
            )
        },
    },
    Golden {
        name: "grant_table.GnttabMapGrantRef.sample",
        family: Family::Grant,
        since: V1_1,
        doc: "GnttabMapGrantRef { host_addr: 0x7f00_0040_0000, flags: 0x100_0008, gref: 0x10c, dom: 0x210, status: 0x312, handle: 0x414, dev_bus_addr: 0x518 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &GnttabMapGrantRef {
                    host_addr: 0x0000_7f00_0040_0000,
                    flags: 0x0100_0008,
                    gref: 0x010c,
                    dom: 0x0210,
                    status: 0x0312,
                    handle: 0x0414,
                    dev_bus_addr: 0x0518,
                },
            )
        },
    },
    Golden {
        name: "grant_table.GnttabUnmapGrantRef.sample",
        family: Family::Grant,
        since: V1_1,
        doc: "GnttabUnmapGrantRef { host_addr: 0x7f00_0040_0000, dev_bus_addr: 0x108, handle: 0x210, status: 0x314 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &GnttabUnmapGrantRef {
                    host_addr: 0x0000_7f00_0040_0000,
                    dev_bus_addr: 0x0108,
                    handle: 0x0210,
                    status: 0x0314,
                },
            )
        },
    },
    Golden {
        name: "grant_table.GnttabCopyPtr.sample",
        family: Family::Grant,
        since: V1_1,
        doc: "GnttabCopyPtr { u: 0x1_0000_0000, domid: 0x108, offset: 0x20a }.encode()",
        encode: |b| {
            put_pod(
                b,
                &GnttabCopyPtr {
                    u: 0x0000_0001_0000_0000,
                    domid: 0x0108,
                    offset: 0x020a,
                },
            )
        },
    },
    Golden {
        name: "grant_table.GnttabCopy.sample",
        family: Family::Grant,
        since: V1_1,
        doc: "GnttabCopy { source: GnttabCopyPtr sample, dest: { u: 0x2_0000_0010, domid: 0x318, offset: 0x41a }, len: 0x520, flags: 0x622, status: 0x724 }.encode()",
        encode: |b| {
            put_pod(
                b,
                &GnttabCopy {
                    source: GnttabCopyPtr {
                        u: 0x0000_0001_0000_0000,
                        domid: 0x0108,
                        offset: 0x020a,
                    },
                    dest: GnttabCopyPtr {
                        u: 0x0000_0002_0000_0010,
                        domid: 0x0318,
                        offset: 0x041a,
                    },
                    len: 0x0520,
                    flags: 0x0622,
                    status: 0x0724,
                },
            )
        },
    },
    Golden {
        name: "domctl.XenDomctl.sample",
        family: Family::Domctl,
        since: V1_1,
        doc: "XenDomctl { cmd: XEN_DOMCTL_getdomaininfo, interface_version: 0x1_0004, domain: 0x108, pad: [0x20a, 0x30c, 0x40e], u[i]: (i + 1) << 32 | 16 + 8 i }.encode()",
        encode: |b| {
            let mut u = [0u64; 16];
            for (i, w) in u.iter_mut().enumerate() {
                *w = ((i as u64 + 1) << 32) | (16 + 8 * i as u64);
            }
            put_pod(
                b,
                &XenDomctl {
                    cmd: crate::domctl::XEN_DOMCTL_GETDOMAININFO,
                    interface_version: 0x0001_0004,
                    domain: 0x0108,
                    pad: [0x020a, 0x030c, 0x040e],
                    u,
                },
            )
        },
    },
    Golden {
        name: "domctl.XenDomctlGetdomaininfo.sample",
        family: Family::Domctl,
        since: V1_1,
        doc: "XenDomctlGetdomaininfo::encode of layout::sample_getdomaininfo()",
        encode: |b| put_pod(b, &sample_getdomaininfo()),
    },
    Golden {
        name: "ring.SringHeader.sample",
        family: Family::Ring,
        since: V1_1,
        doc: "SringHeader { req_prod: 0x100_0000, req_event: 0x104, rsp_prod: 0x208, rsp_event: 0x30c, pvt: [0x10, 0x11, 0x12, 0x13], pad[i]: 0x14 + i }.encode()",
        encode: |b| {
            let mut pad = [0u8; 44];
            for (i, p) in pad.iter_mut().enumerate() {
                *p = 0x14 + i as u8;
            }
            put_pod(
                b,
                &SringHeader {
                    req_prod: 0x0100_0000,
                    req_event: 0x0104,
                    rsp_prod: 0x0208,
                    rsp_event: 0x030c,
                    pvt: [0x10, 0x11, 0x12, 0x13],
                    pad,
                },
            )
        },
    },];

/// One deliberate difference from Xen.
#[derive(Clone, Copy, Debug)]
pub struct Divergence {
    /// The family of the Keel item.
    pub family: Family,
    /// The Keel name within the family.
    pub name: &'static str,
    /// Xen's corresponding item, if any.
    pub xen: Option<&'static str>,
    /// Why.
    pub why: &'static str,
}

/// Differences from Xen that are not a single constant's value: how Keel uses a
/// shared number or structure differently.
pub const BEHAVIOUR_DIVERGENCES: &[Divergence] = &[
    Divergence {
        family: Family::Version,
        name: "XENVER_VERSION",
        xen: Some("XENVER_version"),
        why: "same number and encoding ((major << 16) | minor), but Keel reports its ABI \
              version, not a product version",
    },
    Divergence {
        family: Family::Version,
        name: "features::SUBMAP0",
        xen: Some("XENFEAT_*"),
        why: "XENVER_get_features answers Keel's own feature bits; Xen's XENFEAT_* \
              numbering describes PV/HVM modes Keel does not have",
    },
    Divergence {
        family: Family::StartInfo,
        name: "StartInfo",
        xen: Some("start_info"),
        why: "same layout; Keel fills shared_info since 1.0 (0 in 0.1) and leaves store_*, \
              console, mod_* and the P2M fields zero (no xenstore, console ring or module)",
    },
];

/// Every item marked [`XenRelation::Differs`], then [`BEHAVIOUR_DIVERGENCES`]: the
/// list of deliberate differences from Xen, for the cross-check and the documentation.
pub fn divergences() -> impl Iterator<Item = Divergence> {
    let consts = constants().filter_map(|c| match c.xen {
        XenRelation::Differs { xen, why } => Some(Divergence {
            family: c.family,
            name: c.name,
            xen,
            why,
        }),
        _ => None,
    });
    let structs = STRUCTS.iter().filter_map(|s| match s.xen {
        XenRelation::Differs { xen, why } => Some(Divergence {
            family: s.family,
            name: s.name,
            xen,
            why,
        }),
        _ => None,
    });
    let errnos = crate::errno::ALL
        .iter()
        .filter_map(|&e| match errno_xen(e) {
            XenRelation::Differs { xen, why } => Some(Divergence {
                family: Family::Errno,
                name: e.name().unwrap_or("?"),
                xen,
                why,
            }),
            _ => None,
        });
    consts
        .chain(structs)
        .chain(errnos)
        .chain(BEHAVIOUR_DIVERGENCES.iter().copied())
}

/// Write one golden sample as fixture lines: a header with its length, then one
/// line of (up to) 32 bytes in hex per 32-byte chunk, keyed by offset, so that a
/// change shows up as a one-line diff naming the offset. A run of all-zero chunks
/// is one line (`@00a0-047f = zeros`); a byte that becomes non-zero makes that
/// line vanish, which the check reports just the same.
fn write_golden(w: &mut dyn fmt::Write, g: &Golden) -> fmt::Result {
    g.with_bytes(|bytes| {
        writeln!(w, "golden {} len={} since={}", g.name, bytes.len(), g.since)?;
        let mut i = 0;
        while i * 32 < bytes.len() {
            let chunk = &bytes[i * 32..bytes.len().min(i * 32 + 32)];
            let zero = |c: &[u8]| c.len() == 32 && c.iter().all(|&b| b == 0);
            if zero(chunk) {
                let first = i;
                while (i + 1) * 32 < bytes.len()
                    && zero(&bytes[(i + 1) * 32..bytes.len().min((i + 2) * 32)])
                {
                    i += 1;
                }
                writeln!(
                    w,
                    "golden {}@{:04x}-{:04x} = zeros",
                    g.name,
                    first * 32,
                    i * 32 + 31
                )?;
            } else {
                write!(w, "golden {}@{:04x} =", g.name, i * 32)?;
                for b in chunk {
                    write!(w, " {b:02x}")?;
                }
                writeln!(w)?;
            }
            i += 1;
        }
        Ok(())
    })
}

/// The fixture format's first line.
pub const FIXTURE_HEADER: &str =
    "# Keel ABI description: generated by keel_abi::layout::dump(); a released fixture is never edited.";

/// Write the whole ABI description in the fixture format (no allocation needed).
///
/// The format is line-oriented: `<kind> <name> <value>`, where the key
/// `<kind> <name>` is unique. Kinds: `abi-version`, `struct`, `field`, `const`,
/// `errno`, `hypercall` (the number), `implemented` (since which version Keel
/// implements it), `features` (the feature bitmap, a set that may only grow),
/// `exit-status`, `test-category`, `golden`. Lines starting with `#` are comments.
pub fn write_fixture(w: &mut dyn fmt::Write) -> fmt::Result {
    writeln!(w, "{FIXTURE_HEADER}")?;
    writeln!(w, "abi-version keel {}", AbiVersion::CURRENT)?;
    writeln!(w, "# structures: size, alignment, fields (offset, size)")?;
    for s in STRUCTS.iter().filter(|s| described(s.since)) {
        let m = s.family.module();
        writeln!(
            w,
            "struct {m}.{} size={} align={} since={}",
            s.name, s.size, s.align, s.since
        )?;
        for f in s.fields {
            writeln!(
                w,
                "field {m}.{}.{} offset={} size={}",
                s.name, f.name, f.offset, f.size
            )?;
        }
    }
    writeln!(w, "# constants")?;
    for c in constants().filter(|c| described(c.since)) {
        writeln!(
            w,
            "const {}.{} = {} since={}",
            c.family.module(),
            c.name,
            c.value,
            c.since
        )?;
    }
    writeln!(
        w,
        "features submap0 = {:#010x} since={}",
        crate::version::features::SUBMAP0,
        V0_1
    )?;
    writeln!(w, "# error codes (hypercalls return them negated)")?;
    for e in crate::errno::ALL {
        writeln!(w, "errno {} = {}", e.name().unwrap_or("?"), e.0)?;
    }
    writeln!(w, "# hypercall numbers (Xen's), and which Keel implements")?;
    for h in crate::hypercall::ALL {
        writeln!(w, "hypercall {} = {}", h.name().unwrap_or("?"), h.0)?;
    }
    for h in crate::hypercall::ALL {
        if let Some(v) = h.implemented_since().filter(|v| described(*v)) {
            writeln!(w, "implemented {} since={v}", h.name().unwrap_or("?"))?;
        }
    }
    for s in crate::hypercall::IMPLEMENTED
        .iter()
        .filter(|s| described(s.since))
    {
        writeln!(
            w,
            "implemented {}/{} sub={} since={}",
            s.hypercall.name().unwrap_or("?"),
            s.name,
            s.sub,
            s.since
        )?;
    }
    writeln!(
        w,
        "# power-off statuses and test categories (host tool protocol)"
    )?;
    for s in ExitStatus::ALL {
        writeln!(w, "exit-status {s:?} = {}", s as u8)?;
    }
    for c in note::TestCategory::ALL {
        writeln!(w, "test-category {} = {}", c.name(), c as u32)?;
    }
    writeln!(w, "# golden encodings of sample arguments")?;
    for g in GOLDEN.iter().filter(|g| described(g.since)) {
        write_golden(w, g)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_data_matches_the_compile_time_assertions() {
        let si = STRUCTS.iter().find(|s| s.name == "StartInfo").unwrap();
        assert_eq!(si.size, 1168);
        assert_eq!(si.align, 8);
        let f = |n: &str| si.fields.iter().find(|f| f.name == n).unwrap();
        assert_eq!((f("nr_pages").offset, f("nr_pages").size), (32, 8));
        assert_eq!((f("console").offset, f("console").size), (72, 16));
        assert_eq!((f("cmd_line").offset, f("cmd_line").size), (128, 1024));
        assert_eq!(f("console").xen, Some("console.domU"));
    }

    #[test]
    fn fields_are_ordered_disjoint_and_inside_the_struct() {
        for s in STRUCTS {
            let mut end = 0;
            for f in s.fields {
                assert!(f.offset >= end, "{}.{} overlaps", s.name, f.name);
                end = f.offset + f.size;
            }
            assert!(end <= s.size, "{} fields run past its size", s.name);
            assert_eq!(s.size % s.align, 0);
        }
    }

    #[test]
    fn constant_names_are_unique_within_a_family() {
        let all: std::vec::Vec<_> = constants().collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert!(
                    !(a.family == b.family && a.name == b.name),
                    "{} registered twice",
                    a.name
                );
            }
        }
    }

    #[test]
    fn nothing_is_newer_than_the_current_version_but_the_one_in_progress() {
        let ok = |v: AbiVersion| v <= AbiVersion::CURRENT || Some(v) == IN_PROGRESS;
        for c in constants() {
            assert!(ok(c.since), "{}", c.name);
        }
        for s in STRUCTS {
            assert!(ok(s.since), "{}", s.name);
        }
        for g in GOLDEN {
            assert!(ok(g.since), "{}", g.name);
        }
        if let Some(next) = IN_PROGRESS {
            assert!(next > AbiVersion::CURRENT);
            assert_eq!(
                (next.major, next.minor),
                (AbiVersion::CURRENT.major, AbiVersion::CURRENT.minor + 1)
            );
        }
        for h in crate::hypercall::ALL {
            if let Some(v) = h.implemented_since() {
                assert!(ok(v), "{:?}", h.name());
            }
        }
        assert!(RELEASED.windows(2).all(|w| w[0] < w[1]));
        assert!(*RELEASED.last().unwrap() <= AbiVersion::CURRENT);
    }

    #[test]
    fn items_in_progress_are_left_out_of_the_description() {
        let d = std::string::String::from_utf8({
            let mut s = std::string::String::new();
            write_fixture(&mut s).unwrap();
            s.into_bytes()
        })
        .unwrap();
        let staged: std::vec::Vec<_> = STRUCTS
            .iter()
            .filter(|s| !described(s.since))
            .map(|s| s.name)
            .chain(constants().filter(|c| !described(c.since)).map(|c| c.name))
            .collect();
        assert!(staged.contains(&"GrantEntryV1") && staged.contains(&"GNTST_BAD_GNTREF"));
        for name in staged {
            assert!(
                !d.contains(&std::format!(".{name} ")),
                "{name} is in the dump"
            );
        }
        assert!(!d.contains("grant_table."));
        // Hypercalls served early to guests that declare the version in
        // progress are not claimed by the description either.
        let mut early = 0;
        for s in crate::hypercall::IMPLEMENTED {
            if !described(s.since) {
                early += 1;
                assert!(!d.contains(&std::format!("/{} ", s.name)), "{}", s.name);
            }
        }
        assert!(early > 0);
        assert!(!d.contains("implemented grant_table_op"));
        assert!(described(AbiVersion::V1_0) && !described(AbiVersion::V1_1));
    }

    #[test]
    fn golden_start_info_puts_each_field_at_its_offset() {
        // The sample's low bytes are the field offsets: the encoder must agree with
        // offset_of! for every integer field.
        let si = STRUCTS.iter().find(|s| s.name == "StartInfo").unwrap();
        GOLDEN[0].with_bytes(|b| {
            assert_eq!(b.len(), si.size);
            for f in si.fields {
                if matches!(f.name, "magic" | "flags" | "cmd_line") {
                    continue;
                }
                assert_eq!(b[f.offset], f.offset as u8, "{}", f.name);
            }
            assert_eq!(b[72 + 8], 80, "console.evtchn");
        });
    }

    #[test]
    fn the_current_version_runs_guests_of_the_oldest_release() {
        // 1.x: every 0.x guest runs, so a guest that declares 0.1 runs on the
        // frozen 0.1 hypervisor and on every 1.x one.
        assert_eq!(
            oldest_release_runnable_by(AbiVersion::CURRENT),
            Some(AbiVersion::V0_1)
        );
        assert_eq!(
            oldest_release_runnable_by(AbiVersion::V0_1),
            Some(AbiVersion::V0_1)
        );
        assert_eq!(
            oldest_release_runnable_by(AbiVersion { major: 2, minor: 0 }),
            None
        );
    }

    #[test]
    fn every_sample_puts_each_field_at_its_offset() {
        // The samples' low bytes are the field offsets: each encoder must agree
        // with offset_of! for every field (offset 0 is where every encoder starts).
        let mut checked = 0;
        // (0.1's samples predate the rule and are frozen as they are.)
        let samples = GOLDEN
            .iter()
            .filter(|g| g.name.ends_with(".sample") && g.since >= AbiVersion::V1_0);
        for g in samples {
            let Some(s) = STRUCTS
                .iter()
                .find(|s| g.name == std::format!("{}.{}.sample", s.family.module(), s.name))
            else {
                panic!("golden {} names no structure", g.name);
            };
            g.with_bytes(|b| {
                assert_eq!(b.len(), s.size, "{}", g.name);
                for f in s.fields.iter().filter(|f| f.offset != 0) {
                    assert_eq!(b[f.offset], f.offset as u8, "{}.{}", s.name, f.name);
                }
            });
            checked += 1;
        }
        assert!(checked >= 17, "only {checked} samples checked");
    }

    #[test]
    fn every_structure_since_1_0_has_a_golden_sample() {
        for s in STRUCTS.iter().filter(|s| s.since >= AbiVersion::V1_0) {
            let name = std::format!("{}.{}.sample", s.family.module(), s.name);
            let g = GOLDEN.iter().find(|g| g.name == name);
            assert!(g.is_some(), "no golden sample {name}");
            assert_eq!(g.unwrap().since, s.since, "{name}");
        }
    }

    #[test]
    fn golden_names_are_unique_and_fit() {
        for (i, a) in GOLDEN.iter().enumerate() {
            assert!(
                GOLDEN[i + 1..].iter().all(|b| b.name != a.name),
                "{}",
                a.name
            );
            let mut buf = [0u8; GOLDEN_MAX];
            assert!((a.encode)(&mut buf) <= GOLDEN_MAX, "{}", a.name);
        }
    }

    #[test]
    fn every_implemented_hypercall_has_a_family() {
        for h in crate::hypercall::ALL {
            if h.implemented_since().is_some() {
                assert!(Family::of_hypercall(*h).is_some(), "{:?}", h.name());
            }
        }
    }
}
