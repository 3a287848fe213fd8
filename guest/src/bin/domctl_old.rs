//! A companion of the `domctl` test built for ABI 1.0: `domctl` is staged
//! for 1.1, so every call is -ENOSYS, as 1.0 promises (a valid envelope, a
//! bad pointer); then it powers off. A wrong answer crashes it, which fails
//! the test.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::domctl::{XenDomctl, XEN_DOMCTL_GETDOMAININFO};
use keel_guest::abi::guest;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "An ABI 1.0 image gets -ENOSYS for domctl",
    category: Functional,
    abi: keel_guest::abi::version::AbiVersion::V1_0,
    main: test_main,
}

fn test_main() {
    let mut o = XenDomctl {
        cmd: XEN_DOMCTL_GETDOMAININFO,
        ..Default::default()
    };
    check_eq!(guest::domctl(&mut o), Err(Errno::ENOSYS), "getdomaininfo");
    let r = guest::hypercall_scalar(Hypercall::DOMCTL, [0x10, 0, 0, 0, 0]);
    check_eq!(r, Errno::ENOSYS.as_return(), "domctl at 0x10");
    success();
}
