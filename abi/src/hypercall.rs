//! Hypercall numbers: Xen's `__HYPERVISOR_*` values from `xen/include/public/xen.h`.
//!
//! Every number Xen defines is listed so that Keel can name it in diagnostics and
//! answer it; [`Hypercall::implemented_since`] says which ones Keel implements and
//! since which ABI version, and [`IMPLEMENTED`] lists each implemented
//! sub-command. Everything else returns `-ENOSYS` (reference: `docs/abi/README.md`).
//!
//! Bare-metal difference: there is no such interface on bare metal; a Keel guest
//! reaches the hypervisor with `VMCALL` (number in RAX, arguments in RDI, RSI,
//! RDX, R10, R8), not through Xen's hypercall page.

use crate::version::AbiVersion;

macro_rules! hypercalls {
    ($($(#[doc = $doc:literal])* $name:ident = $v:expr, $doc_name:literal, $since:expr;)*) => {
        /// A Xen hypercall number.
        #[repr(transparent)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct Hypercall(pub u64);

        impl Hypercall {
            $($(#[doc = $doc])* pub const $name: Hypercall = Hypercall($v);)*

            /// A one-line description (the constant's rustdoc), if it is a known number.
            pub const fn description(self) -> Option<&'static str> {
                match self.0 {
                    $($v => Some(concat!($($doc),*)),)*
                    _ => None,
                }
            }

            /// Xen's name for the hypercall (`"xen_version"`), if it is a known number.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($v => Some($doc_name),)*
                    _ => None,
                }
            }

            /// The Keel ABI version that implemented this hypercall, or `None` when
            /// Keel answers it with `-ENOSYS`.
            pub const fn implemented_since(self) -> Option<AbiVersion> {
                match self.0 {
                    $($v => $since,)*
                    _ => None,
                }
            }
        }

        /// Every hypercall number Xen defines, ascending.
        pub const ALL: &[Hypercall] = &[$(Hypercall::$name),*];
    };
}

const V0_1: Option<AbiVersion> = Some(AbiVersion::V0_1);
const V1_0: Option<AbiVersion> = Some(AbiVersion::V1_0);
/// 1.1: several domains.
const V1_1: Option<AbiVersion> = Some(AbiVersion::V1_1);

hypercalls! {
    /// Install a virtual IDT (PV only; Keel guests own a real IDT).
    SET_TRAP_TABLE = 0, "set_trap_table", None;
    /// Validated page-table updates.
    MMU_UPDATE = 1, "mmu_update", V1_0;
    /// Install a GDT (PV only; Keel guests own a real GDT).
    SET_GDT = 2, "set_gdt", None;
    /// Kernel stack switch (PV only).
    STACK_SWITCH = 3, "stack_switch", None;
    /// Event and failsafe callbacks (PV only).
    SET_CALLBACKS = 4, "set_callbacks", None;
    /// Lazy FPU switching.
    FPU_TASKSWITCH = 5, "fpu_taskswitch", None;
    /// Old scheduler interface.
    SCHED_OP_COMPAT = 6, "sched_op_compat", None;
    /// Platform operations (dom0 only).
    PLATFORM_OP = 7, "platform_op", None;
    /// Set a debug register.
    SET_DEBUGREG = 8, "set_debugreg", None;
    /// Read a debug register.
    GET_DEBUGREG = 9, "get_debugreg", None;
    /// Update a GDT/LDT descriptor.
    UPDATE_DESCRIPTOR = 10, "update_descriptor", None;
    /// Memory reservation and translation.
    MEMORY_OP = 12, "memory_op", None;
    /// Batch several hypercalls.
    MULTICALL = 13, "multicall", V1_0;
    /// Update one PTE by virtual address.
    UPDATE_VA_MAPPING = 14, "update_va_mapping", None;
    /// One-shot timer, absolute system time.
    SET_TIMER_OP = 15, "set_timer_op", V1_0;
    /// Old event-channel interface.
    EVENT_CHANNEL_OP_COMPAT = 16, "event_channel_op_compat", None;
    /// Version and feature queries.
    XEN_VERSION = 17, "xen_version", V0_1;
    /// Hypervisor console.
    CONSOLE_IO = 18, "console_io", V0_1;
    /// Old physdev interface.
    PHYSDEV_OP_COMPAT = 19, "physdev_op_compat", None;
    /// Grant tables.
    GRANT_TABLE_OP = 20, "grant_table_op", V1_1;
    /// VM assists.
    VM_ASSIST = 21, "vm_assist", None;
    /// Update a PTE of another domain.
    UPDATE_VA_MAPPING_OTHERDOMAIN = 22, "update_va_mapping_otherdomain", None;
    /// Return from a PV exception frame.
    IRET = 23, "iret", None;
    /// Per-vCPU operations.
    VCPU_OP = 24, "vcpu_op", V1_0;
    /// Set FS/GS bases (PV only).
    SET_SEGMENT_BASE = 25, "set_segment_base", None;
    /// Extended MMU operations: pinning, base pointer, TLB flushes.
    MMUEXT_OP = 26, "mmuext_op", V1_0;
    /// XSM / Flask.
    XSM_OP = 27, "xsm_op", None;
    /// NMI callbacks.
    NMI_OP = 28, "nmi_op", None;
    /// Scheduler operations: yield, block, shutdown, poll.
    SCHED_OP = 29, "sched_op", V0_1;
    /// Callback registration.
    CALLBACK_OP = 30, "callback_op", None;
    /// Xenoprof.
    XENOPROF_OP = 31, "xenoprof_op", None;
    /// Event channels.
    EVENT_CHANNEL_OP = 32, "event_channel_op", V1_0;
    /// Physical device operations.
    PHYSDEV_OP = 33, "physdev_op", None;
    /// HVM parameters (Keel uses HVM_PARAM_CALLBACK_IRQ for the upcall vector).
    HVM_OP = 34, "hvm_op", V1_0;
    /// System control (toolstack).
    SYSCTL = 35, "sysctl", None;
    /// Domain control (toolstack).
    DOMCTL = 36, "domctl", V1_1;
    /// Kexec.
    KEXEC_OP = 37, "kexec_op", None;
    /// Transcendent memory.
    TMEM_OP = 38, "tmem_op", None;
    /// Argo inter-domain messaging.
    ARGO_OP = 39, "argo_op", None;
    /// PMU.
    XENPMU_OP = 40, "xenpmu_op", None;
    /// Device-model operations.
    DM_OP = 41, "dm_op", None;
    /// Hypervisor file system.
    HYPFS_OP = 42, "hypfs_op", None;
    /// Architecture-specific hypercall 0 (x86: machine-check handling, `mca`).
    ARCH_0 = 48, "arch_0", None;
    /// Architecture-specific hypercall 1 (x86: `paging_domctl_cont`).
    ARCH_1 = 49, "arch_1", None;
    /// Architecture-specific hypercall 2 (unused on x86).
    ARCH_2 = 50, "arch_2", None;
    /// Architecture-specific hypercall 3 (unused on x86).
    ARCH_3 = 51, "arch_3", None;
    /// Architecture-specific hypercall 4 (unused on x86).
    ARCH_4 = 52, "arch_4", None;
    /// Architecture-specific hypercall 5 (unused on x86).
    ARCH_5 = 53, "arch_5", None;
    /// Architecture-specific hypercall 6 (unused on x86).
    ARCH_6 = 54, "arch_6", None;
    /// Architecture-specific hypercall 7 (unused on x86).
    ARCH_7 = 55, "arch_7", None;
}

/// Arguments of one hypercall as they arrive in registers (RDI, RSI, RDX, R10, R8).
///
/// `repr(C)`, so that the hypervisor can lay its saved guest registers out to
/// coincide with it and dispatch a hypercall without copying them (a register
/// convention, not a memory ABI: no guest ever sees this structure).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HypercallArgs {
    /// The hypercall number (RAX).
    pub nr: u64,
    /// The five arguments.
    pub args: [u64; 5],
}

/// One implemented sub-command of a hypercall: the finest unit of "what a
/// hypervisor of version `v` promises". Every 0.1 hypercall takes its sub-command
/// in the first argument (RDI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubCommand {
    /// The hypercall.
    pub hypercall: Hypercall,
    /// The sub-command number (first argument).
    pub sub: u64,
    /// Xen's name of the sub-command (`"XENVER_get_features"`).
    pub name: &'static str,
    /// The ABI version that implemented it.
    pub since: AbiVersion,
}

/// Every implemented sub-command, by hypercall and sub-command number. Any
/// (hypercall, sub-command) pair not listed here returns `-ENOSYS`. The
/// hypervisor's dispatch table is tested against this list, the compatibility
/// guest checks each entry a hypervisor's version promises and expects `-ENOSYS`
/// for the newer ones, and the fixtures freeze it.
pub const IMPLEMENTED: &[SubCommand] = {
    use crate::console::CONSOLEIO_WRITE;
    use crate::domctl::{
        XEN_DOMCTL_DESTROYDOMAIN, XEN_DOMCTL_GETDOMAININFO, XEN_DOMCTL_PAUSEDOMAIN,
        XEN_DOMCTL_UNPAUSEDOMAIN,
    };
    use crate::event::{
        EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_BIND_INTERDOMAIN, EVTCHNOP_BIND_IPI, EVTCHNOP_BIND_VCPU,
        EVTCHNOP_BIND_VIRQ, EVTCHNOP_CLOSE, EVTCHNOP_SEND, EVTCHNOP_STATUS, EVTCHNOP_UNMASK,
        HVMOP_SET_PARAM,
    };
    use crate::grant_table::{
        GNTTABOP_COPY, GNTTABOP_MAP_GRANT_REF, GNTTABOP_QUERY_SIZE, GNTTABOP_SETUP_TABLE,
        GNTTABOP_UNMAP_GRANT_REF,
    };
    use crate::mmu::{
        MMUEXT_INVLPG_ALL as INVLPG_ALL, MMUEXT_INVLPG_LOCAL as INVLPG_LOCAL,
        MMUEXT_INVLPG_MULTI as INVLPG_MULTI, MMUEXT_NEW_BASEPTR as BASEPTR,
        MMUEXT_PIN_L1_TABLE as PIN1, MMUEXT_PIN_L2_TABLE as PIN2, MMUEXT_PIN_L3_TABLE as PIN3,
        MMUEXT_PIN_L4_TABLE as PIN4, MMUEXT_TLB_FLUSH_ALL as FLUSH_ALL,
        MMUEXT_TLB_FLUSH_LOCAL as FLUSH_LOCAL, MMUEXT_TLB_FLUSH_MULTI as FLUSH_MULTI,
        MMUEXT_UNPIN_TABLE as UNPIN, MMU_NORMAL_PT_UPDATE,
    };
    use crate::sched::{SCHEDOP_BLOCK, SCHEDOP_POLL};
    use crate::sched::{SCHEDOP_SHUTDOWN, SCHEDOP_YIELD};
    use crate::time::{
        VCPUOP_SET_PERIODIC_TIMER, VCPUOP_SET_SINGLESHOT_TIMER, VCPUOP_STOP_PERIODIC_TIMER,
        VCPUOP_STOP_SINGLESHOT_TIMER,
    };
    use crate::vcpu::{
        VCPUOP_DOWN, VCPUOP_GET_RUNSTATE_INFO, VCPUOP_INITIALISE, VCPUOP_IS_UP,
        VCPUOP_REGISTER_VCPU_INFO, VCPUOP_UP,
    };
    use crate::version::{
        XENVER_EXTRAVERSION, XENVER_GET_FEATURES, XENVER_PAGESIZE, XENVER_VERSION,
    };
    const V: AbiVersion = AbiVersion::V0_1;
    const W: AbiVersion = AbiVersion::V1_0;
    const V2: AbiVersion = AbiVersion::V1_0;
    // 1.1: several domains (grant tables, interdomain event channels).
    const NEXT: AbiVersion = AbiVersion::V1_1;
    // 1.2 (in progress): several vCPUs per domain.
    const V12: AbiVersion = AbiVersion::V1_2;
    const fn s(
        hypercall: Hypercall,
        sub: u64,
        name: &'static str,
        since: AbiVersion,
    ) -> SubCommand {
        SubCommand {
            hypercall,
            sub,
            name,
            since,
        }
    }
    &[
        s(Hypercall::XEN_VERSION, XENVER_VERSION, "XENVER_version", V),
        s(
            Hypercall::XEN_VERSION,
            XENVER_EXTRAVERSION,
            "XENVER_extraversion",
            V,
        ),
        s(
            Hypercall::XEN_VERSION,
            XENVER_GET_FEATURES,
            "XENVER_get_features",
            V,
        ),
        s(
            Hypercall::XEN_VERSION,
            XENVER_PAGESIZE,
            "XENVER_pagesize",
            V,
        ),
        s(Hypercall::CONSOLE_IO, CONSOLEIO_WRITE, "CONSOLEIO_write", V),
        s(Hypercall::SCHED_OP, SCHEDOP_YIELD, "SCHEDOP_yield", V),
        s(Hypercall::SCHED_OP, SCHEDOP_SHUTDOWN, "SCHEDOP_shutdown", V),
        s(Hypercall::SCHED_OP, SCHEDOP_BLOCK, "SCHEDOP_block", W),
        s(Hypercall::SCHED_OP, SCHEDOP_POLL, "SCHEDOP_poll", W),
        s(Hypercall::SET_TIMER_OP, 0, "set_timer_op", W),
        s(
            Hypercall::EVENT_CHANNEL_OP,
            EVTCHNOP_BIND_VIRQ,
            "EVTCHNOP_bind_virq",
            W,
        ),
        s(
            Hypercall::EVENT_CHANNEL_OP,
            EVTCHNOP_CLOSE,
            "EVTCHNOP_close",
            W,
        ),
        s(
            Hypercall::EVENT_CHANNEL_OP,
            EVTCHNOP_SEND,
            "EVTCHNOP_send",
            W,
        ),
        s(
            Hypercall::EVENT_CHANNEL_OP,
            EVTCHNOP_STATUS,
            "EVTCHNOP_status",
            W,
        ),
        s(
            Hypercall::EVENT_CHANNEL_OP,
            EVTCHNOP_ALLOC_UNBOUND,
            "EVTCHNOP_alloc_unbound",
            W,
        ),
        s(
            Hypercall::EVENT_CHANNEL_OP,
            EVTCHNOP_BIND_IPI,
            "EVTCHNOP_bind_ipi",
            W,
        ),
        s(
            Hypercall::EVENT_CHANNEL_OP,
            EVTCHNOP_BIND_VCPU,
            "EVTCHNOP_bind_vcpu",
            W,
        ),
        s(
            Hypercall::EVENT_CHANNEL_OP,
            EVTCHNOP_UNMASK,
            "EVTCHNOP_unmask",
            W,
        ),
        s(
            Hypercall::VCPU_OP,
            VCPUOP_SET_PERIODIC_TIMER,
            "VCPUOP_set_periodic_timer",
            W,
        ),
        s(
            Hypercall::VCPU_OP,
            VCPUOP_STOP_PERIODIC_TIMER,
            "VCPUOP_stop_periodic_timer",
            W,
        ),
        s(
            Hypercall::VCPU_OP,
            VCPUOP_SET_SINGLESHOT_TIMER,
            "VCPUOP_set_singleshot_timer",
            W,
        ),
        s(
            Hypercall::VCPU_OP,
            VCPUOP_STOP_SINGLESHOT_TIMER,
            "VCPUOP_stop_singleshot_timer",
            W,
        ),
        s(Hypercall::HVM_OP, HVMOP_SET_PARAM, "HVMOP_set_param", W),
        // 1.0: the PV MMU. `mmu_update` and `mmuext_op` take their command inside
        // each request (not in RDI); the "sub-command" here is that command.
        // `multicall` has none: sub 0 stands for the hypercall itself.
        s(
            Hypercall::MMU_UPDATE,
            MMU_NORMAL_PT_UPDATE,
            "MMU_NORMAL_PT_UPDATE",
            V2,
        ),
        s(Hypercall::MMUEXT_OP, PIN1 as u64, "MMUEXT_PIN_L1_TABLE", V2),
        s(Hypercall::MMUEXT_OP, PIN2 as u64, "MMUEXT_PIN_L2_TABLE", V2),
        s(Hypercall::MMUEXT_OP, PIN3 as u64, "MMUEXT_PIN_L3_TABLE", V2),
        s(Hypercall::MMUEXT_OP, PIN4 as u64, "MMUEXT_PIN_L4_TABLE", V2),
        s(Hypercall::MMUEXT_OP, UNPIN as u64, "MMUEXT_UNPIN_TABLE", V2),
        s(
            Hypercall::MMUEXT_OP,
            BASEPTR as u64,
            "MMUEXT_NEW_BASEPTR",
            V2,
        ),
        s(
            Hypercall::MMUEXT_OP,
            FLUSH_LOCAL as u64,
            "MMUEXT_TLB_FLUSH_LOCAL",
            V2,
        ),
        s(
            Hypercall::MMUEXT_OP,
            INVLPG_LOCAL as u64,
            "MMUEXT_INVLPG_LOCAL",
            V2,
        ),
        s(
            Hypercall::MMUEXT_OP,
            FLUSH_MULTI as u64,
            "MMUEXT_TLB_FLUSH_MULTI",
            V2,
        ),
        s(
            Hypercall::MMUEXT_OP,
            INVLPG_MULTI as u64,
            "MMUEXT_INVLPG_MULTI",
            V2,
        ),
        s(
            Hypercall::MMUEXT_OP,
            FLUSH_ALL as u64,
            "MMUEXT_TLB_FLUSH_ALL",
            V2,
        ),
        s(
            Hypercall::MMUEXT_OP,
            INVLPG_ALL as u64,
            "MMUEXT_INVLPG_ALL",
            V2,
        ),
        s(Hypercall::MULTICALL, 0, "multicall", V2),
        s(
            Hypercall::EVENT_CHANNEL_OP,
            EVTCHNOP_BIND_INTERDOMAIN,
            "EVTCHNOP_bind_interdomain",
            NEXT,
        ),
        s(
            Hypercall::GRANT_TABLE_OP,
            GNTTABOP_MAP_GRANT_REF,
            "GNTTABOP_map_grant_ref",
            NEXT,
        ),
        s(
            Hypercall::GRANT_TABLE_OP,
            GNTTABOP_UNMAP_GRANT_REF,
            "GNTTABOP_unmap_grant_ref",
            NEXT,
        ),
        s(
            Hypercall::GRANT_TABLE_OP,
            GNTTABOP_SETUP_TABLE,
            "GNTTABOP_setup_table",
            NEXT,
        ),
        s(
            Hypercall::GRANT_TABLE_OP,
            GNTTABOP_COPY,
            "GNTTABOP_copy",
            NEXT,
        ),
        s(
            Hypercall::GRANT_TABLE_OP,
            GNTTABOP_QUERY_SIZE,
            "GNTTABOP_query_size",
            NEXT,
        ),
        s(
            Hypercall::DOMCTL,
            XEN_DOMCTL_GETDOMAININFO as u64,
            "XEN_DOMCTL_getdomaininfo",
            NEXT,
        ),
        s(
            Hypercall::DOMCTL,
            XEN_DOMCTL_PAUSEDOMAIN as u64,
            "XEN_DOMCTL_pausedomain",
            NEXT,
        ),
        s(
            Hypercall::DOMCTL,
            XEN_DOMCTL_UNPAUSEDOMAIN as u64,
            "XEN_DOMCTL_unpausedomain",
            NEXT,
        ),
        s(
            Hypercall::DOMCTL,
            XEN_DOMCTL_DESTROYDOMAIN as u64,
            "XEN_DOMCTL_destroydomain",
            NEXT,
        ),
        s(
            Hypercall::VCPU_OP,
            VCPUOP_INITIALISE,
            "VCPUOP_initialise",
            V12,
        ),
        s(Hypercall::VCPU_OP, VCPUOP_UP, "VCPUOP_up", V12),
        s(Hypercall::VCPU_OP, VCPUOP_DOWN, "VCPUOP_down", V12),
        s(Hypercall::VCPU_OP, VCPUOP_IS_UP, "VCPUOP_is_up", V12),
        s(
            Hypercall::VCPU_OP,
            VCPUOP_GET_RUNSTATE_INFO,
            "VCPUOP_get_runstate_info",
            V12,
        ),
        s(
            Hypercall::VCPU_OP,
            VCPUOP_REGISTER_VCPU_INFO,
            "VCPUOP_register_vcpu_info",
            V12,
        ),
    ]
};

/// The version that implemented sub-command `sub` of `hypercall`, or `None` when
/// it is `-ENOSYS`.
pub fn sub_implemented_since(hypercall: Hypercall, sub: u64) -> Option<AbiVersion> {
    IMPLEMENTED
        .iter()
        .find(|s| s.hypercall == hypercall && s.sub == sub)
        .map(|s| s.since)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implemented_sub_commands_agree_with_their_hypercalls() {
        for h in ALL {
            let subs: std::vec::Vec<_> = IMPLEMENTED.iter().filter(|s| s.hypercall == *h).collect();
            match h.implemented_since() {
                // A hypercall is implemented since its first sub-command was.
                Some(v) => assert_eq!(
                    subs.iter().map(|s| s.since).min(),
                    Some(v),
                    "{:?}",
                    h.name()
                ),
                None => assert!(subs.is_empty(), "{:?}", h.name()),
            }
        }
        for (i, a) in IMPLEMENTED.iter().enumerate() {
            for b in &IMPLEMENTED[i + 1..] {
                assert!(
                    (a.hypercall, a.sub) != (b.hypercall, b.sub),
                    "{} twice",
                    a.name
                );
            }
        }
        assert_eq!(
            sub_implemented_since(Hypercall::SCHED_OP, 2),
            Some(AbiVersion::V0_1)
        );
        assert_eq!(sub_implemented_since(Hypercall::SCHED_OP, 0xffff), None);
    }

    #[test]
    fn names_and_order() {
        assert_eq!(Hypercall::XEN_VERSION.0, 17);
        assert_eq!(Hypercall(17).name(), Some("xen_version"));
        assert_eq!(Hypercall(11).name(), None);
        assert_eq!(Hypercall(999).implemented_since(), None);
        assert!(ALL.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
