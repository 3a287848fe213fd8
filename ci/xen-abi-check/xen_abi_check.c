/*
 * xen_abi_check: print the layouts and constants of every Xen structure and
 * number the Keel ABI claims to share, as Xen's own public headers (Debian's
 * libxen-dev, /usr/include/xen) define them.
 *
 * Keel's side of the comparison is data in the keel-abi crate
 * (keel_abi::layout); abi/tests/xen_cross_check.rs compiles this program with
 * `cc`, runs it, and compares field by field. This program only reports what
 * the headers say: it makes no judgement and has no Keel values in it.
 *
 * Output: one item per line, space-separated, easy to parse:
 *   interface <__XEN_INTERFACE_VERSION__ in hex>
 *   struct <name> size=<n> align=<n>
 *   field <struct> <field> offset=<n> size=<n>
 *   const <NAME> <value>
 *   hypercall <name> <number>
 *   errno <NAME> <value> [internal]
 *
 * Build by hand:  cc -std=gnu11 -Wall -Wextra -Werror -o xen-abi-check xen_abi_check.c
 */

/* The newest interface these headers describe; the layouts Keel shares have
 * not changed since long before 4.x, and the program prints what it used. */
#define __XEN_INTERFACE_VERSION__ __XEN_LATEST_INTERFACE_VERSION__
/* domctl.h is the toolstack's interface and refuses to be included otherwise. */
#define __XEN_TOOLS__

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <xen/xen-compat.h>
#include <xen/xen.h>
#include <xen/version.h>
#include <xen/sched.h>
#include <xen/features.h>
#include <xen/arch-x86/cpuid.h>
#include <xen/event_channel.h>
#include <xen/vcpu.h>
#include <xen/hvm/params.h>
#include <xen/hvm/hvm_op.h>
#include <xen/grant_table.h>
#include <xen/domctl.h>
#include <xen/io/ring.h>

_Static_assert(sizeof(long) == 8, "Keel shares Xen's x86_64 layouts: build on an LP64 host");

#define STRUCT(name, type) \
    printf("struct %s size=%zu align=%zu\n", name, sizeof(type), _Alignof(type))
#define FIELD(sname, type, member, label) \
    printf("field %s %s offset=%zu size=%zu\n", sname, label, \
           offsetof(type, member), sizeof(((type *)0)->member))
#define CONST(name) printf("const %s %llu\n", #name, (unsigned long long)(name))
#define CONST_AS(label, value) printf("const %s %llu\n", label, (unsigned long long)(value))
#define HYPERCALL(name) printf("hypercall %s %d\n", #name, __HYPERVISOR_##name)

/*
 * io/ring.h defines no ring of its own, only DEFINE_RING_TYPES: instantiate it
 * for a probe request and response and print the header every ring shares
 * (the bytes before `ring`) as "sring_header".
 */
struct keel_probe_req { uint32_t id; };
struct keel_probe_rsp { uint32_t id; };
DEFINE_RING_TYPES(keel_probe, struct keel_probe_req, struct keel_probe_rsp);

/* The anonymous struct of start_info.console.domU, as its own type. */
typedef __typeof__(((struct start_info *)0)->console.domU) console_domU_t;

static void errnos(void)
{
    /*
     * xen/errno.h lets the includer define XEN_ERRNO(name, value) and includes
     * the list once per definition. Entries Xen keeps inside the hypervisor are
     * wrapped in #ifdef __XEN__: include the list twice, once without and once
     * with __XEN__, and mark the ones only the second pass saw as "internal".
     */
    static const struct { const char *name; int value; } guest[] = {
#define XEN_ERRNO(name, value) { #name, value },
#include <xen/errno.h>
    };
#define __XEN__
    static const struct { const char *name; int value; } all[] = {
#define XEN_ERRNO(name, value) { #name, value },
#include <xen/errno.h>
    };
#undef __XEN__
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        int exposed = 0;
        for (size_t j = 0; j < sizeof(guest) / sizeof(guest[0]); j++)
            if (strcmp(guest[j].name, all[i].name) == 0)
                exposed = 1;
        printf("errno %s %d%s\n", all[i].name, all[i].value, exposed ? "" : " internal");
    }
}

int main(void)
{
    printf("interface 0x%08x\n", __XEN_INTERFACE_VERSION__);

    /* xen.h: struct start_info (x86_64). */
    STRUCT("start_info", struct start_info);
    FIELD("start_info", struct start_info, magic, "magic");
    FIELD("start_info", struct start_info, nr_pages, "nr_pages");
    FIELD("start_info", struct start_info, shared_info, "shared_info");
    FIELD("start_info", struct start_info, flags, "flags");
    FIELD("start_info", struct start_info, store_mfn, "store_mfn");
    FIELD("start_info", struct start_info, store_evtchn, "store_evtchn");
    FIELD("start_info", struct start_info, console.domU, "console.domU");
    FIELD("start_info", struct start_info, pt_base, "pt_base");
    FIELD("start_info", struct start_info, nr_pt_frames, "nr_pt_frames");
    FIELD("start_info", struct start_info, mfn_list, "mfn_list");
    FIELD("start_info", struct start_info, mod_start, "mod_start");
    FIELD("start_info", struct start_info, mod_len, "mod_len");
    FIELD("start_info", struct start_info, cmd_line, "cmd_line");
    FIELD("start_info", struct start_info, first_p2m_pfn, "first_p2m_pfn");
    FIELD("start_info", struct start_info, nr_p2m_frames, "nr_p2m_frames");
    STRUCT("start_info.console.domU", console_domU_t);
    FIELD("start_info.console.domU", console_domU_t, mfn, "mfn");
    FIELD("start_info.console.domU", console_domU_t, evtchn, "evtchn");
    CONST(MAX_GUEST_CMDLINE);
    CONST(SIF_PRIVILEGED);
    CONST(SIF_INITDOMAIN);
    CONST(SIF_MULTIBOOT_MOD);
    CONST(SIF_MOD_START_PFN);
    CONST(SIF_VIRT_P2M_4TOOLS);
    CONST(SIF_PM_MASK);

    /* xen.h: console_io. */
    /* xen.h: the PV MMU (Keel ABI 1.0). */
    STRUCT("mmu_update", struct mmu_update);
    FIELD("mmu_update", struct mmu_update, ptr, "ptr");
    FIELD("mmu_update", struct mmu_update, val, "val");
    STRUCT("mmuext_op", struct mmuext_op);
    FIELD("mmuext_op", struct mmuext_op, cmd, "cmd");
    FIELD("mmuext_op", struct mmuext_op, arg1, "arg1");
    FIELD("mmuext_op", struct mmuext_op, arg2, "arg2");
    STRUCT("multicall_entry", struct multicall_entry);
    FIELD("multicall_entry", struct multicall_entry, op, "op");
    FIELD("multicall_entry", struct multicall_entry, result, "result");
    FIELD("multicall_entry", struct multicall_entry, args, "args");
    CONST(MMU_NORMAL_PT_UPDATE);
    CONST(MMU_MACHPHYS_UPDATE);
    CONST(MMU_PT_UPDATE_PRESERVE_AD);
    CONST(MMU_PT_UPDATE_NO_TRANSLATE);
    CONST(MMUEXT_PIN_L1_TABLE);
    CONST(MMUEXT_PIN_L2_TABLE);
    CONST(MMUEXT_PIN_L3_TABLE);
    CONST(MMUEXT_PIN_L4_TABLE);
    CONST(MMUEXT_UNPIN_TABLE);
    CONST(MMUEXT_NEW_BASEPTR);
    CONST(MMUEXT_TLB_FLUSH_LOCAL);
    CONST(MMUEXT_INVLPG_LOCAL);
    CONST(MMUEXT_TLB_FLUSH_MULTI);
    CONST(MMUEXT_INVLPG_MULTI);
    CONST(MMUEXT_TLB_FLUSH_ALL);
    CONST(MMUEXT_INVLPG_ALL);
    CONST(MMUEXT_FLUSH_CACHE);
    CONST(MMUEXT_SET_LDT);
    CONST(MMUEXT_NEW_USER_BASEPTR);
    CONST(MMUEXT_CLEAR_PAGE);
    CONST(MMUEXT_COPY_PAGE);
    CONST(MMUEXT_FLUSH_CACHE_GLOBAL);
    CONST(MMUEXT_MARK_SUPER);
    CONST(MMUEXT_UNMARK_SUPER);
    CONST(DOMID_SELF);
    CONST(CONSOLEIO_write);
    CONST(CONSOLEIO_read);

    /* version.h: xen_version. */
    CONST(XENVER_version);
    CONST(XENVER_extraversion);
    CONST(XENVER_compile_info);
    CONST(XENVER_capabilities);
    CONST(XENVER_changeset);
    CONST(XENVER_platform_parameters);
    CONST(XENVER_get_features);
    CONST(XENVER_pagesize);
    CONST(XENVER_guest_handle);
    CONST(XENVER_commandline);
    CONST(XENVER_build_id);
    CONST(XEN_EXTRAVERSION_LEN);
    STRUCT("xen_extraversion_t", xen_extraversion_t);
    STRUCT("xen_feature_info", struct xen_feature_info);
    FIELD("xen_feature_info", struct xen_feature_info, submap_idx, "submap_idx");
    FIELD("xen_feature_info", struct xen_feature_info, submap, "submap");
    CONST(XENFEAT_NR_SUBMAPS);

    /* sched.h: sched_op. */
    CONST(SCHEDOP_yield);
    CONST(SCHEDOP_block);
    CONST(SCHEDOP_shutdown);
    CONST(SCHEDOP_poll);
    CONST(SCHEDOP_remote_shutdown);
    CONST(SCHEDOP_shutdown_code);
    CONST(SCHEDOP_watchdog);
    CONST(SCHEDOP_pin_override);
    STRUCT("sched_shutdown", struct sched_shutdown);
    FIELD("sched_shutdown", struct sched_shutdown, reason, "reason");
    CONST(SHUTDOWN_poweroff);
    CONST(SHUTDOWN_reboot);
    CONST(SHUTDOWN_suspend);
    CONST(SHUTDOWN_crash);
    CONST(SHUTDOWN_watchdog);
    CONST(SHUTDOWN_soft_reset);
    CONST(SHUTDOWN_MAX);

    /* sched.h: sched_poll (1.0). */
    STRUCT("sched_poll", struct sched_poll);
    FIELD("sched_poll", struct sched_poll, ports, "ports");
    FIELD("sched_poll", struct sched_poll, nr_ports, "nr_ports");
    FIELD("sched_poll", struct sched_poll, timeout, "timeout");

    /* event_channel.h, hvm/params.h, hvm_op.h (1.0). */
    CONST(EVTCHNOP_bind_virq);
    CONST(EVTCHNOP_close);
    CONST(EVTCHNOP_send);
    CONST(EVTCHNOP_status);
    CONST(EVTCHNOP_alloc_unbound);
    CONST(EVTCHNOP_bind_ipi);
    CONST(EVTCHNOP_bind_vcpu);
    CONST(EVTCHNOP_unmask);
    CONST(VIRQ_TIMER);
    CONST(VIRQ_DEBUG);
    CONST(VIRQ_CONSOLE);
    CONST(NR_VIRQS);
    CONST(EVTCHNSTAT_closed);
    CONST(EVTCHNSTAT_unbound);
    CONST(EVTCHNSTAT_interdomain);
    CONST(EVTCHNSTAT_pirq);
    CONST(EVTCHNSTAT_virq);
    CONST(EVTCHNSTAT_ipi);
    CONST(DOMID_SELF);
    CONST(HVMOP_set_param);
    CONST(HVMOP_get_param);
    CONST(HVM_PARAM_CALLBACK_IRQ);
    CONST(HVM_PARAM_CALLBACK_TYPE_VECTOR);
    CONST(EVTCHN_2L_NR_CHANNELS);
    STRUCT("evtchn_alloc_unbound", struct evtchn_alloc_unbound);
    FIELD("evtchn_alloc_unbound", struct evtchn_alloc_unbound, dom, "dom");
    FIELD("evtchn_alloc_unbound", struct evtchn_alloc_unbound, remote_dom, "remote_dom");
    FIELD("evtchn_alloc_unbound", struct evtchn_alloc_unbound, port, "port");
    STRUCT("evtchn_bind_virq", struct evtchn_bind_virq);
    FIELD("evtchn_bind_virq", struct evtchn_bind_virq, virq, "virq");
    FIELD("evtchn_bind_virq", struct evtchn_bind_virq, vcpu, "vcpu");
    FIELD("evtchn_bind_virq", struct evtchn_bind_virq, port, "port");
    STRUCT("evtchn_bind_ipi", struct evtchn_bind_ipi);
    FIELD("evtchn_bind_ipi", struct evtchn_bind_ipi, vcpu, "vcpu");
    FIELD("evtchn_bind_ipi", struct evtchn_bind_ipi, port, "port");
    STRUCT("evtchn_send", struct evtchn_send);
    FIELD("evtchn_send", struct evtchn_send, port, "port");
    STRUCT("evtchn_close", struct evtchn_close);
    FIELD("evtchn_close", struct evtchn_close, port, "port");
    STRUCT("evtchn_unmask", struct evtchn_unmask);
    FIELD("evtchn_unmask", struct evtchn_unmask, port, "port");
    STRUCT("evtchn_status", struct evtchn_status);
    FIELD("evtchn_status", struct evtchn_status, dom, "dom");
    FIELD("evtchn_status", struct evtchn_status, port, "port");
    FIELD("evtchn_status", struct evtchn_status, status, "status");
    FIELD("evtchn_status", struct evtchn_status, vcpu, "vcpu");
    FIELD("evtchn_status", struct evtchn_status, u, "u");
    STRUCT("evtchn_bind_vcpu", struct evtchn_bind_vcpu);
    FIELD("evtchn_bind_vcpu", struct evtchn_bind_vcpu, port, "port");
    FIELD("evtchn_bind_vcpu", struct evtchn_bind_vcpu, vcpu, "vcpu");
    STRUCT("xen_hvm_param", struct xen_hvm_param);
    FIELD("xen_hvm_param", struct xen_hvm_param, domid, "domid");
    FIELD("xen_hvm_param", struct xen_hvm_param, index, "index");
    FIELD("xen_hvm_param", struct xen_hvm_param, value, "value");

    /* xen.h, vcpu.h: shared_info, pvclock, timers (1.0). */
    CONST(VCPUOP_set_periodic_timer);
    CONST(VCPUOP_stop_periodic_timer);
    CONST(VCPUOP_set_singleshot_timer);
    CONST(VCPUOP_stop_singleshot_timer);
    CONST(VCPU_SSHOTTMR_future);
    CONST(XEN_PVCLOCK_TSC_STABLE_BIT);
    CONST(XEN_LEGACY_MAX_VCPUS);
    STRUCT("shared_info", struct shared_info);
    FIELD("shared_info", struct shared_info, vcpu_info, "vcpu_info");
    FIELD("shared_info", struct shared_info, evtchn_pending, "evtchn_pending");
    FIELD("shared_info", struct shared_info, evtchn_mask, "evtchn_mask");
    FIELD("shared_info", struct shared_info, wc_version, "wc_version");
    FIELD("shared_info", struct shared_info, wc_sec, "wc_sec");
    FIELD("shared_info", struct shared_info, wc_nsec, "wc_nsec");
    FIELD("shared_info", struct shared_info, wc_sec_hi, "wc_sec_hi");
    FIELD("shared_info", struct shared_info, arch, "arch");
    STRUCT("vcpu_info", struct vcpu_info);
    FIELD("vcpu_info", struct vcpu_info, evtchn_upcall_pending, "evtchn_upcall_pending");
    FIELD("vcpu_info", struct vcpu_info, evtchn_upcall_mask, "evtchn_upcall_mask");
    FIELD("vcpu_info", struct vcpu_info, evtchn_pending_sel, "evtchn_pending_sel");
    FIELD("vcpu_info", struct vcpu_info, arch, "arch");
    FIELD("vcpu_info", struct vcpu_info, time, "time");
    STRUCT("arch_vcpu_info", struct arch_vcpu_info);
    FIELD("arch_vcpu_info", struct arch_vcpu_info, cr2, "cr2");
    FIELD("arch_vcpu_info", struct arch_vcpu_info, pad, "pad");
    STRUCT("vcpu_time_info", struct vcpu_time_info);
    FIELD("vcpu_time_info", struct vcpu_time_info, version, "version");
    FIELD("vcpu_time_info", struct vcpu_time_info, pad0, "pad0");
    FIELD("vcpu_time_info", struct vcpu_time_info, tsc_timestamp, "tsc_timestamp");
    FIELD("vcpu_time_info", struct vcpu_time_info, system_time, "system_time");
    FIELD("vcpu_time_info", struct vcpu_time_info, tsc_to_system_mul, "tsc_to_system_mul");
    FIELD("vcpu_time_info", struct vcpu_time_info, tsc_shift, "tsc_shift");
    FIELD("vcpu_time_info", struct vcpu_time_info, flags, "flags");
    FIELD("vcpu_time_info", struct vcpu_time_info, pad1, "pad1");
    STRUCT("arch_shared_info", struct arch_shared_info);
    FIELD("arch_shared_info", struct arch_shared_info, max_pfn, "max_pfn");
    FIELD("arch_shared_info", struct arch_shared_info, pfn_to_mfn_frame_list_list, "pfn_to_mfn_frame_list_list");
    FIELD("arch_shared_info", struct arch_shared_info, nmi_reason, "nmi_reason");
    FIELD("arch_shared_info", struct arch_shared_info, p2m_cr3, "p2m_cr3");
    FIELD("arch_shared_info", struct arch_shared_info, p2m_vaddr, "p2m_vaddr");
    FIELD("arch_shared_info", struct arch_shared_info, p2m_generation, "p2m_generation");
    STRUCT("vcpu_set_periodic_timer", struct vcpu_set_periodic_timer);
    FIELD("vcpu_set_periodic_timer", struct vcpu_set_periodic_timer, period_ns, "period_ns");
    STRUCT("vcpu_set_singleshot_timer", struct vcpu_set_singleshot_timer);
    FIELD("vcpu_set_singleshot_timer", struct vcpu_set_singleshot_timer, timeout_abs_ns, "timeout_abs_ns");
    FIELD("vcpu_set_singleshot_timer", struct vcpu_set_singleshot_timer, flags, "flags");

    /* event_channel.h: interdomain binding; xen.h: VIRQ_DOM_EXC. */
    CONST(EVTCHNOP_bind_interdomain);
    CONST(VIRQ_DOM_EXC);
    STRUCT("evtchn_bind_interdomain", struct evtchn_bind_interdomain);
    FIELD("evtchn_bind_interdomain", struct evtchn_bind_interdomain, remote_dom, "remote_dom");
    FIELD("evtchn_bind_interdomain", struct evtchn_bind_interdomain, remote_port, "remote_port");
    FIELD("evtchn_bind_interdomain", struct evtchn_bind_interdomain, local_port, "local_port");

    /* grant_table.h: version 1. */
    CONST(GNTTABOP_map_grant_ref);
    CONST(GNTTABOP_unmap_grant_ref);
    CONST(GNTTABOP_setup_table);
    CONST(GNTTABOP_copy);
    CONST(GNTTABOP_query_size);
    CONST(GTF_invalid);
    CONST(GTF_permit_access);
    CONST(GTF_type_mask);
    CONST(GTF_readonly);
    CONST(GTF_reading);
    CONST(GTF_writing);
    CONST(GNTMAP_host_map);
    CONST(GNTMAP_readonly);
    CONST(GNTMAP_guest_avail_mask);
    CONST(GNTCOPY_source_gref);
    CONST(GNTCOPY_dest_gref);
    CONST(GNTST_okay);
    CONST(GNTST_general_error);
    CONST(GNTST_bad_domain);
    CONST(GNTST_bad_gntref);
    CONST(GNTST_bad_handle);
    CONST(GNTST_bad_virt_addr);
    CONST(GNTST_bad_dev_addr);
    CONST(GNTST_no_device_space);
    CONST(GNTST_permission_denied);
    CONST(GNTST_bad_page);
    CONST(GNTST_bad_copy_arg);
    CONST(GNTST_address_too_big);
    CONST(GNTST_eagain);
    CONST(GNTST_no_space);
    STRUCT("grant_entry_v1", struct grant_entry_v1);
    FIELD("grant_entry_v1", struct grant_entry_v1, flags, "flags");
    FIELD("grant_entry_v1", struct grant_entry_v1, domid, "domid");
    FIELD("grant_entry_v1", struct grant_entry_v1, frame, "frame");
    STRUCT("gnttab_setup_table", struct gnttab_setup_table);
    FIELD("gnttab_setup_table", struct gnttab_setup_table, dom, "dom");
    FIELD("gnttab_setup_table", struct gnttab_setup_table, nr_frames, "nr_frames");
    FIELD("gnttab_setup_table", struct gnttab_setup_table, status, "status");
    FIELD("gnttab_setup_table", struct gnttab_setup_table, frame_list, "frame_list");
    STRUCT("gnttab_query_size", struct gnttab_query_size);
    FIELD("gnttab_query_size", struct gnttab_query_size, dom, "dom");
    FIELD("gnttab_query_size", struct gnttab_query_size, nr_frames, "nr_frames");
    FIELD("gnttab_query_size", struct gnttab_query_size, max_nr_frames, "max_nr_frames");
    FIELD("gnttab_query_size", struct gnttab_query_size, status, "status");
    STRUCT("gnttab_map_grant_ref", struct gnttab_map_grant_ref);
    FIELD("gnttab_map_grant_ref", struct gnttab_map_grant_ref, host_addr, "host_addr");
    FIELD("gnttab_map_grant_ref", struct gnttab_map_grant_ref, flags, "flags");
    FIELD("gnttab_map_grant_ref", struct gnttab_map_grant_ref, ref, "ref");
    FIELD("gnttab_map_grant_ref", struct gnttab_map_grant_ref, dom, "dom");
    FIELD("gnttab_map_grant_ref", struct gnttab_map_grant_ref, status, "status");
    FIELD("gnttab_map_grant_ref", struct gnttab_map_grant_ref, handle, "handle");
    FIELD("gnttab_map_grant_ref", struct gnttab_map_grant_ref, dev_bus_addr, "dev_bus_addr");
    STRUCT("gnttab_unmap_grant_ref", struct gnttab_unmap_grant_ref);
    FIELD("gnttab_unmap_grant_ref", struct gnttab_unmap_grant_ref, host_addr, "host_addr");
    FIELD("gnttab_unmap_grant_ref", struct gnttab_unmap_grant_ref, dev_bus_addr, "dev_bus_addr");
    FIELD("gnttab_unmap_grant_ref", struct gnttab_unmap_grant_ref, handle, "handle");
    FIELD("gnttab_unmap_grant_ref", struct gnttab_unmap_grant_ref, status, "status");
    STRUCT("gnttab_copy_ptr", struct gnttab_copy_ptr);
    FIELD("gnttab_copy_ptr", struct gnttab_copy_ptr, u, "u");
    FIELD("gnttab_copy_ptr", struct gnttab_copy_ptr, domid, "domid");
    FIELD("gnttab_copy_ptr", struct gnttab_copy_ptr, offset, "offset");
    STRUCT("gnttab_copy", struct gnttab_copy);
    FIELD("gnttab_copy", struct gnttab_copy, source, "source");
    FIELD("gnttab_copy", struct gnttab_copy, dest, "dest");
    FIELD("gnttab_copy", struct gnttab_copy, len, "len");
    FIELD("gnttab_copy", struct gnttab_copy, flags, "flags");
    FIELD("gnttab_copy", struct gnttab_copy, status, "status");

    /* domctl.h: the control domain's subset. */
    CONST(XEN_DOMCTL_INTERFACE_VERSION);
    CONST(XEN_DOMCTL_destroydomain);
    CONST(XEN_DOMCTL_pausedomain);
    CONST(XEN_DOMCTL_unpausedomain);
    CONST(XEN_DOMCTL_getdomaininfo);
    CONST(XEN_DOMINF_dying);
    CONST(XEN_DOMINF_shutdown);
    CONST(XEN_DOMINF_paused);
    CONST(XEN_DOMINF_blocked);
    CONST(XEN_DOMINF_running);
    CONST(XEN_DOMINF_shutdownmask);
    CONST(XEN_DOMINF_shutdownshift);
    STRUCT("xen_domctl", struct xen_domctl);
    FIELD("xen_domctl", struct xen_domctl, cmd, "cmd");
    FIELD("xen_domctl", struct xen_domctl, interface_version, "interface_version");
    FIELD("xen_domctl", struct xen_domctl, domain, "domain");
    FIELD("xen_domctl", struct xen_domctl, _pad, "_pad");
    FIELD("xen_domctl", struct xen_domctl, u, "u");
#define GDI(f) FIELD("xen_domctl_getdomaininfo", struct xen_domctl_getdomaininfo, f, #f)
    STRUCT("xen_domctl_getdomaininfo", struct xen_domctl_getdomaininfo);
    GDI(domain); GDI(pad1); GDI(flags); GDI(tot_pages); GDI(max_pages);
    GDI(outstanding_pages); GDI(shr_pages); GDI(paged_pages); GDI(shared_info_frame);
    GDI(cpu_time); GDI(nr_online_vcpus); GDI(max_vcpu_id); GDI(ssidref); GDI(handle);
    GDI(cpupool); GDI(gpaddr_bits); GDI(pad2); GDI(arch_config);
#undef GDI

    /* io/ring.h: the shared-ring header (see keel_probe above). */
    printf("struct sring_header size=%zu align=%zu\n",
           offsetof(struct keel_probe_sring, ring), _Alignof(struct keel_probe_sring));
    FIELD("sring_header", struct keel_probe_sring, req_prod, "req_prod");
    FIELD("sring_header", struct keel_probe_sring, req_event, "req_event");
    FIELD("sring_header", struct keel_probe_sring, rsp_prod, "rsp_prod");
    FIELD("sring_header", struct keel_probe_sring, rsp_event, "rsp_event");
    FIELD("sring_header", struct keel_probe_sring, pvt, "pvt");
    FIELD("sring_header", struct keel_probe_sring, __pad, "__pad");

    /* vcpu.h: the vCPU operations; arch-x86/xen.h, xen-x86_64.h: the
     * x86_64 guest context VCPUOP_initialise reads (1.2, in progress). */
    CONST(VCPUOP_initialise);
    CONST(VCPUOP_up);
    CONST(VCPUOP_down);
    CONST(VCPUOP_is_up);
    CONST(VCPUOP_get_runstate_info);
    CONST(VCPUOP_register_vcpu_info);
    CONST(RUNSTATE_running);
    CONST(RUNSTATE_runnable);
    CONST(RUNSTATE_blocked);
    CONST(RUNSTATE_offline);
    CONST(VGCF_i387_valid);
    CONST(VGCF_in_kernel);
    CONST(VGCF_failsafe_disables_events);
    CONST(VGCF_syscall_disables_events);
    CONST(VGCF_online);
    STRUCT("vcpu_runstate_info", struct vcpu_runstate_info);
    FIELD("vcpu_runstate_info", struct vcpu_runstate_info, state, "state");
    FIELD("vcpu_runstate_info", struct vcpu_runstate_info, state_entry_time, "state_entry_time");
    FIELD("vcpu_runstate_info", struct vcpu_runstate_info, time, "time");
    STRUCT("vcpu_register_vcpu_info", struct vcpu_register_vcpu_info);
    FIELD("vcpu_register_vcpu_info", struct vcpu_register_vcpu_info, mfn, "mfn");
    FIELD("vcpu_register_vcpu_info", struct vcpu_register_vcpu_info, offset, "offset");
    FIELD("vcpu_register_vcpu_info", struct vcpu_register_vcpu_info, rsvd, "rsvd");
#define CUR(f) FIELD("cpu_user_regs", struct cpu_user_regs, f, #f)
    STRUCT("cpu_user_regs", struct cpu_user_regs);
    CUR(r15); CUR(r14); CUR(r13); CUR(r12); CUR(rbp); CUR(rbx); CUR(r11); CUR(r10);
    CUR(r9); CUR(r8); CUR(rax); CUR(rcx); CUR(rdx); CUR(rsi); CUR(rdi);
    CUR(error_code); CUR(entry_vector); CUR(rip); CUR(cs); CUR(_pad0);
    CUR(saved_upcall_mask); CUR(_pad1); CUR(rflags); CUR(rsp); CUR(ss); CUR(_pad2);
    CUR(es); CUR(_pad3); CUR(ds); CUR(_pad4); CUR(fs); CUR(_pad5); CUR(gs); CUR(_pad6);
#undef CUR
    STRUCT("trap_info", struct trap_info);
    FIELD("trap_info", struct trap_info, vector, "vector");
    FIELD("trap_info", struct trap_info, flags, "flags");
    FIELD("trap_info", struct trap_info, cs, "cs");
    FIELD("trap_info", struct trap_info, address, "address");
#define VGC(f) FIELD("vcpu_guest_context", struct vcpu_guest_context, f, #f)
    STRUCT("vcpu_guest_context", struct vcpu_guest_context);
    VGC(fpu_ctxt); VGC(flags); VGC(user_regs); VGC(trap_ctxt); VGC(ldt_base); VGC(ldt_ents);
    VGC(gdt_frames); VGC(gdt_ents); VGC(kernel_ss); VGC(kernel_sp); VGC(ctrlreg);
    VGC(debugreg); VGC(event_callback_eip); VGC(failsafe_callback_eip);
    VGC(syscall_callback_eip); VGC(vm_assist); VGC(fs_base); VGC(gs_base_kernel);
    VGC(gs_base_user);
#undef VGC

    /* arch-x86/cpuid.h: the hypervisor CPUID leaves. */
    CONST(XEN_CPUID_FIRST_LEAF);
    CONST_AS("XEN_CPUID_LEAF(1)", XEN_CPUID_LEAF(1));
    CONST(XEN_CPUID_SIGNATURE_EBX);
    CONST(XEN_CPUID_SIGNATURE_ECX);
    CONST(XEN_CPUID_SIGNATURE_EDX);

    /* xen.h: every hypercall number. */
    HYPERCALL(set_trap_table);
    HYPERCALL(mmu_update);
    HYPERCALL(set_gdt);
    HYPERCALL(stack_switch);
    HYPERCALL(set_callbacks);
    HYPERCALL(fpu_taskswitch);
    HYPERCALL(sched_op_compat);
    HYPERCALL(platform_op);
    HYPERCALL(set_debugreg);
    HYPERCALL(get_debugreg);
    HYPERCALL(update_descriptor);
    HYPERCALL(memory_op);
    HYPERCALL(multicall);
    HYPERCALL(update_va_mapping);
    HYPERCALL(set_timer_op);
    HYPERCALL(event_channel_op_compat);
    HYPERCALL(xen_version);
    HYPERCALL(console_io);
    HYPERCALL(physdev_op_compat);
    HYPERCALL(grant_table_op);
    HYPERCALL(vm_assist);
    HYPERCALL(update_va_mapping_otherdomain);
    HYPERCALL(iret);
    HYPERCALL(vcpu_op);
    HYPERCALL(set_segment_base);
    HYPERCALL(mmuext_op);
    HYPERCALL(xsm_op);
    HYPERCALL(nmi_op);
    HYPERCALL(sched_op);
    HYPERCALL(callback_op);
    HYPERCALL(xenoprof_op);
    HYPERCALL(event_channel_op);
    HYPERCALL(physdev_op);
    HYPERCALL(hvm_op);
    HYPERCALL(sysctl);
    HYPERCALL(domctl);
    HYPERCALL(kexec_op);
    HYPERCALL(tmem_op);
    HYPERCALL(argo_op);
    HYPERCALL(xenpmu_op);
    HYPERCALL(dm_op);
    HYPERCALL(hypfs_op);
    HYPERCALL(arch_0);
    HYPERCALL(arch_1);
    HYPERCALL(arch_2);
    HYPERCALL(arch_3);
    HYPERCALL(arch_4);
    HYPERCALL(arch_5);
    HYPERCALL(arch_6);
    HYPERCALL(arch_7);

    errnos();
    return 0;
}
