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

const ONE_DOMAIN_SCHED: &str = "Keel runs one domain with one vCPU and no toolstack: SCHEDOP_remote_shutdown, SCHEDOP_shutdown_code, SCHEDOP_watchdog and SCHEDOP_pin_override answer -ENOSYS, so their argument structures are not part of Keel's ABI";
const VERSION_ENOSYS: &str = "Keel answers XENVER_compile_info, XENVER_platform_parameters and XENVER_build_id with -ENOSYS (it has no compile record, a fixed address-space layout and no build id), so their result structures are not part of Keel's ABI";
const DOM0_ONLY: &str = "describes what Xen hands to the initial domain or to the toolstack (a multiboot module list, the VGA console, a CPU bitmap for sysctl/domctl); a Keel domain gets its module through start_info.mod_start and has no toolstack";
const INTERDOMAIN: &str = "Keel runs one domain: there is no other domain to bind to, so EVTCHNOP_bind_interdomain answers -ENOSYS (EVTCHNSTAT_interdomain is named because status must be able to say it)";
const PIRQ: &str =
    "no physical interrupt is given to a Keel guest: EVTCHNOP_bind_pirq answers -ENOSYS";
const RESET: &str = "a toolstack and kexec operation (close every port of a domain); -ENOSYS";
const FIFO: &str = "Keel implements only the 2-level event channel ABI (EVTCHN_2L_NR_CHANNELS ports, KEEL_NR_EVTCHN_PORTS usable); the FIFO ABI's sub-commands answer -ENOSYS";
const EVTCHN_OP: &str = "the argument of the old event_channel_op_compat hypercall (-ENOSYS in Keel); event_channel_op takes each sub-command's own structure";
const VIRQ_UNRAISED: &str = "a source Keel does not have (trace buffers, a debugger, a profiler, a console ring, physical CPU state, memory events, Argo, the PMU, domain exceptions for dom0, architecture VIRQs such as machine checks): any VIRQ below NR_VIRQS can be bound, as in Xen, but Keel never raises this one, so it does not name it";
const DOMID_SPECIAL: &str = "Keel's interfaces accept only DOMID_SELF or the caller's own id (-ESRCH otherwise); the special owners (I/O memory, the hypervisor heap, copy-on-write pages, the idle domain) and the invalid/reserved markers have no use with one domain";
const HVMOP_OTHER: &str = "hvm_op implements only HVMOP_set_param (the upcall vector); every other sub-command answers -ENOSYS: Keel guests are PV guests on VT-x with direct paging, without a device model, EPT views (altp2m), mem_access, tracing or a per-vCPU upcall vector (one vCPU, whose vector is HVM_PARAM_CALLBACK_IRQ's)";
const HVM_PARAM_OTHER: &str = "HVMOP_set_param accepts only HVM_PARAM_CALLBACK_IRQ; every other index is -EINVAL (Keel has no xenstore or console ring, device model, emulated timers, ACPI, viridian, memory events or nested virtualisation to configure)";
const CALLBACK_OTHER: &str = "a callback through an emulated interrupt controller (GSI, PCI INTx); Keel has none and accepts only the vector type (and 0, no callback): -EINVAL";
const CALLBACK_MASK: &str = "Keel names the position of the callback type (HVM_PARAM_CALLBACK_TYPE_SHIFT, 56) instead of the mask of bits 63:56: the same bits";
const NR_PARAMS: &str = "a count that grows with every parameter Xen adds; a frozen ABI cannot promise it, and Keel accepts one index";
const VCPUOP_OTHER: &str = "vcpu_op implements only the four timer sub-commands; the others answer -ENOSYS: a Keel domain has one vCPU, always up, whose vcpu_info and time area are fixed in shared_info, and no runstate accounting, physical-CPU id or NMI sending";
const GUEST_STOPPED: &str = "Keel never pauses, saves or migrates a domain, so it never sets this pvclock flag and does not name it";
const ERRNO_UNUSED: &str = "no hypercall Keel implements fails this way; the number stays Xen's, and a version that needs it adopts it with Xen's value";

/// Every Xen item of an implemented family that has no Keel counterpart, with
/// the reason. The cross-check fails on a Xen item of [`XEN_SCOPE`] that is
/// neither in the crate nor here, and on an entry here that Xen no longer has.
pub const XEN_NOT_ADOPTED: &[XenAbsent] = &[
    absent(
        Family::Sched,
        "SHUTDOWN_MAX",
        "a maximum that Xen raised when it added SHUTDOWN_soft_reset; a frozen ABI \
         cannot promise a bound that grows, so Keel names only the reasons themselves",
    ),
    absent(Family::Sched, "sched_remote_shutdown", ONE_DOMAIN_SCHED),
    absent(Family::Sched, "sched_watchdog", ONE_DOMAIN_SCHED),
    absent(Family::Sched, "sched_pin_override", ONE_DOMAIN_SCHED),
    absent(Family::Version, "xen_compile_info", VERSION_ENOSYS),
    absent(Family::Version, "xen_platform_parameters", VERSION_ENOSYS),
    absent(Family::Version, "xen_build_id", VERSION_ENOSYS),
    absent(Family::StartInfo, "xen_multiboot_mod_list", DOM0_ONLY),
    absent(Family::StartInfo, "dom0_vga_console_info", DOM0_ONLY),
    absent(Family::StartInfo, "xenctl_bitmap", DOM0_ONLY),
    absent(Family::Event, "EVTCHNOP_bind_interdomain", INTERDOMAIN),
    absent(Family::Event, "evtchn_bind_interdomain", INTERDOMAIN),
    absent(Family::Event, "EVTCHNOP_bind_pirq", PIRQ),
    absent(Family::Event, "evtchn_bind_pirq", PIRQ),
    absent(Family::Event, "BIND_PIRQ__WILL_SHARE", PIRQ),
    absent(Family::Event, "EVTCHNOP_reset", RESET),
    absent(Family::Event, "evtchn_reset", RESET),
    absent(Family::Event, "EVTCHNOP_init_control", FIFO),
    absent(Family::Event, "EVTCHNOP_expand_array", FIFO),
    absent(Family::Event, "EVTCHNOP_set_priority", FIFO),
    absent(Family::Event, "evtchn_init_control", FIFO),
    absent(Family::Event, "evtchn_expand_array", FIFO),
    absent(Family::Event, "evtchn_set_priority", FIFO),
    absent(Family::Event, "evtchn_fifo_control_block", FIFO),
    absent(Family::Event, "EVTCHN_FIFO_BUSY", FIFO),
    absent(Family::Event, "EVTCHN_FIFO_LINKED", FIFO),
    absent(Family::Event, "EVTCHN_FIFO_LINK_BITS", FIFO),
    absent(Family::Event, "EVTCHN_FIFO_LINK_MASK", FIFO),
    absent(Family::Event, "EVTCHN_FIFO_MASKED", FIFO),
    absent(Family::Event, "EVTCHN_FIFO_MAX_QUEUES", FIFO),
    absent(Family::Event, "EVTCHN_FIFO_NR_CHANNELS", FIFO),
    absent(Family::Event, "EVTCHN_FIFO_PENDING", FIFO),
    absent(Family::Event, "EVTCHN_FIFO_PRIORITY_DEFAULT", FIFO),
    absent(Family::Event, "EVTCHN_FIFO_PRIORITY_MAX", FIFO),
    absent(Family::Event, "EVTCHN_FIFO_PRIORITY_MIN", FIFO),
    absent(Family::Event, "evtchn_op", EVTCHN_OP),
    absent(Family::Event, "VIRQ_DOM_EXC", VIRQ_UNRAISED),
    absent(Family::Event, "VIRQ_TBUF", VIRQ_UNRAISED),
    absent(Family::Event, "VIRQ_DEBUGGER", VIRQ_UNRAISED),
    absent(Family::Event, "VIRQ_XENOPROF", VIRQ_UNRAISED),
    absent(Family::Event, "VIRQ_CON_RING", VIRQ_UNRAISED),
    absent(Family::Event, "VIRQ_PCPU_STATE", VIRQ_UNRAISED),
    absent(Family::Event, "VIRQ_MEM_EVENT", VIRQ_UNRAISED),
    absent(Family::Event, "VIRQ_ARGO", VIRQ_UNRAISED),
    absent(Family::Event, "VIRQ_ENOMEM", VIRQ_UNRAISED),
    absent(Family::Event, "VIRQ_XENPMU", VIRQ_UNRAISED),
    absent(Family::Event, "VIRQ_ARCH_0", VIRQ_UNRAISED),
    absent(Family::Event, "VIRQ_ARCH_1", VIRQ_UNRAISED),
    absent(Family::Event, "VIRQ_ARCH_2", VIRQ_UNRAISED),
    absent(Family::Event, "VIRQ_ARCH_3", VIRQ_UNRAISED),
    absent(Family::Event, "VIRQ_ARCH_4", VIRQ_UNRAISED),
    absent(Family::Event, "VIRQ_ARCH_5", VIRQ_UNRAISED),
    absent(Family::Event, "VIRQ_ARCH_6", VIRQ_UNRAISED),
    absent(Family::Event, "VIRQ_ARCH_7", VIRQ_UNRAISED),
    absent(Family::Event, "DOMID_FIRST_RESERVED", DOMID_SPECIAL),
    absent(Family::Event, "DOMID_IO", DOMID_SPECIAL),
    absent(Family::Event, "DOMID_XEN", DOMID_SPECIAL),
    absent(Family::Event, "DOMID_COW", DOMID_SPECIAL),
    absent(Family::Event, "DOMID_INVALID", DOMID_SPECIAL),
    absent(Family::Event, "DOMID_IDLE", DOMID_SPECIAL),
    absent(Family::Event, "DOMID_MASK", DOMID_SPECIAL),
    absent(Family::Event, "HVMOP_flush_tlbs", HVMOP_OTHER),
    absent(Family::Event, "HVMOP_get_mem_access", HVMOP_OTHER),
    absent(Family::Event, "HVMOP_get_mem_type", HVMOP_OTHER),
    absent(Family::Event, "HVMOP_get_time", HVMOP_OTHER),
    absent(Family::Event, "HVMOP_guest_request_vm_event", HVMOP_OTHER),
    absent(Family::Event, "HVMOP_pagetable_dying", HVMOP_OTHER),
    absent(Family::Event, "HVMOP_set_evtchn_upcall_vector", HVMOP_OTHER),
    absent(Family::Event, "HVMOP_set_mem_access", HVMOP_OTHER),
    absent(Family::Event, "HVMOP_xentrace", HVMOP_OTHER),
    absent(Family::Event, "HVMOP_altp2m", HVMOP_OTHER),
    absent(Family::Event, "HVMOP_ALTP2M_INTERFACE_VERSION", HVMOP_OTHER),
    absent(Family::Event, "HVMOP_altp2m_change_gfn", HVMOP_OTHER),
    absent(Family::Event, "HVMOP_altp2m_create_p2m", HVMOP_OTHER),
    absent(Family::Event, "HVMOP_altp2m_destroy_p2m", HVMOP_OTHER),
    absent(Family::Event, "HVMOP_altp2m_get_domain_state", HVMOP_OTHER),
    absent(Family::Event, "HVMOP_altp2m_get_mem_access", HVMOP_OTHER),
    absent(Family::Event, "HVMOP_altp2m_get_p2m_idx", HVMOP_OTHER),
    absent(Family::Event, "HVMOP_altp2m_get_suppress_ve", HVMOP_OTHER),
    absent(Family::Event, "HVMOP_altp2m_set_domain_state", HVMOP_OTHER),
    absent(Family::Event, "HVMOP_altp2m_set_mem_access", HVMOP_OTHER),
    absent(
        Family::Event,
        "HVMOP_altp2m_set_mem_access_multi",
        HVMOP_OTHER,
    ),
    absent(Family::Event, "HVMOP_altp2m_set_suppress_ve", HVMOP_OTHER),
    absent(
        Family::Event,
        "HVMOP_altp2m_set_suppress_ve_multi",
        HVMOP_OTHER,
    ),
    absent(Family::Event, "HVMOP_altp2m_set_visibility", HVMOP_OTHER),
    absent(Family::Event, "HVMOP_altp2m_switch_p2m", HVMOP_OTHER),
    absent(
        Family::Event,
        "HVMOP_altp2m_vcpu_disable_notify",
        HVMOP_OTHER,
    ),
    absent(
        Family::Event,
        "HVMOP_altp2m_vcpu_enable_notify",
        HVMOP_OTHER,
    ),
    absent(Family::Event, "HVM_IOREQSRV_BUFIOREQ_ATOMIC", HVMOP_OTHER),
    absent(Family::Event, "HVM_IOREQSRV_BUFIOREQ_LEGACY", HVMOP_OTHER),
    absent(Family::Event, "HVM_IOREQSRV_BUFIOREQ_OFF", HVMOP_OTHER),
    absent(Family::Event, "xen_hvm_altp2m_change_gfn", HVMOP_OTHER),
    absent(Family::Event, "xen_hvm_altp2m_domain_state", HVMOP_OTHER),
    absent(
        Family::Event,
        "xen_hvm_altp2m_get_vcpu_p2m_idx",
        HVMOP_OTHER,
    ),
    absent(Family::Event, "xen_hvm_altp2m_mem_access", HVMOP_OTHER),
    absent(Family::Event, "xen_hvm_altp2m_op", HVMOP_OTHER),
    absent(Family::Event, "xen_hvm_altp2m_set_mem_access", HVMOP_OTHER),
    absent(
        Family::Event,
        "xen_hvm_altp2m_set_mem_access_multi",
        HVMOP_OTHER,
    ),
    absent(Family::Event, "xen_hvm_altp2m_set_visibility", HVMOP_OTHER),
    absent(Family::Event, "xen_hvm_altp2m_suppress_ve", HVMOP_OTHER),
    absent(
        Family::Event,
        "xen_hvm_altp2m_suppress_ve_multi",
        HVMOP_OTHER,
    ),
    absent(
        Family::Event,
        "xen_hvm_altp2m_vcpu_disable_notify",
        HVMOP_OTHER,
    ),
    absent(
        Family::Event,
        "xen_hvm_altp2m_vcpu_enable_notify",
        HVMOP_OTHER,
    ),
    absent(Family::Event, "xen_hvm_altp2m_view", HVMOP_OTHER),
    absent(Family::Event, "xen_hvm_evtchn_upcall_vector", HVMOP_OTHER),
    absent(Family::Event, "xen_hvm_get_mem_type", HVMOP_OTHER),
    absent(Family::Event, "xen_hvm_get_time", HVMOP_OTHER),
    absent(Family::Event, "xen_hvm_pagetable_dying", HVMOP_OTHER),
    absent(Family::Event, "xen_hvm_set_isa_irq_level", HVMOP_OTHER),
    absent(Family::Event, "xen_hvm_set_pci_intx_level", HVMOP_OTHER),
    absent(Family::Event, "xen_hvm_set_pci_link_route", HVMOP_OTHER),
    absent(Family::Event, "xen_hvm_xentrace", HVMOP_OTHER),
    absent(
        Family::Event,
        "HVM_PARAM_ACPI_IOPORTS_LOCATION",
        HVM_PARAM_OTHER,
    ),
    absent(Family::Event, "HVM_PARAM_ACPI_S_STATE", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_ALTP2M", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_BUFIOREQ_EVTCHN", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_BUFIOREQ_PFN", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_CONSOLE_EVTCHN", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_CONSOLE_PFN", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_DM_DOMAIN", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_HPET_ENABLED", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_IDENT_PT", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_IOREQ_PFN", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_IOREQ_SERVER_PFN", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_MCA_CAP", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_MEMORY_EVENT_CR0", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_MEMORY_EVENT_CR3", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_MEMORY_EVENT_CR4", HVM_PARAM_OTHER),
    absent(
        Family::Event,
        "HVM_PARAM_MEMORY_EVENT_INT3",
        HVM_PARAM_OTHER,
    ),
    absent(Family::Event, "HVM_PARAM_MEMORY_EVENT_MSR", HVM_PARAM_OTHER),
    absent(
        Family::Event,
        "HVM_PARAM_MEMORY_EVENT_SINGLE_STEP",
        HVM_PARAM_OTHER,
    ),
    absent(Family::Event, "HVM_PARAM_MONITOR_RING_PFN", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_NESTEDHVM", HVM_PARAM_OTHER),
    absent(
        Family::Event,
        "HVM_PARAM_NR_IOREQ_SERVER_PAGES",
        HVM_PARAM_OTHER,
    ),
    absent(Family::Event, "HVM_PARAM_PAE_ENABLED", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_PAGING_RING_PFN", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_SHARING_RING_PFN", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_STORE_EVTCHN", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_STORE_PFN", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_TIMER_MODE", HVM_PARAM_OTHER),
    absent(
        Family::Event,
        "HVM_PARAM_TRIPLE_FAULT_REASON",
        HVM_PARAM_OTHER,
    ),
    absent(Family::Event, "HVM_PARAM_VIRIDIAN", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_VM86_TSS", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_VM86_TSS_SIZED", HVM_PARAM_OTHER),
    absent(
        Family::Event,
        "HVM_PARAM_VM_GENERATION_ID_ADDR",
        HVM_PARAM_OTHER,
    ),
    absent(Family::Event, "HVM_PARAM_VPT_ALIGN", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_X87_FIP_WIDTH", HVM_PARAM_OTHER),
    absent(Family::Event, "HVM_PARAM_CALLBACK_TYPE_GSI", CALLBACK_OTHER),
    absent(
        Family::Event,
        "HVM_PARAM_CALLBACK_TYPE_PCI_INTX",
        CALLBACK_OTHER,
    ),
    absent(
        Family::Event,
        "HVM_PARAM_CALLBACK_IRQ_TYPE_MASK",
        CALLBACK_MASK,
    ),
    absent(Family::Event, "HVM_NR_PARAMS", NR_PARAMS),
    absent(Family::Time, "VCPUOP_initialise", VCPUOP_OTHER),
    absent(Family::Time, "VCPUOP_up", VCPUOP_OTHER),
    absent(Family::Time, "VCPUOP_down", VCPUOP_OTHER),
    absent(Family::Time, "VCPUOP_is_up", VCPUOP_OTHER),
    absent(Family::Time, "VCPUOP_get_runstate_info", VCPUOP_OTHER),
    absent(
        Family::Time,
        "VCPUOP_register_runstate_memory_area",
        VCPUOP_OTHER,
    ),
    absent(Family::Time, "VCPUOP_register_vcpu_info", VCPUOP_OTHER),
    absent(Family::Time, "VCPUOP_send_nmi", VCPUOP_OTHER),
    absent(Family::Time, "VCPUOP_get_physid", VCPUOP_OTHER),
    absent(
        Family::Time,
        "VCPUOP_register_vcpu_time_memory_area",
        VCPUOP_OTHER,
    ),
    absent(Family::Time, "vcpu_runstate_info", VCPUOP_OTHER),
    absent(
        Family::Time,
        "vcpu_register_runstate_memory_area",
        VCPUOP_OTHER,
    ),
    absent(Family::Time, "vcpu_register_vcpu_info", VCPUOP_OTHER),
    absent(Family::Time, "vcpu_get_physid", VCPUOP_OTHER),
    absent(Family::Time, "vcpu_register_time_memory_area", VCPUOP_OTHER),
    absent(Family::Time, "RUNSTATE_running", VCPUOP_OTHER),
    absent(Family::Time, "RUNSTATE_runnable", VCPUOP_OTHER),
    absent(Family::Time, "RUNSTATE_blocked", VCPUOP_OTHER),
    absent(Family::Time, "RUNSTATE_offline", VCPUOP_OTHER),
    absent(Family::Time, "XEN_RUNSTATE_UPDATE", VCPUOP_OTHER),
    absent(Family::Time, "XEN_PVCLOCK_GUEST_STOPPED", GUEST_STOPPED),
    absent(Family::Errno, "ECHILD", ERRNO_UNUSED),
    absent(Family::Errno, "EDEADLK", ERRNO_UNUSED),
    absent(Family::Errno, "EDEADLOCK", ERRNO_UNUSED),
    absent(Family::Errno, "EDOM", ERRNO_UNUSED),
    absent(Family::Errno, "EILSEQ", ERRNO_UNUSED),
    absent(Family::Errno, "EISCONN", ERRNO_UNUSED),
    absent(Family::Errno, "EISDIR", ERRNO_UNUSED),
    absent(Family::Errno, "EMFILE", ERRNO_UNUSED),
    absent(Family::Errno, "EMLINK", ERRNO_UNUSED),
    absent(Family::Errno, "EMSGSIZE", ERRNO_UNUSED),
    absent(Family::Errno, "ENAMETOOLONG", ERRNO_UNUSED),
    absent(Family::Errno, "ENFILE", ERRNO_UNUSED),
    absent(Family::Errno, "ENOBUFS", ERRNO_UNUSED),
    absent(Family::Errno, "ENODATA", ERRNO_UNUSED),
    absent(Family::Errno, "ENOEXEC", ERRNO_UNUSED),
    absent(Family::Errno, "ENOLCK", ERRNO_UNUSED),
    absent(Family::Errno, "ENOTCONN", ERRNO_UNUSED),
    absent(Family::Errno, "ENOTDIR", ERRNO_UNUSED),
    absent(Family::Errno, "ENOTEMPTY", ERRNO_UNUSED),
    absent(Family::Errno, "ENOTSOCK", ERRNO_UNUSED),
    absent(Family::Errno, "EOVERFLOW", ERRNO_UNUSED),
    absent(Family::Errno, "EROFS", ERRNO_UNUSED),
    absent(Family::Errno, "ETIMEDOUT", ERRNO_UNUSED),
    absent(Family::Errno, "EWOULDBLOCK", ERRNO_UNUSED),
    absent(Family::Errno, "EXDEV", ERRNO_UNUSED),
    absent(Family::Errno, "EADDRINUSE", ERRNO_UNUSED),
    absent(Family::Errno, "EADDRNOTAVAIL", ERRNO_UNUSED),
    absent(Family::Errno, "EBADMSG", ERRNO_UNUSED),
    absent(Family::Errno, "ECONNREFUSED", ERRNO_UNUSED),
];
