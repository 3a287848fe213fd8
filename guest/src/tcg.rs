//! QEMU TCG, the native backend's machine, where it differs from hardware.
//!
//! The native backend (`--backend native`) boots the image on QEMU's TCG with no
//! hypervisor. TCG is an emulator, not the hardware the Intel SDM describes, and a
//! test that runs natively meets the places where it differs. A test does not
//! loosen its expectation to fit them: on TCG it expects what TCG really does,
//! names the difference ([`note`]) and keeps the hardware's rule for everywhere
//! else. Where what TCG does leaves nothing to check from inside (the machine
//! hangs or resets), the test does not attempt it on TCG; the loader's `pvops`
//! test attempts each such operation on purpose (guest command line
//! `tcg_attempt=NAME`) and checks that TCG still does what [`DIFFERENCES`] says.
//!
//! The table is data: `docs/platforms.md` carries [`markdown_row`] of every entry,
//! and a host test checks it.
//!
//! TCG is recognised by its CPUID leaf `0x4000_0000` ("TCGTCGTCGTCG", which QEMU
//! sets with the hypervisor bit under TCG), on the native platform only.

use crate::pvops::{self, Platform};

/// One way QEMU's TCG (QEMU 7.2, Debian 12's) differs from hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Difference {
    /// A short name (also the word `tcg_attempt=` takes for a fatal one).
    pub name: &'static str,
    /// What is done.
    pub what: &'static str,
    /// What the hardware does (the Intel SDM).
    pub hardware: &'static str,
    /// What TCG does instead, and where in QEMU.
    pub tcg: &'static str,
    /// The test that meets it.
    pub test: &'static str,
    /// Whether the machine survives it (a test can check TCG's answer inline);
    /// `false`: the machine hangs or resets, so only the deliberate attempt checks it.
    pub survivable: bool,
}

/// `ICEBP` (`INT1`, F1).
pub const ICEBP: Difference = Difference {
    name: "icebp",
    what: "`ICEBP` (`INT1`, opcode F1)",
    hardware: "`#DB`, trap-like (RIP after the instruction)",
    tcg: "`#UD` at the instruction: the translator has F1 only under `WANT_ICEBP`, which is not defined",
    test: "exceptions",
    survivable: true,
};

/// A stack reference through a non-canonical address.
pub const STACK_NON_CANONICAL: Difference = Difference {
    name: "stack-non-canonical",
    what: "a load through RSP plus a non-canonical offset",
    hardware: "`#SS(0)` (the stack segment is the one addressed)",
    tcg: "`#GP(0)`: the page walk checks canonical form for every access and raises `#GP` without knowing the segment",
    test: "exceptions",
    survivable: true,
};

/// Clearing CR0.PG in 64-bit mode.
pub const CLEAR_CR0_PG: Difference = Difference {
    name: "clear-cr0-pg",
    what: "MOV to CR0 clearing PG in 64-bit mode",
    hardware: "`#GP(0)`",
    tcg: "accepted: `cpu_x86_update_cr0` leaves long mode, and the 64-bit code runs on as 32-bit code without paging (the machine hangs)",
    test: "cr_writes",
    survivable: false,
};

/// Clearing CR4.PAE in IA-32e mode.
pub const CLEAR_CR4_PAE: Difference = Difference {
    name: "clear-cr4-pae",
    what: "MOV to CR4 clearing PAE in IA-32e mode",
    hardware: "`#GP(0)`",
    tcg: "accepted: no check in `helper_write_crN`; the next page walk reads the 4-level tables as 32-bit ones (the machine resets)",
    test: "cr_writes",
    survivable: false,
};

/// Setting CR4.VMXE on a CPU without VMX.
pub const SET_CR4_VMXE: Difference = Difference {
    name: "set-cr4-vmxe",
    what: "MOV to CR4 setting VMXE where CPUID.1:ECX.VMX = 0",
    hardware: "`#GP(0)` (a reserved bit)",
    tcg: "a reserved CR4 bit is handled as an SVM `#VMEXIT` (`cpu_vmexit(SVM_EXIT_ERR)`) although no SVM guest runs (the machine hangs)",
    test: "cr_writes",
    survivable: false,
};

/// Every known difference.
pub const DIFFERENCES: &[Difference] = &[
    ICEBP,
    STACK_NON_CANONICAL,
    CLEAR_CR0_PG,
    CLEAR_CR4_PAE,
    SET_CR4_VMXE,
];

/// The CPUID leaf `0x4000_0000` signature of QEMU's TCG.
pub const SIGNATURE: [u8; 12] = *b"TCGTCGTCGTCG";

/// Whether the image runs natively on QEMU's TCG.
pub fn detected() -> bool {
    pvops::choice().platform == Platform::BareMetal
        && crate::cpu::signature(&crate::arch::cpuid(0x4000_0000, 0)) == SIGNATURE
}

/// Say, on the console, that the test meets `d` and checks TCG's answer.
pub fn note(d: &Difference) {
    crate::println!(
        "TCG difference {}: {}: hardware {}; TCG {}",
        d.name,
        d.what,
        d.hardware,
        d.tcg
    );
}

/// Say that the test does not attempt `d` here (it would end the machine).
pub fn not_attempted(d: &Difference) {
    crate::println!(
        "TCG difference {}: not attempted here ({}: TCG {})",
        d.name,
        d.what,
        d.tcg
    );
}

/// Whether the guest command line asks for `d` to be attempted on purpose.
pub fn attempt_requested(d: &Difference) -> bool {
    crate::start::cmdline_value(crate::start::cmdline(), "tcg_attempt") == Some(d.name)
}

/// The line printed just before a deliberate attempt.
pub const ATTEMPT_MARK: &str = "TCG difference: attempting";
/// The line printed if the machine survives a deliberate attempt.
pub const SURVIVED_MARK: &str = "TCG difference: survived";

/// The heading of the section of `docs/platforms.md` that lists [`DIFFERENCES`].
pub const SECTION: &str = "QEMU TCG (the native backend): where it differs from hardware";

/// `d`'s row in `docs/platforms.md` (the name bare: that page's other tables
/// start their rows with a quoted CPU model, which a test reads).
pub fn markdown_row(d: &Difference, out: &mut impl core::fmt::Write) -> core::fmt::Result {
    write!(
        out,
        "| {} | {} | {} | {} | `{}` |",
        d.name, d.what, d.hardware, d.tcg, d.test
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::String;

    #[test]
    fn platforms_md_lists_every_difference() {
        let doc = include_str!("../../docs/platforms.md");
        for d in DIFFERENCES {
            let mut row = String::new();
            markdown_row(d, &mut row).unwrap();
            assert!(
                doc.lines().any(|l| l == row),
                "docs/platforms.md lacks the row (copy it in):\n{row}"
            );
        }
        // And the section's table has no row the code does not know.
        let section = doc
            .split("\n## ")
            .find(|s| s.starts_with(SECTION))
            .expect("docs/platforms.md lacks its QEMU TCG section");
        // Every row but the header ("|---" is not "| ").
        let rows = section.lines().filter(|l| l.starts_with("| ")).skip(1);
        for l in rows {
            assert!(
                DIFFERENCES
                    .iter()
                    .any(|d| l.starts_with(&std::format!("| {} |", d.name))),
                "docs/platforms.md lists a TCG difference the code does not: {l}"
            );
        }
    }

    #[test]
    fn names_are_unique_and_single_words() {
        for (i, a) in DIFFERENCES.iter().enumerate() {
            assert!(!a.name.contains(' ') && !a.name.contains('='));
            for b in &DIFFERENCES[i + 1..] {
                assert_ne!(a.name, b.name);
            }
        }
    }
}
