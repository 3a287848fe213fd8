//! The `nested` backend: Keel under real KVM, on a host without VT-x.
//!
//! Bochs emulates VT-x well enough for Debian's stock Linux to run KVM with
//! `kvm_intel nested=1`; inside that Linux, QEMU `-enable-kvm -cpu host` boots
//! Keel exactly as the `kvm` backend does on an Intel host. The levels:
//! Bochs (the hardware) → Linux + KVM (L0) → Keel (L1, a KVM guest using VMX)
//! → Keel's PV guest (L2).
//!
//! One image serves a whole `test` or `bench` invocation: Linux boots once (the
//! long phase: minutes of wall time) and its `/init` (`loader/nested/init.c`,
//! compiled here with the host's gcc, static) runs QEMU once per requested guest.
//! The image is a GRUB ISO holding Debian's kernel (from its .deb, fetched with
//! `apt-get download` and unpacked, never installed) and an initramfs with the KVM
//! modules, QEMU with every library `ldd` lists and the firmware it opens, the
//! hypervisor, the guests, `/init` and its configuration `/nk.conf`.
//!
//! Each guest's result comes from the console, as on the other backends: /init
//! brackets each QEMU run with `NK-<nonce>: start` and `NK-<nonce>: exit NAME
//! rc=N` lines ([`split_runs`]), `rc` being QEMU's exit status (isa-debug-exit's
//! `(status << 1) | 1`), which is cross-checked with Keel's power-off line exactly
//! as for the `kvm` backend. The nonce is fresh for each image, so no guest output
//! can forge a bracket.
//!
//! Cached between runs, under `<target>/keel-nested/`: the kernel package, the
//! files unpacked from it (keyed by the package's content), `/init` (keyed by its
//! source) and the ISO (keyed by everything that goes into it).

use crate::backend::Backend;
use crate::bochs;
use crate::console;
use crate::error::{Context, Result};
use crate::host::Tool;
use crate::machine::{Companion, EmulatorEnd, Outcome};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The source of `/init`.
pub const INIT_C: &str = include_str!("../nested/init.c");

/// What the nested backend needs on the host, besides Bochs's and QEMU's tools.
pub const NESTED_TOOLS: &[Tool] = &[
    Tool {
        path: "gcc",
        package: "gcc",
    },
    // The static C library /init links against.
    Tool {
        path: "/usr/lib/x86_64-linux-gnu/libc.a",
        package: "libc6-dev",
    },
    Tool {
        path: "lz4",
        package: "lz4",
    },
    // The guests go into the image without their debug information.
    Tool {
        path: "strip",
        package: "binutils",
    },
    Tool {
        path: "xz",
        package: "xz-utils",
    },
    Tool {
        path: "ldd",
        package: "libc-bin",
    },
    Tool {
        path: "dpkg-deb",
        package: "dpkg",
    },
    Tool {
        path: "/usr/share/seabios/bios-256k.bin",
        package: "seabios",
    },
];

/// The Debian package whose dependency names the current stock kernel.
pub const KERNEL_META_PACKAGE: &str = "linux-image-amd64";
/// The Bochs model L0 runs on: the one Debian's 6.1 kernel boots on with KVM
/// (tigerlake and icelake stop in Linux's XSAVE setup; see the README).
pub const L0_CPU_MODEL: &str = "corei7_skylake_x";
/// L0's memory (MiB): Linux, the initramfs unpacked in RAM, and QEMU's guest.
pub const L0_MEGS: u32 = 2048;
/// Bochs's instructions per emulated second for L0. Linux is told the TSC rate
/// (`tsc_early_khz`) so it does not calibrate against the PIT for long.
pub const L0_IPS: u64 = 100_000_000;
/// kvm-intel's module parameters.
pub const KVM_INTEL_PARAMS: &str = "nested=1";
/// How long one QEMU run may take, in L0's emulated seconds (/init kills it then).
pub const RUN_EMULATED_TIMEOUT_S: u32 = 300;
/// Wall time allowed for everything but the QEMU runs (BIOS, GRUB, Linux,
/// modules): about 150 s of CPU time, which on a loaded shared host can take
/// many times that in wall time.
pub const BOOT_ALLOWANCE: Duration = Duration::from_secs(2400);
/// End the run when the console stays silent this long once /init has spoken
/// (a stuck Linux or QEMU; before /init, Linux is quiet and the boot allowance
/// applies).
pub const SILENCE_LIMIT: Duration = Duration::from_secs(900);

/// One guest to boot inside the nested machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestRun {
    /// The guest's name (its file in `/guests`, the first word of its command line).
    pub name: String,
    /// The guest image on the host.
    pub image: PathBuf,
    /// The guest's arguments after its name.
    pub args: Vec<String>,
    /// Count L0's exits between Keel's bench marks (which costs L0 time).
    pub trace_l0: bool,
    /// The domains booted beside it (domains 2, 3, ...), as on the other
    /// backends: more modules in QEMU's `-initrd`.
    pub companions: Vec<Companion>,
}

/// What one nested boot runs.
#[derive(Clone, Debug)]
pub struct Plan<'a> {
    /// The hypervisor image.
    pub hypervisor: &'a Path,
    /// The hypervisor's command line.
    pub hv_cmdline: &'a [String],
    /// QEMU's `-cpu` (default `host`).
    pub qemu_cpu: &'a str,
    /// QEMU's memory (MiB).
    pub qemu_mem_mib: u32,
    /// The guests, in order.
    pub guests: &'a [GuestRun],
    /// The wall-time limit of each QEMU run (the whole boot gets
    /// [`BOOT_ALLOWANCE`] plus this for each guest).
    pub per_guest_timeout: Duration,
}

/// Where the nested backend keeps its cache: `<target>/keel-nested`.
pub fn cache_dir(workspace_root: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root.join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        workspace_root.join(target)
    };
    target.join("keel-nested")
}

/// A 64-bit FNV-1a content hash (the cache keys; not a security boundary).
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    /// Feed bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        for &x in b {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }
    /// Feed a length-prefixed string (so concatenations cannot collide).
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(&(s.len() as u64).to_le_bytes())
            .bytes(s.as_bytes())
    }
    /// Feed a file's contents.
    pub fn file(&mut self, p: &Path) -> Result<&mut Self> {
        let b = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        self.bytes(&(b.len() as u64).to_le_bytes());
        Ok(self.bytes(&b))
    }
    /// The hash, as 16 hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

// ---------------------------------------------------------------------------
// The kernel

/// The files taken from Debian's kernel package.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// The kernel release (`6.1.0-57-amd64`).
    pub release: String,
    /// The bzImage.
    pub vmlinuz: PathBuf,
    /// irqbypass, kvm, kvm-intel (uncompressed .ko), in load order.
    pub modules: Vec<PathBuf>,
}

/// The modules /init loads, in order (paths under `lib/modules/<release>/kernel/`).
pub const MODULES: [&str; 3] = [
    "virt/lib/irqbypass.ko",
    "arch/x86/kvm/kvm.ko",
    "arch/x86/kvm/kvm-intel.ko",
];

fn run_checked(cmd: &mut Command, what: &str) -> Result<Vec<u8>> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        crate::bail!(
            "{what} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

/// The kernel package `linux-image-amd64` depends on (`apt-cache depends`).
pub fn kernel_package_name(apt_cache_depends: &str) -> Option<String> {
    apt_cache_depends.lines().find_map(|l| {
        let w = l.trim().strip_prefix("Depends:")?.trim();
        w.starts_with("linux-image-").then(|| w.to_string())
    })
}

/// The content hash of a package, remembered beside it (by size and time) so
/// that 70 MB are hashed once, not on every run.
fn deb_key(deb: &Path) -> Result<String> {
    let m = std::fs::metadata(deb).with_context(|| format!("reading {}", deb.display()))?;
    let stamp = format!("{} {:?}", m.len(), m.modified().ok());
    let memo = deb.with_extension("fnv");
    if let Ok(t) = std::fs::read_to_string(&memo) {
        if let Some((st, key)) = t.trim_end().rsplit_once(' ') {
            if st == stamp {
                return Ok(key.to_string());
            }
        }
    }
    let key = Fnv::default().file(deb)?.hex();
    let _ = std::fs::write(&memo, format!("{stamp} {key}\n"));
    Ok(key)
}

/// Fetch (once) and unpack (once per package content) the stock kernel.
pub fn kernel(cache: &Path, log: &mut dyn Write) -> Result<Kernel> {
    let debs = cache.join("debs");
    std::fs::create_dir_all(&debs).with_context(|| format!("creating {}", debs.display()))?;
    let depends = run_checked(
        Command::new("apt-cache").args(["depends", KERNEL_META_PACKAGE]),
        "apt-cache depends",
    )?;
    let pkg = kernel_package_name(&String::from_utf8_lossy(&depends)).ok_or_else(|| {
        anyhow::Error::msg(format!(
            "apt-cache depends {KERNEL_META_PACKAGE} names no linux-image package"
        ))
    })?;
    let find_deb = || -> Option<PathBuf> {
        std::fs::read_dir(&debs).ok()?.flatten().find_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            (n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb")).then(|| e.path())
        })
    };
    let deb = match find_deb() {
        Some(d) => d,
        None => {
            let _ = writeln!(log, "[keel] nested: apt-get download {pkg}");
            run_checked(
                Command::new("apt-get")
                    .args(["download", "-q", &pkg])
                    .current_dir(&debs),
                &format!("apt-get download {pkg}"),
            )?;
            find_deb()
                .ok_or_else(|| anyhow::Error::msg(format!("apt-get download {pkg} left no .deb")))?
        }
    };
    let release = pkg.trim_start_matches("linux-image-").to_string();
    let key = deb_key(&deb)?;
    let dir = cache.join(format!("kernel-{release}-{key}"));
    let vmlinuz = dir.join(format!("boot/vmlinuz-{release}"));
    let mdir = dir.join(format!("lib/modules/{release}/kernel"));
    let modules: Vec<PathBuf> = MODULES.iter().map(|m| mdir.join(m)).collect();
    if vmlinuz.is_file() && modules.iter().all(|m| m.is_file()) {
        return Ok(Kernel {
            release,
            vmlinuz,
            modules,
        });
    }
    let _ = writeln!(
        log,
        "[keel] nested: unpacking {} (kernel and KVM modules only)",
        deb.display()
    );
    let tmp = cache.join(format!("kernel-{release}-{key}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    // dpkg-deb --fsys-tarfile | tar -x of only the files we need.
    let mut tarball = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(&deb)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("running dpkg-deb --fsys-tarfile")?;
    let mut tar = Command::new("tar");
    tar.arg("-x")
        .arg("-C")
        .arg(&tmp)
        .arg("--wildcards")
        .arg(format!("./boot/vmlinuz-{release}"));
    for m in MODULES {
        tar.arg(format!("./lib/modules/{release}/kernel/{m}*"));
    }
    let status = tar
        .stdin(tarball.stdout.take().expect("piped"))
        .status()
        .context("running tar")?;
    let _ = tarball.wait();
    if !status.success() {
        crate::bail!("unpacking {} with tar failed ({status})", deb.display());
    }
    let tmdir = tmp.join(format!("lib/modules/{release}/kernel"));
    for m in MODULES {
        let plain = tmdir.join(m);
        if plain.is_file() {
            continue;
        }
        for (ext, tool) in [("xz", "xz"), ("zst", "zstd")] {
            let packed = tmdir.join(format!("{m}.{ext}"));
            if packed.is_file() {
                run_checked(
                    Command::new(tool).arg("-d").arg("-q").arg(&packed),
                    &format!("{tool} -d {}", packed.display()),
                )?;
            }
        }
        if !plain.is_file() {
            crate::bail!("{} has no {m}", deb.display());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir)?;
    Ok(Kernel {
        release,
        vmlinuz,
        modules,
    })
}

// ---------------------------------------------------------------------------
// The initramfs

/// A cpio archive in the "newc" format, the one Linux unpacks as an initramfs.
#[derive(Default)]
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
    dirs: std::collections::BTreeSet<String>,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let namesize = name.len() + 1;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            namesize,
            0
        );
        self.out.extend_from_slice(header.as_bytes());
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    /// A directory and its parents (each once).
    pub fn dir(&mut self, path: &str) {
        let path = path.trim_matches('/');
        if path.is_empty() || self.dirs.contains(path) {
            return;
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.dirs.insert(path.to_string());
        self.entry(path, 0o040_755, &[]);
    }

    /// A regular file (its parent directories are added first).
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        let path = path.trim_start_matches('/');
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.entry(path, 0o100_000 | mode, data);
    }

    /// The archive, with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.out
    }
}

/// The shared libraries `ldd` lists for a program (absolute paths).
pub fn parse_ldd(text: &str) -> Vec<String> {
    let mut v = Vec::new();
    for l in text.lines() {
        let l = l.trim();
        let path = match l.split_once("=>") {
            Some((_, rhs)) => rhs.split_whitespace().next(),
            None => l.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            v.push(p.to_string());
        }
    }
    v
}

/// The firmware QEMU opens for Keel's machine with [`NESTED_QEMU_EXTRA`] (found
/// with strace): SeaBIOS and the multiboot and kvmvapic option ROMs (no VGA BIOS
/// and no NIC ROM: the machine has neither device). QEMU looks them up relative
/// to its binary, so they keep their paths.
pub const QEMU_FIRMWARE: &[&str] = &[
    "/usr/share/qemu/bios-256k.bin",
    "/usr/share/qemu/multiboot_dma.bin",
    "/usr/share/qemu/linuxboot_dma.bin",
    "/usr/share/qemu/kvmvapic.bin",
    "/usr/share/seabios/bios-256k.bin",
];

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

/// Compile /init (cached by its source).
fn build_init(cache: &Path) -> Result<PathBuf> {
    let key = Fnv::default().str(INIT_C).hex();
    let bin = cache.join(format!("init-{key}"));
    if bin.is_file() {
        return Ok(bin);
    }
    let src = cache.join(format!("init-{key}.c"));
    std::fs::write(&src, INIT_C)?;
    let tmp = cache.join(format!("init-{key}.tmp"));
    run_checked(
        Command::new("gcc")
            .args(["-static", "-O2", "-Wall", "-o"])
            .arg(&tmp)
            .arg(&src),
        "gcc -static (the nested image's /init)",
    )?;
    std::fs::rename(&tmp, &bin)?;
    Ok(bin)
}

/// A fresh nonce for the console brackets.
fn nonce() -> String {
    let mut h = Fnv::default();
    h.str(&format!(
        "{:?}{}",
        std::time::SystemTime::now(),
        std::process::id()
    ));
    h.hex()[..10].to_string()
}

/// The guest files of a plan, each name once (tests and their companions; a
/// companion such as `yielder` serves many runs).
pub fn guest_files<'a>(plan: &'a Plan<'_>) -> BTreeMap<&'a str, &'a Path> {
    let mut files = BTreeMap::new();
    for g in plan.guests {
        files.insert(g.name.as_str(), g.image.as_path());
        for c in &g.companions {
            files.insert(c.name.as_str(), c.path.as_path());
        }
    }
    files
}

/// Build (or find in the cache) the ISO for `plan`. Returns it and the nonce
/// its /init uses.
pub fn image(ws_root: &Path, plan: &Plan<'_>, log: &mut dyn Write) -> Result<(PathBuf, String)> {
    let cache = cache_dir(ws_root);
    std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let t0 = Instant::now();
    let k = kernel(&cache, log)?;
    let init = build_init(&cache)?;
    let t_kernel = t0.elapsed();

    // The nonce is part of the image, so one image is keyed by everything but
    // the nonce, which is reused with it.
    let mut key = Fnv::default();
    key.str(&linux_cmdline()).str(&k.release);
    key.file(&k.vmlinuz)?.file(&init)?;
    let conf_sans_nonce = nk_conf(plan, "");
    key.str(&conf_sans_nonce).file(plan.hypervisor)?;
    for (name, image) in guest_files(plan) {
        key.str(name).file(image)?;
    }
    let qemu = crate::host::locate("qemu-system-x86_64")
        .ok_or_else(|| anyhow::Error::msg("no qemu-system-x86_64"))?;
    let qemu = std::fs::canonicalize(&qemu)?;
    let ldd = run_checked(Command::new("ldd").arg(&qemu), "ldd qemu-system-x86_64")?;
    let libs = parse_ldd(&String::from_utf8_lossy(&ldd));
    for p in std::iter::once(qemu.display().to_string())
        .chain(libs.iter().cloned())
        .chain(QEMU_FIRMWARE.iter().map(|s| s.to_string()))
        .chain(k.modules.iter().map(|m| m.display().to_string()))
    {
        // The host's files by path, size and time (not content: 60 MB each run).
        if let Ok(m) = std::fs::metadata(&p) {
            key.str(&p)
                .str(&format!("{}:{:?}", m.len(), m.modified().ok()));
        }
    }
    let key = key.hex();
    let iso = cache.join(format!("image-{key}.iso"));
    let nonce_file = cache.join(format!("image-{key}.nonce"));
    if let (true, Ok(n)) = (iso.is_file(), std::fs::read_to_string(&nonce_file)) {
        let _ = writeln!(
            log,
            "[keel] nested: image {} (cached; kernel {})",
            iso.display(),
            k.release
        );
        return Ok((iso, n.trim().to_string()));
    }
    prune_images(&cache, KEPT_IMAGES);
    let nonce = nonce();

    let mut cpio = Cpio::default();
    for d in ["dev", "proc", "sys", "tmp", "etc", "guests", "lib/modules"] {
        cpio.dir(d);
    }
    cpio.file("etc/localtime", 0o644, &[]);
    cpio.file("init", 0o755, &std::fs::read(&init)?);
    cpio.file("nk.conf", 0o644, nk_conf(plan, &nonce).as_bytes());
    for (m, path) in MODULES.iter().zip(&k.modules) {
        let name = Path::new(m).file_name().unwrap_or_default();
        cpio.file(
            &format!("lib/modules/{}", name.to_string_lossy()),
            0o644,
            &std::fs::read(path)?,
        );
    }
    cpio.file(
        "usr/bin/qemu-system-x86_64",
        0o755,
        &std::fs::read(&qemu).with_context(|| format!("reading {}", qemu.display()))?,
    );
    for l in &libs {
        let bytes = std::fs::read(l).with_context(|| format!("reading {l}"))?;
        cpio.file(l, 0o755, &bytes);
    }
    let mut firmware = 0;
    for f in QEMU_FIRMWARE {
        if let Ok(bytes) = std::fs::read(f) {
            cpio.file(f, 0o644, &bytes);
            firmware += 1;
        }
    }
    if firmware == 0 {
        crate::bail!("none of QEMU's firmware files is on this host ({QEMU_FIRMWARE:?})");
    }
    cpio.file("keel-hypervisor", 0o644, &std::fs::read(plan.hypervisor)?);
    let files = guest_files(plan);
    for (name, image) in &files {
        cpio.file(
            &format!("guests/{name}"),
            0o644,
            &without_debug_info(image, &cache)?,
        );
    }
    let archive = cpio.finish();
    let raw_len = archive.len();

    let tree = cache.join(format!("image-{key}.tree"));
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(tree.join("boot/grub"))?;
    // lz4 (legacy format, the one Linux's initramfs unpacker takes): Linux
    // unpacks it several emulated seconds faster than gzip.
    let mut lz4 = Command::new("lz4")
        .args(["-l", "-q", "-"])
        .arg(tree.join("boot/initrd.img"))
        .stdin(Stdio::piped())
        .spawn()
        .context("running lz4")?;
    lz4.stdin
        .take()
        .expect("piped")
        .write_all(&archive)
        .context("writing to lz4")?;
    let st = lz4.wait()?;
    if !st.success() {
        crate::bail!("lz4 failed ({st})");
    }
    std::fs::copy(&k.vmlinuz, tree.join("boot/vmlinuz"))?;
    std::fs::write(
        tree.join("boot/grub/grub.cfg"),
        format!(
            "set timeout=0\nset default=0\nmenuentry \"keel-nested\" {{\n    linux /boot/vmlinuz {}\n    initrd /boot/initrd.img\n}}\n",
            linux_cmdline()
        ),
    )?;
    let tmp_iso = cache.join(format!("image-{key}.iso.tmp"));
    bochs::make_iso_with(&tree, &tmp_iso, NESTED_GRUB_MODULES)?;
    let packed = std::fs::metadata(tree.join("boot/initrd.img"))
        .map(|m| m.len())
        .unwrap_or(0);
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::rename(&tmp_iso, &iso)?;
    std::fs::write(&nonce_file, &nonce)?;
    let _ = writeln!(
        log,
        "[keel] nested: image {} built in {:.1}s (kernel {} {:.1}s; initramfs {:.1} MB, lz4 {:.1} MB; {} guest(s))",
        iso.display(),
        t0.elapsed().as_secs_f64(),
        k.release,
        t_kernel.as_secs_f64(),
        raw_len as f64 / 1e6,
        packed as f64 / 1e6,
        files.len()
    );
    Ok((iso, nonce))
}

/// A guest image without its debug sections (`strip --strip-debug`; the
/// segments and notes Keel loads are untouched): most of a guest's file is
/// debug information, which Bochs would otherwise read from the CD and Linux
/// unpack, for every guest of every boot.
fn without_debug_info(image: &Path, cache: &Path) -> Result<Vec<u8>> {
    let tmp = cache.join(format!("strip-{}.tmp", std::process::id()));
    let out = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&tmp)
        .arg(image)
        .stdin(Stdio::null())
        .output()
        .context("running strip")?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        crate::bail!(
            "strip --strip-debug {} failed ({}):\n{}",
            image.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bytes = std::fs::read(&tmp).with_context(|| format!("reading {}", tmp.display()))?;
    let _ = std::fs::remove_file(&tmp);
    Ok(bytes)
}

/// How many images the cache keeps (the newest): two nested runs at once (CI
/// splits the suite across two Linux boots) each need theirs while Bochs reads it.
pub const KEPT_IMAGES: usize = 4;

/// Remove all but the `keep` newest images (and their nonce files) from the cache.
fn prune_images(cache: &Path, keep: usize) {
    let Ok(rd) = std::fs::read_dir(cache) else {
        return;
    };
    let mut isos: Vec<(std::time::SystemTime, PathBuf)> = rd
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("image-") && n.ends_with(".iso")
        })
        .map(|e| {
            let t = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (t, e.path())
        })
        .collect();
    isos.sort_by_key(|b| std::cmp::Reverse(b.0));
    for (_, iso) in isos.into_iter().skip(keep.saturating_sub(1)) {
        let _ = std::fs::remove_file(iso.with_extension("nonce"));
        let _ = std::fs::remove_file(iso);
    }
}

/// The GRUB modules the nested ISO needs (Linux's loader instead of multiboot).
pub const NESTED_GRUB_MODULES: &str = "linux normal iso9660 biosdisk part_msdos";

/// The bochsrc of the nested machine. No magic breakpoint: a guest's
/// `xchg bx, bx` runs on Bochs's CPU too and must not stop the whole machine
/// (/init powers off through the shutdown port).
pub fn bochsrc(iso: &str, serial: &str, log: &str) -> String {
    format!(
        "\
# Generated by `cargo keel` for a nested-KVM run (loader/src/nested.rs).
display_library: rfb, options=\"timeout=0\"
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/bochs/VGABIOS-lgpl-latest
cpu: model={L0_CPU_MODEL}, count=1, ips={L0_IPS}, reset_on_triple_fault=0
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

// ---------------------------------------------------------------------------
// Reading the console

/// One QEMU run as the console shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunRecord {
    /// Keel's console (everything QEMU's serial port printed).
    pub console: String,
    /// How QEMU ended: `Some(Exited(rc))`, `Signalled`, `TimedOut`; None: the
    /// machine stopped during this run.
    pub end: Option<EmulatorEnd>,
    /// QEMU's standard error and L0's kernel log of the run.
    pub diagnostics: String,
    /// Emulated seconds (L0's CLOCK_MONOTONIC) from start to exit.
    pub emulated_s: Option<f64>,
    /// L0 exit counts between markers: (kvm_exit, kvm_nested_vmexit) per mark.
    pub l0_marks: Vec<(u64, u64)>,
    /// L0's non-idle CPU seconds during the run: what it cost Bochs.
    pub busy_s: Option<f64>,
    /// Emulated seconds after the start at which Keel's console first and last
    /// grew (QEMU and its firmware before the first; QEMU's exit after the last).
    pub console_s: Option<(f64, f64)>,
}

impl RunRecord {
    /// Where the run's time went, for the log.
    pub fn timing(&self) -> String {
        let mut t = String::new();
        if let Some(e) = self.emulated_s {
            t += &format!("emulated {e:.2}s");
        }
        if let Some((a, b)) = self.console_s {
            t += &format!(" (Keel's console from {a:.2}s to {b:.2}s)");
        }
        if let Some(b) = self.busy_s {
            t += &format!(", L0 busy {b:.2}s");
        }
        t
    }
}

/// What the console says about the whole nested boot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transcript {
    /// Each guest's run, by name, in order of start.
    pub runs: Vec<(String, RunRecord)>,
    /// Milestones: (name, emulated seconds).
    pub phases: Vec<(String, f64)>,
    /// kvm-intel parameters as L0 reports them.
    pub kvm_intel: Vec<String>,
    /// /init's error lines.
    pub errors: Vec<String>,
    /// /init finished all runs.
    pub done: bool,
}

fn field<'a>(rest: &'a str, key: &str) -> Option<&'a str> {
    rest.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// Split a nested console into its runs: the lines between `NK-<nonce>: start
/// NAME` and `NK-<nonce>: exit NAME ...` are that guest's console. Lines outside
/// any run, and bracket lines with another nonce, are not any guest's.
pub fn split_runs(console: &str, nonce: &str) -> Transcript {
    let tag = format!("NK-{nonce}: ");
    let mut t = Transcript::default();
    let mut current: Option<(String, RunRecord, f64)> = None;
    for line in console::lines(console) {
        let Some(rest) = line.strip_prefix(&tag) else {
            if let Some((_, r, _)) = current.as_mut() {
                r.console.push_str(line);
                r.console.push('\n');
            }
            continue;
        };
        let mut words = rest.splitn(2, ' ');
        let kind = words.next().unwrap_or("");
        let rest = words.next().unwrap_or("");
        let t_of = |s: &str| field(s, "t").and_then(|v| v.parse::<f64>().ok());
        match kind {
            "phase" => {
                let name = rest.split_whitespace().next().unwrap_or("").to_string();
                if let Some(s) = t_of(rest) {
                    t.phases.push((name, s));
                }
            }
            "kvm_intel" => t.kvm_intel.push(rest.to_string()),
            "error" => t.errors.push(rest.to_string()),
            "done" => {
                t.done = true;
                if let Some(s) = t_of(rest) {
                    t.phases.push(("done".into(), s));
                }
            }
            "start" => {
                if let Some((n, r, _)) = current.take() {
                    t.runs.push((n, r));
                }
                let name = rest.split_whitespace().next().unwrap_or("").to_string();
                current = Some((name, RunRecord::default(), t_of(rest).unwrap_or(0.0)));
            }
            "exit" => {
                let name = rest.split_whitespace().next().unwrap_or("");
                if let Some((n, mut r, t0)) = current.take() {
                    if n == name {
                        r.end = Some(if let Some(rc) = field(rest, "rc") {
                            EmulatorEnd::Exited(rc.parse().unwrap_or(-1))
                        } else if rest.split_whitespace().any(|w| w == "timeout") {
                            EmulatorEnd::TimedOut
                        } else {
                            EmulatorEnd::Signalled
                        });
                        r.emulated_s = t_of(rest).map(|t1| t1 - t0);
                        let num = |k| field(rest, k).and_then(|v| v.parse::<f64>().ok());
                        r.busy_s = num("busy");
                        r.console_s = num("first")
                            .zip(num("last"))
                            .filter(|&(a, b)| a >= 0.0 && b >= a);
                        // /init's line break after QEMU's output.
                        if r.console.ends_with("\n\n") {
                            r.console.pop();
                        }
                    }
                    t.runs.push((n, r));
                }
            }
            "stderr" | "dmesg" | "l0" | "stall" => {
                let name = rest.split_whitespace().next().unwrap_or("");
                let Some((_, r)) = t.runs.last_mut() else {
                    continue;
                };
                match kind {
                    "l0" => {
                        let e = field(rest, "exits").and_then(|v| v.parse().ok());
                        let n = field(rest, "nested").and_then(|v| v.parse().ok());
                        if let (Some(e), Some(n)) = (e, n) {
                            r.l0_marks.push((e, n));
                        }
                    }
                    "dmesg" => {
                        r.diagnostics += &format!("L0 {rest}\n");
                    }
                    "stall" => {
                        r.diagnostics += &format!("L0 stall {rest}\n");
                    }
                    _ => {
                        let text = rest
                            .strip_prefix(name)
                            .unwrap_or(rest)
                            .trim_start()
                            .trim_start_matches('|')
                            .trim_start();
                        r.diagnostics += &format!("qemu: {text}\n");
                    }
                }
            }
            _ => {}
        }
    }
    if let Some((n, r, _)) = current.take() {
        t.runs.push((n, r));
    }
    t
}

/// The outcome of one guest's run, as the other backends give it.
pub fn outcome(rec: &RunRecord, bochs_end: EmulatorEnd, wall: Duration) -> Outcome {
    let emulator = rec.end.unwrap_or(match bochs_end {
        // The whole machine stopped during the run: that is how it ended.
        EmulatorEnd::TimedOut => EmulatorEnd::TimedOut,
        _ => EmulatorEnd::Signalled,
    });
    Outcome {
        backend: Backend::Nested,
        status: console::power_off_status(&rec.console),
        console: rec.console.clone(),
        emulator,
        emulator_output: rec.diagnostics.clone(),
        wall,
        kept_dir: None,
    }
}

// ---------------------------------------------------------------------------
// The boot

/// The result of one nested boot.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Every requested guest, in the plan's order: its outcome, or why it has none.
    pub outcomes: Vec<(String, std::result::Result<Outcome, String>)>,
    /// What the console said.
    pub transcript: Transcript,
    /// How Bochs ended.
    pub bochs: EmulatorEnd,
    /// Wall time of the Bochs run.
    pub wall: Duration,
}

/// Boot the nested machine for `plan`. The whole console (Linux, /init, every
/// QEMU run) is copied to `echo` as it arrives; progress and the phase timings go
/// to `log`; each guest's result is handed to `on_result` (with its index in the
/// plan) as soon as its run ends.
pub fn run(
    ws_root: &Path,
    plan: &Plan<'_>,
    echo: &mut dyn Write,
    log: &mut dyn Write,
    on_result: &mut dyn FnMut(usize, &std::result::Result<Outcome, String>),
) -> Result<Batch> {
    for g in plan.guests {
        crate::machine::check_guest_name(&g.name)?;
        for c in &g.companions {
            crate::machine::check_guest_name(&c.name)?;
        }
        let modules = module_list_len(g);
        if modules >= MODULE_LIST_MAX {
            crate::bail!(
                "{}: its modules take {modules} bytes in QEMU's -initrd; /init holds {MODULE_LIST_MAX}",
                g.name
            );
        }
    }
    let (iso, nonce) = image(ws_root, plan, log)?;
    let dir = crate::machine::RunDir::new("nested")?;
    std::fs::write(
        dir.path.join("bochsrc"),
        bochsrc(&iso.display().to_string(), "serial.txt", "bochs.log"),
    )?;
    std::fs::write(dir.path.join("rc"), bochs::RC_SCRIPT)?;
    let out = std::fs::File::create(dir.path.join("emulator.out"))?;
    let limit = BOOT_ALLOWANCE + plan.per_guest_timeout * plan.guests.len() as u32;
    let _ = writeln!(
        log,
        "[keel] nested: booting Linux/KVM under Bochs {L0_CPU_MODEL} ({L0_MEGS} MiB, ips {L0_IPS}); {} QEMU run(s); limit {}s",
        plan.guests.len(),
        limit.as_secs()
    );
    let started = Instant::now();
    let child = Command::new("bochs-bin")
        .args(["-q", "-f", "bochsrc", "-rc", "rc"])
        .current_dir(&dir.path)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("starting bochs-bin")?;
    let mut child = crate::machine::Reaper(child);
    let serial = dir.path.join("serial.txt");
    let tag = format!("NK-{nonce}: ");
    let mut bytes: Vec<u8> = Vec::new();
    let mut file: Option<std::fs::File> = None;
    let mut scanned = 0usize;
    let mut last_news = Instant::now();
    let mut first_line: Option<Duration> = None;
    let mut run_started: Option<Instant> = None;
    let mut walls: BTreeMap<usize, Duration> = BTreeMap::new();
    let mut reported = 0usize;
    let mut done_at: Option<Instant> = None;
    let bochs_end = loop {
        let exited = child.0.try_wait().context("waiting for bochs-bin")?;
        if file.is_none() {
            file = std::fs::File::open(&serial).ok();
        }
        if let Some(f) = file.as_mut() {
            let before = bytes.len();
            f.seek(SeekFrom::Start(before as u64))?;
            f.read_to_end(&mut bytes)?;
            if bytes.len() > before {
                last_news = Instant::now();
                first_line.get_or_insert(started.elapsed());
                let fresh: Vec<u8> = bytes[before..]
                    .iter()
                    .copied()
                    .filter(|&b| b != b'\r')
                    .collect();
                let _ = echo.write_all(&fresh);
                let _ = echo.flush();
            }
        }
        // Look at the complete new lines for brackets.
        if let Some(end) = bytes.iter().rposition(|&b| b == b'\n') {
            if end + 1 > scanned {
                let text = String::from_utf8_lossy(&bytes[scanned..end + 1]).into_owned();
                scanned = end + 1;
                for line in console::lines(&text) {
                    let Some(rest) = line.strip_prefix(&tag) else {
                        continue;
                    };
                    if rest.starts_with("start ") {
                        run_started = Some(Instant::now());
                    } else if rest.starts_with("exit ") {
                        let i = walls.len();
                        walls.insert(
                            i,
                            run_started.take().map_or(Duration::ZERO, |t| t.elapsed()),
                        );
                    } else if rest.starts_with("done ") {
                        done_at = Some(Instant::now());
                    } else if rest.starts_with("phase ") {
                        let _ = writeln!(
                            log,
                            "[keel] nested: {} at {:.0}s wall",
                            rest,
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
                // Results of runs whose diagnostics are complete (the next
                // run has started, or /init is done).
                let t = split_runs(&String::from_utf8_lossy(&bytes), &nonce);
                let complete = if t.done {
                    t.runs.len()
                } else {
                    t.runs.len().saturating_sub(1)
                };
                while reported < complete.min(t.runs.len()) {
                    let (_, rec) = &t.runs[reported];
                    if rec.end.is_none() {
                        break;
                    }
                    let w = walls.get(&reported).copied().unwrap_or_default();
                    let _ = writeln!(
                        log,
                        "[keel] nested: {} ran: wall {:.1}s, {}",
                        t.runs[reported].0,
                        w.as_secs_f64(),
                        rec.timing()
                    );
                    on_result(reported, &Ok(outcome(rec, EmulatorEnd::Exited(0), w)));
                    reported += 1;
                }
            }
        }
        if let Some(st) = exited {
            break st
                .code()
                .map_or(EmulatorEnd::Signalled, EmulatorEnd::Exited);
        }
        if done_at.is_some_and(|t| t.elapsed() > Duration::from_secs(60)) {
            break EmulatorEnd::StoppedAfterPowerOff;
        }
        if started.elapsed() > limit
            || (first_line.is_some() && last_news.elapsed() > SILENCE_LIMIT)
        {
            break EmulatorEnd::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(child);
    let wall = started.elapsed();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let transcript = split_runs(&text, &nonce);
    let bochs_out = std::fs::read_to_string(dir.path.join("emulator.out")).unwrap_or_default();
    let mut outcomes = Vec::new();
    for (i, g) in plan.guests.iter().enumerate() {
        let rec = transcript.runs.get(i).filter(|(n, _)| *n == g.name);
        let r = match rec {
            Some((_, rec)) => Ok(outcome(
                rec,
                bochs_end,
                walls.get(&i).copied().unwrap_or_default(),
            )),
            None => Err(format!(
                "the nested machine stopped before this guest ran (Bochs {bochs_end} after {:.0}s; {}); last console lines:\n{}\nBochs:\n{}",
                wall.as_secs_f64(),
                if transcript.errors.is_empty() {
                    "no /init error".to_string()
                } else {
                    transcript.errors.join("; ")
                },
                console::tail(&text, 10),
                console::tail(&bochs_out, 5)
            )),
        };
        if i >= reported {
            on_result(i, &r);
        }
        outcomes.push((g.name.clone(), r));
    }
    let _ = writeln!(
        log,
        "[keel] nested: Bochs {bochs_end} after {:.0}s wall (first console line at {:.0}s); emulated: {}; kvm_intel {}",
        wall.as_secs_f64(),
        first_line.unwrap_or_default().as_secs_f64(),
        transcript
            .phases
            .iter()
            .map(|(n, s)| format!("{n} {s:.1}s"))
            .collect::<Vec<_>>()
            .join(", "),
        transcript.kvm_intel.join(" ")
    );
    for e in &transcript.errors {
        let _ = writeln!(log, "[keel] nested: /init: {e}");
    }
    Ok(Batch {
        outcomes,
        transcript,
        bochs: bochs_end,
        wall,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_package_from_apt_cache() {
        let t = "linux-image-amd64\n  Depends: linux-image-6.1.0-57-amd64\n";
        assert_eq!(
            kernel_package_name(t).as_deref(),
            Some("linux-image-6.1.0-57-amd64")
        );
        assert_eq!(kernel_package_name("x\n  Depends: foo\n"), None);
    }

    #[test]
    fn ldd_output() {
        let t = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x7f)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)\n\tlibfoo.so => not found\n";
        assert_eq!(
            parse_ldd(t),
            [
                "/lib/x86_64-linux-gnu/libz.so.1",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
    }

    #[test]
    fn cpio_newc_layout() {
        let mut c = Cpio::default();
        c.file("a/b/init", 0o755, b"hello");
        c.file("a/c", 0o644, b"");
        let out = c.finish();
        let text = String::from_utf8_lossy(&out);
        // Parents first, each once; every header 110 bytes, 4-byte aligned.
        let names: Vec<&str> = ["a\0", "a/b\0", "a/b/init\0", "a/c\0", "TRAILER!!!\0"]
            .into_iter()
            .collect();
        let mut at = 0;
        for n in names {
            let i = text[at..].find(n).expect(n) + at;
            assert!(i > at, "{n} out of order");
            at = i;
        }
        assert_eq!(text.matches("070701").count(), 5);
        assert_eq!(out.len() % 4, 0);
        // The file's header: mode 0100755, size 5.
        let h = text.find("a/b/init\0").unwrap() - 110;
        assert_eq!(&text[h + 14..h + 22], "000081ed");
        assert_eq!(&text[h + 54..h + 62], "00000005");
        let data = text.find("a/b/init\0").unwrap() + 9;
        let data = data.div_ceil(4) * 4;
        assert_eq!(&text[data..data + 5], "hello");
    }

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
        assert!(c.starts_with("nonce=abc\nkvm_intel=nested=1\n"));
        assert!(c.ends_with(
            "run=hello\ntrace_run=timers seed=3\nwith=yielder yields=5 a,b\nwith=yielder\n"
        ));
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

    const N: &str = "5eed";

    #[test]
    fn runs_are_split_at_the_brackets() {
        let console = "\
Linux boot noise
NK-5eed: phase init t=20.5
NK-5eed: kvm_intel nested=Y
NK-5eed: phase modules t=26.0
NK-5eed: start hello t=26.1
keel: Keel hypervisor
(d1) Test result: SUCCESS
keel: power off, status 0 (guest powered off)

NK-5eed: exit hello rc=1 t=30.3 busy=3.50 first=1.250 last=3.900
NK-5eed: stderr hello | qemu-system-x86_64: warning: something
NK-5eed: dmesg | kvm [207]: vcpu0, guest rIP: 0x4037a0 Unhandled WRMSR(0x1d9) = 0x2
NK-5eed: stall hello | off 24.000 ms: the vCPU thread off the CPU
NK-5eed: start timers t=30.4
(d1) NK-5eed: exit timers rc=1 t=0
NK-beef: exit timers rc=1 t=0
keel: power off, status 1 (guest crashed)
NK-5eed: exit timers timeout t=330.4
NK-5eed: l0 timers mark=0 exits=7 nested=3
NK-5eed: start mmu t=331
keel: Keel hyp
";
        let t = split_runs(console, N);
        assert!(!t.done);
        assert_eq!(t.phases, [("init".into(), 20.5), ("modules".into(), 26.0)]);
        assert_eq!(t.kvm_intel, ["nested=Y"]);
        assert_eq!(t.runs.len(), 3);
        let (n, hello) = &t.runs[0];
        assert_eq!(n, "hello");
        assert_eq!(hello.end, Some(EmulatorEnd::Exited(1)));
        assert_eq!(
            hello.console,
            "keel: Keel hypervisor\n(d1) Test result: SUCCESS\nkeel: power off, status 0 (guest powered off)\n"
        );
        assert!((hello.emulated_s.unwrap() - 4.2).abs() < 1e-9);
        assert_eq!(hello.busy_s, Some(3.5));
        assert_eq!(hello.console_s, Some((1.25, 3.9)));
        assert_eq!(
            hello.timing(),
            "emulated 4.20s (Keel's console from 1.25s to 3.90s), L0 busy 3.50s"
        );
        assert!(hello
            .diagnostics
            .contains("qemu: qemu-system-x86_64: warning"));
        assert!(hello.diagnostics.contains("L0 | kvm [207]"));
        assert!(hello
            .diagnostics
            .contains("L0 stall hello | off 24.000 ms: the vCPU thread"));
        let o = outcome(hello, EmulatorEnd::Exited(1), Duration::ZERO);
        assert_eq!(o.cross_check(), Ok(keel_abi::platform::ExitStatus::Success));

        // A forged bracket (guest output, or another nonce) is console text.
        let (_, timers) = &t.runs[1];
        assert!(timers.console.contains("(d1) NK-5eed: exit timers"));
        assert!(timers.console.contains("NK-beef: exit timers"));
        assert_eq!(timers.end, Some(EmulatorEnd::TimedOut));
        assert_eq!(timers.l0_marks, [(7, 3)]);

        // A run the machine never finished has no end.
        let (n, mmu) = &t.runs[2];
        assert_eq!(n, "mmu");
        assert_eq!(mmu.end, None);
        let o = outcome(mmu, EmulatorEnd::TimedOut, Duration::ZERO);
        assert_eq!(o.emulator, EmulatorEnd::TimedOut);
        assert_eq!(o.status, None);
    }

    #[test]
    fn done_and_signals() {
        let t = split_runs(
            "NK-5eed: start a t=1\nNK-5eed: exit a signal=11 t=2\nNK-5eed: done t=3\n",
            N,
        );
        assert!(t.done);
        assert_eq!(t.runs[0].1.end, Some(EmulatorEnd::Signalled));
        assert_eq!(t.phases.last(), Some(&("done".into(), 3.0)));
    }

    #[test]
    fn the_cache_keeps_the_newest_images() {
        let dir = std::env::temp_dir().join(format!("keel-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let t0 = std::time::SystemTime::now() - Duration::from_secs(100);
        for i in 0..5u64 {
            let iso = dir.join(format!("image-{i}.iso"));
            std::fs::write(&iso, b"x").unwrap();
            std::fs::write(dir.join(format!("image-{i}.nonce")), b"n").unwrap();
            let f = std::fs::File::options().write(true).open(&iso).unwrap();
            f.set_modified(t0 + Duration::from_secs(i * 10)).unwrap();
        }
        std::fs::write(dir.join("debs"), b"").unwrap();
        // Room for one more: the three newest stay, with their nonces.
        prune_images(&dir, 4);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "debs",
                "image-2.iso",
                "image-2.nonce",
                "image-3.iso",
                "image-3.nonce",
                "image-4.iso",
                "image-4.nonce"
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn guests_lose_only_their_debug_sections() {
        // This test's own executable has debug sections and segments.
        let exe = std::env::current_exe().unwrap();
        let dir = std::env::temp_dir();
        let Ok(out) = without_debug_info(&exe, &dir) else {
            // No binutils on this host: the nested backend's tool check says so.
            return;
        };
        let file = object::File::parse(&*out).unwrap();
        use object::Object;
        // (An allocated `.debug_gdb_scripts` is part of a segment and stays.)
        for gone in [".debug_info", ".debug_line", ".debug_str"] {
            assert!(file.section_by_name(gone).is_none(), "{gone} left");
        }
        assert!(out.len() < std::fs::metadata(&exe).unwrap().len() as usize);
        let orig = std::fs::read(&exe).unwrap();
        let orig = object::File::parse(&*orig).unwrap();
        assert_eq!(file.entry(), orig.entry());
        assert_eq!(file.segments().count(), orig.segments().count());
    }

    #[test]
    fn bochsrc_has_no_magic_breakpoint() {
        let rc = bochsrc("x.iso", "serial.txt", "bochs.log");
        assert!(rc.contains("magic_break: enabled=0\n"));
        assert!(rc.contains(&format!("model={L0_CPU_MODEL}")));
        assert!(linux_cmdline().contains(&format!("tsc_early_khz={}", L0_IPS / 1000)));
    }
}
