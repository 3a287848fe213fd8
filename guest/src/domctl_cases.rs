//! The `domctl` calls the ABI programs make from a domain that is not the
//! control domain (`abi_compat` checks them, `abi_behaviour` prints one
//! transcript line each): one list, so that both programs and the transcripts
//! follow it.
//!
//! **When `domctl` is wired** (`hypercall::Hypercall::DOMCTL` gets an
//! `implemented_since` and its commands rows of `hypercall::IMPLEMENTED`),
//! check [`CASES`]' `lone` answers against the hypervisor's order of checks
//! and add a case for each class of argument it distinguishes. A program that
//! runs alone is no control domain, so Xen's order (the caller's privilege
//! first, then the interface version, then the command) gives `-EPERM` for
//! every command, known or not; `-ENOSYS` for an unknown command and `-EACCES`
//! for another interface version are the control domain's answers, checked by
//! the several-domain tests. Until `domctl` is served every case answers
//! `-ENOSYS`, which the programs expect from a hypervisor that lists no
//! `domctl` command.

use keel_abi::domctl::{
    XEN_DOMCTL_DESTROYDOMAIN, XEN_DOMCTL_GETDOMAININFO, XEN_DOMCTL_INTERFACE_VERSION,
    XEN_DOMCTL_PAUSEDOMAIN, XEN_DOMCTL_UNPAUSEDOMAIN,
};
use keel_abi::Errno;

/// One `domctl` call and the answer a domain that is not the control domain
/// gets from a hypervisor that serves `domctl`.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    /// The class of arguments, as the transcript names it.
    pub class: &'static str,
    /// `cmd` of the envelope.
    pub cmd: u32,
    /// `interface_version` of the envelope.
    pub interface_version: u32,
    /// The target domain.
    pub domain: u16,
    /// The answer to a caller that is not the control domain.
    pub lone: Errno,
}

const V: u32 = XEN_DOMCTL_INTERFACE_VERSION;

/// The cases, in transcript order. The envelope at NULL (`-EFAULT`, read
/// before anything is decided) is checked separately by each program.
pub const CASES: &[Case] = &[
    Case {
        class: "domain 0, not the control domain",
        cmd: XEN_DOMCTL_GETDOMAININFO,
        interface_version: V,
        domain: 0,
        lone: Errno::EPERM,
    },
    Case {
        class: "another domain, not the control domain",
        cmd: XEN_DOMCTL_PAUSEDOMAIN,
        interface_version: V,
        domain: 7,
        lone: Errno::EPERM,
    },
    Case {
        class: "another domain, not the control domain",
        cmd: XEN_DOMCTL_UNPAUSEDOMAIN,
        interface_version: V,
        domain: 7,
        lone: Errno::EPERM,
    },
    Case {
        class: "another domain, not the control domain",
        cmd: XEN_DOMCTL_DESTROYDOMAIN,
        interface_version: V,
        domain: 7,
        lone: Errno::EPERM,
    },
    Case {
        class: "another interface version, not the control domain",
        cmd: XEN_DOMCTL_GETDOMAININFO,
        interface_version: V - 1,
        domain: 0,
        lone: Errno::EPERM,
    },
    Case {
        class: "unknown command 1, not the control domain",
        cmd: 1,
        interface_version: V,
        domain: 0,
        lone: Errno::EPERM,
    },
];

/// Xen's name of a `domctl` command, for messages and transcript lines.
pub const fn name(cmd: u32) -> &'static str {
    match cmd {
        XEN_DOMCTL_DESTROYDOMAIN => "domctl/XEN_DOMCTL_destroydomain",
        XEN_DOMCTL_PAUSEDOMAIN => "domctl/XEN_DOMCTL_pausedomain",
        XEN_DOMCTL_UNPAUSEDOMAIN => "domctl/XEN_DOMCTL_unpausedomain",
        XEN_DOMCTL_GETDOMAININFO => "domctl/XEN_DOMCTL_getdomaininfo",
        _ => "domctl/other",
    }
}
