//! # VT-x
//!
//! Pure policy (host-tested): [`caps`] decodes what the CPU offers, [`control_bits`]
//! types the five control words, [`controls`] derives the controls Keel uses, [`checks`] states the SDM's VM-entry checks,
//! [`names`] names exit reasons and VM-instruction errors, [`cr`] is the
//! control-register policy, [`io_qual`] decodes I/O exit qualifications.
//!
//! The hardware side exists only on `target_os = "none"`. In the order a domain
//! meets it: `percpu` (this CPU's state), `insn` (the VMX instructions),
//! `enable` (VMXON), `setup` and `bitmaps` (the VMCS), `readback` (the
//! VMCS as the checks see it), `run` (a domain's run), `stub` and `frame`
//! (entering and leaving the guest, the saved registers), `exit` (one file per
//! exit family), `lend` (a CPU's domains lent to the CPU of a cross-CPU
//! operation). Only `percpu`, `insn`, `stub`, `frame`, `enable`, `setup` and `lend`
//! may use `unsafe` (`#![deny(unsafe_code)]` holds everywhere else).

pub mod caps;
pub mod checks;
pub mod control_bits;
pub mod controls;
pub mod cr;
pub mod frame;
pub mod io_qual;
pub mod names;

#[cfg(target_os = "none")]
pub mod bitmaps;
#[cfg(target_os = "none")]
pub mod enable;
#[cfg(target_os = "none")]
pub mod exit;
#[cfg(target_os = "none")]
pub mod insn;
#[cfg(target_os = "none")]
pub mod lend;
#[cfg(target_os = "none")]
pub mod percpu;
#[cfg(target_os = "none")]
pub mod readback;
#[cfg(target_os = "none")]
pub mod run;
#[cfg(target_os = "none")]
pub mod setup;
#[cfg(target_os = "none")]
pub mod stub;
