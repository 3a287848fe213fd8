//! # What CPUID tells a guest
//!
//! A guest must see one consistent virtual CPU: every feature CPUID reports must
//! work, and everything that would not work (or would reach the host's hardware)
//! must be absent. Keel builds that CPU from the host's CPUID with two tables:
//!
//! - [`LEAVES`] says, for every basic and extended leaf, what the guest gets: the
//!   host's value, the host's value through an allow-list, a value Keel computes
//!   (topology, XSAVE), or zeroes ("not virtualised"). A leaf the table does not
//!   list reads as zeroes.
//! - [`FEATURES`] is the allow-list: the feature bits a guest may see, each with the
//!   condition under which it is real (e.g. AVX only when the guest may enable the
//!   AVX state in XCR0). Every other bit of a masked register is cleared, so a
//!   feature a newer CPU adds stays hidden until someone decides it is virtualised.
//!
//! Hidden on purpose: VMX and SMX (no nested virtualisation, `vmx::cr` keeps
//! CR4.VMXE invisible), MONITOR/MWAIT (they exit and raise #UD), the PMU and
//! debug-store features (the counters are the host's), the local APIC, x2APIC and
//! TSC-deadline (the guest cannot reach an APIC: events come through the PV
//! interface), features needing a CR4 bit the CR policy refuses (PCID, FSGSBASE,
//! SMEP, SMAP, UMIP, PKU, LA57, CET), controls Keel does not enable (INVPCID,
//! WAITPKG, XSAVES), speculation-control MSRs Keel does not virtualise, thermal and
//! power management, TSX, SGX, PT, and 1-GiB pages (direct paging validates 4-KiB
//! mappings only).
//!
//! Topology is that of one vCPU: one logical processor per core and per package,
//! APIC id 0 (leaves 1, 4, 0xB, 0x1F). Leaf 0xD describes exactly the XCR0 values
//! the guest may set ([`GuestCpuFeatures::xcr0_allowed`], which XSETBV is validated
//! against). A leaf above the highest basic or extended leaf answers as Intel
//! hardware does: with the data of the highest basic leaf (SDM vol. 2A, CPUID,
//! "INPUT EAX = 0" note).
//!
//! Keel's own leaves, `0x4000_0000..=0x4000_00ff`, come from the ABI crate:
//! `0x4000_0000` gives the highest hypervisor leaf and the signature
//! "KeelKeelKeel"; `0x4000_0001` the ABI version and feature submap 0; the rest of
//! the range reads as zeroes.
//!
//! The exit path must be cheap (`cargo keel bench`'s `bench_policy/cpuid_0`), so the
//! tables are folded once per vCPU into a [`CpuidPolicy`] (per-leaf kinds in
//! arrays, one AND/OR mask per masked register), and an exit costs one host CPUID,
//! an array index and a few bit operations.
//!
//! The files: `table.rs` is the policy as data (the leaves, the allow-list, the
//! XCR0 components); `fold.rs` folds it for a vCPU and answers an exit;
//! `markdown.rs` (test-only) generates `docs/abi/cpuid.md` from the same tables.

mod fold;
#[cfg(test)]
pub mod markdown;
mod table;
#[cfg(test)]
mod tests;

pub use fold::{is_hypervisor_leaf, topology, xcr0_supported, CpuidPolicy, GuestCpuFeatures};
pub use keel_abi::cpuid::CpuidResult;
pub use table::*;
