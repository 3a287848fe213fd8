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
 * Build by hand:  cc -std=c11 -Wall -Wextra -Werror -o xen-abi-check xen_abi_check.c
 */

/* The newest interface these headers describe; the layouts Keel shares have
 * not changed since long before 4.x, and the program prints what it used. */
#define __XEN_INTERFACE_VERSION__ __XEN_LATEST_INTERFACE_VERSION__

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

_Static_assert(sizeof(long) == 8, "Keel shares Xen's x86_64 layouts: build on an LP64 host");

#define STRUCT(name, type) \
    printf("struct %s size=%zu align=%zu\n", name, sizeof(type), _Alignof(type))
#define FIELD(sname, type, member, label) \
    printf("field %s %s offset=%zu size=%zu\n", sname, label, \
           offsetof(type, member), sizeof(((type *)0)->member))
#define CONST(name) printf("const %s %llu\n", #name, (unsigned long long)(name))
#define CONST_AS(label, value) printf("const %s %llu\n", label, (unsigned long long)(value))
#define HYPERCALL(name) printf("hypercall %s %d\n", #name, __HYPERVISOR_##name)

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
    /* xen.h: the PV MMU (Keel ABI 0.2). */
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
