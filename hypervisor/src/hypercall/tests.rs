//! Every row of the table and every error path, on a real built domain in fake
//! memory.

extern crate std;

use super::*;

/// The tests' names for addresses, ABI numbers and the paging types.
#[allow(unused_imports)]
pub(super) mod imports {
    pub use crate::addr::{GuestVirt, MachineAddr, Mfn, PAGE_SIZE};
    pub use crate::domain::Domain;
    pub use crate::domain::Level;
    pub use crate::event::EventState;
    pub use crate::mem::{Console, PhysMem};
    pub use crate::paging::guest_mem::{self, Access};
    pub use crate::paging::{Flush, LastTable};
    pub use crate::preempt::{Budget, Progress, CHECK_EVERY};
    pub use keel_abi::console::{CONSOLEIO_WRITE, CONSOLEIO_WRITE_MAX};
    pub use keel_abi::event::{
        EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_BIND_IPI, EVTCHNOP_BIND_VCPU, EVTCHNOP_BIND_VIRQ,
        EVTCHNOP_CLOSE, EVTCHNOP_SEND, EVTCHNOP_STATUS, EVTCHNOP_UNMASK, HVMOP_SET_PARAM,
    };
    pub use keel_abi::hypercall::Hypercall;
    pub use keel_abi::mmu::{
        MmuUpdate, MmuextOp, MulticallEntry, DOMID_SELF, MMUEXT_INVLPG_ALL, MMUEXT_INVLPG_LOCAL,
        MMUEXT_INVLPG_MULTI, MMUEXT_NEW_BASEPTR, MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE,
        MMUEXT_PIN_L3_TABLE, MMUEXT_PIN_L4_TABLE, MMUEXT_TLB_FLUSH_ALL, MMUEXT_TLB_FLUSH_LOCAL,
        MMUEXT_TLB_FLUSH_MULTI, MMUEXT_UNPIN_TABLE, MMU_NORMAL_PT_UPDATE,
    };
    pub use keel_abi::sched::{
        shutdown_reason_name, SchedShutdown, SCHEDOP_BLOCK, SCHEDOP_POLL, SCHEDOP_SHUTDOWN,
        SCHEDOP_YIELD,
    };
    pub use keel_abi::time::{
        VCPUOP_SET_PERIODIC_TIMER, VCPUOP_SET_SINGLESHOT_TIMER, VCPUOP_STOP_PERIODIC_TIMER,
        VCPUOP_STOP_SINGLESHOT_TIMER,
    };
    pub use keel_abi::version::{
        features, AbiVersion, XenFeatureInfo, EXTRAVERSION, XENVER_EXTRAVERSION,
        XENVER_GET_FEATURES, XENVER_PAGESIZE, XENVER_VERSION,
    };
    pub use keel_abi::Errno;
}
use crate::addr::Pfn;
use crate::domain::elf::testimg::typical;
use crate::domain::elf::GuestImage;
use crate::domain::{build, DomainConfig, DomainId, FrameKind};
use crate::mem::fake::{FakeConsole, FakeFrames, FakeMem};
#[allow(unused_imports)]
use imports::*;
use keel_abi::console::CONSOLEIO_READ;
use keel_abi::sched::{SCHEDOP_BLOCK, SHUTDOWN_CRASH, SHUTDOWN_POWEROFF, SHUTDOWN_SOFT_RESET};
use keel_abi::version::XENVER_COMPILE_INFO;
use proptest::prelude::*;
use std::string::String;
use std::vec::Vec;

const TEXT: u64 = 0x40_0000;
pub(super) const DATA: u64 = 0x40_3000;

pub(super) struct World {
    pub(super) dom: Domain,
    pub(super) mem: FakeMem,
    con: FakeConsole,
    pub(super) ev: EventState,
    pub(super) tsc: u64,
}

/// Grant state for every test: too large for a test thread's stack, so one
/// static store; a test that uses grants gives its domain an id no other test
/// uses (`World::with_id`).
pub(super) static TEST_GRANTS: crate::grant::Store = crate::grant::new_store();

impl World {
    pub(super) fn new() -> World {
        World::with_image(typical())
    }
    pub(super) fn with_image(bytes: Vec<u8>) -> World {
        World::with_image_id(bytes, DomainId(1))
    }
    pub(super) fn with_image_id(bytes: Vec<u8>, id: DomainId) -> World {
        let img = GuestImage::parse(&bytes).unwrap();
        let mut mem = FakeMem::default();
        let mut frames = FakeFrames::new(0x1000, 200);
        let cfg = DomainConfig {
            nr_pages: 64,
            ..DomainConfig::new(id)
        };
        let dom = build(&img, &bytes, &cfg, &mut mem, &mut frames).unwrap();
        let ev = EventState::new(
            &dom,
            &mut mem,
            crate::time::Clock::new(1000, 2_000_000),
            946_684_800,
        );
        World {
            dom,
            mem,
            ev,
            tsc: 1000,
            con: FakeConsole::default(),
        }
    }
    pub(super) fn call(&mut self, nr: Hypercall, args: [u64; 5]) -> Outcome {
        self.call_with(nr, args, crate::preempt::Budget::new())
    }
    /// [`Self::call`] in an exit that has already done some work (`work`).
    pub(super) fn call_with(
        &mut self,
        nr: Hypercall,
        args: [u64; 5],
        work: crate::preempt::Budget,
    ) -> Outcome {
        self.call_noting_changes(nr, args, work).0
    }
    /// [`Self::call_with`], and whether the handler said it may change the
    /// vCPU state the exit path keeps (`dispatch_noting_changes`).
    pub(super) fn call_noting_changes(
        &mut self,
        nr: Hypercall,
        args: [u64; 5],
        work: crate::preempt::Budget,
    ) -> (Outcome, bool) {
        let tsc = self.tsc;
        let now = move || tsc;
        let mut ctx = Ctx {
            dom: &mut self.dom,
            mem: &mut self.mem,
            console: &mut self.con,
            ev: &mut self.ev,
            now: &now,
            work,
            grants: &TEST_GRANTS,
            peers: &mut crate::peers::Alone,
        };
        dispatch_noting_changes(&mut ctx, &HypercallArgs { nr: nr.0, args })
    }
    /// [`Self::call`] with other domains (`peers`).
    pub(super) fn call_with_peers(
        &mut self,
        nr: Hypercall,
        args: [u64; 5],
        peers: &mut dyn crate::peers::Peers,
    ) -> Outcome {
        let tsc = self.tsc;
        let now = move || tsc;
        let mut ctx = Ctx {
            dom: &mut self.dom,
            mem: &mut self.mem,
            console: &mut self.con,
            ev: &mut self.ev,
            now: &now,
            work: crate::preempt::Budget::new(),
            grants: &TEST_GRANTS,
            peers,
        };
        dispatch_noting_changes(&mut ctx, &HypercallArgs { nr: nr.0, args }).0
    }
    pub(super) fn poke(&mut self, va: u64, data: &[u8]) {
        guest_mem::copy_to_guest(&self.dom, &mut self.mem, GuestVirt::new(va), data).unwrap();
    }
    pub(super) fn peek<const N: usize>(&self, va: u64) -> [u8; N] {
        guest_mem::read_bytes(&self.dom, &self.mem, GuestVirt::new(va)).unwrap()
    }
    fn write(&mut self, text: &[u8]) -> Outcome {
        self.poke(DATA, text);
        self.call(
            Hypercall::CONSOLE_IO,
            [CONSOLEIO_WRITE, text.len() as u64, DATA, 0, 0],
        )
    }
    fn out(&self) -> String {
        String::from_utf8(self.con.out.clone()).unwrap()
    }
}

fn ret(e: Errno) -> Outcome {
    Outcome::Return(e.as_return())
}

#[test]
fn table_is_consistent_with_the_abi() {
    for (i, r) in TABLE.iter().enumerate() {
        assert_eq!(
            keel_abi::hypercall::sub_implemented_since(r.nr, r.sub),
            Some(r.since),
            "{r:?}"
        );
        assert!(r.nr.implemented_since() <= Some(r.since), "{r:?}");
        // A row newer than 1.0 is served only to images that know its version
        // (its handler checks `Domain::serves`), a row of the version in
        // progress only to images that declare it.
        assert!(
            r.since <= AbiVersion::CURRENT || Some(r.since) == keel_abi::layout::IN_PROGRESS,
            "{r:?}"
        );
        assert!(r.name.starts_with(r.nr.name().unwrap()), "{r:?}");
        assert!(
            TABLE[..i].iter().all(|o| (o.nr, o.sub) != (r.nr, r.sub)),
            "duplicate {r:?}"
        );
        let found = lookup(r.nr.0, r.sub).unwrap();
        if r.whole {
            // Dispatch by number: the first row of the hypercall (whose handler
            // serves every command of it).
            assert!(found.whole && found.nr == r.nr, "{r:?}");
            assert!(TABLE.iter().filter(|o| o.nr == r.nr).all(|o| o.whole));
        } else {
            assert!(std::ptr::eq(found, r));
        }
    }
    for h in keel_abi::hypercall::ALL {
        assert_eq!(
            h.implemented_since().is_some(),
            TABLE.iter().any(|r| r.nr == *h),
            "{:?} {:?}",
            h,
            h.name()
        );
    }
    let mut md = String::new();
    write_markdown(&mut md).unwrap();
    assert_eq!(
        md.lines().filter(|l| l.starts_with("| ")).count(),
        TABLE.len() + 1
    );
    assert!(md.contains("`console_io / CONSOLEIO_write`"));
    // Every table line has exactly six unescaped cell separators.
    for line in md.lines().filter(|l| l.starts_with("| ")) {
        assert_eq!(line.replace("\\|", "").matches('|').count(), 6, "{line}");
    }
}

#[test]
fn console_write_lines_and_buffering() {
    let mut w = World::new();
    assert_eq!(w.write(b"hello\nwor"), Outcome::Return(0));
    assert_eq!(w.out(), "(d1) hello\n");
    assert_eq!(w.dom.console_pending(), b"wor");
    assert_eq!(w.write(b"ld\n\n"), Outcome::Return(0));
    assert_eq!(w.out(), "(d1) hello\n(d1) world\n");
    // Empty lines print nothing; anything but printable ASCII is escaped.
    assert_eq!(w.write(b"a\x1b[2J\tb\r\n"), Outcome::Return(0));
    assert!(
        w.out().ends_with("(d1) a\\x1b[2J\\x09b\\x0d\n"),
        "{}",
        w.out()
    );
    // Zero bytes: fine, nothing printed.
    let before = w.out();
    assert_eq!(
        w.call(Hypercall::CONSOLE_IO, [CONSOLEIO_WRITE, 0, 0, 0, 0]),
        Outcome::Return(0)
    );
    assert_eq!(w.out(), before);
}

#[test]
fn console_write_long_lines_split() {
    let mut w = World::new();
    let long = [b'x'; crate::domain::CONSOLE_LINE_MAX + 10];
    assert_eq!(w.write(&long), Outcome::Return(0));
    assert_eq!(
        w.out().len(),
        "(d1) \n".len() + crate::domain::CONSOLE_LINE_MAX
    );
    assert_eq!(w.dom.console_pending().len(), 10);
}

#[test]
fn console_write_errors() {
    let mut w = World::new();
    let max = CONSOLEIO_WRITE_MAX;
    // Too long: -EINVAL, even with a good buffer; the maximum itself is fine
    // (the data segment plus bss is 6 KiB of writable memory from DATA).
    assert_eq!(
        w.call(
            Hypercall::CONSOLE_IO,
            [CONSOLEIO_WRITE, max + 1, DATA, 0, 0]
        ),
        ret(Errno::EINVAL)
    );
    assert_eq!(
        w.call(
            Hypercall::CONSOLE_IO,
            [CONSOLEIO_WRITE, u64::MAX, DATA, 0, 0]
        ),
        ret(Errno::EINVAL)
    );
    assert_eq!(
        w.call(Hypercall::CONSOLE_IO, [CONSOLEIO_WRITE, max, DATA, 0, 0]),
        Outcome::Return(0)
    );
    // Bad buffers: unmapped, non-canonical, running off the mapped range: -EFAULT,
    // nothing printed, pending line untouched.
    w.write(b"partial");
    let out = w.out();
    let end = w.dom.layout().va(Pfn::new(64)).get();
    for (count, buf) in [
        (4, 0x1000),
        (4, 1u64 << 47),
        (16, end - 8),
        (8, u64::MAX - 3),
    ] {
        assert_eq!(
            w.call(Hypercall::CONSOLE_IO, [CONSOLEIO_WRITE, count, buf, 0, 0]),
            ret(Errno::EFAULT)
        );
    }
    assert_eq!(w.out(), out);
    assert!(w.dom.console_pending().ends_with(b"partial"));
    // Reading from read-only text is fine (the buffer is only read).
    assert_eq!(
        w.call(Hypercall::CONSOLE_IO, [CONSOLEIO_WRITE, 4, TEXT, 0, 0]),
        Outcome::Return(0)
    );
    // CONSOLEIO_read and unknown sub-commands.
    for sub in [CONSOLEIO_READ, 2, 1 << 32, u64::MAX] {
        assert_eq!(
            w.call(Hypercall::CONSOLE_IO, [sub, 4, DATA, 0, 0]),
            ret(Errno::ENOSYS)
        );
    }
}

#[test]
fn xen_version_rows() {
    let mut w = World::new();
    // The test image has no build note: a guest built before 1.0 is told 0.2
    // (AbiVersion::presented_to).
    assert_eq!(
        w.call(Hypercall::XEN_VERSION, [XENVER_VERSION, 0, 0, 0, 0]),
        Outcome::Return(0x0000_0002)
    );
    // An image built with this crate is told the truth.
    let mut w1 = World::with_image(crate::domain::elf::testimg::typical_built(Some(
        AbiVersion::CURRENT,
    )));
    assert_eq!(
        w1.call(Hypercall::XEN_VERSION, [XENVER_VERSION, 0, 0, 0, 0]),
        Outcome::Return(i64::from(AbiVersion::CURRENT.encode()))
    );
    assert_eq!(
        w1.call(Hypercall::XEN_VERSION, [XENVER_VERSION, 0xdead, 0, 0, 0]),
        Outcome::Return(i64::from(AbiVersion::CURRENT.encode()))
    );
    // extraversion
    w.poke(DATA, &[0xff; 16]);
    assert_eq!(
        w.call(Hypercall::XEN_VERSION, [XENVER_EXTRAVERSION, DATA, 0, 0, 0]),
        Outcome::Return(0)
    );
    assert_eq!(&w.peek::<16>(DATA), b"-keel\0\0\0\0\0\0\0\0\0\0\0");
    assert_eq!(
        w.call(Hypercall::XEN_VERSION, [XENVER_EXTRAVERSION, TEXT, 0, 0, 0]),
        ret(Errno::EFAULT)
    );
    assert_eq!(
        w.call(Hypercall::XEN_VERSION, [XENVER_EXTRAVERSION, 0, 0, 0, 0]),
        ret(Errno::EFAULT)
    );
    let l4 = w.dom.layout().va(w.dom.layout().page_tables).get();
    assert_eq!(
        w.call(Hypercall::XEN_VERSION, [XENVER_EXTRAVERSION, l4, 0, 0, 0]),
        ret(Errno::EFAULT)
    );
    // get_features
    w.poke(DATA, &[0, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd]);
    assert_eq!(
        w.call(Hypercall::XEN_VERSION, [XENVER_GET_FEATURES, DATA, 0, 0, 0]),
        Outcome::Return(0)
    );
    let fi = w.peek::<8>(DATA);
    assert_eq!(
        u32::from_le_bytes(fi[4..8].try_into().unwrap()),
        features::SUBMAP0
    );
    assert_eq!(&fi[0..4], &[0, 0, 0, 0]);
    for idx in [1u32, 2, u32::MAX] {
        w.poke(DATA, &idx.to_le_bytes());
        assert_eq!(
            w.call(Hypercall::XEN_VERSION, [XENVER_GET_FEATURES, DATA, 0, 0, 0]),
            ret(Errno::EINVAL)
        );
    }
    // Readable (submap_idx 0: L4 entry 1 is empty) but not writable: -EFAULT.
    assert_eq!(
        w.call(
            Hypercall::XEN_VERSION,
            [XENVER_GET_FEATURES, l4 + 8, 0, 0, 0]
        ),
        ret(Errno::EFAULT)
    );
    assert_eq!(
        w.call(Hypercall::XEN_VERSION, [XENVER_GET_FEATURES, 8, 0, 0, 0]),
        ret(Errno::EFAULT)
    );
    // pagesize
    assert_eq!(
        w.call(Hypercall::XEN_VERSION, [XENVER_PAGESIZE, 0, 0, 0, 0]),
        Outcome::Return(4096)
    );
    assert_eq!(
        w.call(Hypercall::XEN_VERSION, [XENVER_PAGESIZE, DATA, 0, 0, 0]),
        ret(Errno::EINVAL)
    );
    // Everything else.
    for sub in [XENVER_COMPILE_INFO, 3, 4, 5, 8, 9, 10, 11, 1 << 32] {
        assert_eq!(
            w.call(Hypercall::XEN_VERSION, [sub, DATA, 0, 0, 0]),
            ret(Errno::ENOSYS),
            "{sub}"
        );
    }
}

#[test]
fn sched_op_rows() {
    let mut w = World::new();
    assert_eq!(
        w.call(Hypercall::SCHED_OP, [SCHEDOP_YIELD, 0, 0, 0, 0]),
        Outcome::Yield
    );
    assert_eq!(
        w.call(Hypercall::SCHED_OP, [SCHEDOP_BLOCK, 0, 0, 0, 0]),
        Outcome::Block
    );
    for sub in [4, 5, 6, 7, 8, u64::MAX] {
        assert_eq!(
            w.call(Hypercall::SCHED_OP, [sub, DATA, 0, 0, 0]),
            ret(Errno::ENOSYS)
        );
    }
    // Bad pointer, unknown reasons.
    assert_eq!(
        w.call(Hypercall::SCHED_OP, [SCHEDOP_SHUTDOWN, 0, 0, 0, 0]),
        ret(Errno::EFAULT)
    );
    for reason in [SHUTDOWN_SOFT_RESET + 1, 255, u32::MAX] {
        w.poke(DATA, &reason.to_le_bytes());
        assert_eq!(
            w.call(Hypercall::SCHED_OP, [SCHEDOP_SHUTDOWN, DATA, 0, 0, 0]),
            ret(Errno::EINVAL)
        );
    }
    // Known reasons end the domain, flushing its last partial line.
    w.write(b"bye");
    w.poke(DATA + 0x100, &SHUTDOWN_POWEROFF.to_le_bytes());
    assert_eq!(
        w.call(
            Hypercall::SCHED_OP,
            [SCHEDOP_SHUTDOWN, DATA + 0x100, 0, 0, 0]
        ),
        Outcome::Shutdown(0)
    );
    assert_eq!(w.out(), "(d1) bye\n");
    for reason in 0..=SHUTDOWN_SOFT_RESET {
        w.poke(DATA, &reason.to_le_bytes());
        assert_eq!(
            w.call(Hypercall::SCHED_OP, [SCHEDOP_SHUTDOWN, DATA, 0, 0, 0]),
            Outcome::Shutdown(reason)
        );
    }
    // A struct readable from read-only memory is fine (text byte 3 is 3: crash).
    assert_eq!(
        w.call(Hypercall::SCHED_OP, [SCHEDOP_SHUTDOWN, TEXT + 3, 0, 0, 0]),
        ret(Errno::EINVAL)
    );
    w.poke(DATA, &SHUTDOWN_CRASH.to_le_bytes());
    assert_eq!(
        w.call(Hypercall::SCHED_OP, [SCHEDOP_SHUTDOWN, DATA, 0, 0, 0]),
        Outcome::Shutdown(SHUTDOWN_CRASH)
    );
}

#[test]
fn unknown_numbers_are_enosys_and_everything_is_counted() {
    let mut w = World::new();
    for nr in [0u64, 2, 11, 12, 14, 42, 43, 63, 64, 1000, u64::MAX] {
        assert_eq!(w.call(Hypercall(nr), [0; 5]), ret(Errno::ENOSYS), "{nr}");
    }
    w.call(Hypercall::XEN_VERSION, [0; 5]);
    w.call(Hypercall::XEN_VERSION, [0; 5]);
    assert_eq!(w.dom.hypercall_count(17), 2);
    assert_eq!(w.dom.hypercall_count(0), 1);
    assert_eq!(w.dom.hypercall_count(14), 1);
    assert_eq!(w.dom.hypercall_count(29), 0);
    // 64, 1000 and u64::MAX share the overflow counter.
    assert_eq!(w.dom.hypercall_count(64), 3);
    assert_eq!(w.dom.hypercall_count(12345), 3);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Random hypercalls with random (often plausible) arguments never panic, only
    /// return known errors or non-negative values, and never write anything but the
    /// domain's writable frames.
    #[test]
    fn random_hypercalls_are_safe(calls in proptest::collection::vec(
        (prop_oneof![Just(17u64), Just(18), Just(29), 0u64..70, any::<u64>()],
         0u64..12, prop_oneof![Just(0u64), TEXT..TEXT + 0x10_0000, any::<u64>()], 0u64..5000, any::<u64>()),
        1..20,
    )) {
        let mut w = World::new();
        let writable: std::collections::BTreeSet<u64> = (0..64)
            .filter_map(|p| w.dom.mfn_of(&w.mem, Pfn::new(p)))
            .filter(|&m| w.dom.frame_kind(&w.mem, m) == FrameKind::Writable)
            .map(|m| m.get())
            .collect();
        let before: std::collections::BTreeMap<u64, Vec<u8>> = w.mem.frames.clone();
        for (nr, sub, p1, p2, p3) in calls {
            let out = w.call(Hypercall(nr), [sub, p1, p2.max(p3 & 0xffff) & 0xffff_ffff_ffff, 0, 0]);
            match out {
                Outcome::Return(v) if v < 0 => {
                    prop_assert!(keel_abi::errno::ALL.iter().any(|e| e.as_return() == v), "{v}");
                }
                Outcome::Return(_) | Outcome::Yield => {}
                Outcome::Shutdown(r) => prop_assert!(shutdown_reason_name(r).is_some()),
                Outcome::Block => prop_assert!(w.ev.blocked.take().is_some()),
                // A count with the continuation flag (random bits).
                Outcome::Resumed { ret, .. } | Outcome::ResumedRdx { ret, .. } => {
                    prop_assert!(ret == 0 || keel_abi::errno::ALL.iter().any(|e| e.as_return() == i64::from(ret)), "{ret}");
                }
                // Lists here are far shorter than one exit's bound, and no
                // timer is armed.
                Outcome::Preempted(_) | Outcome::PreemptedRdx(_) => {
                    prop_assert!(false, "{out:?} from a first call")
                }
            }
        }
        for (f, bytes) in &w.mem.frames {
            if before.get(f) != Some(bytes) {
                prop_assert!(writable.contains(f), "frame {f:#x} changed");
            }
        }
    }
}

/// The ABI reference pages (`docs/abi/`, generated and checked by the abi crate)
/// must describe exactly what the table implements: every row's sub-command is
/// named on its family's page, and every sub-command a page lists as implemented
/// ("since") in an argument table is a row.
#[test]
fn docs_match_the_table() {
    use keel_abi::layout::Family;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/abi");
    let page = |h: Hypercall| {
        let f = Family::of_hypercall(h).unwrap();
        std::fs::read_to_string(dir.join(f.doc_page())).unwrap()
    };
    for r in TABLE {
        let sub_name = r.name.split(" / ").nth(1).unwrap();
        let text = page(r.nr);
        assert!(
            text.contains(&std::format!("`{sub_name}`")),
            "{sub_name} undocumented"
        );
    }
    for h in [Hypercall::XEN_VERSION, Hypercall::SCHED_OP] {
        let mut checked = 0;
        for line in page(h)
            .lines()
            .filter(|l| l.starts_with("| `") && l.contains("| since "))
        {
            // "| `XENVER_pagesize` (7) | ... | since 0.1: ..."
            let num: u64 = line
                .split(['(', ')'])
                .nth(1)
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or_else(|| panic!("no number in {line}"));
            let row = lookup(h.0, num)
                .unwrap_or_else(|| panic!("documented but not implemented: {line}"));
            assert!(
                line.contains(&std::format!("since {}", row.since)),
                "{line}"
            );
            checked += 1;
        }
        assert_eq!(checked, TABLE.iter().filter(|r| r.nr == h).count(), "{h:?}");
    }
}

// ---------------------------------------------------------------------------
// The PV MMU rows.

mod mmu {
    use super::*;
    use crate::paging::entry::{entry_addr, Pte, PteFlags};
    use crate::paging::walk::walk;
    use keel_abi::mmu::*;

    /// The L1 table and index that map `va` in the bootstrap tables.
    fn l1_slot(w: &World, va: u64) -> (Mfn, usize) {
        let wk = walk(&w.mem, w.dom.base(), GuestVirt::new(va), false, |_, _| true).unwrap();
        (wk.tables[3], GuestVirt::new(va).table_index(1))
    }
    fn mfn_of_pfn(w: &World, p: u64) -> Mfn {
        w.dom.mfn_of(&w.mem, Pfn::new(p)).unwrap()
    }
    fn updates(w: &mut World, reqs: &[(u64, u64)]) -> (Outcome, u32) {
        let mut bytes = Vec::new();
        for &(ptr, val) in reqs {
            bytes.extend_from_slice(&MmuUpdate { ptr, val }.encode());
        }
        w.poke(DATA, &bytes);
        w.poke(DATA + 0x800, &[0xff; 4]);
        let o = w.call(
            Hypercall::MMU_UPDATE,
            [DATA, reqs.len() as u64, DATA + 0x800, DOMID_SELF, 0],
        );
        (o, u32::from_le_bytes(w.peek(DATA + 0x800)))
    }
    fn ext(w: &mut World, ops: &[(u32, u64, u64)]) -> (Outcome, u32) {
        let mut bytes = Vec::new();
        for &(cmd, arg1, arg2) in ops {
            bytes.extend_from_slice(
                &MmuextOp {
                    cmd,
                    pad: 0,
                    arg1,
                    arg2,
                }
                .encode(),
            );
        }
        w.poke(DATA, &bytes);
        let o = w.call(
            Hypercall::MMUEXT_OP,
            [DATA, ops.len() as u64, DATA + 0x800, DOMID_SELF, 0],
        );
        (o, u32::from_le_bytes(w.peek(DATA + 0x800)))
    }

    /// An event-channel operation reads its argument through the argument
    /// cache (`Ctx::read_arg`): it answers as a walk would, also after the
    /// page holding it is unmapped or mapped to another frame.
    #[test]
    fn an_event_argument_read_follows_the_tables() {
        use keel_abi::event::*;
        let mut w = World::new();
        let status_at = |w: &mut World, va: u64, port: u32| {
            let mut b = [0u8; 32];
            EvtchnStatus {
                dom: DOMID_SELF,
                port,
                ..Default::default()
            }
            .encode(&mut b);
            w.poke(va, &b[..EvtchnStatus::SIZE]);
        };
        let status = |w: &mut World, va: u64| {
            let o = w.call(Hypercall::EVENT_CHANNEL_OP, [EVTCHNOP_STATUS, va, 0, 0, 0]);
            let b: [u8; EvtchnStatus::SIZE] = w.peek(va);
            (o, EvtchnStatus::decode(&b).status)
        };
        let mut b = [0u8; 32];
        EvtchnBindIpi { vcpu: 0, port: 0 }.encode(&mut b);
        w.poke(DATA, &b[..EvtchnBindIpi::SIZE]);
        let bound = w.call(
            Hypercall::EVENT_CHANNEL_OP,
            [EVTCHNOP_BIND_IPI, DATA, 0, 0, 0],
        );
        assert_eq!(bound, Outcome::Return(0));
        let ipi = EvtchnBindIpi::decode(&w.peek::<{ EvtchnBindIpi::SIZE }>(DATA)).port;
        // The argument on the page after DATA's (data and bss, writable),
        // at the offset it would have on DATA's page + 0x400.
        let arg = DATA + 0x1000 + 0x400;
        status_at(&mut w, arg, ipi);
        for _ in 0..2 {
            assert_eq!(status(&mut w, arg), (Outcome::Return(0), EVTCHNSTAT_IPI));
        }
        let (l1, idx) = l1_slot(&w, arg);
        let ptr = entry_addr(l1, idx).get();
        let frame = |w: &World, va: u64| {
            walk(&w.mem, w.dom.base(), GuestVirt::new(va), false, |_, _| true)
                .unwrap()
                .frame
        };
        let page = frame(&w, arg);
        // Unmapped: -EFAULT, not the kept translation (a send, which
        // writes nothing back: its port would be DOMID_SELF, -EINVAL).
        assert_eq!(updates(&mut w, &[(ptr, 0)]), (Outcome::Return(0), 1));
        assert_eq!(
            w.call(Hypercall::EVENT_CHANNEL_OP, [EVTCHNOP_SEND, arg, 0, 0, 0]),
            ret(Errno::EFAULT)
        );
        // Mapped to DATA's frame, which holds a request for port 0 there.
        status_at(&mut w, DATA + 0x400, 0);
        let data = frame(&w, DATA);
        let rw = PteFlags::PRESENT | PteFlags::WRITABLE;
        assert_eq!(
            updates(&mut w, &[(ptr, Pte::new(data, rw).raw())]),
            (Outcome::Return(0), 1)
        );
        assert_eq!(status(&mut w, arg), (Outcome::Return(0), EVTCHNSTAT_CLOSED));
        // And back.
        assert_eq!(
            updates(&mut w, &[(ptr, Pte::new(page, rw).raw())]),
            (Outcome::Return(0), 1)
        );
        assert_eq!(status(&mut w, arg), (Outcome::Return(0), EVTCHNSTAT_IPI));
    }

    #[test]
    fn mmu_update_validates_and_counts() {
        let mut w = World::new();
        let last = w.dom.nr_pages() - 1;
        let (l1, idx) = l1_slot(&w, w.dom.layout().va(Pfn::new(last)).get());
        let ptr = entry_addr(l1, idx).get();
        let target = mfn_of_pfn(&w, last);
        // Read-only remap, then unmap: two successes, and a flush is owed.
        let (o, n) = updates(
            &mut w,
            &[(ptr, Pte::new(target, PteFlags::PRESENT).raw()), (ptr, 0)],
        );
        assert_eq!((o, n), (Outcome::Return(0), 2));
        assert_eq!(w.dom.take_flush(), Flush::All);
        // Third request maps the L4 writable: refused, 2 done, entry unchanged.
        let l4 = w.dom.base();
        let (o, n) = updates(
            &mut w,
            &[
                (ptr, Pte::new(target, PteFlags::PRESENT).raw()),
                (
                    ptr,
                    Pte::new(target, PteFlags::PRESENT | PteFlags::WRITABLE).raw(),
                ),
                (
                    ptr,
                    Pte::new(l4, PteFlags::PRESENT | PteFlags::WRITABLE).raw(),
                ),
                (ptr, 0),
            ],
        );
        assert_eq!((o, n), (ret(Errno::EINVAL), 2));
        assert_eq!(
            w.mem.read_u64(entry_addr(l1, idx)),
            Pte::new(target, PteFlags::PRESENT | PteFlags::WRITABLE).raw()
        );
        // A foreign frame, another command, a foreign domain, a huge count.
        let (o, n) = updates(
            &mut w,
            &[(ptr, Pte::new(Mfn::new(0x10), PteFlags::PRESENT).raw())],
        );
        assert_eq!((o, n), (ret(Errno::EINVAL), 0));
        let (o, _) = updates(&mut w, &[(ptr | MMU_MACHPHYS_UPDATE, 0)]);
        assert_eq!(o, ret(Errno::ENOSYS));
        let (o, _) = updates(&mut w, &[(ptr | MMU_PT_UPDATE_PRESERVE_AD, 0)]);
        assert_eq!(o, ret(Errno::ENOSYS));
        let (o, _) = updates(&mut w, &[(ptr | 4, 0)]);
        assert_eq!(o, ret(Errno::EINVAL));
        // An entry address wider than any machine address.
        let (o, n) = updates(&mut w, &[(MachineAddr::LIMIT, 0)]);
        assert_eq!((o, n), (ret(Errno::EINVAL), 0));
        assert_eq!(
            w.call(Hypercall::MMU_UPDATE, [DATA, 1, 0, 7, 0]),
            ret(Errno::ESRCH)
        );
        // Bit 31 is the continuation flag: a continuation must not claim more
        // done than asked, nor a multicall entry in progress.
        assert_eq!(
            w.call(
                Hypercall::MMU_UPDATE,
                [DATA, (2 << 32) | (1 << 31) | 1, 0, DOMID_SELF, 0]
            ),
            ret(Errno::EINVAL)
        );
        assert_eq!(
            w.call(
                Hypercall::MMU_UPDATE,
                [DATA, (1 << 63) | (1 << 31) | 1, 0, DOMID_SELF, 0]
            ),
            ret(Errno::EINVAL)
        );
        // Unreadable request list; success_count in a page table: -EFAULT.
        assert_eq!(
            w.call(Hypercall::MMU_UPDATE, [0x10, 1, 0, DOMID_SELF, 0]),
            ret(Errno::EFAULT)
        );
        let pt_va = w.dom.layout().va(w.dom.layout().page_tables).get();
        assert_eq!(
            w.call(Hypercall::MMU_UPDATE, [DATA, 0, pt_va, DOMID_SELF, 0]),
            ret(Errno::EFAULT)
        );
        // Count 0 with NULL pointers does nothing.
        assert_eq!(
            w.call(Hypercall::MMU_UPDATE, [0, 0, 0, DOMID_SELF, 0]),
            Outcome::Return(0)
        );
    }

    #[test]
    fn a_request_list_running_off_the_mapping_runs_the_readable_part() {
        let mut w = World::new();
        let end = w.dom.layout().va(Pfn::new(w.dom.nr_pages())).get(); // first unmapped byte
        let last = w.dom.nr_pages() - 1;
        let (l1, idx) = l1_slot(&w, w.dom.layout().va(Pfn::new(last - 1)).get());
        let ptr = entry_addr(l1, idx).get();
        let orig = w.mem.read_u64(entry_addr(l1, idx));
        // 40 requests, of which the first 2 are readable: one chunk, retried singly.
        let mut bytes = Vec::new();
        for v in [orig & !PteFlags::WRITABLE.bits(), orig] {
            bytes.extend_from_slice(&MmuUpdate { ptr, val: v }.encode());
        }
        w.poke(end - 32, &bytes);
        w.poke(DATA + 0x800, &[0xff; 4]);
        let o = w.call(
            Hypercall::MMU_UPDATE,
            [end - 32, 40, DATA + 0x800, DOMID_SELF, 0],
        );
        assert_eq!(o, ret(Errno::EFAULT));
        assert_eq!(u32::from_le_bytes(w.peek(DATA + 0x800)), 2);
        assert_eq!(w.mem.read_u64(entry_addr(l1, idx)), orig);
        // A long list (more than one chunk) in mapped memory.
        let mut bytes = Vec::new();
        for k in 0..70u64 {
            let v = if k % 2 == 0 {
                orig & !PteFlags::WRITABLE.bits()
            } else {
                orig
            };
            bytes.extend_from_slice(&MmuUpdate { ptr, val: v }.encode());
        }
        w.poke(DATA, &bytes);
        let o = w.call(
            Hypercall::MMU_UPDATE,
            [DATA, 70, DATA + 0x800 + 0x400, DOMID_SELF, 0],
        );
        assert_eq!(o, Outcome::Return(0));
        assert_eq!(u32::from_le_bytes(w.peek(DATA + 0xc00)), 70);
    }

    /// `n` (<= 312) requests installing read-only mappings in the unused
    /// entries 200.. of the L1 that maps the domain (64 pages: entries 0..63;
    /// the pages right after stay unmapped), each of a different frame; the
    /// entry and value of request `k`.
    fn installs(w: &World, n: u64) -> (Vec<u8>, Vec<(MachineAddr, u64)>) {
        let (l1, first) = l1_slot(w, w.dom.layout().virt_base.get());
        assert_eq!(first, 0);
        let mut bytes = Vec::new();
        let mut want = Vec::new();
        for k in 0..n {
            let at = entry_addr(l1, 200 + k as usize);
            let val = Pte::new(mfn_of_pfn(w, k % w.dom.nr_pages()), PteFlags::PRESENT).raw();
            bytes.extend_from_slice(&MmuUpdate { ptr: at.get(), val }.encode());
            want.push((at, val));
        }
        (bytes, want)
    }

    #[test]
    fn a_request_list_across_guest_pages_runs_every_request() {
        let mut w = World::new();
        let l = *w.dom.layout();
        // 300 requests (4800 bytes) over three pages; request 128 straddles
        // the first boundary.
        let list = l.va(Pfn::new(l.first_free.get() + 2)).get() + 0x7f8;
        let (bytes, want) = installs(&w, 300);
        w.poke(list, &bytes);
        w.poke(DATA + 0x800, &[0xff; 4]);
        let o = w.call(
            Hypercall::MMU_UPDATE,
            [list, 300, DATA + 0x800, DOMID_SELF, 0],
        );
        assert_eq!(o, Outcome::Return(0));
        assert_eq!(u32::from_le_bytes(w.peek(DATA + 0x800)), 300);
        for (at, val) in want {
            assert_eq!(w.mem.read_u64(at), val, "{at:?}");
        }
    }

    #[test]
    fn a_request_list_whose_next_page_is_unmapped_runs_the_first_page() {
        let end = {
            let w = World::new();
            w.dom.layout().va(Pfn::new(w.dom.nr_pages())).get() // first unmapped byte
        };
        // (start, requests that fit before the unmapped page): aligned, and
        // misaligned so that the next request straddles the boundary.
        for (start, fit) in [(end - 0x1000, 256u64), (end - 0x1000 + 8, 255)] {
            let mut w = World::new();
            let (bytes, want) = installs(&w, 300);
            w.poke(start, &bytes[..(end - start) as usize]);
            w.poke(DATA + 0x800, &[0xff; 4]);
            let o = w.call(
                Hypercall::MMU_UPDATE,
                [start, 300, DATA + 0x800, DOMID_SELF, 0],
            );
            assert_eq!(
                (o, u32::from_le_bytes(w.peek(DATA + 0x800))),
                (ret(Errno::EFAULT), fit as u32),
                "{start:#x}"
            );
            for (k, &(at, val)) in want.iter().enumerate() {
                let now = w.mem.read_u64(at);
                if (k as u64) < fit {
                    assert_eq!(now, val, "request {k}");
                } else {
                    assert_eq!(now, 0, "request {k}");
                }
            }
        }
    }

    /// A request that remaps the page the request list is in: the requests
    /// after it are read through the new mapping, as a fresh translation
    /// would read them (the batch's kept translation of the page is dropped).
    #[test]
    fn a_request_that_remaps_the_request_list_is_seen_by_the_next_read() {
        let mut w = World::new();
        let l = *w.dom.layout();
        let (p, q) = (
            Pfn::new(l.first_free.get() + 2),
            Pfn::new(l.first_free.get() + 3),
        );
        let (list, q_va) = (l.va(p).get(), l.va(q).get());
        let (l1, idx) = l1_slot(&w, list);
        let orig = w.mem.read_u64(entry_addr(l1, idx));
        let (_, want) = installs(&w, 2);
        let remap = MmuUpdate {
            ptr: entry_addr(l1, idx).get(),
            val: Pte::new(
                mfn_of_pfn(&w, q.get()),
                PteFlags::PRESENT | PteFlags::WRITABLE,
            )
            .raw(),
        };
        let req = |k: usize| {
            MmuUpdate {
                ptr: want[k].0.get(),
                val: want[k].1,
            }
            .encode()
        };
        // p: [remap the list's page to q, install 0]; q: [-, install 1].
        w.poke(list, &remap.encode());
        w.poke(list + 16, &req(0));
        w.poke(q_va + 16, &req(1));
        let o = w.call(
            Hypercall::MMU_UPDATE,
            [list, 2, DATA + 0x800, DOMID_SELF, 0],
        );
        assert_eq!(o, Outcome::Return(0));
        assert_eq!(u32::from_le_bytes(w.peek(DATA + 0x800)), 2);
        assert_eq!(w.mem.read_u64(want[0].0), 0, "read from the old mapping");
        assert_eq!(w.mem.read_u64(want[1].0), want[1].1);
        assert_ne!(w.mem.read_u64(entry_addr(l1, idx)), orig);
    }

    #[test]
    fn mmuext_pin_unpin_baseptr_flush() {
        let mut w = World::new();
        let l4 = w.dom.base();
        // A fresh L4: the last frame, unmapped first so it is not writable.
        let last = w.dom.nr_pages() - 1;
        let (l1, idx) = l1_slot(&w, w.dom.layout().va(Pfn::new(last)).get());
        let spare = mfn_of_pfn(&w, last);
        let (o, _) = updates(&mut w, &[(entry_addr(l1, idx).get(), 0)]);
        assert_eq!(o, Outcome::Return(0));
        for i in 0..512 {
            let e = w.mem.read_u64(entry_addr(l4, i));
            w.mem.write_u64(entry_addr(spare, i), e);
        }
        // NEW_BASEPTR of an unpinned L4 is refused; pinned, it works.
        let (o, n) = ext(&mut w, &[(MMUEXT_NEW_BASEPTR, spare.get(), 0)]);
        assert_eq!((o, n), (ret(Errno::EINVAL), 0));
        let (o, n) = ext(
            &mut w,
            &[
                (MMUEXT_PIN_L4_TABLE, spare.get(), 0),
                (MMUEXT_NEW_BASEPTR, spare.get(), 0),
                (MMUEXT_TLB_FLUSH_LOCAL, 0, 0),
                (MMUEXT_INVLPG_LOCAL, 0x40_0000, 0),
            ],
        );
        assert_eq!((o, n), (Outcome::Return(0), 4));
        assert_eq!(w.dom.base(), spare);
        assert_eq!(w.dom.take_flush(), Flush::All);
        // Pinned twice, unpinned twice, wrong level, foreign: -EINVAL.
        let (o, n) = ext(&mut w, &[(MMUEXT_PIN_L4_TABLE, spare.get(), 0)]);
        assert_eq!((o, n), (ret(Errno::EINVAL), 0));
        let (o, _) = ext(&mut w, &[(MMUEXT_PIN_L3_TABLE, l4.get(), 0)]);
        assert_eq!(o, ret(Errno::EINVAL));
        let (o, _) = ext(&mut w, &[(MMUEXT_PIN_L1_TABLE, 0x10, 0)]);
        assert_eq!(o, ret(Errno::EINVAL));
        // A frame number no machine has is refused by its checked
        // conversion; a command that names no frame ignores arg1.
        for cmd in [MMUEXT_PIN_L1_TABLE, MMUEXT_UNPIN_TABLE, MMUEXT_NEW_BASEPTR] {
            let (o, n) = ext(&mut w, &[(cmd, Mfn::LIMIT, 0)]);
            assert_eq!((o, n), (ret(Errno::EINVAL), 0), "{cmd}");
        }
        let (o, n) = ext(&mut w, &[(MMUEXT_TLB_FLUSH_LOCAL, u64::MAX, 0)]);
        assert_eq!((o, n), (Outcome::Return(0), 1));
        assert_eq!(w.dom.take_flush(), Flush::All);
        let (o, n) = ext(
            &mut w,
            &[
                (MMUEXT_UNPIN_TABLE, l4.get(), 0),
                (MMUEXT_UNPIN_TABLE, l4.get(), 0),
            ],
        );
        assert_eq!((o, n), (ret(Errno::EINVAL), 1));
        // The multi-vCPU forms read the mask (vCPU 0 only).
        w.poke(DATA + 0x900, &1u64.to_le_bytes());
        let (o, _) = ext(&mut w, &[(MMUEXT_TLB_FLUSH_MULTI, 0, DATA + 0x900)]);
        assert_eq!(o, Outcome::Return(0));
        assert_eq!(w.dom.take_flush(), Flush::All);
        let (o, _) = ext(&mut w, &[(MMUEXT_INVLPG_MULTI, 0x1000, DATA + 0x900)]);
        assert_eq!(o, Outcome::Return(0));
        assert_eq!(w.dom.take_flush(), Flush::Page(GuestVirt::new(0x1000)));
        let (o, _) = ext(&mut w, &[(MMUEXT_TLB_FLUSH_MULTI, 0, 0x10)]);
        assert_eq!(o, ret(Errno::EFAULT));
        for cmd in [
            MMUEXT_FLUSH_CACHE,
            MMUEXT_SET_LDT,
            14,
            MMUEXT_NEW_USER_BASEPTR,
            MMUEXT_CLEAR_PAGE,
            MMUEXT_COPY_PAGE,
            MMUEXT_FLUSH_CACHE_GLOBAL,
            MMUEXT_MARK_SUPER,
            MMUEXT_UNMARK_SUPER,
            99,
        ] {
            assert_eq!(ext(&mut w, &[(cmd, 0, 0)]).0, ret(Errno::ENOSYS), "{cmd}");
        }
    }

    #[test]
    fn multicall_batches_and_writes_results() {
        let mut w = World::new();
        let list = DATA + 0x400;
        // Two console writes and a nested multicall and an unknown number.
        w.poke(DATA, b"hi\n");
        let entries = [
            (Hypercall::CONSOLE_IO.0, [CONSOLEIO_WRITE, 3, DATA, 0, 0, 0]),
            (Hypercall::MULTICALL.0, [0; 6]),
            (999, [0; 6]),
            (Hypercall::CONSOLE_IO.0, [CONSOLEIO_WRITE, 3, DATA, 0, 0, 0]),
        ];
        let mut bytes = Vec::new();
        for (op, args) in entries {
            bytes.extend_from_slice(
                &MulticallEntry {
                    op,
                    result: 0x5555,
                    args,
                }
                .encode(),
            );
        }
        w.poke(list, &bytes);
        assert_eq!(
            w.call(Hypercall::MULTICALL, [list, 4, 0, 0, 0]),
            Outcome::Return(0)
        );
        let result = |w: &World, i: u64| i64::from_le_bytes(w.peek(list + 64 * i + 8));
        assert_eq!(result(&w, 0), 0);
        assert_eq!(result(&w, 1), Errno::EINVAL.as_return());
        assert_eq!(result(&w, 2), Errno::ENOSYS.as_return());
        assert_eq!(result(&w, 3), 0);
        assert_eq!(w.out(), "(d1) hi\n(d1) hi\n");
        assert_eq!(
            w.call(Hypercall::MULTICALL, [0x10, 1, 0, 0, 0]),
            ret(Errno::EFAULT)
        );
        // A shutdown inside a batch ends it (and the domain): later calls do not run.
        w.poke(DATA + 0x100, &SHUTDOWN_POWEROFF.to_le_bytes());
        let mut bytes = Vec::new();
        for (op, args) in [
            (
                Hypercall::SCHED_OP.0,
                [SCHEDOP_SHUTDOWN, DATA + 0x100, 0, 0, 0, 0],
            ),
            (Hypercall::CONSOLE_IO.0, [CONSOLEIO_WRITE, 3, DATA, 0, 0, 0]),
        ] {
            bytes.extend_from_slice(
                &MulticallEntry {
                    op,
                    result: 7,
                    args,
                }
                .encode(),
            );
        }
        w.poke(list, &bytes);
        assert_eq!(
            w.call(Hypercall::MULTICALL, [list, 2, 0, 0, 0]),
            Outcome::Shutdown(SHUTDOWN_POWEROFF)
        );
        assert_eq!(
            i64::from_le_bytes(w.peek(list + 64 + 8)),
            7,
            "second call ran"
        );
    }
}

// ---------------------------------------------------------------------------
// The bar, at the hypercall level: random mmu_update / mmuext_op sequences on a
// built domain never leave a table reachable from CR3 that maps a foreign frame,
// maps a page-table frame writable, or holds an unvalidated link; and teardown
// brings every count back to zero.

pub(super) mod mmu_fuzz {
    use super::*;
    use crate::domain::{Level, PageType};
    use crate::paging::entry::{entry_addr, EntryMem, Pte, PteFlags};
    use keel_abi::mmu::{MmuUpdate, MmuextOp, DOMID_SELF};

    /// Walk every table reachable from the base and check the invariants.
    pub(in crate::hypercall) fn audit(w: &World) -> Result<(), String> {
        let mut stack = std::vec![(w.dom.base(), Level::L4)];
        let mut seen = std::collections::BTreeSet::new();
        while let Some((t, level)) = stack.pop() {
            if !seen.insert((t.get(), level as u8)) {
                continue;
            }
            let ti = w
                .dom
                .page_info(&w.mem, t)
                .ok_or_else(|| std::format!("reachable table {:#x} not owned", t.get()))?;
            if ti.ty != PageType::Table(level) || !ti.validated {
                return Err(std::format!(
                    "reachable L{} {:#x} is {ti:?}",
                    level as u8,
                    t.get()
                ));
            }
            for i in 0..512 {
                let e = w.mem.read_pte(entry_addr(t, i));
                if !e.contains(PteFlags::PRESENT) {
                    continue;
                }
                let f = e.frame();
                let fi = w.dom.page_info(&w.mem, f).ok_or_else(|| {
                    std::format!(
                        "L{} {:#x}[{i}] maps foreign {:#x}",
                        level as u8,
                        t.get(),
                        f.get()
                    )
                })?;
                match level {
                    Level::L1 => {
                        if e.contains(PteFlags::WRITABLE) && fi.ty != PageType::Writable {
                            return Err(std::format!("{:#x}[{i}] maps {fi:?} writable", t.get()));
                        }
                    }
                    _ => {
                        if e.contains(PteFlags::PAGE_SIZE) {
                            return Err(std::format!("superpage at {:#x}[{i}]", t.get()));
                        }
                        let below = Level::from_number(level as u32 - 1).unwrap();
                        stack.push((f, below));
                    }
                }
            }
        }
        Ok(())
    }

    #[derive(Clone, Debug)]
    enum Op {
        Update {
            table: u64,
            idx: usize,
            target: u64,
            flags: u64,
        },
        Ext {
            cmd: u32,
            pfn: u64,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        let flags = prop_oneof![
            Just(PteFlags::PRESENT.bits()),
            Just((PteFlags::PRESENT | PteFlags::WRITABLE).bits()),
            Just(0u64),
            Just((PteFlags::PRESENT | PteFlags::PAGE_SIZE).bits()),
            Just(
                (PteFlags::PRESENT | PteFlags::WRITABLE | PteFlags::ACCESSED | PteFlags::DIRTY)
                    .bits()
            ),
            any::<u64>().prop_map(|f| f & 0xfff0_0000_0000_0fff),
        ];
        prop_oneof![
            // table >= 1000: one of the bootstrap page tables (chosen at run time).
            4 => (prop_oneof![0u64..66, 1000u64..2000], prop_oneof![0usize..4, 0usize..512], 0u64..66, flags)
                .prop_map(|(table, idx, target, flags)| Op::Update { table, idx, target, flags }),
            1 => (0u32..12, 0u64..66).prop_map(|(cmd, pfn)| Op::Ext { cmd, pfn }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn random_mmu_operations_keep_the_bar(ops in proptest::collection::vec(op(), 1..40)) {
            let mut w = World::new();
            // PFNs 64 and 65 are not the domain's: stand-ins for foreign frames.
            let mfn = |w: &World, p: u64| w.dom.mfn_of(&w.mem, Pfn::new(p)).unwrap_or(Mfn::new(0x10 + p));
            for o in &ops {
                match *o {
                    Op::Update { table, idx, target, flags } => {
                        let l = *w.dom.layout();
                        let table = if table >= 1000 {
                            l.page_tables.get() + table % l.nr_pt_frames()
                        } else {
                            table
                        };
                        let ptr = entry_addr(mfn(&w, table), idx).get();
                        let req = MmuUpdate { ptr, val: Pte::new(mfn(&w, target), PteFlags::from_bits_retain(flags)).raw() };
                        // The guest writes its request where it can (a random update
                        // may have unmapped DATA: then the call gets -EFAULT).
                        let _ = guest_mem::copy_to_guest(&w.dom, &mut w.mem, GuestVirt::new(DATA), &req.encode());
                        let _ = w.call(Hypercall::MMU_UPDATE, [DATA, 1, 0, DOMID_SELF, 0]);
                    }
                    Op::Ext { cmd, pfn } => {
                        let op = MmuextOp { cmd, pad: 0, arg1: mfn(&w, pfn).get(), arg2: DATA };
                        let _ = guest_mem::copy_to_guest(&w.dom, &mut w.mem, GuestVirt::new(DATA + 0x100), &op.encode());
                        let _ = w.call(Hypercall::MMUEXT_OP, [DATA + 0x100, 1, 0, DOMID_SELF, 0]);
                    }
                }
                if let Err(e) = audit(&w) {
                    prop_assert!(false, "after {:?}: {}", o, e);
                }
            }
            prop_assert_eq!(w.dom.release_mm(&mut w.mem), 0, "counts left after {:?}", ops);
        }
    }
}

/// The compile-time index finds exactly what a scan of the whole table finds,
/// for every number (including ones far past the index) and sub-command.
#[test]
fn indexed_lookup_equals_a_full_scan() {
    let scan = |nr: u64, sub: u64| {
        TABLE
            .iter()
            .find(|r| r.nr.0 == nr && (r.whole || r.sub == sub))
            .map(|r| r.name)
    };
    let subs: std::vec::Vec<u64> = TABLE
        .iter()
        .map(|r| r.sub)
        .chain([0, 1, 2, 99, u64::MAX])
        .collect();
    for nr in (0..80).chain([u64::from(u32::MAX), u64::MAX, 0x4b45_454c]) {
        for &sub in &subs {
            assert_eq!(lookup(nr, sub).map(|r| r.name), scan(nr, sub), "{nr}/{sub}");
        }
    }
}

/// The batch limit the hypervisor enforces is the one the ABI names
/// (`keel_abi::mmu::MMU_BATCH_MAX`, frozen in 1.0): the largest count is accepted
/// (an unreadable list then fails on its first request); a plain count past 32
/// bits is `-EINVAL`; so is the next one, bit 31 alone: the continuation flag
/// (`MMU_UPDATE_PREEMPTED`) with nothing left to do, which the hypervisor never
/// makes. A continuation with work left resumes.
#[test]
fn batch_counts_stop_at_the_abi_limit() {
    use crate::preempt::MMU_UPDATE_PREEMPTED;
    use keel_abi::mmu::{DOMID_SELF, MMU_BATCH_MAX};
    assert_eq!(MMU_UPDATE_PREEMPTED, MMU_BATCH_MAX + 1);
    let mut w = World::new();
    for h in [Hypercall::MMU_UPDATE, Hypercall::MMUEXT_OP] {
        assert_eq!(
            w.call(h, [0x10, MMU_BATCH_MAX, 0, DOMID_SELF, 0]),
            ret(Errno::EFAULT),
            "{:?}",
            h.name()
        );
        assert_eq!(
            w.call(h, [0x10, 1 << 32, 0, DOMID_SELF, 0]),
            ret(Errno::EINVAL),
            "{:?}",
            h.name()
        );
        assert_eq!(
            w.call(h, [0x10, MMU_UPDATE_PREEMPTED, 0, DOMID_SELF, 0]),
            ret(Errno::EINVAL),
            "{:?}",
            h.name()
        );
        assert_eq!(
            w.call(
                h,
                [0x10, (1 << 32) | MMU_UPDATE_PREEMPTED | 2, 0, DOMID_SELF, 0]
            ),
            Outcome::Resumed {
                ret: Errno::EFAULT.as_return() as i32,
                count: 2
            },
            "{:?}",
            h.name()
        );
    }
    assert_eq!(
        w.call(Hypercall::MULTICALL, [0x10, MMU_BATCH_MAX, 0, 0, 0]),
        ret(Errno::EFAULT)
    );
    assert_eq!(
        w.call(Hypercall::MULTICALL, [0x10, 1 << 32, 0, 0, 0]),
        ret(Errno::EINVAL)
    );
    assert_eq!(
        w.call(Hypercall::MULTICALL, [0x10, MMU_UPDATE_PREEMPTED, 0, 0, 0]),
        ret(Errno::EINVAL)
    );
}

/// The exit path looks at the events and the base pointer again only after a
/// handler that may change them (`Op::may_change_vcpu_state`): every handler
/// said not to leaves them as they were, whatever its arguments, with events
/// quiet and with an upcall and a timer live.
#[test]
fn handlers_said_not_to_change_vcpu_state_do_not() {
    fn state(w: &World) -> (Mfn, bool, Option<u8>, Option<u64>, bool) {
        (
            w.dom.base(),
            w.dom.flush_owed(),
            w.ev.callback_vector,
            w.ev.timers.next_deadline(),
            w.ev.blocked.is_some(),
        )
    }
    let quiet_rows: Vec<&Row> = TABLE
        .iter()
        .filter(|r| !r.handler.may_change_vcpu_state())
        .collect();
    assert!(quiet_rows.len() >= 5, "the version and console rows");
    for live in [false, true] {
        for row in &quiet_rows {
            for rest in [
                [0, 0, 0, 0],
                [16, DATA, 0, 0],
                [DATA, 0, 0, 0],
                [u64::MAX, u64::MAX, u64::MAX, u64::MAX],
            ] {
                let mut w = World::new();
                w.poke(DATA, &[0x41; 32]);
                if live {
                    w.ev.callback_vector = Some(0xf3);
                    assert_eq!(
                        w.call(Hypercall::SET_TIMER_OP, [w.tsc + 1_000_000, 0, 0, 0, 0]),
                        Outcome::Return(0)
                    );
                }
                let before = state(&w);
                let args = [row.sub, rest[0], rest[1], rest[2], rest[3]];
                let (_, changes) = w.call_noting_changes(row.nr, args, Budget::new());
                assert!(!changes, "{}", row.name);
                assert_eq!(state(&w), before, "{} {rest:x?}", row.name);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// What a remote vCPU's CPU answers alone (`own_answer`) is what the
    /// whole dispatch answers, for any call and arguments; and it claims
    /// only calls that change nothing the exit path keeps.
    #[test]
    fn own_answers_agree_with_dispatch(
        nr in prop_oneof![Just(17u64), 0u64..70, any::<u64>()],
        sub in prop_oneof![0u64..12, any::<u64>()],
        rest in proptest::array::uniform4(prop_oneof![Just(0u64), Just(DATA), any::<u64>()]),
    ) {
        let mut w = World::new();
        let args = HypercallArgs { nr, args: [sub, rest[0], rest[1], rest[2], rest[3]] };
        let facts = BuiltFacts { abi_encoded: w.dom.abi_version_encoded() };
        let Some(v) = own_answer(&args, facts) else {
            return Ok(());
        };
        let counted = w.dom.hypercall_count(nr);
        let (out, changes) = w.call_noting_changes(Hypercall(nr), args.args, Budget::new());
        prop_assert_eq!(out, Outcome::Return(v));
        prop_assert!(!changes);
        prop_assert_eq!(w.dom.hypercall_count(nr), counted + 1);
    }
}

/// `own_answer` answers exactly the rows whose handler reads only what the
/// domain was built with: `XENVER_version` (for a domain presented ABI 0.2
/// too) and `XENVER_pagesize`.
#[test]
fn own_answers_cover_the_constant_rows() {
    let facts = BuiltFacts {
        abi_encoded: 0x0000_0002,
    };
    for row in TABLE {
        let args = HypercallArgs {
            nr: row.nr.0,
            args: [row.sub, 0, 0, 0, 0],
        };
        let claimed = own_answer(&args, facts).is_some();
        let constant = matches!(row.handler, Op::VersionVersion | Op::VersionPagesize);
        assert_eq!(claimed, constant && !row.whole, "{}", row.name);
    }
    let args = HypercallArgs {
        nr: 17,
        args: [XENVER_VERSION, 0, 0, 0, 0],
    };
    assert_eq!(own_answer(&args, facts), Some(2));
    let args = HypercallArgs {
        nr: 17,
        args: [XENVER_PAGESIZE, 1, 0, 0, 0],
    };
    assert_eq!(own_answer(&args, facts), Some(Errno::EINVAL.as_return()));
}

/// Calls a remote vCPU answered on its CPU are counted in its domain at its
/// next operation, `n` at once, in the same counters as the rest.
#[test]
fn count_hypercalls_adds_to_the_same_counters() {
    let mut w = World::new();
    w.call(Hypercall::XEN_VERSION, [XENVER_VERSION, 0, 0, 0, 0]);
    w.dom.count_hypercalls(17, 5);
    w.dom.count_hypercalls(1000, 2);
    w.call(Hypercall(64), [0; 5]);
    assert_eq!(w.dom.hypercall_count(17), 6);
    assert_eq!(w.dom.hypercall_count(64), 3);
}
