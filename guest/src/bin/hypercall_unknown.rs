//! Every hypercall number the ABI does not implement answers `-ENOSYS`, whatever
//! its arguments: Xen's numbers Keel has not implemented yet, the gaps between
//! them, and numbers far outside the table; and a sub-command of Keel's debug
//! hypercall newer than the ABI this image declares.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::guest::{self, hypercall_scalar};
use keel_guest::abi::hypercall::ALL;
use keel_guest::abi::version::AbiVersion;
use keel_guest::prelude::*;

keel_guest::test! {
    title: "Unknown and unimplemented hypercall numbers return -ENOSYS",
    category: Abi,
    main: test_main,
}

fn test_main() {
    let hv = guest::xen_version();
    if hv != AbiVersion::CURRENT {
        // A newer hypervisor may implement more of Xen's numbers: only the numbers
        // outside Xen's table are checked then.
        println!(
            "hypervisor ABI {hv} != {}: checking only unknown numbers",
            AbiVersion::CURRENT
        );
    }
    let args = [0u64; 5];
    let mut checked = 0;

    if hv == AbiVersion::CURRENT {
        for &nr in ALL {
            if nr.implemented_since().is_some() {
                continue;
            }
            let name = nr.name().unwrap_or("?");
            // Zero arguments, then "plausible" ones: neither may reach an
            // implementation.
            for a in [args, [1, 0, 0, 0, 0], [0, 1, 2, 3, 4]] {
                check_eq!(
                    hypercall_scalar(nr, a),
                    Errno::ENOSYS.as_return(),
                    "hypercall {} ({name}) with arguments {a:?}",
                    nr.0
                );
                checked += 1;
            }
        }
    }

    // Numbers Xen never defined.
    let unknown = [
        11u64,
        43,
        47,
        56,
        63,
        64,
        255,
        256,
        0x1000,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0011, // xen_version's number plus bit 32: the whole of RAX counts
        0x8000_0000_0000_0000,
        u64::MAX,
    ];
    for nr in unknown {
        // Numbers the ABI crate names (Xen's table grows) are covered above.
        if Hypercall(nr).name().is_some() {
            continue;
        }
        check_eq!(
            hypercall_scalar(Hypercall(nr), args),
            Errno::ENOSYS.as_return(),
            "hypercall {nr:#x}"
        );
        checked += 1;
    }
    // Keel's debug hypercall serves a sub-command only to images that know it:
    // this image declares the released ABI, so 1.2's (in progress)
    // `DEBUGOP_PLATFORM_DELAY` is unknown to it, as to a hypervisor before 1.2.
    check_eq!(
        keel_guest::abi::debug::guest::platform_delay(0),
        Err(Errno::ENOSYS),
        "keel_debug_op(DEBUGOP_PLATFORM_DELAY) from an image that does not declare 1.2"
    );
    checked += 1;
    println!("{checked} calls answered");
    success();
}
