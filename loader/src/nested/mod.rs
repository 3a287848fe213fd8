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

use crate::error::{Context, Result};
use crate::host::Tool;
use crate::machine::Companion;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod boot;
mod conf;
mod image;
mod kernel;
mod transcript;

pub use boot::{run, Batch};
pub use conf::*;
pub use image::*;
pub use kernel::*;
pub use transcript::*;

/// The source of `/init`.
pub const INIT_C: &str = include_str!("../../nested/init.c");

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
    /// The CPUs of its machine (QEMU's `-smp`), as `--cpus` and the test's
    /// own need ask (`runner::machine_for`).
    pub cpus: u32,
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
