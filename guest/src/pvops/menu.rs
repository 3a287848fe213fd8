//! The menu: groups, implementations, platforms, and the choice `pv=` makes.

/// A group of operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// CPUID, MSRs, control registers, interrupt flag, halt.
    Cpu,
    /// Page-table entries, the root, the TLB.
    Mmu,
    /// The clock and the one-shot timer.
    Time,
    /// The timer as an interrupt.
    Irq,
    /// The console.
    Console,
}

impl Group {
    /// Every group, in table order.
    pub const ALL: [Group; 5] = [
        Group::Cpu,
        Group::Mmu,
        Group::Time,
        Group::Irq,
        Group::Console,
    ];

    /// The name used by `pv=`.
    pub const fn name(self) -> &'static str {
        match self {
            Group::Cpu => "cpu",
            Group::Mmu => "mmu",
            Group::Time => "time",
            Group::Irq => "irq",
            Group::Console => "console",
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// Which implementation a group uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    /// Raw instructions (trap-and-emulate under Keel).
    Native,
    /// Keel hypercalls and shared memory.
    Pv,
}

/// The set of groups that use PV.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PvSet(u8);

impl PvSet {
    /// Every group PV.
    pub const ALL: PvSet = PvSet(0x1f);
    /// Every group native.
    pub const NONE: PvSet = PvSet(0);

    /// Whether `g` is PV.
    pub const fn has(self, g: Group) -> bool {
        self.0 & g.bit() != 0
    }

    /// This set with `g` added.
    pub const fn with(self, g: Group) -> PvSet {
        PvSet(self.0 | g.bit())
    }

    /// The implementation of `g`.
    pub const fn of(self, g: Group) -> Impl {
        if self.has(g) {
            Impl::Pv
        } else {
            Impl::Native
        }
    }

    /// Parse a `pv=` value: `all`, `none`, or group names separated by commas.
    pub fn parse(s: &str) -> Result<PvSet, &str> {
        match s {
            "all" => return Ok(PvSet::ALL),
            "none" | "" => return Ok(PvSet::NONE),
            _ => {}
        }
        let mut set = PvSet::NONE;
        for w in s.split(',') {
            let g = Group::ALL.into_iter().find(|g| g.name() == w).ok_or(w)?;
            set = set.with(g);
        }
        Ok(set)
    }
}

/// Where the image was entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Keel's domain builder (`_start`, RSI = start_info).
    Keel,
    /// A multiboot1 loader (bare hardware).
    Multiboot,
}

/// The platform under the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    /// Keel (its CPUID leaves are there).
    Keel,
    /// Bare hardware (or a hypervisor that is not Keel, treated as hardware).
    BareMetal,
}

impl Platform {
    /// A name for messages.
    pub const fn name(self) -> &'static str {
        match self {
            Platform::Keel => "keel",
            Platform::BareMetal => "bare metal",
        }
    }
}

/// What was chosen at boot, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    /// The platform.
    pub platform: Platform,
    /// The groups that use PV.
    pub pv: PvSet,
    /// Groups asked for native that stay PV because Keel cannot emulate them.
    pub forced: PvSet,
    /// A `pv=` value that did not parse (the word), if any.
    pub bad: Option<&'static str>,
}

/// The groups Keel cannot run natively (no local APIC): they stay PV there.
pub const KEEL_PV_ONLY: PvSet = PvSet::NONE.with(Group::Time).with(Group::Irq);

/// Decide: `keel` from CPUID, `pv_arg` the command line's `pv=` value.
pub fn choose(platform: Platform, pv_arg: Option<&'static str>) -> Choice {
    match platform {
        Platform::BareMetal => Choice {
            platform,
            pv: PvSet::NONE,
            forced: PvSet::NONE,
            bad: None,
        },
        Platform::Keel => {
            let (asked, bad) = match pv_arg.map(PvSet::parse) {
                None => (PvSet::ALL, None),
                Some(Ok(s)) => (s, None),
                Some(Err(w)) => (PvSet::ALL, Some(w)),
            };
            let forced = PvSet(KEEL_PV_ONLY.0 & !asked.0);
            Choice {
                platform,
                pv: PvSet(asked.0 | KEEL_PV_ONLY.0),
                forced,
                bad,
            }
        }
    }
}
