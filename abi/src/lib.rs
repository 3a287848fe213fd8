//! # The Keel paravirtual ABI
//!
//! This crate is the single source of truth for everything the Keel hypervisor and
//! its guests agree on: hypercall numbers, sub-commands, structure layouts, error
//! codes, the guest image note, and (for the host tool) the power-off status
//! protocol. Where Keel implements a Xen interface, the numbers and layouts here are
//! Xen's x86_64 ones, checked against Xen's public headers by `ci/xen-abi-check`.
//!
//! ## Calling convention (differs from bare metal; matches Xen's x86_64 register use)
//! A guest issues a hypercall with `VMCALL` at CPL0 in VMX non-root mode:
//! the hypercall number in RAX, arguments in RDI, RSI, RDX, R10, R8, the result in
//! RAX (a negative Xen errno on failure). All other registers are preserved.
//! Xen PV guests reach the hypervisor through a hypercall page of `syscall`
//! stubs instead; Keel guests run in VMX non-root mode and use `VMCALL` directly.
//!
//! The crate is `no_std` and has no dependencies beyond `bitflags`; the guest-side
//! wrappers are behind the `guest` feature, which the hypervisor never enables.
#![no_std]
#![deny(missing_docs)]

pub mod addr;
pub mod console;
pub mod errno;
pub mod hypercall;
pub mod note;
pub mod platform;
pub mod sched;
pub mod start_info;
pub mod version;

#[cfg(feature = "guest")]
pub mod guest;

pub use addr::{GuestVirt, MachineAddr, Mfn, Pfn, PAGE_SHIFT, PAGE_SIZE};
pub use errno::Errno;
