//! Families and how an item relates to Xen.

use super::*;

/// The part of the ABI an item belongs to. Each family has one page in
/// `docs/abi/` ([`Family::doc_page`]) that must describe every item of the family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// Page size and address conventions ([`crate::addr`]).
    Addr,
    /// `console_io` ([`crate::console`]).
    Console,
    /// Error codes ([`crate::errno`]).
    Errno,
    /// Hypercall numbers ([`crate::hypercall`]).
    Hypercall,
    /// The guest image notes ([`crate::note`]).
    Note,
    /// The power-off protocol ([`crate::platform`]).
    Platform,
    /// `sched_op` ([`crate::sched`]).
    Sched,
    /// The start-of-day page ([`crate::start_info`]).
    StartInfo,
    /// `xen_version`, versioning and CPUID leaves ([`crate::version`]).
    Version,
    /// Event channels and the upcall vector ([`crate::event`]).
    Event,
    /// `shared_info`, pvclock and timers ([`crate::time`]).
    Time,
    /// `mmu_update`, `mmuext_op`, `multicall` ([`crate::mmu`]).
    Mmu,
    /// `keel_debug_op`: the floor hypercall and the VMX counters ([`crate::debug`]).
    Debug,
    /// `grant_table_op`: grant tables v1 ([`crate::grant_table`]; 1.1).
    Grant,
    /// `domctl`: the control domain's subset ([`crate::domctl`]; 1.1).
    Domctl,
    /// The split-driver shared ring of `io/ring.h` ([`crate::ring`]; 1.1).
    Ring,
    /// `vcpu_op`'s vCPU operations: up, down, run states, `vcpu_info`
    /// placement ([`crate::vcpu`]; 1.2, in progress).
    Vcpu,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 17] = [
        Family::Addr,
        Family::Console,
        Family::Errno,
        Family::Hypercall,
        Family::Note,
        Family::Platform,
        Family::Sched,
        Family::StartInfo,
        Family::Version,
        Family::Event,
        Family::Time,
        Family::Mmu,
        Family::Debug,
        Family::Grant,
        Family::Domctl,
        Family::Ring,
        Family::Vcpu,
    ];

    /// The module name, used as the prefix of item names in fixtures (`sched.SCHEDOP_YIELD`).
    pub const fn module(self) -> &'static str {
        match self {
            Family::Addr => "addr",
            Family::Console => "console",
            Family::Errno => "errno",
            Family::Hypercall => "hypercall",
            Family::Note => "note",
            Family::Platform => "platform",
            Family::Sched => "sched",
            Family::StartInfo => "start_info",
            Family::Version => "version",
            Family::Event => "event",
            Family::Time => "time",
            Family::Mmu => "mmu",
            Family::Debug => "debug",
            Family::Grant => "grant_table",
            Family::Domctl => "domctl",
            Family::Ring => "ring",
            Family::Vcpu => "vcpu",
        }
    }

    /// The page of `docs/abi/` that documents this family.
    pub const fn doc_page(self) -> &'static str {
        match self {
            Family::Addr | Family::StartInfo => "start_info.md",
            Family::Console => "console.md",
            Family::Errno => "errno.md",
            Family::Hypercall => "README.md",
            Family::Note => "image.md",
            Family::Platform => "platform.md",
            Family::Sched => "sched.md",
            Family::Version => "version.md",
            Family::Event => "events.md",
            Family::Time => "time.md",
            Family::Mmu => "mmu.md",
            Family::Debug => "debug.md",
            Family::Grant | Family::Ring => "grant.md",
            Family::Domctl => "domains.md",
            Family::Vcpu => "vcpu.md",
        }
    }

    /// The hypercall this family is the interface of, if any (the first of
    /// [`Family::hypercalls`]).
    pub const fn hypercall(self) -> Option<Hypercall> {
        match self.hypercalls() {
            [h, ..] => Some(*h),
            [] => None,
        }
    }

    /// The hypercalls this family is the interface of (documented on its page).
    pub const fn hypercalls(self) -> &'static [Hypercall] {
        match self {
            Family::Console => &[Hypercall::CONSOLE_IO],
            Family::Sched => &[Hypercall::SCHED_OP],
            Family::Version => &[Hypercall::XEN_VERSION],
            Family::Event => &[Hypercall::EVENT_CHANNEL_OP, Hypercall::HVM_OP],
            Family::Time => &[Hypercall::SET_TIMER_OP, Hypercall::VCPU_OP],
            Family::Mmu => &[
                Hypercall::MMU_UPDATE,
                Hypercall::MMUEXT_OP,
                Hypercall::MULTICALL,
            ],
            Family::Grant => &[Hypercall::GRANT_TABLE_OP],
            Family::Domctl => &[Hypercall::DOMCTL],
            _ => &[],
        }
    }

    /// The family whose page documents hypercall `h` in detail, if Keel implements it.
    pub fn of_hypercall(h: Hypercall) -> Option<Family> {
        Family::ALL
            .into_iter()
            .find(|f| f.hypercalls().contains(&h))
    }
}

/// How an item relates to Xen's public interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XenRelation {
    /// The item *is* Xen's item of this name (Xen's spelling, e.g. `"SCHEDOP_yield"`
    /// or `"start_info"`), with the same value or layout: `ci/xen-abi-check` and
    /// `abi/tests/xen_cross_check.rs` verify it against Xen's headers.
    Same(&'static str),
    /// The item differs from Xen *on purpose*. `xen` names Xen's corresponding item
    /// when there is one (the cross-check then verifies that it exists and shows both
    /// values); `why` is the reason, repeated in the documentation.
    Differs {
        /// Xen's corresponding item, if any.
        xen: Option<&'static str>,
        /// Why Keel differs.
        why: &'static str,
    },
    /// Keel's own item with no Xen counterpart (ELF notes, power-off protocol).
    KeelOnly,
}

/// `=> xen("NAME")` in `abi_consts!`: the constant is Xen's `NAME`.
pub(crate) const fn xen(name: &'static str) -> XenRelation {
    XenRelation::Same(name)
}
/// `=> keel()` in `abi_consts!`: Keel's own constant.
pub(crate) const fn keel() -> XenRelation {
    XenRelation::KeelOnly
}
/// `=> differs(Some("XEN_NAME"), "why")` in `abi_consts!`: a deliberate difference.
pub(crate) const fn differs(xen: Option<&'static str>, why: &'static str) -> XenRelation {
    XenRelation::Differs { xen, why }
}
