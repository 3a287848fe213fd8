//! # keel-guest: the Keel PV guest kernel library and its test framework
//!
//! A Keel guest is a 64-bit kernel that the hypervisor starts in VMX non-root mode,
//! at CPL0, with paging on, on page tables the hypervisor built (direct paging: the
//! tables hold machine frame numbers and are mapped read-only). This crate is the
//! smallest kernel that can live there and test the hypervisor from inside, in the
//! spirit of the Xen Test Framework (XTF):
//!
//! - **start of day** ([`arch`] entry `_start`): RSP is the hypervisor's boot stack
//!   and RSI the guest-virtual address of the `start_info` page. The entry clears
//!   `.bss`, moves to its own stack, loads its own GDT, TSS (with an IST stack for
//!   `#DF` and NMI) and IDT, and records `start_info` ([`start`]);
//! - **console** ([`console`]): `print!`/`println!` over `console_io(CONSOLEIO_write)`,
//!   line-buffered so each line is one hypercall;
//! - **exceptions**: every vector has a handler. A fault at an instruction listed in
//!   the exception table is an *expected* fault and becomes an `Err(Fault)` for the
//!   test ([`fault`]); anything else dumps the registers and ends the test as CRASH;
//! - **the test framework** ([`report`]): verdicts SUCCESS < SKIP < ERROR < FAILURE <
//!   CRASH, the most severe wins, and the last console line is
//!   `Test result: <VERDICT>[: <reason>]`, after which the guest shuts down;
//! - small helpers: the TSC ([`tsc`]), a deterministic PRNG ([`rand`]), CPUID ([`cpu`]).
//!
//! Each test program is one file in `src/bin/` using [`test!`]; see
//! `docs/writing-tests.md`.
//!
//! All `unsafe` code and all assembly live in [`arch`], which exists only for the
//! bare-metal target. On the host (for `cargo test`/`clippy --workspace`) the crate
//! builds against a shim [`arch`] whose hardware functions are never reached: the
//! host build of a test program is a stub `main` that exits 2 before any of it runs.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]
// Everything but `arch` is safe Rust; the compiler holds us to it.
#![deny(unsafe_code)]

/// The `abi` crate, re-exported so test programs need only this crate.
pub use keel_abi as abi;

#[cfg(target_os = "none")]
#[path = "arch/mod.rs"]
#[allow(unsafe_code)]
pub mod arch;
#[cfg(not(target_os = "none"))]
#[path = "arch/host.rs"]
pub mod arch;

pub mod bench;
pub mod console;
pub mod cpu;
pub mod domctl_cases;
pub mod events;
pub mod fault;
pub mod mailbox;
pub mod mmu;
pub mod native;
pub mod note;
pub mod pagetable;
pub mod port;
pub mod pvops;
pub mod rand;
pub mod report;
pub mod ring;
pub mod smp;
pub mod start;
pub mod targets;
pub mod tcg;
pub mod tsc;
pub mod user;

pub use fault::{Fault, Vector};
pub use report::{success, Verdict};

/// Everything a test program usually needs, for `use keel_guest::prelude::*;`.
pub mod prelude {
    pub use crate::abi::errno::Errno;
    pub use crate::abi::hypercall::Hypercall;
    pub use crate::abi::{GuestVirt, Mfn, Pfn, PAGE_SIZE};
    pub use crate::fault::{self, Fault, Vector};
    pub use crate::report::{success, Verdict};
    pub use crate::start::{cmdline, start_info};
    pub use crate::{check, check_eq, error, failure, print, println, skip};
}

/// Declare a test program: its title, its category and its main function.
///
/// ```ignore
/// #![no_std]
/// #![cfg_attr(target_os = "none", no_main)]
/// use keel_guest::prelude::*;
///
/// keel_guest::test! {
///     title: "console_io writes a line",
///     category: Functional,
///     main: test_main,
/// }
///
/// fn test_main() {
///     println!("hello");
///     success();
/// }
/// ```
///
/// `needs` (optional) says where the test can run: `Keel` (the default: it uses
/// Keel's interface, hypercalls or shared memory, which bare hardware lacks, so
/// booted there it reports SKIP before `main` runs) or `Nothing` (it reaches the
/// machine only through [`pvops::ops`] and also runs natively, `--backend native`).
///
/// `category` is a variant of [`abi::note::TestCategory`]; `main` is a `fn()` that
/// reports verdicts through [`report`] (it must report at least one: a test that
/// returns having said nothing ends as ERROR, never as a silent SUCCESS).
///
/// On `x86_64-unknown-none` the macro emits the Keel ELF notes into `.note.keel`
/// (the ABI version this image was built against, and the test note with category
/// and title, both read from the PT_NOTE segment) and the entry that the library's
/// `_start` calls once the machine is set up. On the host it emits a `fn main()` that
/// says this is a guest image to run with `cargo keel test <name>` and exits 2.
#[macro_export]
macro_rules! test {
    // Without `abi:`, the image declares the ABI it is built against.
    (title: $title:expr, category: $cat:ident, main: $main:path $(,)?) => {
        $crate::test! {
            title: $title,
            category: $cat,
            abi: $crate::abi::version::AbiVersion::CURRENT,
            needs: Keel,
            main: $main,
        }
    };
    (title: $title:expr, category: $cat:ident, needs: $needs:ident, main: $main:path $(,)?) => {
        $crate::test! {
            title: $title,
            category: $cat,
            abi: $crate::abi::version::AbiVersion::CURRENT,
            needs: $needs,
            main: $main,
        }
    };
    // With `abi: VERSION`, it declares an older version, so that older hypervisors
    // run it too (compatibility tests, benchmarks that must run on old releases).
    (title: $title:expr, category: $cat:ident, abi: $abi:expr, main: $main:path $(,)?) => {
        $crate::test! {
            title: $title,
            category: $cat,
            abi: $abi,
            needs: Keel,
            main: $main,
        }
    };
    // With `needs: Nothing`, the test also runs on bare hardware (the native
    // operations table); without it, it needs Keel and reports SKIP elsewhere.
    (title: $title:expr, category: $cat:ident, abi: $abi:expr, needs: $needs:ident, main: $main:path $(,)?) => {
        /// The test's title (also in its ELF note).
        const __KEEL_TEST_TITLE: &str = $title;
        /// The test's category (also in its ELF note).
        const __KEEL_TEST_CATEGORY: $crate::abi::note::TestCategory =
            $crate::abi::note::TestCategory::$cat;

        #[cfg(target_os = "none")]
        #[link_section = ".note.keel"]
        #[used]
        static __KEEL_NOTE_ABI: $crate::note::AbiNote = $crate::note::AbiNote::for_version($abi);

        #[cfg(target_os = "none")]
        #[link_section = ".note.keel"]
        #[used]
        static __KEEL_NOTE_BUILT: $crate::note::AbiNote = $crate::note::AbiNote::built();

        #[cfg(target_os = "none")]
        #[link_section = ".note.keel"]
        #[used]
        static __KEEL_NOTE_TEST: $crate::note::TestNote<
            { $crate::note::title_space(__KEEL_TEST_TITLE.len()) },
        > = $crate::note::TestNote::new(__KEEL_TEST_CATEGORY, __KEEL_TEST_TITLE);

        /// Called by the library's `_start` once GDT, IDT, TSS and start_info are set up.
        #[cfg(target_os = "none")]
        #[no_mangle]
        pub fn __keel_guest_main() -> ! {
            $crate::report::run(
                $crate::report::TestInfo {
                    name: env!("CARGO_BIN_NAME"),
                    title: __KEEL_TEST_TITLE,
                    category: __KEEL_TEST_CATEGORY,
                    needs: $crate::report::Needs::$needs,
                },
                $main,
            )
        }

        // The program is `no_std` on both targets (so `print!` is this crate's, not
        // std's); the host shim links std itself.
        #[cfg(not(target_os = "none"))]
        extern crate std;

        #[cfg(not(target_os = "none"))]
        fn main() {
            // Keep the test body type-checked (and its helpers "used") on the host.
            let _body: fn() = $main;
            let _ = (__KEEL_TEST_TITLE, __KEEL_TEST_CATEGORY);
            std::eprintln!(
                "{}: this is a Keel guest image ({}: \"{}\"), not a host program; run it with `cargo keel test {}`",
                env!("CARGO_BIN_NAME"),
                __KEEL_TEST_CATEGORY.name(),
                __KEEL_TEST_TITLE,
                env!("CARGO_BIN_NAME"),
            );
            std::process::exit(2);
        }
    };
}
