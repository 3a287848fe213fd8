//! The nested machine's image: a GRUB ISO with L0's kernel and an initramfs
//! holding the KVM modules, QEMU with its libraries and firmware, the hypervisor,
//! the guests, `/init` and `/nk.conf`; built once per content and cached.

use super::conf::{linux_cmdline, nk_conf};
use super::kernel::{kernel, run_checked, MODULES};
use super::{cache_dir, Fnv, Plan, INIT_C};
use crate::bochs;
use crate::error::{Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

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

/// The firmware QEMU opens for Keel's machine with [`super::conf::NESTED_QEMU_EXTRA`] (found
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
    let stripped = crate::machine::strip_debug(image, &tmp);
    let bytes = stripped
        .and_then(|()| std::fs::read(&tmp).with_context(|| format!("reading {}", tmp.display())));
    let _ = std::fs::remove_file(&tmp);
    bytes
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
}
