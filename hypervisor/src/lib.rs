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
//! 6. `vmx/checks/`: the SDM's VM-entry checks (controls, host state, guest state), in
//!    software, before VMLAUNCH.
//! 7. `domain/`: parsing a guest image and building a direct-paging domain.
//! 8. `paging/`: the page-table entry format, the frame table and its type rules,
//!    validation and pinning, emulated page-table writes, every checked access to
//!    guest memory.
//! 9. `hypercall.rs`: the hypercall table.
//! 10. `policy/`: the trap-and-emulate policy tables
//!     (what CPUID, RDMSR/WRMSR, port I/O and other sensitive instructions do).
//! 11. `time.rs`, `event/`: system time, event channels, timers, the shared_info page.
//! 12. `vmx/` (its `mod.rs` gives the order): this CPU's state (`percpu`), the VMX
//!     instructions (`insn`), VMXON (`enable`), the VMCS (`setup`, `bitmaps`,
//!     `readback`), a domain's run (`run`), the assembly that enters and leaves
//!     the guest (`stub`, `frame`), and the exit handlers, one file per family
//!     (`exit/`).
//!
//! Policy code is safe Rust and builds and is tested on the host. `unsafe` and
//! assembly live only in `arch` and the VMX modules `percpu`, `insn`, `stub`,
//! `frame`, `enable` and `setup`: the crate denies `unsafe_code`, and only those
//! modules allow it.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub mod addr;
#[allow(unsafe_code)]
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
pub mod overdue;
pub mod paging;
pub mod peers;
pub mod perf;
pub mod policy;
pub mod preempt;
pub mod privilege;
pub mod sched;
pub mod smp;
pub mod time;
pub mod vmx;
