//! Keel's own GDT and TSS, one of each per CPU (in its `arch::percpu::ArchCpu`).
//!
//! The boot GDT (`arch::boot`) only has what the jump to 64-bit mode needs. The
//! real one adds a 64-bit TSS, whose one job in long mode is the Interrupt Stack
//! Table: the double fault, NMI and machine check handlers run on stacks of their
//! own, so that a fault caused by a broken stack (overflow into the guard, a
//! corrupted RSP) is still reported instead of escalating into a triple fault.
//!
//! Selectors are fixed and match what guests are given at entry (CS 0x08, data
//! 0x10, TR 0x18): the VMX code uses them for the VMCS host-state fields.

use x86_64::instructions::segmentation::{Segment, CS, DS, ES, FS, GS, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::registers::segmentation::SegmentSelector;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::{PrivilegeLevel, VirtAddr};

use super::percpu::ArchCpu;

/// Host code segment selector (64-bit, DPL0).
pub const KERNEL_CS: u16 = 0x08;
/// Host data/stack segment selector.
pub const KERNEL_DS: u16 = 0x10;
/// Host task register selector (the TSS descriptor takes two GDT slots).
pub const KERNEL_TR: u16 = 0x18;

/// IST slot (1-based, as in the IDT gate) for the double-fault handler.
pub const IST_DOUBLE_FAULT: u8 = 1;
/// IST slot for the NMI handler.
pub const IST_NMI: u8 = 2;
/// IST slot for the machine-check handler.
pub const IST_MACHINE_CHECK: u8 = 3;

/// The size of each IST stack.
pub const IST_STACK_SIZE: usize = 16 * 1024;

/// The IST slots [`init`] fills, in order: the tops of the stacks it takes.
pub const IST_SLOTS: [u8; 3] = [IST_DOUBLE_FAULT, IST_NMI, IST_MACHINE_CHECK];

#[repr(C, align(16))]
struct IstStacks([[u8; IST_STACK_SIZE]; 3]);

/// The boot CPU's IST stacks (application processors get theirs from the
/// frame allocator, which does not exist yet when the boot CPU needs them).
/// Written only by the CPU (it pushes exception frames there); Rust only takes
/// their addresses.
static mut BOOT_IST_STACKS: IstStacks = IstStacks([[0; IST_STACK_SIZE]; 3]);

/// The tops of the boot CPU's IST stacks, in [`IST_SLOTS`] order.
pub fn boot_ist_tops() -> [u64; 3] {
    let base = &raw const BOOT_IST_STACKS as u64;
    // Stacks grow down: the IST entry is the top of its stack.
    [1u64, 2, 3].map(|i| base + i * IST_STACK_SIZE as u64)
}

/// Build this CPU's GDT and TSS in `cpu` (with `ist_tops`, in [`IST_SLOTS`]
/// order, as its IST stacks), load them, and reload every segment register and
/// TR. Once per CPU, on that CPU, before `ArchCpu::activate`: loading GS with
/// the null selector clears the GS base on some CPUs (Bochs among them).
pub fn init(cpu: &'static ArchCpu, ist_tops: [u64; 3]) {
    let tss = cpu.tss.call_once(|| {
        let mut tss = TaskStateSegment::new();
        for (slot, top) in IST_SLOTS.into_iter().zip(ist_tops) {
            tss.interrupt_stack_table[usize::from(slot) - 1] = VirtAddr::new(top);
        }
        tss
    });
    let gdt = cpu.gdt.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let cs = gdt.append(Descriptor::kernel_code_segment());
        let ds = gdt.append(Descriptor::kernel_data_segment());
        let tr = gdt.append(Descriptor::tss_segment(tss));
        // The selectors are ABI for the VMX code: check the layout once.
        assert_eq!(
            (cs.0, ds.0, tr.0),
            (KERNEL_CS, KERNEL_DS, KERNEL_TR),
            "GDT layout"
        );
        gdt
    });
    gdt.load();
    let cs = SegmentSelector::new(KERNEL_CS >> 3, PrivilegeLevel::Ring0);
    let ds = SegmentSelector::new(KERNEL_DS >> 3, PrivilegeLevel::Ring0);
    let null = SegmentSelector(0);
    // SAFETY: the selectors index the descriptors just loaded; CS is a 64-bit code
    // segment and the data segments are flat, so every address still means what it
    // meant under the boot GDT. TR points at an available TSS descriptor that lives
    // (like the TSS) for the rest of the run, in this CPU's own GDT (a TSS
    // descriptor becomes busy when loaded, so CPUs cannot share one). Loading GS
    // may clear the GS base: the per-CPU pointer is set after this.
    unsafe {
        CS::set_reg(cs);
        SS::set_reg(ds);
        DS::set_reg(ds);
        ES::set_reg(ds);
        FS::set_reg(null);
        GS::set_reg(null);
        load_tss(SegmentSelector::new(KERNEL_TR >> 3, PrivilegeLevel::Ring0));
    }
}

/// Linear address of the executing CPU's TSS (VMCS HOST_TR_BASE).
pub fn tss_base() -> u64 {
    super::percpu::this().tss_base()
}

/// Linear address of the GDT (VMCS HOST_GDTR_BASE; also readable with `sgdt`).
pub fn gdt_base() -> u64 {
    super::cpu::sgdt().base
}
