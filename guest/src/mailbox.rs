//! A command mailbox on a page one domain grants another: how the
//! several-domain test programs meet and step through a test together.
//!
//! The owner (the granting domain) fills the page's fact words, then writes
//! [`MAGIC`] last; the other domain maps the grant (retrying until the entry
//! is written) and waits for the magic word. Then the other domain posts
//! commands (a sequence number and a command byte) and the owner answers each
//! with up to [`RESULTS`] words and the sequence number it answered. Both
//! sides wait by yielding the CPU (`SCHEDOP_yield`), a bounded number of
//! times. The page is ordinary memory of the owner's: the hypervisor has no
//! part in the protocol beyond the grant.

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

use crate::abi::guest;

/// Written last by the owner: the facts are there.
pub const MAGIC: u64 = 0x786f_626d_6c65_656b; // "keelmbox"
/// Fact words (`0..FACTS`).
pub const FACTS: usize = 8;
/// Result words of an answer.
pub const RESULTS: usize = 4;

const W_MAGIC: usize = 0;
const W_FACT: usize = 1;
const W_CMD: usize = W_FACT + FACTS;
const W_DONE: usize = W_CMD + 1;
const W_RESULT: usize = W_DONE + 1;
const W_PROGRESS: usize = W_RESULT + RESULTS;
const W_SCRATCH: usize = W_PROGRESS + RESULTS;
/// Words the two programs use as they agree, outside the protocol
/// ([`Mailbox::scratch`]).
pub const SCRATCH: usize = 8;

/// The mailbox page mapped at a guest-virtual address.
#[derive(Clone, Copy, Debug)]
pub struct Mailbox {
    va: u64,
}

impl Mailbox {
    /// The page at `va` (page-aligned, mapped writable).
    pub const fn at(va: u64) -> Self {
        Self { va }
    }

    /// The other domain: map grant reference `gref` of domain `owner`
    /// writable at a free address, retrying (yielding in between, up to
    /// `tries` times) until the owner has written its entry. The mailbox, the
    /// map's handle and the address (for `mmu::grant_unmap`); `None` if the
    /// grant never appeared.
    pub fn map_granted(
        owner: u16,
        gref: u32,
        tries: u32,
    ) -> Option<(Self, u32, crate::abi::GuestVirt)> {
        use crate::abi::grant_table::{GNTMAP_HOST_MAP, GNTST_OKAY};
        let va = crate::mmu::free_va();
        for _ in 0..tries {
            let (st, h) = crate::mmu::grant_map(owner, gref, GNTMAP_HOST_MAP, va);
            if st == GNTST_OKAY {
                return Some((Self::at(va.get()), h, va));
            }
            let _ = guest::sched_yield();
        }
        None
    }
    fn word(&self, i: usize) -> &'static AtomicU64 {
        crate::arch::shared_u64(self.va + 8 * (i % 512) as u64)
    }

    /// The owner: publish `facts` (at most [`FACTS`]), then the magic word.
    pub fn publish(&self, facts: &[u64]) {
        for (i, f) in facts.iter().take(FACTS).enumerate() {
            self.word(W_FACT + i).store(*f, SeqCst);
        }
        self.word(W_CMD).store(0, SeqCst);
        self.word(W_DONE).store(0, SeqCst);
        self.report_progress([0; RESULTS]);
        for i in 0..SCRATCH {
            self.scratch(i).store(0, SeqCst);
        }
        self.word(W_MAGIC).store(MAGIC, SeqCst);
    }

    /// Whether the owner has published.
    pub fn ready(&self) -> bool {
        self.word(W_MAGIC).load(SeqCst) == MAGIC
    }

    /// Fact `i`.
    pub fn fact(&self, i: usize) -> u64 {
        self.word(W_FACT + i.min(FACTS - 1)).load(SeqCst)
    }

    /// The other domain: post command `cmd` as number `seq` (1, 2, ...) and
    /// yield until it is answered, at most `yields` times. The answer's words.
    pub fn call(&self, seq: u32, cmd: u8, yields: u32) -> Option<[u64; RESULTS]> {
        self.word(W_CMD)
            .store(u64::from(seq) << 8 | u64::from(cmd), SeqCst);
        for _ in 0..yields {
            if self.word(W_DONE).load(SeqCst) == u64::from(seq) {
                let mut r = [0; RESULTS];
                for (i, w) in r.iter_mut().enumerate() {
                    *w = self.word(W_RESULT + i).load(SeqCst);
                }
                return Some(r);
            }
            let _ = guest::sched_yield();
        }
        None
    }

    /// The owner: the next command after number `last`, waiting (yielding)
    /// at most `yields` times. `(seq, cmd)`.
    pub fn next(&self, last: u32, yields: u32) -> Option<(u32, u8)> {
        for _ in 0..yields {
            if let Some(c) = self.peek(last) {
                return Some(c);
            }
            let _ = guest::sched_yield();
        }
        None
    }

    /// The owner: the command after number `last` if one is posted, without
    /// waiting (for an owner busy in a loop of its own). `(seq, cmd)`.
    pub fn peek(&self, last: u32) -> Option<(u32, u8)> {
        let w = self.word(W_CMD).load(SeqCst);
        let seq = (w >> 8) as u32;
        (seq > last).then_some((seq, w as u8))
    }

    /// The owner, busy with a command that lasts (answered or not): show
    /// how far it got in [`RESULTS`] words the other domain may read at any
    /// time ([`Self::progress`]).
    pub fn report_progress(&self, words: [u64; RESULTS]) {
        for (i, w) in words.iter().enumerate() {
            self.word(W_PROGRESS + i).store(*w, SeqCst);
        }
    }

    /// The other domain: the owner's last [`Self::report_progress`] (zeros
    /// before the first).
    pub fn progress(&self) -> [u64; RESULTS] {
        let mut r = [0; RESULTS];
        for (i, w) in r.iter_mut().enumerate() {
            *w = self.word(W_PROGRESS + i).load(SeqCst);
        }
        r
    }

    /// Scratch word `i` (`0..SCRATCH`), zero after [`Self::publish`]: for
    /// whatever the two programs agree on beyond commands and answers (both
    /// may write it at any time; the protocol never touches it).
    pub fn scratch(&self, i: usize) -> &'static AtomicU64 {
        self.word(W_SCRATCH + i.min(SCRATCH - 1))
    }

    /// The owner: answer command `seq` with `results`.
    pub fn answer(&self, seq: u32, results: [u64; RESULTS]) {
        for (i, r) in results.iter().enumerate() {
            self.word(W_RESULT + i).store(*r, SeqCst);
        }
        self.word(W_DONE).store(u64::from(seq), SeqCst);
    }
}

/// The commands `grant_cross` posts to `grant_peer`, its granting domain.
pub mod grant_cross {
    /// Answer entry 1's and entry 6's flags, the result of pinning frame Z
    /// as an L1 and that of pinning frame Y as an L4 (0, or the negative
    /// errno; each unpinned again when pinned).
    pub const REPORT: u8 = 1;
    /// Rewrite entry 1 to name frame C (while it is mapped).
    pub const REWRITE_1: u8 = 2;
    /// Revoke entry 2 with a compare-and-exchange; answer 1 if it worked.
    pub const REVOKE_2: u8 = 3;
    /// Answer, then end.
    pub const EXIT: u8 = 4;
    /// Answer at once, then pin frame Z as an L1, check that it holds only
    /// zeros and unpin it, again and again (in the steps the grantee starts:
    /// [`STEP_GRANTEE`]), until the next command, which must be [`STOP`]
    /// (`grant_race_2cpu`: the grantee maps Z meanwhile); the counts of
    /// [`STOP`]'s answer so far as its progress (`Mailbox::progress`).
    pub const RACE: u8 = 5;
    /// End a race's loop ([`RACE`], [`RACE_HOOK`], [`RACE_CR3`]); answer its
    /// counts: type changes that succeeded (pins, hooks), refused (-EINVAL),
    /// nonzero entries seen in the typed frame where only zeros may be, and
    /// results no rule allows (another errno, an undo that failed).
    pub const STOP: u8 = 6;
    /// As [`RACE`], but each step hooks Z into a free slot of one of the
    /// granter's own L2 tables with `mmu_update` (a present entry: an L1
    /// type reference on Z), checks Z, and writes the slot back to zero.
    pub const RACE_HOOK: u8 = 7;
    /// As [`RACE`] on frame Y (grant reference [`GREF_Y`], a copy of the
    /// granter's L4): each step pins Y as an L4, loads it with MOV to CR3,
    /// unpins it (CR3 keeps its type), checks Y's entries
    /// [`FACT_Y_FREE`]`..+`[`FACT_Y_FREE_COUNT`] (zero), and loads the
    /// original L4 again (Y's last type reference goes).
    pub const RACE_CR3: u8 = 8;
    /// Frame Y's grant reference (writable).
    pub const GREF_Y: u32 = 7;
    /// The fact words: frames A, B, Z and C.
    pub const FACT_A: usize = 0;
    /// Frame B.
    pub const FACT_B: usize = 1;
    /// Frame Z.
    pub const FACT_Z: usize = 2;
    /// Frame C.
    pub const FACT_C: usize = 3;
    /// Frame Y.
    pub const FACT_Y: usize = 4;
    /// The first of the entries of Y that the granter's L4 does not use
    /// (where the grantee may write while Y is mapped).
    pub const FACT_Y_FREE: usize = 5;
    /// How many there are from [`FACT_Y_FREE`] on (at least one).
    pub const FACT_Y_FREE_COUNT: usize = 6;
    /// The races' steps (`Mailbox::scratch` words, zero before a race
    /// starts; in each step both sides go for the frame once both have
    /// started it, and keep trying until each has had it once): the last
    /// step the grantee has started (it writes [`DELAY_GRANTER`] first)...
    pub const STEP_GRANTEE: usize = 0;
    /// ... the last step the granter has started ...
    pub const STEP_GRANTER: usize = 1;
    /// ... and how long the granter waits (spins) after the barrier before
    /// its first attempt of the grantee's step.
    pub const DELAY_GRANTER: usize = 2;
}
