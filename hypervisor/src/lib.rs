//! # The Keel hypervisor
//!
//! Read in this order (each file is one concept):
//!
//! 1. `arch/boot.rs`: multiboot headers and the 32-bit entry that switches to long mode.
//! 2. `boot_info.rs`: what the boot loader told us (memory map, command line, modules).
//! 3. `frames.rs`: the machine frame allocator, which never hands out reserved frames.
//! 4. `arch/*`: GDT/IDT/TSS, exceptions, serial console, ACPI, power-off; `console.rs`:
//!    the console ring, its drain and its filter.
//! 5. `vmx/caps.rs`, `vmx/controls.rs`: what the CPU offers, and the controls we derive from it.
//! 6. `vmx/checks.rs`: the SDM's VM-entry checks, in software, before VMLAUNCH.
//! 7. `elf.rs`, `domain/`: parsing a guest image and building a direct-paging domain.
//! 8. `guest_mem.rs`: every access to guest memory, checked.
//! 9. `hypercall.rs`: the hypercall table.
//! 10. `cpuid.rs`, `msr.rs`, `io.rs`, `insns.rs`: the trap-and-emulate policy tables
//!     (what CPUID, RDMSR/WRMSR, port I/O and other sensitive instructions do).
//! 11. `time.rs`, `event/`: system time, event channels, timers, the shared_info page.
//! 12. `vmx/hw.rs`, `vmx/exit.rs`: VMXON, the VMCS, the VM-exit path.
//!
//! Policy code (everything but `arch` and `vmx::hw`) is safe Rust and builds and is
//! tested on the host. `unsafe` and assembly live only in `arch` and `vmx::hw`.
#![cfg_attr(not(test), no_std)]

pub mod addr;
pub mod arch;
pub mod boot_info;
pub mod console;
pub mod cpuid;
pub mod frames;
pub mod insns;
pub mod io;
pub mod mem;
pub mod msr;
pub mod vmx;

pub mod access_fault;
pub mod domain;
pub mod elf;
pub mod event;
pub mod exception;
pub mod guest_mem;
pub mod hypercall;
pub mod mm;
pub mod perf;
pub mod privilege;
pub mod time;

#[cfg(test)]
mod policy_docs;
