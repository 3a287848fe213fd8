extern crate std;
use super::*;
use crate::mem::fake::FakeConsole;
use core::fmt::Write;
use proptest::prelude::*;
use std::vec::Vec;

/// A 16550A as the drain sees it: a FIFO of `depth` bytes that empties
/// `busy_polls` line-status reads after a burst (the line's speed), a count of
/// every port access, and everything it sent.
struct FakeUart {
    depth: usize,
    busy_polls: u32,
    /// Line-status reads left before the FIFO is empty again (`u32::MAX`: never).
    busy: u32,
    sent: Vec<u8>,
    lsr_reads: u64,
    sends: u64,
}

impl FakeUart {
    fn new(depth: usize, busy_polls: u32) -> Self {
        FakeUart {
            depth,
            busy_polls,
            busy: 0,
            sent: Vec::new(),
            lsr_reads: 0,
            sends: 0,
        }
    }
    fn dead() -> Self {
        let mut u = Self::new(16, 0);
        u.busy = u32::MAX;
        u
    }
}

impl Uart for FakeUart {
    fn room(&mut self) -> usize {
        self.lsr_reads += 1;
        if self.busy == 0 {
            self.depth
        } else {
            if self.busy != u32::MAX {
                self.busy -= 1;
            }
            0
        }
    }
    fn send(&mut self, bytes: &[u8]) {
        assert!(!bytes.is_empty(), "empty send");
        self.sends += 1;
        self.sent.extend_from_slice(bytes);
        if self.busy != u32::MAX {
            self.busy = self.busy_polls;
        }
    }
    fn idle(&mut self) -> bool {
        self.room() > 0
    }
    fn depth(&self) -> usize {
        self.depth
    }
}

fn boxed() -> std::boxed::Box<ConsoleBuf> {
    std::boxed::Box::new(ConsoleBuf::new())
}

#[test]
fn pump_never_waits() {
    let mut c = boxed();
    let mut u = FakeUart::new(16, 5);
    c.write(&mut u, b"0123456789abcdefXYZ\n");
    assert_eq!(u.sent.len(), 0, "write only buffers");
    assert_eq!(c.pump(&mut u), 16, "one FIFO's worth");
    assert_eq!(
        (u.lsr_reads, u.sends),
        (1, 1),
        "one status read, one string write"
    );
    // The FIFO is still sending: the next pump reads the status once and returns.
    assert_eq!(c.pump(&mut u), 0);
    assert_eq!(u.lsr_reads, 2);
    for _ in 0..5 {
        c.pump(&mut u);
    }
    assert_eq!(u.sent, b"0123456789abcdefXYZ\n");
    assert_eq!(c.pending(), 0);
    // An empty ring does not touch the UART.
    let reads = u.lsr_reads;
    assert_eq!(c.pump(&mut u), 0);
    assert_eq!(u.lsr_reads, reads);
}

#[test]
fn without_a_fifo_one_byte_a_burst() {
    let mut c = boxed();
    let mut u = FakeUart::new(1, 0);
    c.write(&mut u, b"abc");
    assert_eq!(c.pump(&mut u), 1);
    assert_eq!(c.pump(&mut u), 1);
    assert_eq!(c.pump(&mut u), 1);
    assert_eq!(u.sent, b"abc");
}

/// Records are kept whole and in the order they were written, whoever wrote
/// them, across the ring's wrap and across back-pressure.
#[test]
fn order_across_wrap_and_back_pressure() {
    let mut c = boxed();
    let mut u = FakeUart::new(16, 3);
    let mut want = Vec::new();
    for i in 0..2000u32 {
        let rec = if i % 3 == 0 {
            std::format!("keel: line {i}\n")
        } else {
            std::format!("(d1) guest line {i} {}\n", "x".repeat((i % 50) as usize))
        };
        c.write(&mut u, rec.as_bytes());
        want.extend_from_slice(rec.as_bytes());
        if i % 7 == 0 {
            c.pump(&mut u);
        }
        assert!(c.pending() <= RING_SIZE);
    }
    assert!(c.stalled() > 0, "the ring filled: writers waited");
    c.flush(&mut u);
    assert_eq!(u.sent, want);
    assert_eq!(c.pending(), 0);
}

/// Back-pressure is bounded by the writer's own bytes: a write into a full ring
/// drains at most (about) as many bytes as it adds.
#[test]
fn back_pressure_bounded_by_the_write() {
    let mut c = boxed();
    let mut u = FakeUart::new(16, 0);
    c.write(&mut u, &[b'a'; RING_SIZE]);
    assert_eq!(u.sent.len(), 0);
    c.write(&mut u, &[b'b'; 64]);
    assert_eq!(u.sent.len(), 64, "exactly room for the 64 bytes");
    assert_eq!(c.pending(), RING_SIZE);
    // A record longer than the ring goes in ring-sized pieces, nothing lost.
    c.write(&mut u, &[b'c'; RING_SIZE + 5]);
    c.flush(&mut u);
    assert_eq!(u.sent.len(), 2 * RING_SIZE + 64 + 5);
    assert!(u.sent.ends_with(&[b'c'; RING_SIZE + 5]));
}

/// The panic path: `fatal` sends every byte buffered before it, then its own
/// lines, and waits until the UART is idle; the ring is empty afterwards.
#[test]
fn panic_path_flushes_the_buffer_first() {
    let mut c = boxed();
    let mut u = FakeUart::new(16, 4);
    c.write(&mut u, b"keel: booting\n");
    c.write(&mut u, b"(d1) last words of the guest\n");
    c.pump(&mut u);
    assert!(c.pending() > 0);
    c.fatal(&mut u, |w| {
        let _ = writeln!(w, "PANIC: something");
        let _ = write!(w, "  at here");
    });
    assert_eq!(
        std::str::from_utf8(&u.sent).unwrap(),
        "keel: booting\n(d1) last words of the guest\nkeel: PANIC: something\nkeel:   at here\n"
    );
    assert_eq!(c.pending(), 0);
    assert!(u.idle());
}

/// A UART that never becomes ready does not hang anything: each wait is bounded
/// once, then output goes without waiting.
#[test]
fn a_dead_uart_costs_one_bounded_wait() {
    let mut c = boxed();
    let mut u = FakeUart::dead();
    c.write(&mut u, &[b'z'; RING_SIZE]);
    c.write(&mut u, &[b'y'; 100]);
    assert!(c.uart_dead());
    assert!(u.lsr_reads <= u64::from(SPIN_LIMIT) + 1, "{}", u.lsr_reads);
    c.fatal(&mut u, |w| {
        let _ = write!(w, "power off");
    });
    assert!(
        u.lsr_reads <= 2 * u64::from(SPIN_LIMIT) + 64,
        "{}",
        u.lsr_reads
    );
    assert!(u.sent.ends_with(b"keel: power off\n"));
    assert_eq!(u.sent.len(), RING_SIZE + 100 + 16);
}

fn unescape(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < line.len() {
        if line[i] == b'\\' {
            if line[i + 1] == b'\\' {
                out.push(b'\\');
                i += 2;
            } else {
                assert_eq!(line[i + 1], b'x');
                let h = std::str::from_utf8(&line[i + 2..i + 4]).unwrap();
                out.push(u8::from_str_radix(h, 16).unwrap());
                i += 4;
            }
        } else {
            out.push(line[i]);
            i += 1;
        }
    }
    out
}

#[test]
fn guest_text_is_printable_ascii_only() {
    let mut l: LineBuf<160> = LineBuf::new();
    let mut recs: Vec<Vec<u8>> = Vec::new();
    // U+2028, U+2029, U+0085 (C1 NEL), U+009B (C1 CSI), U+202E (RLO), CR,
    // backspace, ESC [, a bare C1 byte, a backslash.
    let forged = "a\u{2028}keel: x\u{2029}\u{85}\u{9b}2J\u{202e}\rkeel: \x08\x1b[2K\\ok";
    let mut out = |r: &[&[u8]]| recs.push(r.concat());
    l.write(b"(d1) ", forged.as_bytes(), &mut out);
    l.write(b"(d1) ", &[0x9b, b'\n'], &mut out);
    assert_eq!(recs.len(), 1);
    let line = std::str::from_utf8(&recs[0]).unwrap();
    assert_eq!(
        line,
        "(d1) a\\xe2\\x80\\xa8keel: x\\xe2\\x80\\xa9\\xc2\\x85\\xc2\\x9b2J\\xe2\\x80\\xae\\x0dkeel: \\x08\\x1b[2K\\\\ok\\x9b\n"
    );
}

#[test]
fn hypervisor_text_is_filtered_too() {
    let mut out = FakeConsole::default();
    {
        let mut w = KeelLineWriter::new(&mut out);
        let _ = write!(w, "quoted \"a\\b\" \u{2028}(d1) x\r\x1b");
        w.finish_line();
        let _ = writeln!(w, "two\nlines");
    }
    assert_eq!(
        std::str::from_utf8(&out.out).unwrap(),
        "keel: quoted \"a\\b\" \\xe2\\x80\\xa8(d1) x\\x0d\\x1b\nkeel: two\nkeel: lines\n"
    );
}

#[test]
fn long_lines_split_without_splitting_an_escape() {
    let mut l: LineBuf<10> = LineBuf::new();
    let mut recs: Vec<Vec<u8>> = Vec::new();
    l.write(b"(d1) ", b"12345678\x01z", &mut |r: &[&[u8]]| {
        recs.push(r.concat())
    });
    l.flush(b"(d1) ", &mut |r: &[&[u8]]| recs.push(r.concat()));
    assert_eq!(
        recs,
        [b"(d1) 12345678\n".to_vec(), b"(d1) \\x01z\n".to_vec()]
    );
}

proptest! {
    /// The word-at-a-time test agrees with the byte test.
    #[test]
    fn word_test_agrees_with_byte_test(w in any::<[u8; 8]>(), pick in any::<[u8; 8]>(), mask in any::<u8>()) {
        // Bias towards the edges: mix random bytes with 0x1f/0x20/0x5b/0x5c/0x5d/0x7e/0x7f/0x80/0xff.
        const EDGES: [u8; 9] = [0x1f, 0x20, 0x5b, 0x5c, 0x5d, 0x7e, 0x7f, 0x80, 0xff];
        let mut b = w;
        for i in 0..8 {
            if mask & (1 << i) != 0 {
                b[i] = EDGES[usize::from(pick[i]) % EDGES.len()];
            }
        }
        let want = b.iter().all(|&x| passes(x));
        prop_assert_eq!(word_passes(u64::from_le_bytes(b)), want, "{:x?}", b);
        let naive = b.iter().take_while(|&&x| passes(x)).count();
        prop_assert_eq!(passing_run(&b, 8), naive);
        prop_assert_eq!(passing_run(&b, 3), naive.min(3));
    }

    /// Whatever a guest writes, every record is `prefix`, printable ASCII and one
    /// newline at its end; unescaped and joined, the records give back exactly
    /// the guest's bytes without its newlines, in order.
    #[test]
    fn the_filter_forges_nothing_and_loses_nothing(
        writes in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
    ) {
        let mut l: LineBuf<160> = LineBuf::new();
        let mut recs: Vec<Vec<u8>> = Vec::new();
        for w in &writes {
            l.write(b"(d7) ", w, &mut |r: &[&[u8]]| recs.push(r.concat()));
        }
        l.flush(b"(d7) ", &mut |r: &[&[u8]]| recs.push(r.concat()));
        let mut text = Vec::new();
        for r in &recs {
            prop_assert!(r.starts_with(b"(d7) "));
            prop_assert_eq!(r.last(), Some(&b'\n'));
            let body = &r[5..r.len() - 1];
            prop_assert!(body.len() <= 160);
            prop_assert!(body.iter().all(|&b| (0x20..0x7f).contains(&b)), "{:?}", body);
            text.extend(unescape(body));
        }
        let want: Vec<u8> = writes.concat().into_iter().filter(|&b| b != b'\n').collect();
        prop_assert_eq!(text, want);
    }
}

#[test]
fn a_burst_starts_only_if_it_ends_before_the_next_deadline() {
    // No deadline: always.
    assert!(burst_fits(1_000, 400_000, u64::MAX));
    // Cost unknown yet (no burst sent): only before a deadline still ahead.
    assert!(burst_fits(1_000, 0, 1_001));
    assert!(!burst_fits(1_000, 0, 1_000));
    // A deadline already due, or one the burst would overrun: not now.
    assert!(!burst_fits(1_000, 300, 900));
    assert!(!burst_fits(1_000, 400_000, 401_001));
    // The burst and an eighth of it to spare.
    assert!(!burst_fits(1_000, 400_000, 451_000));
    assert!(burst_fits(1_000, 400_000, 451_001));
    // No overflow near the end of the TSC's range.
    assert!(!burst_fits(u64::MAX - 5, 10, u64::MAX));
    assert!(!burst_fits(0, u64::MAX, u64::MAX));
}

#[test]
fn the_burst_cost_follows_the_dear_bursts() {
    let mut c = BurstCost::new();
    assert_eq!(c.ticks(), 0);
    c.record(100, 0, 16);
    assert_eq!(c.ticks(), 0, "nothing sent, nothing learned");
    // The first burst, 4 bytes, scaled to the FIFO.
    c.record(100_000, 4, 16);
    assert_eq!(c.ticks(), 400_000);
    // A dearer one: at once (the nested-KVM pair of docs/abi/time.md).
    c.record(440_000, 16, 16);
    assert_eq!(c.ticks(), 440_000);
    // A cheaper one: an eighth of the way down.
    c.record(360_000, 16, 16);
    assert_eq!(c.ticks(), 430_000);
    // A stalled one: at most double.
    c.record(20_000_000, 16, 16);
    assert_eq!(c.ticks(), 860_000);
    // A FIFO-less UART: one byte is a whole burst.
    let mut d = BurstCost::new();
    d.record(500, 1, 1);
    assert_eq!(d.ticks(), 500);
}

proptest! {
    /// Whatever the bursts cost, the estimate is never below the cheapest
    /// scaled burst seen nor above the dearest, a burst as dear as the estimate
    /// or dearer raises it, and a burst that the fit allowed would have ended
    /// before the deadline had it cost the estimate and its slack.
    #[test]
    fn burst_cost_bounded(costs in proptest::collection::vec(1u64..1 << 40, 1..50), now in 0u64..1 << 50) {
        let mut c = BurstCost::new();
        let (mut lo, mut hi) = (u64::MAX, 0);
        for t in costs {
            let before = c.ticks();
            c.record(t, 16, 16);
            lo = lo.min(t);
            hi = hi.max(t);
            prop_assert!(c.ticks() >= lo && c.ticks() <= hi);
            if t >= before {
                prop_assert!(c.ticks() >= before);
            }
            let deadline = now + c.ticks() + burst_slack(c.ticks()) + 1;
            prop_assert!(burst_fits(now, c.ticks(), deadline));
            prop_assert!(!burst_fits(now, c.ticks(), deadline - 1));
        }
    }
}
