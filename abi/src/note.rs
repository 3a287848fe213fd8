//! The guest image note: how a guest ELF tells the hypervisor (and the test runner)
//! what it is.
//!
//! Every guest image carries a `PT_NOTE` segment with notes of owner name `"Keel"`:
//! - [`NT_KEEL_ABI_VERSION`]: 4 bytes: `major: u16, minor: u16` (little endian), the
//!   ABI version the guest was built against. The hypervisor refuses to start a guest
//!   whose version is newer than its own, or whose note is missing.
//! - [`NT_KEEL_TEST`]: present in test programs: `category: u32` then the test's
//!   title as UTF-8, NUL-terminated (read by `cargo keel test`).

/// The note owner name (without its NUL).
pub const NOTE_NAME: &[u8; 4] = b"Keel";
/// Note type: ABI version the image was built against.
pub const NT_KEEL_ABI_VERSION: u32 = 1;
/// Note type: test metadata.
pub const NT_KEEL_TEST: u32 = 2;

/// The category of a guest test program (as XTF groups its tests).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TestCategory {
    /// Does an operation do what it should.
    Functional = 0,
    /// Does the hypervisor refuse what it must refuse.
    Security = 1,
    /// Layouts, numbers and version behaviour.
    Abi = 2,
    /// Benchmarks: report numbers.
    Bench = 3,
    /// Anything else (demos, fuzzers).
    Special = 4,
}

impl TestCategory {
    /// All categories.
    pub const ALL: [TestCategory; 5] = [
        Self::Functional,
        Self::Security,
        Self::Abi,
        Self::Bench,
        Self::Special,
    ];

    /// Decode the note's category field.
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            0 => Some(Self::Functional),
            1 => Some(Self::Security),
            2 => Some(Self::Abi),
            3 => Some(Self::Bench),
            4 => Some(Self::Special),
            _ => None,
        }
    }
    /// The lowercase name used on the runner's command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Functional => "functional",
            Self::Security => "security",
            Self::Abi => "abi",
            Self::Bench => "bench",
            Self::Special => "special",
        }
    }
    /// Parse a lowercase name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == s)
    }
}
