//! `docs/abi/msr.md`, generated from [`MSRS`].

extern crate std;
use super::*;
use crate::policy::generated::generated_note;
use std::fmt::Write as _;
use std::string::String;

fn kind(k: &Kind) -> String {
    match k {
        Kind::PassThrough { initial, check } => {
            std::format!(
                "pass-through (no exit); starts at {initial:#x}; {}",
                check_name(*check)
            )
        }
        Kind::VmcsPassThrough(_, c) => {
            std::format!("pass-through (no exit), VMCS-switched; {}", check_name(*c))
        }
        Kind::WriteChecked { initial, check } => std::format!(
            "read: no exit; write: exits, checked by Keel ({}), then written; starts at {initial:#x}",
            check_name(*check)
        ),
        Kind::ReadThrough => String::from("read: host value, no exit; write: #GP(0)"),
        Kind::Vmcs(_, c) => std::format!("VMCS-managed (exits); {}", check_name(*c)),
        Kind::Emulated(v, w) => std::format!(
            "emulated: reads {}; writes {}",
            match v {
                Value::Const(c) => std::format!("`{c:#x}`"),
                Value::PlatformInfo => String::from("the host's base ratio << 8"),
            },
            match w {
                Write::Refuse => "#GP(0)",
                Write::SameValue => "of the same value accepted, else #GP(0)",
                Write::Ignore => "ignored",
            }
        ),
    }
}

fn check_name(c: Check) -> &'static str {
    match c {
        Check::Any => "any value",
        Check::Canonical => "non-canonical: #GP(0)",
        Check::Low32 => "bits 63:32 reserved: #GP(0)",
        Check::Efer => "reserved bits, LME or NXE change: #GP(0); LMA ignored; without EFER switching the write (SCE only) goes to the shared host register",
        Check::Pat => "invalid memory type: #GP(0)",
        Check::DebugCtl => "any bit but BTF: #GP(0)",
    }
}

/// The whole page.
pub fn page() -> String {
    let mut s = String::from("# MSRs: what RDMSR and WRMSR do in a Keel guest\n\n");
    s.push_str(&generated_note(
        "msr/markdown.rs",
        "the table `MSRS` in `msr/table.rs`",
    ));
    s.push_str(
        "The guest's CPU has exactly the MSRs below. **Every other MSR raises #GP(0)** on\n\
RDMSR and WRMSR, as hardware does for an MSR that does not exist (the VMX\n\
capability MSRs included); a write with a reserved bit set raises #GP(0) too.\n\n\
- *Pass-through*: the access does not exit (its bits in the MSR bitmap are 0).\n  \
Only MSRs whose guest value survives every exit: VMX does not switch them and Keel\n  \
never uses them (no SYSCALL, SWAPGS, RDTSCP or RDPID in the host), or the VMCS\n  \
switches them (FS/GS base). They start at 0.\n\
- *Write-checked*: reads do not exit; a write exits and Keel applies the\n  \
reserved-bit rule itself before writing the register, so the rule holds even where\n  \
a hypervisor beneath Keel intercepts the write and would not check it.\n\
- *VMCS-managed*: the access exits; the value lives in the VMCS guest-state area\n  \
and is switched on every entry and exit. Without the VMCS controls that switch\n  \
EFER, PAT or DEBUGCTL, only a write of the current value is accepted.\n\
- *Emulated*: the access exits; Keel answers for a virtual CPU with one logical\n  \
processor, no VMX, no reachable APIC, and write-back memory.\n\n\
| MSR | Name | Policy | Why |\n|---|---|---|---|\n",
    );
    for m in MSRS {
        let _ = writeln!(
            s,
            "| `{:#x}` | {} | {}{} | {} |",
            m.index,
            m.name,
            kind(&m.kind),
            if m.needs == Needs::Rdtscp {
                " (only with RDTSCP; else #GP(0))"
            } else {
                ""
            },
            m.why
        );
    }
    s.push_str(
        "\n## Differences from Xen\n\n\
Xen builds an MSR policy per domain and, by default since Xen 4.15, raises #GP for\n\
an MSR outside it, as Keel does for every MSR not in the table above. The two\n\
lists are not the same: compare the table above, not Xen's `msr.c`. Xen PV\n\
kernels reach MSRs only through Xen's emulation of their faulting RDMSR/WRMSR;\n\
a Keel guest executes them at CPL0 and each one exits.\n",
    );
    s
}
