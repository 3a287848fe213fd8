//! The template test: copy this file to `guest/src/bin/<your_test>.rs`, change the
//! title, category and body, and run `cargo keel test <your_test>`.
//! See docs/writing-tests.md.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::prelude::*;

keel_guest::test! {
    title: "Template: xen_version(XENVER_pagesize) is 4096",
    category: Functional,
    main: test_main,
}

fn test_main() {
    // Any hypercall through the abi crate's wrappers; here a scalar one.
    let r = keel_guest::abi::guest::hypercall_scalar(
        Hypercall::XEN_VERSION,
        [keel_guest::abi::version::XENVER_PAGESIZE, 0, 0, 0, 0],
    );
    // check_eq! reports FAILURE (and carries on) when the values differ.
    if check_eq!(r, 4096, "xen_version(XENVER_pagesize)") {
        println!("page size is {r}");
    }
    // Say SUCCESS explicitly: a test that reports nothing ends as ERROR.
    success();
}
