//! The items described: constants and structures, with their tables.

use super::*;

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
pub(super) const fn field_size<T, F>(_accessor: fn(&T) -> &F) -> usize {
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

pub(super) const V0_1: AbiVersion = AbiVersion::V0_1;
pub(super) const V1_0: AbiVersion = AbiVersion::V1_0;
pub(super) const V1_1: AbiVersion = AbiVersion::V1_1;
pub(super) const V1_2: AbiVersion = AbiVersion::V1_2;

/// The next minor version while its items are being added but not yet served,
/// or `None` when nothing is staged (now 1.2: [`AbiVersion::CURRENT`] is 1.1,
/// and the vCPU operations of [`crate::vcpu`] are staged for 1.2).
///
/// An item with this `since` is in the crate, compared with Xen's headers and
/// documented (its tables say "in progress"), but it is not part of the
/// description of [`AbiVersion::CURRENT`]: [`write_fixture`] leaves it out, so no
/// fixture changes and no guest is told it exists; the hypervisor serves it only
/// to an image that declares exactly this version
/// ([`AbiVersion::served_to`]). To stage the first item for 1.2: add
/// `AbiVersion::V1_2`, set this to `Some(AbiVersion::V1_2)` and give the item
/// that `since`. Bumping `CURRENT` to it (when the hypervisor serves the items)
/// makes them part of the description and serves them by the ordinary rule;
/// this goes back to `None`.
pub const IN_PROGRESS: Option<AbiVersion> = Some(V1_2);

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
    abi_struct!(VcpuRunstateInfo in Family::Vcpu, since V1_2, xen XenRelation::Same("vcpu_runstate_info"), {
        state, state_entry_time, time,
    }),
    abi_struct!(VcpuRegisterVcpuInfo in Family::Vcpu, since V1_2, xen XenRelation::Same("vcpu_register_vcpu_info"), {
        mfn, offset, rsvd,
    }),
    abi_struct!(CpuUserRegs in Family::Vcpu, since V1_2, xen XenRelation::Same("cpu_user_regs"), {
        r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi,
        error_code, entry_vector, rip, cs, pad0 => Some("_pad0"), saved_upcall_mask,
        pad1 => Some("_pad1"), rflags, rsp, ss, pad2 => Some("_pad2"), es, pad3 => Some("_pad3"),
        ds, pad4 => Some("_pad4"), fs, pad5 => Some("_pad5"), gs, pad6 => Some("_pad6"),
    }),
    abi_struct!(TrapInfo in Family::Vcpu, since V1_2, xen XenRelation::Same("trap_info"), {
        vector, flags, cs, address,
    }),
    abi_struct!(VcpuGuestContext in Family::Vcpu, since V1_2, xen XenRelation::Same("vcpu_guest_context"), {
        fpu_ctxt, flags, user_regs, trap_ctxt, ldt_base, ldt_ents, gdt_frames, gdt_ents,
        kernel_ss, kernel_sp, ctrlreg, debugreg, event_callback_eip, failsafe_callback_eip,
        syscall_callback_eip, vm_assist, fs_base, gs_base_kernel, gs_base_user,
    }),
];

/// The per-module constant lists, in [`Family`] order.
pub(super) const CONSTANT_GROUPS: &[&[Constant]] = &[
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
    crate::debug::DELAY_CONSTS,
    crate::grant_table::ABI_CONSTS,
    crate::grant_table::STATUS_CONSTS,
    crate::domctl::ABI_CONSTS,
    crate::vcpu::ABI_CONSTS,
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
