//! `xen_version`: the version, extraversion, feature submaps and page size answer
//! as the ABI says; the sub-commands Keel does not implement are `-ENOSYS`; bad
//! output pointers are `-EFAULT` and leave nothing behind.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::abi::guest::{self, hypercall_scalar};
use keel_guest::abi::version::*;
use keel_guest::prelude::*;
use keel_guest::targets;

keel_guest::test! {
    title: "xen_version: version, extraversion, get_features, pagesize, unimplemented sub-commands, bad pointers",
    category: Abi,
    main: test_main,
}

fn xv(cmd: u64, arg: u64) -> i64 {
    hypercall_scalar(Hypercall::XEN_VERSION, [cmd, arg, 0, 0, 0])
}

fn test_main() {
    // XENVER_version: (major << 16) | minor; the argument is ignored.
    let r = xv(XENVER_VERSION, 0);
    check!(r >= 0, "XENVER_version returned {r}");
    let v = AbiVersion::decode(r as u32);
    check_eq!(
        r as u64 >> 32,
        0,
        "XENVER_version upper bits (the encoding is 32 bits)"
    );
    check!(
        v.can_run(AbiVersion::CURRENT),
        "hypervisor ABI {v} cannot run a guest built against {}",
        AbiVersion::CURRENT
    );
    check_eq!(
        xv(XENVER_VERSION, 0xdead_beef),
        r,
        "XENVER_version ignores its argument"
    );
    println!("hypervisor ABI version {v}");

    // XENVER_extraversion: a NUL-terminated string in a 16-byte buffer.
    match guest::xen_extraversion() {
        Ok(e) => {
            let len = e.0.iter().position(|&b| b == 0);
            if check!(
                len.is_some(),
                "extraversion is not NUL-terminated: {:?}",
                e.0
            ) {
                let s = &e.0[..len.unwrap_or(0)];
                println!(
                    "extraversion \"{}\"",
                    core::str::from_utf8(s).unwrap_or("<not UTF-8>")
                );
                check_eq!(s, b"-keel", "extraversion");
            }
        }
        Err(e) => failure!("XENVER_extraversion returned {e}"),
    }

    // XENVER_get_features: submap 0 holds this ABI's features.
    match guest::xen_get_features(0) {
        Ok(m) => {
            println!("features submap 0: {m:#010x}");
            check_eq!(
                m & !features::SUBMAP0,
                0,
                "feature bits unknown to ABI {} in submap 0",
                AbiVersion::CURRENT
            );
        }
        Err(e) => failure!("XENVER_get_features(0) returned {e}"),
    }
    // Submaps beyond the defined ones: -EINVAL, as Xen (guests loop over submaps
    // until the call fails).
    for idx in [1u32, 31, u32::MAX] {
        check_eq!(
            guest::xen_get_features(idx),
            Err(Errno::EINVAL),
            "XENVER_get_features({idx})"
        );
    }

    check_eq!(xv(XENVER_PAGESIZE, 0), 4096, "XENVER_pagesize");
    // Its argument must be NULL (as on Xen).
    check_eq!(
        xv(XENVER_PAGESIZE, 0x1000),
        Errno::EINVAL.as_return(),
        "XENVER_pagesize with a non-NULL argument"
    );

    // Sub-commands Keel 0.1 does not implement: -ENOSYS. Each gets a real buffer so
    // that an implementation would not fail for another reason.
    let mut buf = [0u8; 1024];
    for cmd in [
        XENVER_COMPILE_INFO,
        XENVER_CAPABILITIES,
        XENVER_CHANGESET,
        XENVER_PLATFORM_PARAMETERS,
        XENVER_GUEST_HANDLE,
        XENVER_COMMANDLINE,
        XENVER_BUILD_ID,
        11,
        0x100,
        // Xen truncates the sub-command to 32 bits; Keel compares all 64, so an
        // implemented sub-command with upper bits set is no alias for it.
        (1 << 32) | XENVER_VERSION,
        (1 << 32) | XENVER_EXTRAVERSION,
        u64::MAX,
    ] {
        let r = xv(cmd, buf.as_mut_ptr() as u64);
        check_eq!(
            r,
            Errno::ENOSYS.as_return(),
            "xen_version sub-command {cmd:#x}"
        );
    }
    check!(
        buf.iter().all(|&b| b == 0),
        "an -ENOSYS xen_version sub-command wrote to its buffer"
    );

    // Output pointers the guest cannot write: -EFAULT.
    for bp in targets::bad_pointers() {
        if keel_guest::start::va_to_pfn(bp.va).is_some() {
            continue;
        }
        for cmd in [XENVER_EXTRAVERSION, XENVER_GET_FEATURES] {
            check_eq!(
                xv(cmd, bp.va.get()),
                Errno::EFAULT.as_return(),
                "xen_version({cmd}, {} {:#x})",
                bp.name,
                bp.va.get()
            );
        }
    }
    // Read-only memory: the image's text. The buffer is checked unchanged after.
    let text = keel_guest::start::boot().virt_base;
    let before = fault::read_u64(text);
    let r = xv(XENVER_EXTRAVERSION, text.get());
    check_eq!(
        r,
        Errno::EFAULT.as_return(),
        "XENVER_extraversion into the read-only image text at {:#x}",
        text.get()
    );
    check_eq!(
        fault::read_u64(text),
        before,
        "image text after the refused write"
    );

    success();
}
