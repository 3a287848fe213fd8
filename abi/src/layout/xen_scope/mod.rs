//! Which parts of Xen's public headers the Xen cross-check holds Keel to
//! completely, and the Xen items of those parts that Keel deliberately leaves out.
//!
//! For every family Keel implements, every Xen constant, sub-command and
//! structure of that family is either in this crate (and compared with Xen's
//! headers, value by value and field by field) or listed in [`XEN_NOT_ADOPTED`]
//! with the reason. `abi/tests/xen_cross_check.rs` reads the headers named in
//! [`XEN_SCOPE`] itself (every `#define` with one of the prefixes, every named
//! `struct`), so a Xen item added to a header is seen without anyone listing it.

use super::Family;

/// One public header of Xen and the part of it that belongs to families Keel
/// implements.
#[derive(Clone, Copy, Debug)]
pub struct XenScope {
    /// The header, relative to the `xen/` include directory (`"event_channel.h"`).
    pub header: &'static str,
    /// Every object-like `#define` of the header whose name starts with one of
    /// these (or equals one of them) is in scope.
    pub prefixes: &'static [&'static str],
    /// Whether every named `struct` of the header is in scope too.
    pub structs: bool,
}

/// The headers and prefixes of the families Keel implements (hypercall numbers
/// and error codes are compared in full by their own rules).
pub const XEN_SCOPE: &[XenScope] = &[
    XenScope {
        header: "xen.h",
        prefixes: &[
            "VIRQ_",
            "NR_VIRQS",
            "MMU_",
            "MMUEXT_",
            "DOMID_",
            "CONSOLEIO_",
            "SIF_",
            "XEN_PVCLOCK_",
            "NR_EVENT_CHANNELS",
            "MAX_GUEST_CMDLINE",
        ],
        structs: true,
    },
    XenScope {
        header: "version.h",
        prefixes: &["XENVER_", "XEN_EXTRAVERSION_LEN"],
        structs: true,
    },
    XenScope {
        header: "sched.h",
        prefixes: &["SCHEDOP_", "SHUTDOWN_"],
        structs: true,
    },
    XenScope {
        header: "event_channel.h",
        prefixes: &["EVTCHNOP_", "EVTCHNSTAT_", "EVTCHN_", "BIND_PIRQ__"],
        structs: true,
    },
    XenScope {
        header: "vcpu.h",
        prefixes: &["VCPUOP_", "VCPU_SSHOTTMR_", "RUNSTATE_", "XEN_RUNSTATE_"],
        structs: true,
    },
    XenScope {
        header: "hvm/hvm_op.h",
        prefixes: &["HVMOP_", "HVM_IOREQSRV_"],
        structs: true,
    },
    XenScope {
        header: "hvm/params.h",
        prefixes: &["HVM_PARAM_", "HVM_NR_PARAMS"],
        structs: true,
    },
    XenScope {
        header: "grant_table.h",
        prefixes: &[
            "GTF_",
            "GNTTABOP_",
            "GNTMAP_",
            "GNTST_",
            "GNTCOPY_",
            "GNTTAB_",
        ],
        structs: true,
    },
    XenScope {
        header: "domctl.h",
        prefixes: &["XEN_DOMCTL_", "XEN_DOMINF_"],
        structs: true,
    },
];

/// Xen structures whose layout one Keel structure also has: Keel's
/// `EvtchnPort` is Xen's `evtchn_send`, `evtchn_close` and `evtchn_unmask`
/// (each is one `evtchn_port_t`). `(Keel type, Xen type)`; the cross-check
/// compares each pair field by field, like a structure's own Xen name.
pub const XEN_STRUCT_ALIASES: &[(&str, &str)] = &[
    ("EvtchnPort", "evtchn_close"),
    ("EvtchnPort", "evtchn_unmask"),
];

/// A Xen item of an implemented family that Keel deliberately does not adopt.
#[derive(Clone, Copy, Debug)]
pub struct XenAbsent {
    /// The family whose page explains it.
    pub family: Family,
    /// Xen's name (a constant, a sub-command, a structure or an error code).
    pub xen: &'static str,
    /// Why Keel leaves it out.
    pub why: &'static str,
}

const fn absent(family: Family, xen: &'static str, why: &'static str) -> XenAbsent {
    XenAbsent { family, xen, why }
}

mod not_adopted;

pub use self::not_adopted::XEN_NOT_ADOPTED;
