//! Building ELF images in tests (here and in the domain builder's and paging's tests).

extern crate std;
use super::parse::*;
use super::*;
use crate::addr::PAGE_SIZE;
use keel_abi::note::{NT_KEEL_ABI_BUILT, NT_KEEL_ABI_VERSION, NT_KEEL_TEST};
use keel_abi::version::AbiVersion;
use std::vec::Vec;

/// `p_flags` words for the images the tests build.
pub const PF_X: u32 = SegmentFlags::X.bits();
/// Writable.
pub const PF_W: u32 = SegmentFlags::W.bits();
/// Readable.
pub const PF_R: u32 = SegmentFlags::R.bits();

/// One segment to emit.
#[derive(Clone)]
pub struct Seg {
    pub p_type: u32,
    pub flags: u32,
    pub vaddr: u64,
    pub data: Vec<u8>,
    pub memsz: u64,
    pub align: u64,
}

impl Seg {
    pub fn load(vaddr: u64, flags: u32, data: &[u8], memsz: u64) -> Self {
        Seg {
            p_type: PT_LOAD,
            flags,
            vaddr,
            data: data.to_vec(),
            memsz,
            align: PAGE_SIZE,
        }
    }
    pub fn note(data: Vec<u8>) -> Self {
        Seg {
            p_type: PT_NOTE,
            flags: PF_R,
            vaddr: 0,
            memsz: data.len() as u64,
            data,
            align: 4,
        }
    }
}

/// A note record with 4-byte padding.
pub fn note(name: &[u8], ntype: u32, desc: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(name.len() as u32).to_le_bytes());
    v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    v.extend_from_slice(&ntype.to_le_bytes());
    v.extend_from_slice(name);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v.extend_from_slice(desc);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

pub fn abi_note(major: u16, minor: u16) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&major.to_le_bytes());
    d.extend_from_slice(&minor.to_le_bytes());
    note(b"Keel\0", NT_KEEL_ABI_VERSION, &d)
}

pub fn test_note(category: u32, title: &str) -> Vec<u8> {
    let mut d = category.to_le_bytes().to_vec();
    d.extend_from_slice(title.as_bytes());
    d.push(0);
    note(b"Keel\0", NT_KEEL_TEST, &d)
}

/// An ELF64 x86_64 ET_EXEC with the given program headers; segment data is
/// placed after the headers, each at a file offset congruent to its vaddr
/// modulo the page size (as linkers do).
pub fn build(entry: u64, segs: &[Seg]) -> Vec<u8> {
    let phoff = 64usize;
    let mut data_at = phoff + segs.len() * PHDR_SIZE;
    let mut out = std::vec![0u8; data_at];
    out[0..4].copy_from_slice(b"\x7fELF");
    out[4] = 2;
    out[5] = 1;
    out[6] = 1;
    out[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
    out[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[24..32].copy_from_slice(&entry.to_le_bytes());
    out[32..40].copy_from_slice(&(phoff as u64).to_le_bytes());
    out[52..54].copy_from_slice(&64u16.to_le_bytes());
    out[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
    out[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
    for (i, s) in segs.iter().enumerate() {
        if s.p_type == PT_LOAD {
            let want = (s.vaddr % PAGE_SIZE) as usize;
            while data_at % PAGE_SIZE as usize != want {
                data_at += 1;
            }
        }
        let ph = phoff + i * PHDR_SIZE;
        out[ph..ph + 4].copy_from_slice(&s.p_type.to_le_bytes());
        out[ph + 4..ph + 8].copy_from_slice(&s.flags.to_le_bytes());
        out[ph + 8..ph + 16].copy_from_slice(&(data_at as u64).to_le_bytes());
        out[ph + 16..ph + 24].copy_from_slice(&s.vaddr.to_le_bytes());
        out[ph + 24..ph + 32].copy_from_slice(&s.vaddr.to_le_bytes());
        out[ph + 32..ph + 40].copy_from_slice(&(s.data.len() as u64).to_le_bytes());
        out[ph + 40..ph + 48].copy_from_slice(&s.memsz.to_le_bytes());
        out[ph + 48..ph + 56].copy_from_slice(&s.align.to_le_bytes());
        if out.len() < data_at {
            out.resize(data_at, 0);
        }
        out.extend_from_slice(&s.data);
        data_at = out.len();
    }
    out
}

/// A typical guest: text RX at 0x40_0000 (2 pages + a bit), data RW with bss,
/// the ABI note (0.1) and a test note, as images were built before 1.0 (no
/// build note).
pub fn typical() -> Vec<u8> {
    typical_built(None)
}

/// [`typical`], with an `NT_KEEL_ABI_BUILT` note of `built` when given (as
/// every image built with the 1.0 crate or later has).
pub fn typical_built(built: Option<AbiVersion>) -> Vec<u8> {
    typical_declaring(AbiVersion::V0_1, built)
}

/// [`typical_built`], declaring ABI version `declared`.
pub fn typical_declaring(declared: AbiVersion, built: Option<AbiVersion>) -> Vec<u8> {
    let text: Vec<u8> = (0..0x2100u32).map(|i| (i % 251) as u8).collect();
    let data: Vec<u8> = (0..0x300u32).map(|i| (i % 13) as u8 + 1).collect();
    let mut notes = abi_note(declared.major, declared.minor);
    if let Some(b) = built {
        notes.extend(note(
            b"Keel\0",
            NT_KEEL_ABI_BUILT,
            &keel_abi::note::abi_version_desc(b),
        ));
    }
    notes.extend(test_note(0, "typical guest"));
    build(
        0x40_0010,
        &[
            Seg::load(0x40_0000, PF_R | PF_X, &text, text.len() as u64),
            Seg::load(0x40_3000, PF_R | PF_W, &data, 0x1800),
            Seg::note(notes),
        ],
    )
}
