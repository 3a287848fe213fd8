//! The hypervisor keeps the ABI's promise, sub-command by sub-command.
//!
//! `keel_abi::hypercall::IMPLEMENTED` is the frozen list of what each ABI version
//! implements (it is in `abi/fixtures/<version>/layout.txt`); the hypervisor's
//! dispatch table (`hypercall::TABLE`) is what it actually implements. They must be
//! the same set, with the same versions: a row missing from the table breaks a
//! released promise, and a row missing from the ABI is an unpromised (and
//! unversioned) extension that guests cannot detect.

use keel_abi::hypercall::{sub_implemented_since, IMPLEMENTED};
use keel_hypervisor::hypercall::TABLE;

#[test]
fn dispatch_table_equals_the_abi_promise() {
    for r in TABLE {
        assert_eq!(
            sub_implemented_since(r.nr, r.sub),
            Some(r.since),
            "the hypervisor implements {} (hypercall {}, sub-command {}) since {}, \
             but keel_abi::hypercall::IMPLEMENTED does not say so",
            r.name,
            r.nr.0,
            r.sub,
            r.since
        );
    }
    for s in IMPLEMENTED {
        assert!(
            TABLE
                .iter()
                .any(|r| r.nr == s.hypercall && r.sub == s.sub && r.since == s.since),
            "the ABI promises {}/{} since {}, but the hypervisor's table has no such row",
            s.hypercall.name().unwrap_or("?"),
            s.name,
            s.since
        );
    }
}
