use super::*;

fn start() -> Start {
    Start {
        entry: 0xffff_8000_0010_2000,
        stack_top: stack_top(0xffff_8000_0040_0000, 0x8000),
        l4: 0x1234_5000,
        gs_base: 0xffff_8000_0020_0040,
        args: [3, 0xffff_8000_0010_3000, 0xffff_8000_0020_0040],
    }
}

#[test]
fn the_context_names_the_start_state_and_nothing_else() {
    let s = start();
    let c = context(&s);
    assert_eq!(c.flags, VGCF_IN_KERNEL);
    let r = &c.user_regs;
    assert_eq!((r.rip, r.rsp, r.rflags), (s.entry, s.stack_top, 0x2));
    assert_eq!([r.rdi, r.rsi, r.rdx], s.args);
    assert_eq!(r.cs, SEL_CODE);
    assert_eq!([r.ss, r.ds, r.es, r.fs, r.gs], [SEL_DATA; 5]);
    assert_eq!(c.ctrlreg[3], 0x1234_5000);
    assert_eq!(c.gs_base_kernel, s.gs_base);

    // Every other field zero: what Keel's VCPUOP_initialise refuses
    // otherwise (the PV state a Keel guest has no use for).
    let mut rest = c;
    rest.flags = 0;
    rest.user_regs = Default::default();
    rest.ctrlreg[3] = 0;
    rest.gs_base_kernel = 0;
    assert_eq!(rest, VcpuGuestContext::default());
    // The other registers of the start state are zero too.
    let mut regs = c.user_regs;
    (
        regs.rip,
        regs.rsp,
        regs.rflags,
        regs.rdi,
        regs.rsi,
        regs.rdx,
    ) = (0, 0, 0, 0, 0, 0);
    (regs.cs, regs.ss, regs.ds, regs.es, regs.fs, regs.gs) = (0, 0, 0, 0, 0, 0);
    assert_eq!(regs, Default::default());
}

#[test]
fn cr3_is_the_frame_only() {
    // CR3's low bits (PCD, PWT, a PCID) are not part of xen_pfn_to_cr3.
    let c = context(&Start {
        l4: 0x1234_5018,
        ..start()
    });
    assert_eq!(c.ctrlreg[3], 0x1234_5000);
}

#[test]
fn the_stack_top_is_aligned_for_the_entry_call() {
    assert_eq!(stack_top(0x1000, 0x8000), 0x9000);
    // A stack whose end is not aligned loses the odd bytes.
    assert_eq!(stack_top(0x1003, 0x8000), 0x9000);
    assert_eq!(stack_top(0x1008, 0x8000), 0x9000);
    for base in [0x1000u64, 0x1001, 0x100f, 0x2008] {
        let top = stack_top(base, 0x4000);
        assert_eq!(top % 16, 0);
        assert!(top <= base + 0x4000 && top + 16 > base + 0x4000);
    }
}

#[test]
fn the_count_is_the_first_id_past_the_domain() {
    let two = |id: u32| match id {
        0 => Ok(true),
        1 => Ok(false),
        _ => Err(Errno::ENOENT),
    };
    assert_eq!(count_from(two), Ok(2));
    let one = |id: u32| {
        if id == 0 {
            Ok(true)
        } else {
            Err(Errno::ENOENT)
        }
    };
    assert_eq!(count_from(one), Ok(1));
    assert_eq!(count_from(|_| Ok(true)), Ok(MAX_VCPUS as u32));
    assert_eq!(count_from(|_| Err(Errno::ENOSYS)), Err(Errno::ENOSYS));
    let odd = |id: u32| if id < 3 { Ok(true) } else { Err(Errno::EINVAL) };
    assert_eq!(count_from(odd), Err(Errno::EINVAL));
}

#[test]
fn the_command_line_asks_for_vcpus() {
    assert_eq!(requested_in("vcpus keel.vcpus=4 seed=1"), Some(4));
    assert_eq!(requested_in("vcpus seed=1"), None);
    assert_eq!(requested_in("vcpus keel.vcpus=x"), None);
}

#[test]
fn the_command_line_places_vcpus() {
    let cmd = "vcpus_spread keel.vcpus=2 keel.vcpu_cpus=0,1";
    assert_eq!(placed_cpu_in(cmd, 0), Some(0));
    assert_eq!(placed_cpu_in(cmd, 1), Some(1));
    assert_eq!(placed_cpu_in(cmd, 2), None);
    assert_eq!(placed_cpu_in("vcpus keel.vcpus=2", 0), None);
    assert!(!share_a_cpu_in(cmd, 0, 1));
    assert!(share_a_cpu_in(cmd, 1, 1));
    // Unplaced vCPUs run on the domain's CPU: vCPU 0's.
    assert!(share_a_cpu_in("vcpus keel.vcpus=2", 0, 1));
    assert!(share_a_cpu_in("x keel.vcpu_cpus=2", 0, 3));
    assert!(!share_a_cpu_in("x keel.vcpu_cpus=0,0,1", 1, 2));
    assert!(share_a_cpu_in("x keel.vcpu_cpus=0,0,1", 0, 1));
}

#[test]
fn each_vcpu_takes_only_its_ports() {
    // The bitmaps are statics: ports of word 63 are used by this test only.
    let base = 63 * 64;
    assert_eq!(owned_bits(0, 63), u64::MAX, "every port is vCPU 0's");
    own(base + 1, 2);
    own(base + 5, 3);
    own(base + 6, 2);
    assert_eq!(owned_bits(2, 63), (1 << 1) | (1 << 6));
    assert_eq!(owned_bits(3, 63), 1 << 5);
    assert_eq!(owned_bits(1, 63), 0);
    assert_eq!(owned_bits(0, 63), !((1 << 1) | (1 << 5) | (1 << 6)));
    // Moved (EVTCHNOP_bind_vcpu): the old vCPU no longer takes it.
    own(base + 1, 3);
    assert_eq!(owned_bits(2, 63), 1 << 6);
    assert_eq!(owned_bits(3, 63), (1 << 1) | (1 << 5));
    own(base + 5, 0);
    own(base + 6, 0);
    own(base + 1, 0);
    assert_eq!(owned_bits(0, 63), u64::MAX, "back to vCPU 0");
    assert_eq!(owned_bits(3, 63) | owned_bits(2, 63), 0);
    // Out of range: nothing.
    own(4096, 1);
    own(3, MAX_VCPUS as u32);
    assert_eq!(owned_bits(1, 64), 0);
    assert_eq!(owned_bits(MAX_VCPUS as u32, 0), 0);
}

#[test]
fn every_vcpu_info_is_its_own() {
    let shared = 0x10_0000;
    assert_eq!(vcpu_info_va(0, shared), shared);
    assert_eq!(vcpu_info_va(5, shared), shared + 5 * 64);
    set_vcpu_info_va(6, 0x20_0140);
    assert_eq!(vcpu_info_va(6, shared), 0x20_0140);
    assert_eq!(vcpu_info_va(5, shared), shared + 5 * 64);
    set_vcpu_info_va(6, 0);
}
