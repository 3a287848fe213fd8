//! # VT-x
//!
//! Pure policy (host-tested): [`caps`] decodes what the CPU offers, [`controls`]
//! derives the controls Keel uses, [`checks`] states the SDM's VM-entry checks,
//! [`names`] names exit reasons and VM-instruction errors, [`cr`] is the
//! control-register policy. The hardware side (`hw`, `exit`) exists only on
//! `target_os = "none"`, and is the only place here with `unsafe` and assembly.

pub mod caps;
pub mod checks;
pub mod controls;
pub mod cr;
pub mod names;

#[cfg(target_os = "none")]
pub mod exit;
#[cfg(target_os = "none")]
pub mod hw;
