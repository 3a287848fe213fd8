//! Booting under QEMU: `-kernel` (multiboot1) with the guest as `-initrd`.
//!
//! QEMU's `-kernel` loads a multiboot1 image directly (no firmware boot menu), so a
//! run reaches the hypervisor in a fraction of a second. `isa-debug-exit` on port
//! 0xf4 turns the hypervisor's power-off status N into QEMU's exit code
//! `(N << 1) | 1`.

use crate::backend::Backend;

/// One QEMU machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuConfig {
    /// `kvm` or `tcg`.
    pub backend: Backend,
    /// `-cpu` model.
    pub cpu_model: String,
    /// Memory in MiB.
    pub mem_mib: u32,
    /// The hypervisor image.
    pub kernel: String,
    /// The hypervisor's command line.
    pub append: String,
    /// The guest module's file (relative to QEMU's working directory) and its
    /// arguments: QEMU gives the module the whole `file args` string as its command
    /// line, so with the file named after the guest this is `name args`, the same
    /// as under GRUB. Several modules are separated by commas, so a comma in
    /// one is doubled ([`escape_commas`], applied by the caller).
    pub module: String,
    /// The file COM1 writes to.
    pub serial: String,
}

/// A guest image booted by itself (`--backend native`): its multiboot1 header
/// makes it the `-kernel`; QEMU gives it `kernel-file args` as its command line,
/// so with the file named after the guest this is `name args`, as under Keel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NativeConfig {
    /// `-cpu` model.
    pub cpu_model: String,
    /// Memory in MiB.
    pub mem_mib: u32,
    /// The guest image (named after the guest).
    pub kernel: String,
    /// The guest's arguments (after its name).
    pub append: String,
    /// The file COM1 writes to.
    pub serial: String,
}

/// The QEMU command line for a guest on bare (TCG) hardware.
pub fn native_args(cfg: &NativeConfig) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    push(&["-kernel", &cfg.kernel]);
    push(&["-append", &cfg.append]);
    push(&["-serial", &format!("file:{}", cfg.serial)]);
    push(&["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    push(&["-display", "none", "-no-reboot", "-monitor", "none"]);
    push(&["-m", &cfg.mem_mib.to_string()]);
    push(&["-accel", "tcg", "-cpu", &cfg.cpu_model]);
    a
}

/// Escape a value for QEMU's option syntax, where `,` separates (and `,,` is a comma).
pub fn escape_commas(s: &str) -> String {
    s.replace(',', ",,")
}

/// The QEMU command line (without the program name).
pub fn qemu_args(cfg: &QemuConfig) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    push(&["-kernel", &cfg.kernel]);
    push(&["-initrd", &cfg.module]);
    push(&["-append", &cfg.append]);
    push(&["-serial", &format!("file:{}", cfg.serial)]);
    push(&["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    push(&["-display", "none", "-no-reboot", "-monitor", "none"]);
    push(&["-m", &cfg.mem_mib.to_string()]);
    match cfg.backend {
        Backend::Kvm => push(&["-enable-kvm", "-cpu", &cfg.cpu_model]),
        _ => push(&["-accel", "tcg", "-cpu", &cfg.cpu_model]),
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(backend: Backend) -> QemuConfig {
        QemuConfig {
            backend,
            cpu_model: backend.default_cpu_model().into(),
            mem_mib: 128,
            kernel: "/t/keel-hypervisor".into(),
            append: "console=com1".into(),
            module: escape_commas("hello seed=3,4"),
            serial: "serial.txt".into(),
        }
    }

    fn has(args: &[String], pair: &[&str]) -> bool {
        args.windows(pair.len()).any(|w| w == pair)
    }

    #[test]
    fn tcg_command_line() {
        let a = qemu_args(&cfg(Backend::Tcg));
        assert!(has(&a, &["-kernel", "/t/keel-hypervisor"]));
        assert!(has(&a, &["-initrd", "hello seed=3,,4"]));
        assert!(has(&a, &["-append", "console=com1"]));
        assert!(has(&a, &["-serial", "file:serial.txt"]));
        assert!(has(
            &a,
            &["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
        ));
        assert!(has(&a, &["-display", "none"]));
        assert!(has(&a, &["-accel", "tcg"]));
        assert!(a.contains(&"-no-reboot".to_string()));
        assert!(!a.contains(&"-enable-kvm".to_string()));
    }

    #[test]
    fn native_command_line() {
        let a = native_args(&NativeConfig {
            cpu_model: "qemu64".into(),
            mem_mib: 128,
            kernel: "hello".into(),
            append: "seed=3 pv=all".into(),
            serial: "serial.txt".into(),
        });
        assert!(has(&a, &["-kernel", "hello"]));
        assert!(has(&a, &["-append", "seed=3 pv=all"]));
        assert!(has(&a, &["-accel", "tcg"]));
        assert!(!a.contains(&"-initrd".to_string()));
        assert!(has(
            &a,
            &["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
        ));
    }

    #[test]
    fn kvm_command_line() {
        let a = qemu_args(&cfg(Backend::Kvm));
        assert!(has(&a, &["-enable-kvm", "-cpu", "host"]));
        assert!(!a.contains(&"tcg".to_string()));
    }
}
