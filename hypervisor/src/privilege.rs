//! # The guest's privilege level, and what it may ask of Keel
//!
//! A Keel guest has a kernel and, if it wants, a user mode of its own: the
//! guest kernel's user/kernel boundary is the guest's to keep, and the
//! hypervisor must not be a way around it. Two rules follow (docs/abi/README.md,
//! "Privilege"):
//!
//! - A hypercall from guest CPL > 0 is refused with `-EPERM` before anything is
//!   looked at, so it changes nothing (Xen's rule for HVM guests).
//! - Every guest-memory access Keel makes on behalf of a guest instruction uses
//!   the permissions of the privilege level that executed it: an access from CPL3
//!   is a user-mode access (the U/S bit must be set at every level of the walk),
//!   and the #PF it may raise carries U in its error code, as the CPU builds it.
//!
//! The CPL is the DPL of the guest's SS (SDM vol. 3, 5.5: "CPL ... is equal to the
//! DPL of the SS segment" once the processor is in protected mode; the VMCS keeps
//! it in the SS access-rights field, bits 5-6).

/// The guest's current privilege level, 0 (kernel) to 3 (user).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cpl(u8);

impl Cpl {
    /// The kernel's level.
    pub const KERNEL: Cpl = Cpl(0);
    /// User mode.
    pub const USER: Cpl = Cpl(3);

    /// The CPL held in a VMCS segment access-rights word for SS (its DPL).
    pub const fn from_ss_access_rights(ar: u32) -> Cpl {
        Cpl(((ar >> 5) & 3) as u8)
    }

    /// The level as a number 0..=3.
    pub const fn level(self) -> u8 {
        self.0
    }

    /// May code at this level make a hypercall? Only the guest kernel may.
    pub const fn may_hypercall(self) -> bool {
        self.0 == 0
    }

    /// The mode of the data accesses an instruction at this level makes
    /// (SDM vol. 3, 4.6: CPL 3 accesses are user-mode accesses, all others
    /// supervisor-mode accesses, implicit system-structure accesses aside).
    pub const fn access_mode(self) -> Mode {
        if self.0 == 3 {
            Mode::User
        } else {
            Mode::Supervisor
        }
    }
}

/// Whose permissions a guest-memory access Keel makes is checked with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The guest kernel's (a hypercall, or an instruction at CPL 0..2): U/S is
    /// not required.
    Supervisor,
    /// User mode's (an instruction at CPL3): U/S must be set at every level.
    User,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpl_is_the_ss_dpl() {
        // A flat 64-bit data segment, present, DPL 0 and DPL 3 (type 3,
        // S=1, P=1; granularity and D/B set as loaders leave them).
        assert_eq!(Cpl::from_ss_access_rights(0xc093), Cpl::KERNEL);
        assert_eq!(Cpl::from_ss_access_rights(0xc0f3), Cpl::USER);
        assert_eq!(Cpl::from_ss_access_rights(0xb3).level(), 1);
        // The unusable bit (16) and others do not matter.
        assert_eq!(Cpl::from_ss_access_rights(0x1_0000 | 0x60), Cpl::USER);
        for ar in 0..0x2_0000u32 {
            let c = Cpl::from_ss_access_rights(ar);
            assert_eq!(c.may_hypercall(), (ar >> 5) & 3 == 0);
            assert_eq!(c.access_mode() == Mode::User, (ar >> 5) & 3 == 3);
        }
    }
}
