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

// `layout::dump`, `layout::check` and the documentation generators build text and
// so need an allocator. They are behind the `alloc` feature: the hypervisor and the
// guests link no allocator, and a crate graph that merely *mentions* `alloc` would
// demand one. The host tool (`cargo keel abi`) and this crate's tests enable it.
#[cfg(feature = "alloc")]
extern crate alloc;
// Unit tests run on the host and may use `std`.
#[cfg(test)]
extern crate std;

/// Define ABI constants *and* register them in the layout data at the same time.
///
/// Every constant of the ABI is written once, inside this macro, so the constant a
/// Rust program uses and the entry that `layout::dump` freezes into the fixtures
/// (and `ci/xen-abi-check` compares with Xen) can never disagree, and a constant
/// cannot be added without appearing in the machine-readable description.
///
/// ```text
/// abi_consts! {
///     family: Family::Sched, since: AbiVersion::V0_1;
///     /// Give up the CPU.
///     SCHEDOP_YIELD: u64 = 0 => xen("SCHEDOP_yield");
/// }
/// ```
///
/// `=> xen("NAME")` claims the constant is Xen's `NAME` with the same value (checked
/// against Xen's headers), `=> keel()` marks it Keel's own, `=> differs(..)` marks a
/// deliberate difference from Xen (listed by `layout::divergences`). Byte-string
/// constants say `bytes` (or `str` for a `&str`) before the relation:
/// `MAGIC: &[u8] = b"..." => @bytes keel();`; negative integers (Xen's
/// `GNTST_*`) say `@signed`. The generated list is `ABI_CONSTS`
/// unless `list: NAME` follows `since` (for a second group in the same module);
/// `layout::CONSTANT_GROUPS` must name every list (an unlisted one is dead code,
/// which the build reports).
macro_rules! abi_consts {
    (family: $fam:expr, since: $since:expr; $($rest:tt)*) => {
        abi_consts!(family: $fam, since: $since, list: ABI_CONSTS; $($rest)*);
    };
    (family: $fam:expr, since: $since:expr, list: $list:ident;
     $( $(#[doc = $doc:literal])* $name:ident : $ty:ty = $val:expr => $(@$kind:ident)? $xen:expr; )*) => {
        $( $(#[doc = $doc])* pub const $name: $ty = $val; )*

        /// Layout data: every constant this module defines (see [`crate::layout`]).
        pub(crate) const $list: &[crate::layout::Constant] = &[
            $( crate::layout::Constant {
                name: stringify!($name),
                family: $fam,
                value: abi_consts!(@value $($kind)? $name),
                xen: $xen,
                since: $since,
                doc: &[$($doc),*],
            }, )*
        ];
    };
    (@value $name:ident) => { crate::layout::ConstValue::Int($name as u64) };
    (@value bytes $name:ident) => { crate::layout::ConstValue::Bytes($name) };
    (@value signed $name:ident) => { crate::layout::ConstValue::Signed($name as i64) };
    (@value str $name:ident) => { crate::layout::ConstValue::Bytes($name.as_bytes()) };
}

pub mod addr;
pub mod console;
pub mod cpuid;
pub mod debug;
pub mod domctl;
pub mod errno;
pub mod event;
pub mod grant_table;
pub mod hypercall;
pub mod layout;
pub mod mmu;
pub mod note;
pub mod platform;
pub mod pte;
pub mod report;
pub mod ring;
pub mod sched;
pub mod start_info;
pub mod time;
pub mod vcpu;
pub mod version;

#[cfg(feature = "guest")]
pub mod guest;

pub use addr::{GuestVirt, MachineAddr, Mfn, Pfn, PAGE_SHIFT, PAGE_SIZE};
pub use errno::Errno;
