//! Everything that touches the hardware directly: boot code, CPU tables, the serial
//! console, the direct map, ACPI and power-off. `unsafe` and assembly in the
//! hypervisor live here and in the VMX instruction, per-CPU, stub and set-up
//! modules only (`#![deny(unsafe_code)]` on the crate says so to the compiler).
//! [`bits`] (control-register, EFER, RFLAGS bits) is pure and host-tested, and
//! [`slots`] (zero-initialised slot tables) host-tested.
//!
//! The hardware modules exist only in the bare-metal build (`target_os = "none"`);
//! `aml` is a pure byte scanner and `bits` pure data, both tested on the host.

pub mod aml;
pub mod bits;
pub mod slots;

#[cfg(target_os = "none")]
pub mod acpi;
#[cfg(target_os = "none")]
pub mod boot;
#[cfg(target_os = "none")]
pub mod cpu;
#[cfg(target_os = "none")]
pub mod gdt;
#[cfg(target_os = "none")]
pub mod idt;
#[cfg(target_os = "none")]
pub mod mem;
#[cfg(target_os = "none")]
pub mod percpu;
#[cfg(target_os = "none")]
pub mod port;
#[cfg(target_os = "none")]
pub mod power;
#[cfg(target_os = "none")]
pub mod serial;
#[cfg(target_os = "none")]
pub mod smp;
#[cfg(target_os = "none")]
pub mod timer;
