//! # Guest images: a strict ELF64 reader
//!
//! A Keel guest is a statically linked ELF64 executable for x86_64 (see
//! `guest/link.ld`): a few `PT_LOAD` segments, an entry point, and a `PT_NOTE`
//! segment carrying the Keel notes ([`keel_abi::note`]). This module turns the bytes
//! of such an image into a [`GuestImage`]: a validated description the domain
//! builder can trust without re-checking a single field.
//!
//! The image is untrusted input (it arrives as a boot module, and the host tool
//! feeds arbitrary files to the same code), so the parser:
//!
//! - never panics and never indexes unchecked: every read goes through
//!   `Bytes`, every sum through `checked_add`;
//! - refuses anything it does not fully understand rather than guessing: wrong
//!   class, byte order, machine or type; segments whose file bytes lie outside the
//!   file, whose `memsz < filesz`, whose addresses are not canonical or wrap, or
//!   which overlap; absurd sizes; an entry point outside every executable segment;
//!   malformed notes; a missing ABI note.
//!
//! It is pure and `no_std` with no allocation (a fixed maximum of
//! [`MAX_SEGMENTS`] loadable segments).
//!
//! Xen's equivalent is `xen/common/libelf/`; Keel's images are far simpler (no
//! relocation, no `__xen_guest` section, no PAE variants), so this reader is much
//! stricter.
//!
//! The files: `image.rs` is what a validated image is ([`GuestImage`],
//! [`Segment`], [`TestNote`]); `parse.rs` reads the ELF header and program
//! headers; `notes.rs` reads the Keel notes; `bytes.rs` is the bounds-checked reader
//! both use; `error.rs` names every refusal.

mod bytes;
mod error;
mod image;
mod notes;
mod parse;
#[cfg(test)]
pub(crate) mod testimg;
#[cfg(test)]
mod tests;

pub use error::ElfError;
pub use image::{GuestImage, Segment, SegmentFlags, TestNote};

/// The most `PT_LOAD` segments an image may have (Keel images have two or three).
pub const MAX_SEGMENTS: usize = 16;
/// The most program headers an image may have.
pub const MAX_PHDRS: usize = 64;
/// The largest span of guest-virtual addresses an image may cover (its lowest
/// loadable page to its highest): 1 GiB. A guest bigger than this is a mistake,
/// and the bound keeps every later computation far away from overflow.
pub const MAX_IMAGE_SPAN: u64 = 1 << 30;
