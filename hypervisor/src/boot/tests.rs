//! The boot-information parsers on byte buffers standing for loader memory.

extern crate std;
use super::multiboot1::*;
use super::multiboot2::*;
use super::*;
use crate::addr::MachineAddr;
use proptest::prelude::*;
use std::vec::Vec;

// ---- buffer builders -------------------------------------------------------

/// A little-endian byte buffer standing for memory at `base`.
struct Mem {
    base: u64,
    bytes: Vec<u8>,
}

impl Mem {
    fn new(base: u64, size: usize) -> Self {
        Mem {
            base,
            bytes: std::vec![0; size],
        }
    }
    fn put(&mut self, addr: u64, data: &[u8]) {
        let off = (addr - self.base) as usize;
        self.bytes[off..off + data.len()].copy_from_slice(data);
    }
    fn put32(&mut self, addr: u64, v: u32) {
        self.put(addr, &v.to_le_bytes());
    }
    fn window(&self) -> Window<'_> {
        Window {
            base: self.base,
            bytes: &self.bytes,
        }
    }
}

fn mb1_mmap_entry(base: u64, len: u64, t: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&20u32.to_le_bytes());
    v.extend_from_slice(&base.to_le_bytes());
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(&t.to_le_bytes());
    v
}

/// A multiboot1 layout like QEMU's: info at 0x9000, strings and lists after it.
fn qemu_like_mb1() -> Mem {
    let mut m = Mem::new(0x9000, 0x1000);
    let info = 0x9000;
    m.put32(
        info,
        (Mb1Flags::MEM
            | Mb1Flags::CMDLINE
            | Mb1Flags::MODS
            | Mb1Flags::MMAP
            | Mb1Flags::LOADER_NAME)
            .bits(),
    );
    m.put32(info + 4, 639);
    m.put32(info + 8, 130_048);
    // cmdline
    m.put32(info + 16, 0x9200);
    m.put(0x9200, b"/boot/keel guest_mem=16 keel_selftest=ud2\0");
    // modules
    m.put32(info + 20, 2);
    m.put32(info + 24, 0x9300);
    m.put32(0x9300, 0x40_0000);
    m.put32(0x9304, 0x40_1234);
    m.put32(0x9308, 0x9400);
    m.put32(0x9310, 0x50_0000);
    m.put32(0x9314, 0x50_0010);
    m.put32(0x9318, 0); // no command line
    m.put(0x9400, b"guest.elf console=hvc\0");
    // mmap
    let mut mm = Vec::new();
    mm.extend(mb1_mmap_entry(0, 0x9fc00, 1));
    mm.extend(mb1_mmap_entry(0x9fc00, 0x400, 2));
    mm.extend(mb1_mmap_entry(0x10_0000, 0x7ee_0000, 1));
    mm.extend(mb1_mmap_entry(0x7fe_0000, 0x2_0000, 3));
    m.put(0x9500, &mm);
    m.put32(info + 44, mm.len() as u32);
    m.put32(info + 48, 0x9500);
    // loader name
    m.put32(info + 64, 0x9600);
    m.put(0x9600, b"qemu\0");
    m
}

struct Mb2 {
    bytes: Vec<u8>,
}

impl Mb2 {
    fn new() -> Self {
        Mb2 {
            bytes: std::vec![0; 8],
        }
    }
    fn tag(&mut self, t: u32, payload: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(&t.to_le_bytes());
        self.bytes
            .extend_from_slice(&((8 + payload.len()) as u32).to_le_bytes());
        self.bytes.extend_from_slice(payload);
        while !self.bytes.len().is_multiple_of(8) {
            self.bytes.push(0);
        }
        self
    }
    fn finish(&mut self) -> Vec<u8> {
        self.tag(MB2_TAG_END, &[]);
        let n = self.bytes.len() as u32;
        self.bytes[0..4].copy_from_slice(&n.to_le_bytes());
        self.bytes.clone()
    }
}

fn mb2_module(start: u32, end: u32, cmd: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&start.to_le_bytes());
    v.extend_from_slice(&end.to_le_bytes());
    v.extend_from_slice(cmd);
    v.push(0);
    v
}

fn mb2_mmap(entries: &[(u64, u64, u32)]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&24u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    for &(b, l, t) in entries {
        v.extend_from_slice(&b.to_le_bytes());
        v.extend_from_slice(&l.to_le_bytes());
        v.extend_from_slice(&t.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
    }
    v
}

fn rsdp_v1() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(b"RSD PTR ");
    v.push(0); // checksum (not checked here)
    v.extend_from_slice(b"BOCHS ");
    v.push(0); // revision
    v.extend_from_slice(&0x7fe_0000u32.to_le_bytes());
    v
}

fn grub_like_mb2() -> Vec<u8> {
    let mut rsdp2 = rsdp_v1();
    rsdp2[15] = 2;
    rsdp2.extend_from_slice(&36u32.to_le_bytes());
    rsdp2.extend_from_slice(&0x7fe_1000u64.to_le_bytes());
    rsdp2.extend_from_slice(&[0, 0, 0, 0]);
    Mb2::new()
        .tag(MB2_TAG_CMDLINE, b"guest_mem=32\0")
        .tag(MB2_TAG_LOADER_NAME, b"GRUB 2.06\0")
        .tag(
            MB2_TAG_MODULE,
            &mb2_module(0x11_0000, 0x11_8000, b"demo hello"),
        )
        .tag(MB2_TAG_MODULE, &mb2_module(0x11_8000, 0x11_9000, b""))
        .tag(MB2_TAG_BASIC_MEMINFO, &[0x7f, 2, 0, 0, 0, 0xfc, 1, 0])
        .tag(
            MB2_TAG_MMAP,
            &mb2_mmap(&[
                (0, 0x9f000, 1),
                (0xf0000, 0x10000, 2),
                (0x10_0000, 0x7ef_0000, 1),
                (0x7ff_0000, 0x1_0000, 3),
                (0xfffc_0000, 0x4_0000, 2),
                (0x1_0000_0000, 0x4000_0000, 1),
            ]),
        )
        .tag(MB2_TAG_ACPI_OLD, &rsdp_v1())
        .tag(MB2_TAG_ACPI_NEW, &rsdp2)
        .finish()
}

// ---- multiboot1 -----------------------------------------------------------

#[test]
fn mb1_qemu_like() {
    let m = qemu_like_mb1();
    let bi = parse(MULTIBOOT1_MAGIC, 0x9000, &m.window()).unwrap();
    assert_eq!(bi.protocol, Protocol::Multiboot1);
    assert_eq!(
        bi.cmdline.as_str(),
        "/boot/keel guest_mem=16 keel_selftest=ud2"
    );
    assert_eq!(bi.loader_name.as_str(), "qemu");
    assert_eq!(bi.modules().len(), 2);
    assert_eq!(
        bi.modules()[0].range,
        MachineRange::from_len(0x40_0000, 0x1234)
    );
    assert_eq!(bi.modules()[0].cmdline.as_str(), "guest.elf console=hvc");
    assert_eq!(bi.modules()[1].cmdline.as_str(), "");
    assert_eq!(bi.regions().len(), 4);
    assert_eq!(bi.regions()[2].kind, RegionKind::Usable);
    assert_eq!(
        bi.regions()[2].range,
        MachineRange::from_len(0x10_0000, 0x7ee_0000)
    );
    assert_eq!(bi.regions()[3].kind, RegionKind::AcpiReclaimable);
    assert_eq!(bi.ram_top(), MachineAddr::new(0x800_0000));
    assert_eq!(bi.rsdp, None);
    assert_eq!(bi.dropped, 0);
    // The info structure, the strings, the module list and the map are all
    // recorded as boot data.
    let bd = bi.boot_data();
    for addr in [0x9000u64, 0x9200, 0x9300, 0x9400, 0x9500, 0x9600] {
        assert!(
            bd.iter()
                .any(|r| r.start.get() <= addr && addr < r.end.get()),
            "{addr:#x} not recorded"
        );
    }
    let o = Options::parse(bi.cmdline.as_str());
    assert_eq!(o.guest_mem_mib, 16);
    assert_eq!(o.selftest, Some(SelfTest::Ud2));
}

#[test]
fn mb1_without_map_uses_mem_fields() {
    let mut m = Mem::new(0x9000, 0x200);
    m.put32(0x9000, Mb1Flags::MEM.bits());
    m.put32(0x9004, 640);
    m.put32(0x9008, 1024);
    let bi = parse(MULTIBOOT1_MAGIC, 0x9000, &m.window()).unwrap();
    assert_eq!(bi.regions().len(), 2);
    assert_eq!(
        bi.regions()[1].range,
        MachineRange::from_len(0x10_0000, 0x10_0000)
    );
    assert_eq!(bi.modules().len(), 0);
    assert_eq!(bi.cmdline.as_str(), "");
}

#[test]
fn mb1_bad_pointers_are_errors_not_panics() {
    let mut m = Mem::new(0x9000, 0x200);
    m.put32(0x9000, Mb1Flags::CMDLINE.bits());
    m.put32(0x9010, 0xdead_0000);
    assert_eq!(
        parse(MULTIBOOT1_MAGIC, 0x9000, &m.window()).unwrap_err(),
        BootInfoError::Unreadable {
            what: "command line",
            addr: 0xdead_0000
        }
    );
    // The info structure itself out of reach.
    assert!(matches!(
        parse(MULTIBOOT1_MAGIC, 0x1_0000, &m.window()),
        Err(BootInfoError::Unreadable { .. })
    ));
    assert_eq!(
        parse(0x1234, 0x9000, &m.window()).unwrap_err(),
        BootInfoError::BadMagic(0x1234)
    );
}

#[test]
fn mb1_malformed_mmap_entry_ends_walk() {
    let mut m = qemu_like_mb1();
    // Second entry claims size 4 (< 20).
    m.put32(0x9500 + 24, 4);
    let bi = parse(MULTIBOOT1_MAGIC, 0x9000, &m.window()).unwrap();
    assert_eq!(bi.regions().len(), 1);
    assert_eq!(bi.dropped, 1);
}

#[test]
fn mb1_huge_module_count_is_bounded() {
    let mut m = Mem::new(0x9000, 0x1000);
    m.put32(0x9000, Mb1Flags::MODS.bits());
    m.put32(0x9014, 1000);
    m.put32(0x9018, 0x9100);
    let bi = parse(MULTIBOOT1_MAGIC, 0x9000, &m.window()).unwrap();
    assert_eq!(bi.modules().len(), MAX_MODULES);
    assert!(bi.dropped >= 1000 - MAX_MODULES as u32 - 1);
}

#[test]
fn unterminated_cmdline_is_truncated() {
    let mut m = Mem::new(0x9000, 0x2000);
    m.put32(0x9000, Mb1Flags::CMDLINE.bits());
    m.put32(0x9010, 0x9100);
    for i in 0..0x1000u64 {
        m.put(0x9100 + i, b"x");
    }
    // The buffer ends before a NUL: the read stops at readable memory.
    let bi = parse(MULTIBOOT1_MAGIC, 0x9000, &m.window()).unwrap();
    assert_eq!(bi.cmdline.as_bytes().len(), CMDLINE_MAX);
    assert!(bi.cmdline.truncated());
}

// ---- multiboot2 -----------------------------------------------------------

#[test]
fn mb2_grub_like() {
    let block = grub_like_mb2();
    let base = 0x1_0000u64;
    let w = Window {
        base,
        bytes: &block,
    };
    let bi = parse(MULTIBOOT2_MAGIC, base, &w).unwrap();
    assert_eq!(bi.protocol, Protocol::Multiboot2);
    assert_eq!(bi.cmdline.as_str(), "guest_mem=32");
    assert_eq!(bi.loader_name.as_str(), "GRUB 2.06");
    assert_eq!(bi.modules().len(), 2);
    assert_eq!(bi.modules()[0].cmdline.as_str(), "demo hello");
    assert_eq!(
        bi.modules()[0].range,
        MachineRange::from_len(0x11_0000, 0x8000)
    );
    assert_eq!(bi.regions().len(), 6);
    assert_eq!(bi.ram_top(), MachineAddr::new(0x1_4000_0000));
    assert_eq!(bi.usable_bytes(), 0x9f000 + 0x7ef_0000 + 0x4000_0000);
    // The new RSDP wins, and its address points at the copy inside the block.
    let rsdp = bi.rsdp.unwrap();
    assert_eq!(rsdp.revision, 2);
    let off = (rsdp.addr.get() - base) as usize;
    assert_eq!(&block[off..off + 8], b"RSD PTR ");
    assert_eq!(block[off + 15], 2);
    assert_eq!(
        bi.boot_data(),
        &[MachineRange::from_len(base, block.len() as u64)]
    );
    assert_eq!(Options::parse(bi.cmdline.as_str()).guest_mem_mib, 32);
}

#[test]
fn mb2_old_rsdp_only_and_basic_meminfo_fallback() {
    let block = Mb2::new()
        .tag(MB2_TAG_BASIC_MEMINFO, &[0x80, 2, 0, 0, 0, 4, 0, 0])
        .tag(MB2_TAG_ACPI_OLD, &rsdp_v1())
        .finish();
    let bi = parse_multiboot2(0x2000, &block).unwrap();
    assert_eq!(bi.rsdp.unwrap().revision, 0);
    assert_eq!(bi.regions().len(), 2);
    assert_eq!(
        bi.regions()[1].range,
        MachineRange::from_len(0x10_0000, 0x400 * 1024)
    );
}

#[test]
fn mb2_malformed() {
    let good = grub_like_mb2();
    // Tag size smaller than the header.
    let mut b = good.clone();
    b[12..16].copy_from_slice(&4u32.to_le_bytes());
    assert!(matches!(
        parse_multiboot2(0, &b),
        Err(BootInfoError::BadTag { .. })
    ));
    // Tag size running past the block.
    let mut b = good.clone();
    b[12..16].copy_from_slice(&0x10_0000u32.to_le_bytes());
    assert!(matches!(
        parse_multiboot2(0, &b),
        Err(BootInfoError::BadTag { .. })
    ));
    // total_size larger than the buffer / unaligned / tiny.
    let mut b = good.clone();
    b[0..4].copy_from_slice(&((good.len() + 8) as u32).to_le_bytes());
    assert!(matches!(
        parse_multiboot2(0, &b),
        Err(BootInfoError::BadTotalSize(_))
    ));
    let mut b = good.clone();
    b[0..4].copy_from_slice(&9u32.to_le_bytes());
    assert!(matches!(
        parse_multiboot2(0, &b),
        Err(BootInfoError::BadTotalSize(_))
    ));
    // No end tag: cut the block before it.
    let mut b = good[..good.len() - 8].to_vec();
    let n = b.len() as u32;
    b[0..4].copy_from_slice(&n.to_le_bytes());
    assert_eq!(
        parse_multiboot2(0, &b).unwrap_err(),
        BootInfoError::MissingEndTag
    );
    // An mmap tag with a too-small entry size.
    let bad_mmap = Mb2::new()
        .tag(MB2_TAG_MMAP, &[8, 0, 0, 0, 0, 0, 0, 0])
        .finish();
    assert!(matches!(
        parse_multiboot2(0, &bad_mmap),
        Err(BootInfoError::BadTag { .. })
    ));
    // Empty and short inputs.
    assert!(parse_multiboot2(0, &[]).is_err());
    assert!(parse(
        MULTIBOOT2_MAGIC,
        0,
        &Window {
            base: 0,
            bytes: &[1, 2, 3]
        }
    )
    .is_err());
}

#[test]
fn too_many_modules_are_counted() {
    let mut mb = Mb2::new();
    for i in 0..(MAX_MODULES as u32 + 3) {
        mb.tag(
            MB2_TAG_MODULE,
            &mb2_module(i * 0x1000, i * 0x1000 + 0x800, b"m"),
        );
    }
    let bi = parse_multiboot2(0, &mb.finish()).unwrap();
    assert_eq!(bi.modules().len(), MAX_MODULES);
    assert_eq!(bi.dropped, 3);
}

#[test]
fn options() {
    let o = Options::parse("");
    assert_eq!(o, Options::default());
    let o = Options::parse(
        "kernel guest_mem=64 guest_mem=x keel_selftest=pagefault loglevel=debug foo=bar",
    );
    assert_eq!(o.guest_mem_mib, 64);
    assert_eq!(o.selftest, Some(SelfTest::PageFault));
    assert_eq!(o.log_level, log::LevelFilter::Debug);
    assert_eq!(o.bad_values, 1);
    assert_eq!(
        Options::parse("guest_mem=0").guest_mem_mib,
        DEFAULT_GUEST_MEM_MIB
    );
    assert_eq!(
        Options::parse("keel_selftest=panic").selftest,
        Some(SelfTest::Panic)
    );
}

#[test]
fn placement_words() {
    assert!(!Options::parse("").spread);
    assert!(Options::parse("place=spread").spread);
    assert!(!Options::parse("place=spread place=one").spread);
    assert_eq!(Options::parse("place=everywhere").bad_values, 1);
    assert_eq!(DomainOptions::parse("d keel.cpu=2").cpu, Some(2));
    let bad = DomainOptions::parse("d keel.cpu=8 keel.cpu=x");
    assert_eq!((bad.cpu, bad.bad_words), (None, 2));
}

#[test]
fn run_cpu_option() {
    assert_eq!(Options::parse("").run_cpu, 0);
    assert_eq!(Options::parse("run_cpu=3").run_cpu, 3);
    // Out of the per-CPU limit, negative or not a number: a bad value, CPU 0.
    for bad in ["run_cpu=8", "run_cpu=-1", "run_cpu=one", "run_cpu="] {
        let o = Options::parse(bad);
        assert_eq!((o.run_cpu, o.bad_values), (0, 1), "{bad}");
    }
}

#[test]
fn fixed_str_invalid_utf8_gives_valid_prefix() {
    let s = FixedStr::<16>::from_bytes(b"ab\xffcd");
    assert_eq!(s.as_str(), "ab");
    assert_eq!(s.as_bytes(), b"ab\xffcd");
}

proptest! {
    /// Arbitrary bytes (and arbitrary mutations of a good block) never panic the
    /// multiboot2 parser, and whatever it returns stays within its capacities.
    #[test]
    fn mb2_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_multiboot2(0x1000, &bytes);
        let _ = parse(MULTIBOOT2_MAGIC, 0x1000, &Window { base: 0x1000, bytes: &bytes });
    }

    #[test]
    fn mb2_mutated_never_panics(flips in proptest::collection::vec((0usize..400, any::<u8>()), 1..8)) {
        let mut b = grub_like_mb2();
        for (i, v) in flips {
            let n = b.len();
            b[i % n] = v;
        }
        if let Ok(bi) = parse_multiboot2(0, &b) {
            prop_assert!(bi.regions().len() <= MAX_REGIONS);
            prop_assert!(bi.modules().len() <= MAX_MODULES);
        }
    }

    /// Same for multiboot1, whose structure is all pointers.
    #[test]
    fn mb1_mutated_never_panics(flips in proptest::collection::vec((0usize..0x700, any::<u8>()), 1..12)) {
        let mut m = qemu_like_mb1();
        for (i, v) in flips {
            m.bytes[i] = v;
        }
        let _ = parse(MULTIBOOT1_MAGIC, 0x9000, &m.window());
    }
}

#[test]
fn domain_options_from_a_module_command_line() {
    let o = DomainOptions::parse("ring_back seed=3 keel.mem=4 keel.control keel.service");
    assert_eq!(o.mem_mib, Some(4));
    assert!(o.control && o.service);
    assert_eq!(o.bad_words, 0);
    assert_eq!(DomainOptions::name("ring_back seed=3"), "ring_back");
    assert_eq!(DomainOptions::name(""), "?");
    let plain = DomainOptions::parse("hello seed=1 mem=9 control");
    assert_eq!(plain, DomainOptions::default());
    let bad =
        DomainOptions::parse("x keel.mem=0 keel.mem=abc keel.memory=3 keel.ctl keel.control=1");
    assert_eq!(bad.mem_mib, None);
    assert!(!bad.control);
    assert_eq!(bad.bad_words, 5);
    assert_eq!(DomainOptions::parse("x keel.vcpus=1").vcpus, Some(1));
    assert_eq!(DomainOptions::parse("x").vcpus, None);
    assert_eq!(DomainOptions::parse("x keel.vcpus=2").vcpus, Some(2));
    assert_eq!(DomainOptions::parse("x keel.vcpus=4").vcpus, Some(4));
    // 1 ..= MAX_CONFIGURED_VCPUS: as many as the domain's vCPU table holds.
    assert_eq!(super::cmdline::MAX_CONFIGURED_VCPUS, 8);
    assert_eq!(DomainOptions::parse("x keel.vcpus=8").vcpus, Some(8));
    let v = DomainOptions::parse("x keel.vcpus=0 keel.vcpus=9 keel.vcpus=300 keel.vcpus=a");
    assert_eq!((v.vcpus, v.bad_words), (None, 4));
}

#[test]
fn vcpu_cpus_word() {
    let o = DomainOptions::parse("x keel.vcpus=3 keel.vcpu_cpus=0,1,3");
    let c = o.vcpu_cpus.expect("parsed");
    assert_eq!(
        (c.cpu(0), c.cpu(1), c.cpu(2), c.cpu(3)),
        (Some(0), Some(1), Some(3), None)
    );
    assert_eq!(o.bad_words, 0);
    for bad in ["", "0,", "a", "0,8", "0,1,2,3,4,5,6,7,0", "-1"] {
        let o = DomainOptions::parse(&format!("x keel.vcpu_cpus={bad}"));
        assert_eq!((o.vcpu_cpus, o.bad_words), (None, 1), "{bad:?}");
    }
}
