//! Trap-and-emulate policy: what the guest sees when it executes CPUID, RDMSR/WRMSR,
//! port I/O and the other sensitive instructions. Each file is one table and the pure
//! code that applies it; the VMX exit handlers only decode the exit and call in here.

pub mod cpuid;
#[cfg(test)]
mod docs;
#[cfg(test)]
mod generated;
pub mod insns;
pub mod io;
pub mod msr;
