//! Power-off with an exit status the host can see.
//!
//! The protocol (`keel_abi::platform`): the last console line is
//! `keel: power off, status N (describe)`; then every mechanism we know is tried,
//! in an order where each one is harmless on the machines it does not apply to:
//!
//! 1. QEMU `isa-debug-exit` at port 0xf4: QEMU exits with `(N << 1) | 1`. Elsewhere
//!    0xf4 is an unused ISA port (Bochs ignores the write).
//! 2. Bochs: the string "Shutdown" to port 0x8900 (Bochs exits 1), for every N.
//!    Bochs can only say 0 or 1 and the console line carries N exactly. The
//!    magic breakpoint (`xchg bx, bx`), which would make Bochs exit 0, is not
//!    used: a guest can execute it too, in VMX non-root mode, and stop the run,
//!    so the runner turns it off (`magic_break: enabled=0`) and expects exit
//!    code 1 from every Bochs run.
//! 3. ACPI S5: SLP_TYPa/b from the DSDT's `\_S5` package and SLP_EN into the FADT's
//!    PM1a/PM1b control blocks, enabling ACPI mode through SMI_CMD first if the
//!    firmware left it off. This is the real-hardware path.
//! 4. `cli; hlt` forever: the line has been printed; the host's timeout ends the run.

use super::cpu::{cli, halt_forever};
use super::port::{inw, outb, outl, outw};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};
use keel_abi::platform::{ExitStatus, QEMU_DEBUG_EXIT_PORT};

/// Bochs's shutdown port: writing the bytes of "Shutdown" ends the simulation.
pub const BOCHS_SHUTDOWN_PORT: u16 = 0x8900;

/// What ACPI S5 needs, found in the FADT and DSDT by `arch::acpi` at boot (and kept
/// here so the power-off path never parses tables: it may run after a fault).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct S5Info {
    /// PM1a control block I/O port.
    pub pm1a_cnt: u16,
    /// PM1b control block I/O port, if the platform has one.
    pub pm1b_cnt: Option<u16>,
    /// SLP_TYPa for S5.
    pub slp_typa: u8,
    /// SLP_TYPb for S5.
    pub slp_typb: u8,
    /// SMI command port (0: the platform is always in ACPI mode).
    pub smi_cmd: u16,
    /// The value to write to `smi_cmd` to enter ACPI mode.
    pub acpi_enable: u8,
}

static S5: spin::Once<S5Info> = spin::Once::new();
static POWERING_OFF: AtomicBool = AtomicBool::new(false);

/// Record how to enter S5 (called once by `arch::acpi::init`).
pub fn set_s5(info: S5Info) {
    S5.call_once(|| info);
}

const PM1_CNT_SCI_EN: u16 = 1 << 0;
const PM1_CNT_SLP_EN: u16 = 1 << 13;
const PM1_CNT_SLP_TYP_SHIFT: u16 = 10;

fn acpi_s5(s5: &S5Info) {
    // Enter ACPI mode if the firmware has not: until SCI_EN is set, the PM1 registers
    // may belong to SMM firmware and ignore us.
    if inw(s5.pm1a_cnt) & PM1_CNT_SCI_EN == 0 && s5.smi_cmd != 0 && s5.acpi_enable != 0 {
        outb(s5.smi_cmd, s5.acpi_enable);
        for _ in 0..1_000_000 {
            if inw(s5.pm1a_cnt) & PM1_CNT_SCI_EN != 0 {
                break;
            }
            core::hint::spin_loop();
        }
    }
    let typ_a = (u16::from(s5.slp_typa) & 7) << PM1_CNT_SLP_TYP_SHIFT;
    let typ_b = (u16::from(s5.slp_typb) & 7) << PM1_CNT_SLP_TYP_SHIFT;
    // Keep the other bits (SCI_EN in particular) as they are.
    let a = inw(s5.pm1a_cnt) & !(7 << PM1_CNT_SLP_TYP_SHIFT);
    outw(s5.pm1a_cnt, a | typ_a | PM1_CNT_SLP_EN);
    if let Some(b_port) = s5.pm1b_cnt {
        let b = inw(b_port) & !(7 << PM1_CNT_SLP_TYP_SHIFT);
        outw(b_port, b | typ_b | PM1_CNT_SLP_EN);
    }
}

/// Print the final line and power the machine off with `status`. Never returns.
pub fn power_off(status: ExitStatus) -> ! {
    cli();
    if POWERING_OFF.swap(true, Ordering::SeqCst) {
        // A fault inside the power-off path itself: the line has been printed and
        // the mechanisms that did not fault have been tried. Stop here.
        halt_forever();
    }
    let n = status as u8;
    // Every buffered line, then the last one, all of it out of the UART before
    // the machine stops: an emulator that exits on a port write would otherwise
    // lose the end of the console (Bochs did: `status 6 (VMXON failed` without
    // its closing parenthesis).
    super::serial::fatal(|w| {
        let _ = write!(w, "power off, status {} ({})", n, status.describe());
    });

    // 1. QEMU isa-debug-exit.
    outl(QEMU_DEBUG_EXIT_PORT, u32::from(n));

    // 2. Bochs: the shutdown port, whatever the status (Bochs then exits 1; the
    // console line carries the status). Not the magic breakpoint: a guest can
    // execute `xchg bx, bx` too, so the runner disables it.
    for &b in b"Shutdown" {
        outb(BOCHS_SHUTDOWN_PORT, b);
    }

    // 3. ACPI S5.
    if let Some(s5) = S5.get() {
        acpi_s5(s5);
    }

    // 4. Nothing worked (or the machine takes time to die).
    halt_forever()
}
