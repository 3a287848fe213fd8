//! Keel's own GDT and TSS.
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

const IST_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct IstStacks([[u8; IST_STACK_SIZE]; 3]);

/// Written only by the CPU (it pushes exception frames there); Rust only takes
/// their addresses.
static mut IST_STACKS: IstStacks = IstStacks([[0; IST_STACK_SIZE]; 3]);

static TSS: spin::Once<TaskStateSegment> = spin::Once::new();
static GDT: spin::Once<GlobalDescriptorTable> = spin::Once::new();

/// Build and load the GDT and TSS, reload every segment register and TR.
pub fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        let base = &raw const IST_STACKS as u64;
        for slot in [IST_DOUBLE_FAULT, IST_NMI, IST_MACHINE_CHECK] {
            // Stacks grow down: the IST entry is the top of its stack.
            let top = base + u64::from(slot) * IST_STACK_SIZE as u64;
            tss.interrupt_stack_table[usize::from(slot) - 1] = VirtAddr::new(top);
        }
        tss
    });
    let gdt = GDT.call_once(|| {
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
    // (like the TSS) for the rest of the run.
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

/// Linear address of the TSS (VMCS HOST_TR_BASE).
pub fn tss_base() -> u64 {
    TSS.get().map_or(0, |t| t as *const TaskStateSegment as u64)
}

/// Linear address of the GDT (VMCS HOST_GDTR_BASE; also readable with `sgdt`).
pub fn gdt_base() -> u64 {
    super::cpu::sgdt().base
}
