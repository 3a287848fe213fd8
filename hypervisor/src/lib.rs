//! # The Keel hypervisor
//!
//! Read in this order (each file is one concept):
//!
//! 1. `arch/boot.rs`: multiboot headers and the 32-bit entry that switches to long mode.
//! 2. `boot/`: what the boot loader told us (memory map, command line, modules).
//! 3. `mem/`: physical memory access and the machine frame allocator, which never
//!    hands out reserved frames.
//! 4. `arch/*`: GDT/IDT/TSS, exceptions, serial console, ACPI, power-off; `console.rs`:
//!    the console ring, its drain and its filter.
//! 5. `vmx/caps.rs`, `vmx/controls.rs`: what the CPU offers, and the controls we derive from it.
//! 6. `vmx/checks.rs`: the SDM's VM-entry checks, in software, before VMLAUNCH.
//! 7. `domain/`: parsing a guest image and building a direct-paging domain.
//! 8. `paging/`: the page-table entry format, the frame table and its type rules,
//!    validation and pinning, emulated page-table writes, every checked access to
//!    guest memory.
//! 9. `hypercall.rs`: the hypercall table.
//! 10. `policy/`: the trap-and-emulate policy tables
//!     (what CPUID, RDMSR/WRMSR, port I/O and other sensitive instructions do).
//! 11. `time.rs`, `event/`: system time, event channels, timers, the shared_info page.
//! 12. `vmx/hw.rs`, `vmx/exit.rs`: VMXON, the VMCS, the VM-exit path.
//!
//! Policy code (everything but `arch` and `vmx::hw`) is safe Rust and builds and is
//! tested on the host. `unsafe` and assembly live only in `arch` and `vmx::hw`.
#![cfg_attr(not(test), no_std)]

pub mod addr;
pub mod arch;
pub mod boot;
pub mod console;
pub mod domain;
pub mod domctl;
pub mod event;
pub mod exception;
pub mod grant;
pub mod hypercall;
pub mod lifecycle;
pub mod mem;
pub mod paging;
pub mod perf;
pub mod policy;
pub mod preempt;
pub mod privilege;
pub mod sched;
pub mod time;
pub mod vmx;
