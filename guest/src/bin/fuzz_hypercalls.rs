//! The hypercall fuzzer: by default 20,000 hypercalls with random numbers and
//! arguments — pointers into the guest's own memory, unmapped, non-canonical, into
//! its page-table frames and into addresses a hypervisor might use; random sizes,
//! counts and sub-commands — seeded from the command line (`seed=N`, and
//! `count=N`) and reproducible from the seed it prints.
//!
//! It passes when the guest survives and its invariants hold after every call:
//! - canary pages on both sides of the scratch page never change;
//! - the page-table frames, start_info and the frame list never change, unless a
//!   call that could legitimately change them succeeded;
//! - every result is a success or a Xen errno, and, where the ABI fixes the answer
//!   (a pointer the guest cannot write is `-EFAULT`, an unimplemented hypercall
//!   is `-ENOSYS`, an oversized console write is `-EINVAL`), it is that answer.
//!
//! `SCHEDOP_shutdown` is called deliberately: only with reasons the ABI rejects or
//! pointers it must refuse, so a correct hypervisor never ends the run early. The
//! sub-commands that could block or end the domain (`block`, `poll`,
//! `remote_shutdown`, `watchdog`, `VCPUOP_down`) are never issued.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use keel_guest::abi::console::{CONSOLEIO_READ, CONSOLEIO_WRITE, CONSOLEIO_WRITE_MAX};
use keel_guest::abi::errno;
use keel_guest::abi::guest::{self, hypercall_scalar};
use keel_guest::abi::hypercall::ALL;
use keel_guest::abi::sched::{
    SCHEDOP_PIN_OVERRIDE, SCHEDOP_SHUTDOWN, SCHEDOP_SHUTDOWN_CODE, SCHEDOP_YIELD,
};
use keel_guest::abi::version::{self, AbiVersion};
use keel_guest::pagetable;
use keel_guest::prelude::*;
use keel_guest::rand::Rng;
use keel_guest::start::{boot, cmdline_value, parse_u64, va_to_pfn};

keel_guest::test! {
    title: "Hypercall fuzzer: random numbers and arguments; the guest survives and its invariants hold",
    category: Security,
    main: test_main,
}

const DEFAULT_COUNT: u64 = 20_000;
const WORDS: usize = 512;

/// Three pages: canary, scratch, canary. Atomics, because the hypervisor writes
/// the scratch page behind the compiler's back (as a device would).
#[repr(C, align(4096))]
struct Arena([AtomicU64; 3 * WORDS]);

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);
static ARENA: Arena = Arena([ZERO; 3 * WORDS]);

fn canary_word(i: usize) -> u64 {
    0xc0ff_ee00_0000_0000 ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn arena_base() -> u64 {
    &ARENA as *const Arena as u64
}
fn scratch_base() -> u64 {
    arena_base() + PAGE_SIZE
}

fn fill_arena() {
    let text = *b"fuzz-scr";
    let word = u64::from_le_bytes(text);
    for (i, w) in ARENA.0.iter().enumerate() {
        if (WORDS..2 * WORDS).contains(&i) {
            w.store(word, Relaxed);
        } else {
            w.store(canary_word(i), Relaxed);
        }
    }
}

/// The first canary word that changed, if any.
fn canary_broken() -> Option<(u64, u64)> {
    ARENA
        .0
        .iter()
        .enumerate()
        .filter(|(i, _)| !(WORDS..2 * WORDS).contains(i))
        .find(|(i, w)| w.load(Relaxed) != canary_word(*i))
        .map(|(i, w)| (arena_base() + i as u64 * 8, w.load(Relaxed)))
}

/// Where a pointer argument points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Inside the scratch page, far enough from its end for a 16-byte write.
    Scratch,
    /// NULL or the first page.
    Null,
    /// Below the image (unmapped).
    BelowImage,
    /// Past the bootstrap region (unmapped).
    AfterRegion,
    /// Runs off the end of the region.
    Straddle,
    /// Not canonical.
    NonCanonical,
    /// Higher half, LAPIC, a machine address.
    HypervisorLike,
    /// Inside a page-table frame (readable, never writable).
    PageTable,
    /// Inside the read-only image text (readable, never writable).
    RoImage,
    /// Any 64-bit value outside the guest's region.
    Random,
}

struct Ctx {
    rng: Rng,
    virt_base: u64,
    region_end: u64,
    pt: (u64, u64),
    text_ro: bool,
    text_len: u64,
    own_mfns: [u64; 4],
    version_current: bool,
    version_encoding: i64,
}

impl Ctx {
    /// Whether the guest can (read, write) `len` bytes at `p` of class `c`.
    fn access(&self, p: u64, c: Class, len: u64) -> (bool, bool) {
        match c {
            // Scratch pointers leave room for a 16-byte write; a longer read runs
            // into the canary page, which is readable.
            Class::Scratch => (true, p + len <= scratch_base() + PAGE_SIZE),
            Class::PageTable | Class::RoImage => (true, false),
            // The last page of the region is free memory: fine if it all fits.
            Class::Straddle => {
                let inside = p + len <= self.region_end;
                (inside, inside)
            }
            _ => (false, false),
        }
    }

    fn ptr(&mut self, allow: &[Class]) -> (u64, Class) {
        let c = *self.rng.pick(allow);
        let r = &mut self.rng;
        let v = match c {
            Class::Scratch => scratch_base() + r.below(PAGE_SIZE - 16),
            Class::Null => r.below(0x1000),
            Class::BelowImage => 0x1000 + r.below(self.virt_base - 0x1000),
            Class::AfterRegion => self.region_end + r.below(1 << 30),
            Class::Straddle => self.region_end - 1 - r.below(15),
            Class::NonCanonical => {
                let x = r.next_u64();
                if GuestVirt::new(x).is_canonical() {
                    x ^ (1 << 50)
                } else {
                    x
                }
            }
            Class::HypervisorLike => match r.below(5) {
                0 => 0xffff_8000_0000_0000 + r.below(1 << 32),
                1 => 0xffff_ffff_8000_0000 + r.below(1 << 31),
                2 => 0xfee0_0000 + r.below(0x1000),
                3 => 0x10_0000 + r.below(0x10_0000),
                _ => (self.own_mfns[r.below(4) as usize] << 12) + r.below(0x1000),
            },
            Class::PageTable => self.pt.0 + r.below(self.pt.1 - self.pt.0 - 16),
            Class::RoImage => self.virt_base + r.below(self.text_len.max(17) - 16),
            Class::Random => r.next_u64(),
        };
        // Keep the classes honest: anything that lands in the guest's own region
        // (other than where it was aimed) becomes non-canonical instead, so a
        // random pointer can never corrupt the guest's own memory.
        let in_region = va_to_pfn(GuestVirt::new(v)).is_some();
        let aimed_inside = matches!(
            c,
            Class::Scratch | Class::PageTable | Class::RoImage | Class::Straddle
        );
        if in_region && !aimed_inside {
            return (v | (1 << 63) | (1 << 50), Class::NonCanonical);
        }
        if c == Class::RoImage && !self.text_ro {
            return self.ptr(&[Class::Null]);
        }
        (v, c)
    }
}

/// Every pointer class.
const ANY: [Class; 10] = [
    Class::Scratch,
    Class::Null,
    Class::BelowImage,
    Class::AfterRegion,
    Class::Straddle,
    Class::NonCanonical,
    Class::HypervisorLike,
    Class::PageTable,
    Class::RoImage,
    Class::Random,
];
/// Pointers whose target a hypervisor must never read as a shutdown reason:
/// everything but readable memory we do not control.
const SHUTDOWN_SAFE: [Class; 7] = [
    Class::Scratch,
    Class::Null,
    Class::BelowImage,
    Class::AfterRegion,
    Class::NonCanonical,
    Class::HypervisorLike,
    Class::Random,
];

/// What the ABI says a call must return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Exactly this value.
    Exactly(i64),
    /// One of two values.
    Either(i64, i64),
    /// Anything that is a success or a Xen errno.
    AnyValid,
}

fn e(x: Errno) -> i64 {
    x.as_return()
}

/// A call to make and what it must return.
struct Call {
    nr: u64,
    args: [u64; 5],
    expect: Expect,
    /// Could a success legitimately change page tables or other guarded memory?
    may_change_memory: bool,
}

fn gen_call(cx: &mut Ctx) -> Call {
    let enosys_or_any = |cx: &Ctx| {
        if cx.version_current {
            Expect::Exactly(e(Errno::ENOSYS))
        } else {
            Expect::AnyValid
        }
    };
    let roll = cx.rng.below(100);
    let rand5 = |cx: &mut Ctx| -> [u64; 5] { core::array::from_fn(|_| cx.rng.next_u64()) };
    if roll < 30 {
        // console_io
        let cmd = match cx.rng.below(10) {
            0..=6 => CONSOLEIO_WRITE,
            7 => CONSOLEIO_READ,
            _ => cx.rng.next_u64() >> cx.rng.below(64),
        };
        let (p, c) = cx.ptr(&ANY);
        let count = match cx.rng.below(10) {
            0 => 0,
            1 => CONSOLEIO_WRITE_MAX + 1 + cx.rng.below(1 << 20),
            2 => cx.rng.next_u64(),
            _ => 1 + cx.rng.below(24),
        };
        let expect = if cmd == CONSOLEIO_WRITE {
            if count == 0 {
                Expect::Either(0, e(Errno::EFAULT))
            } else if count > CONSOLEIO_WRITE_MAX {
                Expect::Either(e(Errno::EINVAL), e(Errno::EFAULT))
            } else if cx.access(p, c, count).0 {
                Expect::Exactly(0)
            } else {
                Expect::Exactly(e(Errno::EFAULT))
            }
        } else if cmd == CONSOLEIO_READ || cx.version_current {
            Expect::Exactly(e(Errno::ENOSYS))
        } else {
            Expect::AnyValid
        };
        Call {
            nr: Hypercall::CONSOLE_IO.0,
            args: [cmd, count, p, cx.rng.next_u64(), cx.rng.next_u64()],
            expect,
            may_change_memory: false,
        }
    } else if roll < 55 {
        // xen_version
        let (p, c) = cx.ptr(&ANY);
        let pick = cx.rng.below(10);
        let (cmd, expect) = match pick {
            0 => (
                version::XENVER_VERSION,
                Expect::Exactly(cx.version_encoding),
            ),
            1..=3 => (
                version::XENVER_EXTRAVERSION,
                if cx.access(p, c, 16).1 {
                    Expect::Exactly(0)
                } else {
                    Expect::Exactly(e(Errno::EFAULT))
                },
            ),
            4..=6 => {
                if c == Class::Scratch {
                    // The submap index the hypervisor reads: mostly 0, sometimes not.
                    let idx = if cx.rng.chance(1, 2) {
                        0
                    } else {
                        cx.rng.next_u64() as u32
                    };
                    write_u32_scratch(p, idx);
                    (
                        version::XENVER_GET_FEATURES,
                        if idx == 0 {
                            Expect::Exactly(0)
                        } else {
                            Expect::Exactly(e(Errno::EINVAL))
                        },
                    )
                } else if cx.access(p, c, 8) == (true, true) {
                    // Free memory at the end of the region: whatever index is there.
                    (
                        version::XENVER_GET_FEATURES,
                        Expect::Either(0, e(Errno::EINVAL)),
                    )
                } else if cx.access(p, c, 8).0 {
                    // Read first (Xen semantics): a non-zero index found there is
                    // -EINVAL before the refused write.
                    (
                        version::XENVER_GET_FEATURES,
                        Expect::Either(e(Errno::EFAULT), e(Errno::EINVAL)),
                    )
                } else {
                    (
                        version::XENVER_GET_FEATURES,
                        Expect::Exactly(e(Errno::EFAULT)),
                    )
                }
            }
            // XENVER_pagesize takes NULL; anything else is -EINVAL (as Xen).
            7 => (
                version::XENVER_PAGESIZE,
                if p == 0 {
                    Expect::Exactly(4096)
                } else {
                    Expect::Exactly(e(Errno::EINVAL))
                },
            ),
            _ => {
                let cmd = *cx.rng.pick(&[2u64, 3, 4, 5, 8, 9, 10, 11, 0x100, u64::MAX]);
                let cmd = if cmd == u64::MAX {
                    cx.rng.next_u64() | (1 << 40)
                } else {
                    cmd
                };
                (cmd, enosys_or_any(cx))
            }
        };
        Call {
            nr: Hypercall::XEN_VERSION.0,
            args: [
                cmd,
                p,
                cx.rng.next_u64(),
                cx.rng.next_u64(),
                cx.rng.next_u64(),
            ],
            expect,
            may_change_memory: false,
        }
    } else if roll < 70 {
        // sched_op, deliberately.
        match cx.rng.below(10) {
            0..=3 => Call {
                nr: Hypercall::SCHED_OP.0,
                args: [SCHEDOP_YIELD, cx.rng.next_u64(), 0, 0, 0],
                expect: Expect::Exactly(0),
                may_change_memory: false,
            },
            4..=7 => {
                let (p, c) = cx.ptr(&SHUTDOWN_SAFE);
                let expect = if c == Class::Scratch {
                    // A reason the ABI rejects: never 0..=5.
                    let reason = 6 + cx.rng.below(u32::MAX as u64 - 6) as u32;
                    write_u32_scratch(p, reason);
                    Expect::Exactly(e(Errno::EINVAL))
                } else {
                    Expect::Exactly(e(Errno::EFAULT))
                };
                Call {
                    nr: Hypercall::SCHED_OP.0,
                    args: [SCHEDOP_SHUTDOWN, p, cx.rng.next_u64(), 0, 0],
                    expect,
                    may_change_memory: false,
                }
            }
            _ => {
                let cmd =
                    *cx.rng
                        .pick(&[SCHEDOP_SHUTDOWN_CODE, SCHEDOP_PIN_OVERRIDE, 8, 9, 0x1000]);
                let (p, _) = cx.ptr(&SHUTDOWN_SAFE);
                Call {
                    nr: Hypercall::SCHED_OP.0,
                    args: [cmd, p, cx.rng.next_u64(), 0, 0],
                    expect: enosys_or_any(cx),
                    may_change_memory: false,
                }
            }
        }
    } else if roll < 90 {
        // Another of Xen's numbers (none implemented in 0.1), random arguments with
        // pointer-shaped values in the first two.
        let known: &[Hypercall] = ALL;
        let mut nr = *cx.rng.pick(known);
        while nr.implemented_since().is_some() {
            nr = *cx.rng.pick(known);
        }
        let mut args = rand5(cx);
        args[0] = if cx.rng.chance(1, 2) {
            cx.rng.below(16)
        } else {
            args[0]
        };
        args[1] = cx.ptr(&ANY).0;
        args[2] = cx.ptr(&ANY).0;
        // sched_op_compat(SCHEDOP_shutdown...) and vcpu_op(VCPUOP_down) would end
        // or stop the domain on an implementation: never issue them.
        if nr == Hypercall::SCHED_OP_COMPAT && matches!(args[0], 1..=6) {
            args[0] = SCHEDOP_YIELD;
        }
        if nr == Hypercall::VCPU_OP && args[0] == 2 {
            args[0] = 3;
        }
        Call {
            nr: nr.0,
            args,
            expect: if nr.implemented_since().is_none() && cx.version_current {
                Expect::Exactly(e(Errno::ENOSYS))
            } else {
                Expect::AnyValid
            },
            may_change_memory: true,
        }
    } else {
        // Numbers outside Xen's table.
        let nr = match cx.rng.below(4) {
            0 => 43 + cx.rng.below(64),
            1 => cx.rng.next_u64(),
            2 => (1 << 32) | cx.rng.below(64),
            _ => u64::MAX - cx.rng.below(16),
        };
        let nr = if Hypercall(nr).name().is_some() {
            1000 + nr % 1000
        } else {
            nr
        };
        Call {
            nr,
            args: rand5(cx),
            expect: Expect::Exactly(e(Errno::ENOSYS)),
            may_change_memory: false,
        }
    }
}

/// Store a little-endian u32 at scratch address `p` (inside the scratch page).
fn write_u32_scratch(p: u64, v: u32) {
    let off = p - scratch_base();
    for (k, b) in v.to_le_bytes().into_iter().enumerate() {
        let byte = off + k as u64;
        let w = &ARENA.0[WORDS + (byte / 8) as usize];
        let shift = (byte % 8) * 8;
        let old = w.load(Relaxed);
        w.store((old & !(0xff << shift)) | ((b as u64) << shift), Relaxed);
    }
}

/// Hypercall arguments for messages: `[0x1, 0x2, ...]` on one line.
struct Args([u64; 5]);

impl core::fmt::Display for Args {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let a = &self.0;
        write!(
            f,
            "[{:#x}, {:#x}, {:#x}, {:#x}, {:#x}]",
            a[0], a[1], a[2], a[3], a[4]
        )
    }
}

/// A hypercall result for messages: `0`, or `-14 (-EFAULT)`.
struct Ret(i64);

impl core::fmt::Display for Ret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0 < 0 && self.0 >= i32::MIN as i64 {
            write!(f, "{} ({})", self.0, Errno((-self.0) as i32))
        } else {
            write!(f, "{}", self.0)
        }
    }
}

fn valid_result(r: i64) -> bool {
    r >= 0 || errno::ALL.iter().any(|x| x.as_return() == r)
}

fn matches(expect: Expect, r: i64) -> bool {
    match expect {
        Expect::Exactly(v) => r == v,
        Expect::Either(a, b) => r == a || r == b,
        Expect::AnyValid => valid_result(r),
    }
}

/// Fingerprints of the guarded pages: page tables, start_info, the frame list.
const MAX_GUARDED: usize = 64;
struct Guarded {
    va: [u64; MAX_GUARDED],
    hash: [u64; MAX_GUARDED],
    n: usize,
}

impl Guarded {
    fn new() -> Self {
        let mut g = Guarded {
            va: [0; MAX_GUARDED],
            hash: [0; MAX_GUARDED],
            n: 0,
        };
        let (lo, hi) = pagetable::pt_region();
        let si = start_info();
        let list_pages = (si.nr_pages * 8).div_ceil(PAGE_SIZE);
        let mut add = |va: u64| {
            if g.n < MAX_GUARDED {
                g.va[g.n] = va;
                g.n += 1;
            }
        };
        let mut p = lo.get();
        while p < hi.get() {
            add(p);
            p += PAGE_SIZE;
        }
        add(boot().va.get());
        for i in 0..list_pages {
            add(si.mfn_list.get() + i * PAGE_SIZE);
        }
        g.rehash();
        g
    }
    fn rehash(&mut self) {
        for i in 0..self.n {
            self.hash[i] = pagetable::page_hash(GuestVirt::new(self.va[i])).unwrap_or(0);
        }
    }
    /// The first guarded page whose contents changed.
    fn changed(&self) -> Option<u64> {
        (0..self.n)
            .find(|&i| {
                pagetable::page_hash(GuestVirt::new(self.va[i])).unwrap_or(1) != self.hash[i]
            })
            .map(|i| self.va[i])
    }
}

fn test_main() {
    let cmd = keel_guest::start::cmdline();
    let (seed, from) = match cmdline_value(cmd, "seed").and_then(parse_u64) {
        Some(s) => (s, "command line"),
        None => (keel_guest::tsc::rdtsc(), "TSC"),
    };
    let count = cmdline_value(cmd, "count")
        .and_then(parse_u64)
        .unwrap_or(DEFAULT_COUNT);
    println!("fuzz: seed={seed} (from the {from}; replay with seed={seed}), {count} hypercalls");

    let b = boot();
    let hv = guest::xen_version();
    let text = keel_guest::pagetable::translate(b.virt_base);
    let mut own_mfns = [0u64; 4];
    for (i, m) in own_mfns.iter_mut().enumerate() {
        *m = keel_guest::start::pfn_to_mfn(Pfn::new(i as u64 * 3))
            .map(|m| m.get())
            .unwrap_or(0);
    }
    let (pt_lo, pt_hi) = pagetable::pt_region();
    let mut cx = Ctx {
        rng: Rng::new(seed),
        virt_base: b.virt_base.get(),
        region_end: keel_guest::targets::region_end().get(),
        pt: (pt_lo.get(), pt_hi.get()),
        text_ro: matches!(text, Ok(t) if !t.writable()),
        text_len: 4096,
        own_mfns,
        version_current: hv == AbiVersion::CURRENT,
        version_encoding: hv.encode() as i64,
    };
    if !cx.text_ro {
        println!("note: image text is not mapped read-only; no pointers aimed at it");
    }

    fill_arena();
    let mut guarded = Guarded::new();
    let failures = core::cell::Cell::new(0u32);
    let mut ok_calls = 0u64;
    let mut risky_success_since_check = false;
    let mut last_check = 0u64;
    const CHECK_EVERY: u64 = 32;

    let fail = |i: u64, args: core::fmt::Arguments<'_>| {
        failures.set(failures.get() + 1);
        if failures.get() <= 20 {
            // End the line the fuzzed console writes were building first.
            println!();
            failure!("call #{i} (seed={seed}): {args}");
        }
    };

    for i in 0..count {
        let call = gen_call(&mut cx);
        let r = hypercall_scalar(Hypercall(call.nr), call.args);
        if r >= 0 {
            ok_calls += 1;
            if call.may_change_memory {
                risky_success_since_check = true;
            }
        }
        if !matches(call.expect, r) || !valid_result(r) {
            fail(
                i,
                format_args!(
                    "hypercall {:#x} ({}) args {} returned {}, want {:?}",
                    call.nr,
                    Hypercall(call.nr).name().unwrap_or("?"),
                    Args(call.args),
                    Ret(r),
                    call.expect
                ),
            );
        }
        if let Some((addr, v)) = canary_broken() {
            fail(
                i,
                format_args!(
                    "canary at {addr:#x} overwritten ({v:#x}) by hypercall {:#x} args {} -> {}",
                    call.nr,
                    Args(call.args),
                    Ret(r)
                ),
            );
            fill_arena();
        }
        if (i + 1) % CHECK_EVERY == 0 || i + 1 == count {
            if let Some(va) = guarded.changed() {
                if risky_success_since_check {
                    println!(
                        "note: guarded page {va:#x} changed after a successful call; re-baselined"
                    );
                } else {
                    fail(
                        i,
                        format_args!(
                            "guarded page {va:#x} (page tables / start_info / mfn_list) changed during calls #{last_check}..=#{i}, none of which could change it"
                        ),
                    );
                }
                guarded.rehash();
            }
            risky_success_since_check = false;
            last_check = i + 1;
            // Keep the scratch text printable for the console writes.
            fill_arena();
        }
        if (i + 1) % 5000 == 0 {
            // End the line the fuzzed console writes were building first.
            println!();
            println!(
                "fuzz: {} calls, {ok_calls} succeeded, {} failures",
                i + 1,
                failures.get()
            );
        }
    }
    println!();
    println!(
        "fuzz: done: {count} calls, {ok_calls} succeeded, {} invariant failures (seed={seed})",
        failures.get()
    );
    success();
}
