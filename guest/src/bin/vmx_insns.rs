//! The guest runs on a CPU that, as far as it can tell, has no VMX: every VMX
//! instruction must raise `#UD` as on such a CPU (with CR4.VMXE clear), GETSEC
//! too (SMX is hidden), and none may take the hypervisor or the domain down.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use keel_guest::cpu::{cpuid, LEAF1_ECX_SMX, LEAF1_ECX_VMX};
use keel_guest::fault::{insn, vmx, Insn, VmxInsn};
use keel_guest::prelude::*;

keel_guest::test! {
    title: "VMX instructions and GETSEC in the guest raise #UD",
    category: Security,
    needs: Nothing,
    main: test_main,
}

fn test_main() {
    let ecx = cpuid(1, 0).ecx;
    check!(
        ecx & LEAF1_ECX_VMX == 0,
        "CPUID.1:ECX.VMX is visible ({ecx:#x})"
    );

    for i in VmxInsn::ALL {
        fault::expect_fault(format_args!("{i:?}"), vmx(i), Vector::UD, None);
    }
    // Twice more for VMXON: a second attempt must not find state left by the first.
    fault::expect_fault(
        format_args!("Vmxon again"),
        vmx(VmxInsn::Vmxon),
        Vector::UD,
        None,
    );

    if ecx & LEAF1_ECX_SMX == 0 {
        fault::expect_fault(format_args!("GETSEC"), insn(Insn::Getsec), Vector::UD, None);
    } else {
        failure!("CPUID.1:ECX.SMX is visible ({ecx:#x})");
    }

    // INVD would drop dirty cache lines, the hypervisor's included: it always exits
    // in VMX non-root mode, and the hypervisor may emulate it (as WBINVD) or refuse
    // it with #GP/#UD. What it must not do is end the domain or itself.
    match insn(Insn::Invd) {
        Ok(()) => println!("INVD: completed (emulated)"),
        Err(f) if f.vector == Vector::GP || f.vector == Vector::UD => {
            println!("INVD: refused with {f}")
        }
        Err(f) => failure!("INVD took {f}, want completion, #GP or #UD"),
    }
    success();
}
