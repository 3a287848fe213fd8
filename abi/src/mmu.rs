//! The PV MMU: `mmu_update` (hypercall 1), `mmuext_op` (hypercall 26) and
//! `multicall` (hypercall 13), with Xen's numbers and layouts
//! (`xen/include/public/xen.h`). Since ABI 1.0.
//!
//! Keel guests run on *direct paging*: the CPU walks the guest's own page tables,
//! which hold machine frame numbers, and the guest may change them only through
//! the hypervisor, which validates every change:
//!
//! - `mmu_update(reqs, count, success_count, foreigndom)`: `count` [`MmuUpdate`]
//!   requests; the low two bits of `ptr` select the command
//!   ([`MMU_NORMAL_PT_UPDATE`] is implemented; the others answer `-ENOSYS`); `ptr`
//!   is the machine address of the entry, `val` the new entry. Stops at the first
//!   failure; the number done is written to `*success_count` (if not NULL).
//! - `mmuext_op(ops, count, success_count, foreigndom)`: `count` [`MmuextOp`]s:
//!   pin/unpin a table, switch the base pointer, flush the TLB.
//! - `multicall(calls, nr_calls)`: runs [`MulticallEntry`]s in order, writing each
//!   result back.
//!
//! The rules are in `docs/abi/mmu.md`. Bare-metal difference: on bare metal the
//! kernel writes its page tables and CR3 directly; under Keel its tables are
//! read-only to it, and CR3 loads only a pinned L4.

use crate::layout::{keel, xen, Family};
use crate::version::AbiVersion;

abi_consts! {
    family: Family::Mmu, since: AbiVersion::V1_0;
    /// `mmu_update` command (low 2 bits of `ptr`): a validated `*ptr = val`, `ptr` a
    /// machine address.
    MMU_NORMAL_PT_UPDATE: u64 = 0 => xen("MMU_NORMAL_PT_UPDATE");
    /// `mmu_update` command: M2P update (Keel: `-ENOSYS`; the guest's frame list is
    /// fixed).
    MMU_MACHPHYS_UPDATE: u64 = 1 => xen("MMU_MACHPHYS_UPDATE");
    /// `mmu_update` command: update keeping the entry's A/D bits (Keel: `-ENOSYS`).
    MMU_PT_UPDATE_PRESERVE_AD: u64 = 2 => xen("MMU_PT_UPDATE_PRESERVE_AD");
    /// `mmu_update` command: update without foreign-domain translation (Keel:
    /// `-ENOSYS`).
    MMU_PT_UPDATE_NO_TRANSLATE: u64 = 3 => xen("MMU_PT_UPDATE_NO_TRANSLATE");
    /// Pin an L1 table: `arg1` = its MFN.
    MMUEXT_PIN_L1_TABLE: u32 = 0 => xen("MMUEXT_PIN_L1_TABLE");
    /// Pin an L2 table.
    MMUEXT_PIN_L2_TABLE: u32 = 1 => xen("MMUEXT_PIN_L2_TABLE");
    /// Pin an L3 table.
    MMUEXT_PIN_L3_TABLE: u32 = 2 => xen("MMUEXT_PIN_L3_TABLE");
    /// Pin an L4 table.
    MMUEXT_PIN_L4_TABLE: u32 = 3 => xen("MMUEXT_PIN_L4_TABLE");
    /// Unpin a table: `arg1` = its MFN.
    MMUEXT_UNPIN_TABLE: u32 = 4 => xen("MMUEXT_UNPIN_TABLE");
    /// Switch CR3 to a pinned L4: `arg1` = its MFN.
    MMUEXT_NEW_BASEPTR: u32 = 5 => xen("MMUEXT_NEW_BASEPTR");
    /// Flush this vCPU's TLB.
    MMUEXT_TLB_FLUSH_LOCAL: u32 = 6 => xen("MMUEXT_TLB_FLUSH_LOCAL");
    /// Flush one page of this vCPU's TLB: `arg1` = the linear address.
    MMUEXT_INVLPG_LOCAL: u32 = 7 => xen("MMUEXT_INVLPG_LOCAL");
    /// Flush the TLBs of the vCPUs in the bitmap at `arg2`.
    MMUEXT_TLB_FLUSH_MULTI: u32 = 8 => xen("MMUEXT_TLB_FLUSH_MULTI");
    /// Flush one page (`arg1`) on the vCPUs in the bitmap at `arg2`.
    MMUEXT_INVLPG_MULTI: u32 = 9 => xen("MMUEXT_INVLPG_MULTI");
    /// Flush every vCPU's TLB.
    MMUEXT_TLB_FLUSH_ALL: u32 = 10 => xen("MMUEXT_TLB_FLUSH_ALL");
    /// Flush one page (`arg1`) on every vCPU.
    MMUEXT_INVLPG_ALL: u32 = 11 => xen("MMUEXT_INVLPG_ALL");
    /// Write back and invalidate caches (Keel: `-ENOSYS`).
    MMUEXT_FLUSH_CACHE: u32 = 12 => xen("MMUEXT_FLUSH_CACHE");
    /// Install an LDT (Keel: `-ENOSYS`).
    MMUEXT_SET_LDT: u32 = 13 => xen("MMUEXT_SET_LDT");
    /// User-mode base pointer (Keel: `-ENOSYS`).
    MMUEXT_NEW_USER_BASEPTR: u32 = 15 => xen("MMUEXT_NEW_USER_BASEPTR");
    /// Zero a page (Keel: `-ENOSYS`).
    MMUEXT_CLEAR_PAGE: u32 = 16 => xen("MMUEXT_CLEAR_PAGE");
    /// Copy a page (Keel: `-ENOSYS`).
    MMUEXT_COPY_PAGE: u32 = 17 => xen("MMUEXT_COPY_PAGE");
    /// Flush caches on every CPU (Keel: `-ENOSYS`).
    MMUEXT_FLUSH_CACHE_GLOBAL: u32 = 18 => xen("MMUEXT_FLUSH_CACHE_GLOBAL");
    /// Mark a superpage (Keel: `-ENOSYS`: no superpages).
    MMUEXT_MARK_SUPER: u32 = 19 => xen("MMUEXT_MARK_SUPER");
    /// Unmark a superpage (Keel: `-ENOSYS`).
    MMUEXT_UNMARK_SUPER: u32 = 20 => xen("MMUEXT_UNMARK_SUPER");
    /// `foreigndom` meaning "the calling domain".
    DOMID_SELF: u64 = 0x7ff0 => xen("DOMID_SELF");
    /// The largest `count` of `mmu_update` and `mmuext_op` and `nr_calls` of
    /// `multicall`: 2^31 - 1. Xen uses bit 31 of the count as its preemption
    /// (continuation) flag; Keel does not preempt, and a count with bit 31 or
    /// above set is `-EINVAL`.
    MMU_BATCH_MAX: u64 = (1 << 31) - 1 => keel();
}

/// `struct mmu_update`: one request of `mmu_update`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmuUpdate {
    /// Machine address of the entry, with the command in bits 0..1.
    pub ptr: u64,
    /// The new entry.
    pub val: u64,
}
const _: () = {
    assert!(core::mem::size_of::<MmuUpdate>() == 16);
    assert!(core::mem::align_of::<MmuUpdate>() == 8);
    assert!(core::mem::offset_of!(MmuUpdate, ptr) == 0);
    assert!(core::mem::offset_of!(MmuUpdate, val) == 8);
};

impl MmuUpdate {
    /// Size in guest memory.
    pub const SIZE: usize = 16;
    /// The bytes as they lie in guest memory.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..8].copy_from_slice(&self.ptr.to_le_bytes());
        b[8..].copy_from_slice(&self.val.to_le_bytes());
        b
    }
    /// Parse guest bytes.
    pub fn decode(b: &[u8; Self::SIZE]) -> Self {
        let mut p = [0u8; 8];
        let mut v = [0u8; 8];
        p.copy_from_slice(&b[..8]);
        v.copy_from_slice(&b[8..]);
        MmuUpdate {
            ptr: u64::from_le_bytes(p),
            val: u64::from_le_bytes(v),
        }
    }
}

/// `struct mmuext_op`: one operation of `mmuext_op`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmuextOp {
    /// One of the `MMUEXT_*` commands.
    pub cmd: u32,
    /// Padding (Xen's implicit padding before the 8-byte union; ignored).
    pub pad: u32,
    /// `mfn` or `linear_addr`, by command.
    pub arg1: u64,
    /// `vcpumask` (a guest pointer to a bitmap), `nr_ents` or `src_mfn`, by command.
    pub arg2: u64,
}
const _: () = {
    assert!(core::mem::size_of::<MmuextOp>() == 24);
    assert!(core::mem::align_of::<MmuextOp>() == 8);
    assert!(core::mem::offset_of!(MmuextOp, cmd) == 0);
    assert!(core::mem::offset_of!(MmuextOp, arg1) == 8);
    assert!(core::mem::offset_of!(MmuextOp, arg2) == 16);
};

impl MmuextOp {
    /// Size in guest memory.
    pub const SIZE: usize = 24;
    /// The bytes as they lie in guest memory.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..4].copy_from_slice(&self.cmd.to_le_bytes());
        b[4..8].copy_from_slice(&self.pad.to_le_bytes());
        b[8..16].copy_from_slice(&self.arg1.to_le_bytes());
        b[16..].copy_from_slice(&self.arg2.to_le_bytes());
        b
    }
    /// Parse guest bytes.
    pub fn decode(b: &[u8; Self::SIZE]) -> Self {
        let u32_at = |i: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&b[i..i + 4]);
            u32::from_le_bytes(w)
        };
        let u64_at = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(w)
        };
        MmuextOp {
            cmd: u32_at(0),
            pad: u32_at(4),
            arg1: u64_at(8),
            arg2: u64_at(16),
        }
    }
}

/// `struct multicall_entry`: one call of a `multicall` batch.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MulticallEntry {
    /// The hypercall number.
    pub op: u64,
    /// Written by the hypervisor: the call's return value.
    pub result: u64,
    /// The arguments (Keel passes the first five, as in registers; the sixth is
    /// ignored).
    pub args: [u64; 6],
}
const _: () = {
    assert!(core::mem::size_of::<MulticallEntry>() == 64);
    assert!(core::mem::align_of::<MulticallEntry>() == 8);
    assert!(core::mem::offset_of!(MulticallEntry, op) == 0);
    assert!(core::mem::offset_of!(MulticallEntry, result) == 8);
    assert!(core::mem::offset_of!(MulticallEntry, args) == 16);
};

impl MulticallEntry {
    /// Size in guest memory.
    pub const SIZE: usize = 64;
    /// Offset of `result`, which the hypervisor writes back.
    pub const RESULT_OFFSET: u64 = 8;
    /// The bytes as they lie in guest memory.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..8].copy_from_slice(&self.op.to_le_bytes());
        b[8..16].copy_from_slice(&self.result.to_le_bytes());
        for (i, a) in self.args.iter().enumerate() {
            b[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        b
    }
    /// Parse guest bytes.
    pub fn decode(b: &[u8; Self::SIZE]) -> Self {
        let at = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(w)
        };
        let mut args = [0u64; 6];
        for (i, a) in args.iter_mut().enumerate() {
            *a = at(16 + 8 * i);
        }
        MulticallEntry {
            op: at(0),
            result: at(8),
            args,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_round_trip() {
        let u = MmuUpdate {
            ptr: 0x1234_5678_9000 | MMU_NORMAL_PT_UPDATE,
            val: 0x8000_0000_0000_0067,
        };
        assert_eq!(MmuUpdate::decode(&u.encode()), u);
        assert_eq!(u.encode()[8..], 0x8000_0000_0000_0067u64.to_le_bytes());
        let o = MmuextOp {
            cmd: MMUEXT_PIN_L4_TABLE,
            pad: 0,
            arg1: 0xabc,
            arg2: 7,
        };
        assert_eq!(MmuextOp::decode(&o.encode()), o);
        assert_eq!(o.encode()[0], 3);
        assert_eq!(o.encode()[8], 0xbc);
        let m = MulticallEntry {
            op: 26,
            result: u64::MAX,
            args: [1, 2, 3, 4, 5, 6],
        };
        assert_eq!(MulticallEntry::decode(&m.encode()), m);
        assert_eq!(m.encode()[16 + 40], 6);
    }
}
