//! The port table, string I/O segmentation and the access decision.

use super::*;
use crate::mem::fake::FakeConsole;
use proptest::prelude::*;

#[test]
fn outs_segment_overrides() {
    // rep outsb; fs rep outsb; rep gs outsb (order among prefixes is free);
    // the last override wins; REX before the opcode; a 16-bit OUTSW.
    assert_eq!(outs_segment(&[0xf3, 0x6e]), Segment::Ds);
    assert_eq!(outs_segment(&[0x64, 0xf3, 0x6e]), Segment::Fs);
    assert_eq!(outs_segment(&[0xf3, 0x65, 0x6e]), Segment::Gs);
    assert_eq!(outs_segment(&[0x64, 0x65, 0x6e]), Segment::Gs);
    assert_eq!(outs_segment(&[0x65, 0x2e, 0x6e]), Segment::Cs);
    assert_eq!(outs_segment(&[0x64, 0x66, 0x48, 0x6f]), Segment::Fs);
    // A prefix-like byte after the opcode is not a prefix.
    assert_eq!(outs_segment(&[0x6e, 0x64]), Segment::Ds);
    assert_eq!(outs_segment(&[]), Segment::Ds);
    for (bits, seg, base) in [
        (0, Segment::Es, false),
        (1, Segment::Cs, false),
        (2, Segment::Ss, false),
        (3, Segment::Ds, false),
        (4, Segment::Fs, true),
        (5, Segment::Gs, true),
    ] {
        assert_eq!(Segment::from_info(bits), Some(seg));
        assert_eq!(seg.has_base_in_long_mode(), base);
    }
    assert_eq!(Segment::from_info(6), None);
    assert_eq!(Segment::from_info(7), None);
}

fn text(c: &FakeConsole) -> std::string::String {
    std::string::String::from_utf8(c.out.clone()).unwrap()
}

#[test]
fn com1_prints_lines_with_prefix() {
    let mut bus = IoBus::new(1);
    let mut c = FakeConsole::default();
    for &b in b"hello\r\nworld\x1b!" {
        bus.write(COM1, 1, b.into(), &mut c);
    }
    assert_eq!(text(&c), "(d1:com1) hello\n");
    assert!(bus.com1.pending());
    bus.com1.flush(&mut c);
    assert_eq!(text(&c), "(d1:com1) hello\n(d1:com1) world.!\n");
    let mut bus = IoBus::new(65535);
    let mut c = FakeConsole::default();
    bus.write(COM1, 2, u32::from(b'x') | 0x0a00, &mut c);
    assert_eq!(text(&c), "", "16-bit OUT: 'x' to THR, 0x0a to IER");
    bus.com1.flush(&mut c);
    assert_eq!(text(&c), "(d65535:com1) x\n");
    assert_eq!(bus.read(COM1 + 1, 1).value & 0xff, 0x0a, "IER");
}

#[test]
fn long_lines_split() {
    let mut bus = IoBus::new(2);
    let mut c = FakeConsole::default();
    for _ in 0..LINE_MAX + 1 {
        bus.write(COM1, 1, u32::from(b'a'), &mut c);
    }
    bus.write(COM1, 1, u32::from(b'\n'), &mut c);
    let t = text(&c);
    let lines: std::vec::Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].len(), "(d2:com1) ".len() + LINE_MAX);
    assert_eq!(lines[1], "(d2:com1) a");
}

#[test]
fn com1_registers() {
    let mut bus = IoBus::new(1);
    let mut c = FakeConsole::default();
    assert_eq!(bus.read(COM1 + 5, 1).value & 0xff, 0x60, "LSR idle");
    assert_eq!(bus.read(COM1 + 6, 1).value & 0xff, 0xb0, "MSR");
    assert_eq!(bus.read(COM1 + 2, 1).value & 0xff, 0x01, "IIR");
    bus.write(COM1 + 7, 1, 0x5a, &mut c);
    assert_eq!(bus.read(COM1 + 7, 1).value & 0xff, 0x5a, "scratch");
    // Divisor latch.
    bus.write(COM1 + 3, 1, 0x80, &mut c);
    bus.write(COM1, 1, 0x01, &mut c);
    bus.write(COM1 + 1, 1, 0x00, &mut c);
    assert_eq!(bus.read(COM1, 2).value & 0xffff, 0x0001);
    bus.write(COM1 + 3, 1, 0x03, &mut c);
    assert_eq!(bus.read(COM1 + 3, 1).value & 0xff, 0x03);
    bus.write(COM1 + 2, 1, 0xc7, &mut c);
    assert_eq!(bus.read(COM1 + 2, 1).value & 0xff, 0xc1);
    assert!(c.out.is_empty(), "no byte transmitted");
    assert_eq!(
        bus.read(COM1, 1),
        Access {
            value: 0xffff_ff00,
            unhandled: None
        }
    );
}

#[test]
fn empty_bus() {
    let mut bus = IoBus::new(1);
    let mut c = FakeConsole::default();
    assert_eq!(
        bus.read(0x80, 1),
        Access {
            value: u32::MAX,
            unhandled: None
        }
    );
    assert_eq!(bus.write(0x80, 1, 0x12, &mut c).unhandled, None);
    assert_eq!(
        bus.read(0x60, 4),
        Access {
            value: u32::MAX,
            unhandled: Some(0x60)
        }
    );
    assert_eq!(
        bus.write(0xcf8, 4, 0x8000_0000, &mut c).unhandled,
        Some(0xcf8)
    );
    // Straddling COM1's end: the byte past it is unhandled.
    assert_eq!(bus.read(0x3fe, 2).unhandled, None);
    assert_eq!(bus.read(0x3ff, 2).unhandled, Some(0x400));
    assert_eq!(bus.read(0x3f7, 2).unhandled, Some(0x3f7));
    assert_eq!(bus.read(0xffff, 2).unhandled, Some(0xffff), "wraps");
    assert!(c.out.is_empty());
}

proptest! {
    /// Any access is total; reads of ports outside every range are all ones;
    /// every console line carries the prefix.
    #[test]
    fn total(port in any::<u16>(), size in prop::sample::select(&[1u8, 2, 4][..]), v in any::<u32>()) {
        let mut bus = IoBus::new(3);
        let mut c = FakeConsole::default();
        bus.write(port, size, v, &mut c);
        bus.com1.flush(&mut c);
        let r = bus.read(port, size);
        if (0..size).all(|i| lookup(port.wrapping_add(i.into())).is_none()) {
            prop_assert_eq!(r.value, u32::MAX);
            prop_assert_eq!(r.unhandled, Some(port));
        }
        for line in text(&c).lines() {
            prop_assert!(line.starts_with("(d3:com1) "));
        }
    }
}
