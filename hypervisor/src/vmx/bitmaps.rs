//! # The MSR and I/O bitmaps
//!
//! Which MSR accesses and ports exit is data: the MSR bitmap is built from
//! `policy::msr`'s table, and the I/O bitmaps intercept every port (the guest's
//! bus is `policy::io`'s).

use crate::addr::{MachineAddr, Mfn, PAGE_SIZE};
use crate::mem::{FrameSource, PhysMem};

/// Allocate and fill the MSR bitmap (SDM 25.6.9): every bit 1 (intercept),
/// except the reads and writes `crate::policy::msr`'s table passes through
/// (`msr::bitmap_passes`; why each is safe is stated there, row by row).
pub fn build_msr_bitmap(
    frames: &mut impl FrameSource,
    mem: &mut impl PhysMem,
    env: &crate::policy::msr::MsrEnv,
) -> Option<Mfn> {
    let f = frames.alloc_frame()?;
    let ones = [0xffu8; 512];
    let mut off = 0;
    while off < PAGE_SIZE {
        mem.write(MachineAddr::new(f.addr().get() + off), &ones);
        off += ones.len() as u64;
    }
    for (index, read, write) in crate::policy::msr::bitmap_passes(env) {
        for (is_write, passes) in [(false, read), (true, write)] {
            let Some((byte, bit)) = crate::policy::msr::bitmap_position(index, is_write) else {
                continue;
            };
            if !passes {
                continue;
            }
            let at = MachineAddr::new(f.addr().get() + byte as u64);
            let mut b = [0u8; 1];
            mem.read(at, &mut b);
            b[0] &= !(1 << bit);
            mem.write(at, &b);
        }
    }
    Some(f)
}

/// Allocate a frame filled with ones (an I/O bitmap that intercepts every port).
pub fn ones_frame(frames: &mut impl FrameSource, mem: &mut impl PhysMem) -> Option<Mfn> {
    let f = frames.alloc_frame()?;
    let ones = [0xffu8; 512];
    let mut off = 0;
    while off < PAGE_SIZE {
        mem.write(MachineAddr::new(f.addr().get() + off), &ones);
        off += ones.len() as u64;
    }
    Some(f)
}
