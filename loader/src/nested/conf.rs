//! What the nested machine is told: QEMU's arguments for each run, `/nk.conf`
//! (the runs, their companion domains, the experiments), Linux's command line and
//! the bochsrc.

use super::{
    GuestRun, Plan, KVM_INTEL_PARAMS, L0_CPU_MODEL, L0_IPS, L0_MEGS, RUN_EMULATED_TIMEOUT_S,
};
use crate::backend::Backend;
use crate::bochs;

/// What the nested backend adds to the `kvm` backend's QEMU arguments: no
/// default devices (VGA, NIC, IDE CD-ROM, floppy, parallel port) and no
/// configuration files. Keel uses none of them, and under nesting each one costs
/// every boot L0 time: SeaBIOS runs the VGA BIOS and the NIC's iPXE ROM and
/// probes the drives, one L0 exit to QEMU per port access.
pub const NESTED_QEMU_EXTRA: &[&str] = &["-nodefaults", "-no-user-config"];

/// The QEMU arguments /init passes for each run: the `kvm` backend's
/// ([`crate::qemu::qemu_args`]) and [`NESTED_QEMU_EXTRA`]; /init replaces
/// `@MODULE@` with the guest's module string (`name args`, commas doubled) and
/// `file:@SERIAL@` with a file in tmpfs that it copies to L0's console when QEMU
/// has exited.
pub fn qemu_args(hv_cmdline: &[String], cpu: &str, mem_mib: u32) -> Vec<String> {
    let mut a = crate::qemu::qemu_args(&crate::qemu::QemuConfig {
        backend: Backend::Kvm,
        cpu_model: cpu.to_string(),
        mem_mib,
        cpus: 1,
        kernel: "/keel-hypervisor".into(),
        append: hv_cmdline.join(" "),
        module: "@MODULE@".into(),
        serial: "@SERIAL@".into(),
    });
    a.extend(NESTED_QEMU_EXTRA.iter().map(|s| s.to_string()));
    a
}

/// A module's command line: the guest's name, then its words.
fn command_line(name: &str, args: &[String]) -> String {
    let mut line = name.to_string();
    for a in args {
        line.push(' ');
        line.push_str(a);
    }
    line
}

/// The size of /init's buffer for a run's `-initrd` argument (init.c's `module`).
pub const MODULE_LIST_MAX: usize = 8192;

/// The length of a run's `-initrd` argument: each module's command line, commas
/// doubled, the modules separated by commas.
pub fn module_list_len(g: &GuestRun) -> usize {
    let escaped = |l: String| l.len() + l.matches(',').count();
    escaped(command_line(&g.name, &g.args))
        + g.companions
            .iter()
            .map(|c| 1 + escaped(command_line(&c.name, &c.args)))
            .sum::<usize>()
}

/// /nk.conf for a plan.
pub fn nk_conf(plan: &Plan<'_>, nonce: &str) -> String {
    let mut c = String::new();
    c += &format!("nonce={nonce}\n");
    c += &format!("kvm_intel={KVM_INTEL_PARAMS}\n");
    c += &format!("timeout={RUN_EMULATED_TIMEOUT_S}\n");
    // Experiments: trace L0's scheduler around stalls of these guests' runs.
    if let Ok(names) = std::env::var("KEEL_NESTED_STALL_TRACE") {
        for n in names.split([',', ' ']).filter(|n| !n.is_empty()) {
            c += &format!("stall_trace={n}\n");
        }
    }
    if let Ok(ms) = std::env::var("KEEL_NESTED_STALL_MS") {
        if let Ok(ms) = ms.trim().parse::<f64>() {
            c += &format!("stall_ms={ms}\n");
        }
    }
    for a in qemu_args(plan.hv_cmdline, plan.qemu_cpu, plan.qemu_mem_mib) {
        c += &format!("arg={a}\n");
    }
    for g in plan.guests {
        let line = command_line(&g.name, &g.args);
        let key = if g.trace_l0 { "trace_run" } else { "run" };
        c += &format!("{key}={line}\n");
        for m in &g.companions {
            c += &format!("with={}\n", command_line(&m.name, &m.args));
        }
        if g.cpus > 1 {
            c += &format!("cpus={}\n", g.cpus);
        }
    }
    c
}

/// Linux's command line: the console on COM1; `quiet` and `loglevel=3` keep
/// the kernel's own messages off the console (they would interleave with Keel's
/// lines; /init prints the kernel log of each run after it); the TSC rate
/// given, so Linux needs no long calibration; no reboot on panic.
pub fn linux_cmdline() -> String {
    let mut c = format!(
        "console=ttyS0,115200 quiet loglevel=3 panic=-1 tsc_early_khz={}",
        L0_IPS / 1000
    );
    // Extra words for experiments with L0 (they key the cached image too).
    if let Ok(extra) = std::env::var("KEEL_NESTED_KCMDLINE") {
        for w in extra.split_whitespace() {
            c.push(' ');
            c.push_str(w);
        }
    }
    c
}

/// The most CPUs the nested machine (L0) gets. Measured: Linux reaches
/// /init at 18 s emulated (about 2.5 minutes of wall time) with one or two
/// CPUs, at 131 s (18 minutes) with four. Two keep the boot within CI's
/// budget and run two of Keel's CPUs at once.
pub const L0_MAX_CPUS: u32 = 2;

/// The CPUs of the nested machine (L0) for a plan: as many as its most
/// demanding run gives QEMU (`-smp`), up to [`L0_MAX_CPUS`], so that two of
/// Keel's CPUs are QEMU vCPU threads on L0 CPUs of their own and run at once,
/// as on the host the backend stands for. Beyond that L0 time-shares them: a
/// CPU spinning for another (a lend, a common start) then waits for L0's
/// scheduler.
pub fn l0_cpus(plan: &Plan<'_>) -> u32 {
    plan.guests
        .iter()
        .map(|g| g.cpus)
        .max()
        .unwrap_or(1)
        .clamp(1, L0_MAX_CPUS)
}

/// The bochsrc of the nested machine, with `cpus` CPUs ([`l0_cpus`]). No
/// magic breakpoint: a guest's `xchg bx, bx` runs on Bochs's CPU too and must
/// not stop the whole machine (/init powers off through the shutdown port).
pub fn bochsrc(iso: &str, serial: &str, log: &str, cpus: u32) -> String {
    format!(
        "\
# Generated by `cargo keel` for a nested-KVM run (loader/src/nested/conf.rs).
display_library: rfb, options=\"timeout=0\"
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/bochs/VGABIOS-lgpl-latest
cpu: model={L0_CPU_MODEL}, count={cpus}, ips={L0_IPS}, reset_on_triple_fault=0
memory: guest={L0_MEGS}, host={L0_MEGS}
clock: sync=none, time0={time0}
speaker: enabled=0
sound: driver=dummy
mouse: enabled=0
ata0-master: type=cdrom, path=\"{iso}\", status=inserted
boot: cdrom
com1: enabled=1, mode=file, dev=\"{serial}\"
magic_break: enabled=0
panic: action=fatal
error: action=report
info: action=report
debug: action=ignore
log: \"{log}\"
",
        time0 = bochs::TIME0
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Companion;
    use crate::nested::{guest_files, INIT_C};
    use std::path::Path;
    use std::time::Duration;

    #[test]
    fn qemu_arguments_are_the_kvm_backends() {
        let a = qemu_args(&["console=com1".into()], "host", 128);
        let has = |p: &[&str]| a.windows(p.len()).any(|w| w == p);
        assert!(has(&["-serial", "file:@SERIAL@"]));
        assert!(has(&["-enable-kvm", "-cpu", "host"]));
        assert!(has(&["-initrd", "@MODULE@"]));
        assert!(has(&["-kernel", "/keel-hypervisor"]));
        assert!(has(&["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]));
        assert!(has(&["-nodefaults", "-no-user-config"]));
    }

    #[test]
    fn conf_lists_runs_in_order() {
        let guests = [
            GuestRun {
                name: "hello".into(),
                image: "/x/hello".into(),
                args: vec![],
                trace_l0: false,
                companions: vec![],
                cpus: 1,
            },
            GuestRun {
                name: "timers".into(),
                image: "/x/timers".into(),
                args: vec!["seed=3".into()],
                trace_l0: true,
                companions: vec![
                    Companion {
                        path: "/x/yielder".into(),
                        name: "yielder".into(),
                        args: vec!["yields=5".into(), "a,b".into()],
                    },
                    Companion {
                        path: "/x/yielder".into(),
                        name: "yielder".into(),
                        args: vec![],
                    },
                ],
                cpus: 2,
            },
        ];
        let hv = ["console=com1".to_string()];
        let p = Plan {
            hypervisor: Path::new("/x/hv"),
            hv_cmdline: &hv,
            qemu_cpu: "host",
            qemu_mem_mib: 128,
            guests: &guests,
            per_guest_timeout: Duration::from_secs(1),
        };
        let c = nk_conf(&p, "abc");
        // L0 gets a CPU for each of the most demanding run's, up to two.
        assert_eq!(l0_cpus(&p), 2);
        let four = [GuestRun {
            cpus: 4,
            ..guests[0].clone()
        }];
        assert_eq!(
            l0_cpus(&Plan {
                guests: &four,
                ..p.clone()
            }),
            L0_MAX_CPUS
        );
        assert!(c.starts_with("nonce=abc\nkvm_intel=nested=1\n"));
        assert!(c.ends_with(
            "run=hello\ntrace_run=timers seed=3\nwith=yielder yields=5 a,b\nwith=yielder\ncpus=2\n"
        ));
        // /init reads the CPUs line and gives QEMU -smp.
        assert!(INIT_C.contains("!strcmp(k, \"cpus\")"));
        assert!(INIT_C.contains("\"-smp\""));
        assert!(c.contains("arg=-enable-kvm\n"));
        // Each file once, companions included.
        let files: Vec<_> = guest_files(&p).into_keys().collect();
        assert_eq!(files, ["hello", "timers", "yielder"]);
        // "timers seed=3,yielder yields=5 a,,b,yielder"
        assert_eq!(module_list_len(&guests[1]), 43);
        assert_eq!(module_list_len(&guests[0]), 5);
        // /init's buffer is the size the host checks against.
        assert!(INIT_C.contains(&format!("module[{MODULE_LIST_MAX}]")));
    }

    #[test]
    fn bochsrc_has_no_magic_breakpoint() {
        let rc = bochsrc("x.iso", "serial.txt", "bochs.log", 2);
        assert!(rc.contains("magic_break: enabled=0\n"));
        assert!(rc.contains(", count=2, "));
        assert!(rc.contains(&format!("model={L0_CPU_MODEL}")));
        assert!(linux_cmdline().contains(&format!("tsc_early_khz={}", L0_IPS / 1000)));
    }
}
