//! The host stand-in for [`crate::arch`]: the same functions, for type-checking only.
//!
//! On the host a test program is a shim `main` that exits before any guest code runs
//! (see [`crate::test!`]), and the library's host unit tests cover only the pure
//! modules. Reaching one of these functions on the host is therefore a bug in the
//! caller, and they say so.

use crate::cpu::CpuidResult;
use crate::fault::{Cr, Insn, VmxInsn};

fn hosted(what: &str) -> ! {
    panic!(
        "keel-guest: {what} needs the bare-metal guest (x86_64-unknown-none); this is a host build"
    )
}

/// See the bare-metal `arch`.
pub fn rdtsc() -> u64 {
    hosted("rdtsc")
}
/// See the bare-metal `arch`.
pub fn rdtsc_ordered() -> u64 {
    hosted("rdtsc")
}
/// See the bare-metal `arch`.
pub fn spin_holding_rax(_rax: u64, _until: u64) {
    hosted("rdtsc")
}
/// See the bare-metal `arch`.
pub fn cpuid(_leaf: u32, _subleaf: u32) -> CpuidResult {
    hosted("cpuid")
}
/// See the bare-metal `arch`.
pub fn read_cr(_cr: Cr) -> u64 {
    hosted("control registers")
}
/// See the bare-metal `arch`.
pub fn last_fault_cr2() -> u64 {
    hosted("the exception table")
}
/// See the bare-metal `arch`.
pub fn probe_read_u64(_addr: u64) -> (u64, u64) {
    hosted("fault probes")
}
/// See the bare-metal `arch`.
pub fn probe_rep_outsb(_port: u16, _addr: u64, _count: u64) -> (u64, u64, u64) {
    hosted("fault probes")
}
/// See the bare-metal `arch`.
pub fn probe_rep_insb(_port: u16, _addr: u64, _count: u64) -> (u64, u64, u64) {
    hosted("fault probes")
}
/// See the bare-metal `arch`.
pub fn probe_rewrite_u64(_addr: u64) -> u64 {
    hosted("fault probes")
}
/// See the bare-metal `arch`.
pub fn probe_write_u64(_addr: u64, _value: u64) -> u64 {
    hosted("fault probes")
}
/// See the bare-metal `arch`.
pub fn probe_rdmsr(_msr: u32) -> (u64, u64) {
    hosted("fault probes")
}
/// See the bare-metal `arch`.
pub fn probe_wrmsr(_msr: u32, _value: u64) -> u64 {
    hosted("fault probes")
}
/// See the bare-metal `arch`.
pub fn probe_write_cr(_cr: Cr, _value: u64) -> u64 {
    hosted("fault probes")
}
/// See the bare-metal `arch`.
pub fn probe_vmx(_insn: VmxInsn) -> u64 {
    hosted("fault probes")
}
/// See the bare-metal `arch`.
pub fn probe_insn(_insn: Insn) -> u64 {
    hosted("fault probes")
}
/// See the bare-metal `arch`.
pub fn halt_forever() -> ! {
    hosted("halt")
}
/// See the bare-metal `arch`.
pub fn vmcall_all_regs(_regs: [u64; 15]) -> [u64; 15] {
    hosted("hypercalls")
}

/// Host stand-in (guest images only).
pub fn sti() {}
/// Host stand-in (guest images only).
pub fn cli() {}
/// Host stand-in (guest images only).
pub fn sti_hlt() {}
/// Host stand-in (guest images only).
pub fn hlt() {}
/// Host stand-in (guest images only).
pub fn take_interrupts() {}
/// Host stand-in (guest images only).
pub fn rflags() -> u64 {
    0x2
}
static DUMMY64: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
static DUMMY32: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
static DUMMY8: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);
/// Host stand-in (guest images only).
pub fn shared_u64(_va: u64) -> &'static core::sync::atomic::AtomicU64 {
    &DUMMY64
}
/// Host stand-in (guest images only).
pub fn shared_u32(_va: u64) -> &'static core::sync::atomic::AtomicU32 {
    &DUMMY32
}
/// Host stand-in (guest images only).
pub fn shared_u8(_va: u64) -> &'static core::sync::atomic::AtomicU8 {
    &DUMMY8
}
/// Host stand-in (guest images only).
pub fn fn_u32_from_addr(_a: u64) -> fn(u32) {
    hosted("fn_u32_from_addr")
}
/// See the bare-metal `arch`.
pub fn fn_frame_from_addr(_a: u64) -> fn(&mut [u64; 15], u64) {
    hosted("fn_frame_from_addr")
}
/// See the bare-metal `arch`.
pub fn probe_xsetbv(_xcr: u32, _value: u64) -> u64 {
    hosted("fault probes")
}
/// See the bare-metal `arch`.
pub fn probe_xgetbv(_xcr: u32) -> (u64, u64) {
    hosted("fault probes")
}
/// See the bare-metal `arch`.
pub fn probe_dr(_dr7: bool, _value: u64) -> (u64, u64) {
    hosted("fault probes")
}
/// See the bare-metal `arch`.
pub fn port_in(_port: u16, _size: u8) -> u32 {
    hosted("port I/O")
}
/// See the bare-metal `arch`.
pub fn port_in8_rax(_port: u16, _rax: u64) -> u64 {
    hosted("port I/O")
}
/// See the bare-metal `arch`.
pub fn port_out(_port: u16, _size: u8, _value: u32) {
    hosted("port I/O")
}
/// See the bare-metal `arch`.
pub fn port_outs(_port: u16, _bytes: &[u8]) {
    hosted("port I/O")
}
/// See the bare-metal `arch`.
pub fn port_ins(_port: u16, _buf: &mut [u8]) {
    hosted("port I/O")
}
/// See the bare-metal `arch`.
pub fn port_outs_down(_port: u16, _bytes: &[u8]) -> u64 {
    hosted("port I/O")
}
/// See the bare-metal `arch`.
pub fn port_ins_down(_port: u16, _buf: &mut [u8]) -> u64 {
    hosted("port I/O")
}

/// See the bare-metal `arch`.
pub const USER_RETURN_VECTOR: u8 = 0x81;
pub use crate::user::UserOp;
/// See the bare-metal `arch`.
pub fn user_pages() -> (u64, u64) {
    hosted("user mode")
}
/// See the bare-metal `arch`.
pub fn run_user(_op: UserOp, _regs: [u64; 15], _rflags: u64) -> [u64; 15] {
    hosted("user mode")
}
/// See the bare-metal `arch`.
pub fn set_vector_stack(_vector: u8, _top: Option<u64>) {
    hosted("the IDT")
}
/// See the bare-metal `arch`.
pub fn set_df_stack(_top: Option<u64>) {
    hosted("the TSS")
}
/// See the bare-metal `arch`.
pub use crate::fault::StepInsn;
/// See the bare-metal `arch`.
pub fn probe_single_step(_insn: StepInsn, _a: u64, _b: u64) -> (u64, bool, u64) {
    hosted("single-step probes")
}
/// See the bare-metal `arch`.
pub fn probe_rep_step(_ins: bool, _buf: u64, _n: u64) -> (u64, u64, u64, u64) {
    hosted("single-step probes")
}
/// See the bare-metal `arch`.
pub fn probe_sti_vmcall() -> (u64, u64) {
    hosted("the STI;VMCALL probe")
}
/// See the bare-metal `arch`.
pub fn last_db_dr6() -> u64 {
    hosted("the exception table")
}
/// See the bare-metal `arch`.
pub fn probe_seg_rep_outsb(_gs: bool, _port: u16, _offset: u64, _count: u64) -> (u64, u64, u64) {
    hosted("fault probes")
}

/// See the bare-metal `arch`.
pub fn invlpg(_va: u64) {
    hosted("INVLPG")
}
/// See the bare-metal `arch`.
pub fn reload_cr3() {
    hosted("MOV CR3")
}
/// See the bare-metal `arch`.
pub fn mmio_read32(_va: u64) -> u32 {
    hosted("MMIO")
}
/// See the bare-metal `arch`.
pub fn mmio_write32(_va: u64, _v: u32) {
    hosted("MMIO")
}
/// See the bare-metal `arch`.
pub fn fn_from_addr(_a: u64) -> fn() {
    hosted("function addresses")
}

/// See the bare-metal `arch`.
#[derive(Clone, Copy, Debug)]
pub struct PvSite {
    /// The call instruction.
    pub site: u64,
    /// The slot it reads.
    pub slot: u64,
}
/// See the bare-metal `arch`: no sites on the host.
pub fn pv_sites() -> &'static [PvSite] {
    &[]
}
/// See the bare-metal `arch`.
pub mod slots {
    use core::sync::atomic::AtomicU64;
    /// `cpu.irq_disable`.
    pub static IRQ_DISABLE: AtomicU64 = AtomicU64::new(0);
    /// `cpu.irq_enable`.
    pub static IRQ_ENABLE: AtomicU64 = AtomicU64::new(0);
    /// `time.clock_ns`.
    pub static CLOCK_NS: AtomicU64 = AtomicU64::new(0);
}
/// See the bare-metal `arch`.
pub fn site_irq_disable() {
    hosted("call sites")
}
/// See the bare-metal `arch`.
pub fn site_irq_enable() {
    hosted("call sites")
}
/// See the bare-metal `arch`.
pub fn site_clock_ns() -> u64 {
    hosted("call sites")
}
/// See the bare-metal `arch`.
pub fn unpatched_irq_disable() {
    hosted("call sites")
}
/// See the bare-metal `arch`.
pub fn site_bytes(_site: u64) -> [u8; 6] {
    hosted("call sites")
}
/// See the bare-metal `arch`.
pub fn write_site(_site: u64, _bytes: [u8; 6]) {
    hosted("call sites")
}
/// See the bare-metal `arch`.
pub const VCPU_STACK_SIZE: usize = 32 * 1024;
/// See the bare-metal `arch`.
pub fn vcpu_entry_address() -> u64 {
    hosted("vCPU entry")
}
/// See the bare-metal `arch`.
pub fn vcpu_stack(_id: usize) -> (u64, u64) {
    hosted("vCPU stacks")
}
/// See the bare-metal `arch`.
pub fn set_gs_base(_v: u64) {
    hosted("the GS base")
}
/// See the bare-metal `arch`.
pub fn gs_base() -> u64 {
    hosted("the GS base")
}
/// See the bare-metal `arch`.
pub fn gs_u32() -> u32 {
    hosted("the GS base")
}
/// See the bare-metal `arch`.
pub fn stray_vcpu_entry() -> Option<(u64, u64)> {
    hosted("vCPU entry")
}
