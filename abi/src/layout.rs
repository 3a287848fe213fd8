//! The ABI as data: a machine-readable description of everything in this crate
//! that a guest or a frozen hypervisor binary depends on.
//!
//! Keel promises that a released ABI version never changes: a guest built against
//! 0.1 runs on every later 0.x hypervisor, and the current guest copes with a 0.1
//! hypervisor. A promise like that is only as good as its checking, so the ABI is
//! described here *as data derived from the real types and constants*:
//!
//! - [`STRUCTS`]: each `#[repr(C)]` structure's size and alignment and each field's
//!   offset and size, computed by `size_of`/`align_of`/`offset_of!` (the
//!   `abi_struct!` macro also destructures the type without `..`, so a field added
//!   to a structure and forgotten here is a compile error);
//! - [`constants`]: every constant, registered by the same macro that defines it
//!   (`abi_consts!` in `lib.rs`), so the number a program uses and the number
//!   frozen in a fixture are one and the same;
//! - the hypercall numbers and their implementation status
//!   ([`crate::hypercall::ALL`]), the error codes ([`crate::errno::ALL`]), the
//!   power-off statuses and test categories;
//! - [`GOLDEN`]: byte encodings of sample arguments produced by the real encoders
//!   ([`crate::start_info::StartInfo::encode`] and friends), which catch what a
//!   layout cannot: an encoder that writes a field at the wrong offset.
//!
//! [`write_fixture`] renders all of it in the fixture format, one item per line
//! (`abi/fixtures/<version>/layout.txt` is its output at release time), and, with
//! the `alloc` feature, [`dump`] returns it as a `String` and [`check`] compares a
//! released fixture with the current crate, naming every item that changed or
//! vanished. `cargo keel abi dump|check` and this crate's tests call them.
//!
//! The data also says how each item relates to Xen ([`XenRelation`]):
//! `ci/xen-abi-check` prints Xen's values from Debian's `libxen-dev` headers and a
//! test compares every item that claims to be Xen's; deliberate differences are
//! listed by [`divergences`] and documented in `docs/abi/`.

use crate::mmu::{MmuUpdate, MmuextOp, MulticallEntry};
use core::fmt;
use core::mem::{align_of, offset_of, size_of};

use crate::debug::PerfCounters;
use crate::domctl::{XenDomctl, XenDomctlGetdomaininfo};
use crate::event::{
    EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindVcpu, EvtchnBindVirq,
    EvtchnPort, EvtchnStatus, XenHvmParam,
};
use crate::grant_table::{
    GnttabCopy, GnttabCopyPtr, GnttabMapGrantRef, GnttabQuerySize, GnttabSetupTable,
    GnttabUnmapGrantRef, GrantEntryV1,
};
use crate::hypercall::Hypercall;
use crate::note;
use crate::platform::ExitStatus;
use crate::ring::SringHeader;
use crate::sched::{SchedPoll, SchedShutdown};
use crate::start_info::{ConsoleDomU, StartInfo};
use crate::time::{
    ArchSharedInfo, ArchVcpuInfo, SharedInfo, VcpuInfo, VcpuSetPeriodicTimer,
    VcpuSetSingleshotTimer, VcpuTimeInfo,
};
use crate::vcpu::{
    CpuUserRegs, TrapInfo, VcpuGuestContext, VcpuRegisterVcpuInfo, VcpuRunstateInfo,
};
use crate::version::{AbiVersion, XenExtraversion, XenFeatureInfo};

mod xen_scope;
pub use xen_scope::{XenAbsent, XenScope, XEN_NOT_ADOPTED, XEN_SCOPE, XEN_STRUCT_ALIASES};

#[cfg(feature = "alloc")]
mod check;
#[cfg(feature = "alloc")]
pub mod markdown;
#[cfg(feature = "alloc")]
pub use check::{check, check_against, dump, Problem, Violation};

/// Every ABI version that has been released, oldest first. A released version has
/// a frozen fixture directory `abi/fixtures/<version>/`; the crate's tests check the
/// current crate against every one of them (see `docs/abi-versioning.md`).
pub const RELEASED: &[AbiVersion] = &[AbiVersion::V0_1, AbiVersion::V1_0, AbiVersion::V1_1];

/// The oldest released version a hypervisor of version `hv` runs
/// ([`AbiVersion::can_run`]): the version a guest declares when it wants to run on
/// every released hypervisor `hv` can stand for and detects newer features at run
/// time, as the compatibility guest does. For a 1.x hypervisor that is 0.1: major
/// 0 is the pre-release series of 1, and 1.0 runs every 0.x guest.
pub const fn oldest_release_runnable_by(hv: AbiVersion) -> Option<AbiVersion> {
    let mut i = 0;
    while i < RELEASED.len() {
        if hv.can_run(RELEASED[i]) {
            return Some(RELEASED[i]);
        }
        i += 1;
    }
    None
}

mod divergence;
mod family;
mod fixture;
mod golden;
mod items;
mod samples;

pub use self::divergence::*;
pub use self::family::*;
pub use self::fixture::*;
pub use self::golden::*;
pub use self::items::*;
pub use self::samples::*;

#[cfg(test)]
mod tests;
