//! The sample arguments of the golden encodings.

use super::*;

/// Copy `bytes` to the front of `buf`; return the length.
pub(super) fn put(buf: &mut [u8; GOLDEN_MAX], bytes: &[u8]) -> usize {
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
pub(super) fn put_pod<T: crate::event::Pod>(buf: &mut [u8; GOLDEN_MAX], v: &T) -> usize {
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

/// The sample `cpu_user_regs`: each field's low byte is its offset (the
/// 64-bit registers hold their index in the upper half).
pub fn sample_cpu_user_regs() -> CpuUserRegs {
    let w = |i: u64, off: u64| (i << 32) | off;
    CpuUserRegs {
        r15: w(1, 0),
        r14: w(2, 8),
        r13: w(3, 16),
        r12: w(4, 24),
        rbp: w(5, 32),
        rbx: w(6, 40),
        r11: w(7, 48),
        r10: w(8, 56),
        r9: w(9, 64),
        r8: w(10, 72),
        rax: w(11, 80),
        rcx: w(12, 88),
        rdx: w(13, 96),
        rsi: w(14, 104),
        rdi: w(15, 112),
        error_code: 0x0100_0078,
        entry_vector: 0x0200_007c,
        rip: w(16, 128),
        cs: 0x0188,
        pad0: [0x018a],
        saved_upcall_mask: 0x8c,
        pad1: [0x8d, 0x8e, 0x8f],
        rflags: w(17, 144),
        rsp: w(18, 152),
        ss: 0x01a0,
        pad2: [0x01a2, 0x01a4, 0x01a6],
        es: 0x01a8,
        pad3: [0x01aa, 0x01ac, 0x01ae],
        ds: 0x01b0,
        pad4: [0x01b2, 0x01b4, 0x01b6],
        fs: 0x01b8,
        pad5: [0x01ba, 0x01bc, 0x01be],
        gs: 0x01c0,
        pad6: [0x01c2, 0x01c4, 0x01c6],
    }
}

/// The sample `vcpu_guest_context`: each field's low byte is its offset (and
/// so is each element's of the arrays: an encoder that shifts an element is
/// caught as well as one that shifts a field).
pub fn sample_guest_context() -> VcpuGuestContext {
    use crate::event::Pod;
    use core::mem::offset_of;
    let mut c = VcpuGuestContext::default();
    for (i, b) in c.fpu_ctxt.iter_mut().enumerate() {
        *b = i as u8;
    }
    let w = |off: usize| (0x5a5a_0000_0000_0000u64 | (off as u64) << 16) | (off as u64 & 0xff);
    c.flags = w(offset_of!(VcpuGuestContext, flags));
    c.user_regs = sample_cpu_user_regs();
    // Re-base the registers' low bytes on the context's offsets.
    let base = offset_of!(VcpuGuestContext, user_regs) as u64;
    let mut b = [0u8; CpuUserRegs::SIZE];
    c.user_regs.encode(&mut b);
    for x in b.iter_mut() {
        *x = x.wrapping_add(base as u8);
    }
    c.user_regs = CpuUserRegs::decode(&b);
    let t0 = offset_of!(VcpuGuestContext, trap_ctxt);
    for (i, t) in c.trap_ctxt.iter_mut().enumerate() {
        let at = t0 + 16 * i;
        *t = TrapInfo {
            vector: at as u8,
            flags: (at + 1) as u8,
            cs: (at + 2) as u16,
            address: w(at + 8),
        };
    }
    c.ldt_base = w(offset_of!(VcpuGuestContext, ldt_base));
    c.ldt_ents = w(offset_of!(VcpuGuestContext, ldt_ents));
    let g0 = offset_of!(VcpuGuestContext, gdt_frames);
    for (i, g) in c.gdt_frames.iter_mut().enumerate() {
        *g = w(g0 + 8 * i);
    }
    c.gdt_ents = w(offset_of!(VcpuGuestContext, gdt_ents));
    c.kernel_ss = w(offset_of!(VcpuGuestContext, kernel_ss));
    c.kernel_sp = w(offset_of!(VcpuGuestContext, kernel_sp));
    let c0 = offset_of!(VcpuGuestContext, ctrlreg);
    for (i, r) in c.ctrlreg.iter_mut().enumerate() {
        *r = w(c0 + 8 * i);
    }
    let d0 = offset_of!(VcpuGuestContext, debugreg);
    for (i, r) in c.debugreg.iter_mut().enumerate() {
        *r = w(d0 + 8 * i);
    }
    c.event_callback_eip = w(offset_of!(VcpuGuestContext, event_callback_eip));
    c.failsafe_callback_eip = w(offset_of!(VcpuGuestContext, failsafe_callback_eip));
    c.syscall_callback_eip = w(offset_of!(VcpuGuestContext, syscall_callback_eip));
    c.vm_assist = w(offset_of!(VcpuGuestContext, vm_assist));
    c.fs_base = w(offset_of!(VcpuGuestContext, fs_base));
    c.gs_base_kernel = w(offset_of!(VcpuGuestContext, gs_base_kernel));
    c.gs_base_user = w(offset_of!(VcpuGuestContext, gs_base_user));
    c
}
