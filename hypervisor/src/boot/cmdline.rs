//! The hypervisor command line: `key=value` words ([`Options`]) and the
//! deliberate faults it can ask for ([`SelfTest`]).

/// A fault to provoke deliberately once the platform is up (exception handlers,
/// page protections), to check the failure paths on a real machine or emulator:
/// `keel_selftest=<name>`. Each ends the run with a report and status 3
/// (hypervisor panic) instead of starting VMX. The boot tests use them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelfTest {
    /// `ud2`: execute `ud2`: invalid opcode (#UD, vector 6).
    Ud2,
    /// `pagefault`: read an unmapped address (#PF, vector 14, CR2 = the address).
    PageFault,
    /// `null`: read through a null pointer (page 0 is unmapped: #PF, CR2 = 0).
    NullRead,
    /// `wptext`: write to the hypervisor's own code (read-only: #PF, error code W|P).
    WriteText,
    /// `stack`: overflow the boot stack into its guard page: #PF on a dead stack
    /// becomes #DF (vector 8), reported from its IST stack.
    StackOverflow,
    /// `panic`: call `panic!`: the panic handler's report.
    Panic,
}

impl SelfTest {
    /// Every self-test with its command-line name (the table is the documentation).
    pub const ALL: [(&'static str, SelfTest); 6] = [
        ("ud2", SelfTest::Ud2),
        ("pagefault", SelfTest::PageFault),
        ("null", SelfTest::NullRead),
        ("wptext", SelfTest::WriteText),
        ("stack", SelfTest::StackOverflow),
        ("panic", SelfTest::Panic),
    ];

    /// Look a self-test up by its command-line name.
    pub fn from_name(name: &str) -> Option<SelfTest> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|&(_, t)| t)
    }
    /// The command-line name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("?", |&(n, _)| n)
    }
}

/// Options on the hypervisor command line, `key=value` words separated by spaces.
/// Unknown words are ignored (multiboot1 loaders put the kernel's path first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// `guest_mem=<MiB>`: memory for the guest (default 8).
    pub guest_mem_mib: u64,
    /// `keel_selftest=<name>`: provoke a fault after boot (see [`SelfTest::ALL`]).
    pub selftest: Option<SelfTest>,
    /// `loglevel=error|warn|info|debug|trace` (default info).
    pub log_level: log::LevelFilter,
    /// `run_cpu=<N>`: the CPU that runs the domains without a `keel.cpu=`
    /// (default 0, the boot CPU; one that is not online falls back to CPU 0
    /// with a warning).
    pub run_cpu: usize,
    /// `place=spread`: domains without a `keel.cpu=` go to the online CPUs
    /// in turn (domain 1 on the first, ...); `place=one` (the default): all
    /// on `run_cpu`.
    pub spread: bool,
    /// Words that looked like options but had bad values (reported in the boot log).
    pub bad_values: u32,
}

/// `run_cpu=` takes CPU numbers below this (the hypervisor's per-CPU limit).
pub const MAX_RUN_CPU: usize = 8;

/// Default guest memory in MiB.
pub const DEFAULT_GUEST_MEM_MIB: u64 = 8;

impl Default for Options {
    fn default() -> Self {
        Options {
            guest_mem_mib: DEFAULT_GUEST_MEM_MIB,
            selftest: None,
            log_level: log::LevelFilter::Info,
            run_cpu: 0,
            spread: false,
            bad_values: 0,
        }
    }
}

impl Options {
    /// Parse a command line. Later words override earlier ones.
    pub fn parse(cmdline: &str) -> Self {
        let mut o = Options::default();
        for word in cmdline.split_ascii_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            match key {
                "guest_mem" => match value.parse::<u64>() {
                    Ok(m) if m > 0 && m <= 1 << 20 => o.guest_mem_mib = m,
                    _ => o.bad_values += 1,
                },
                "keel_selftest" => match SelfTest::from_name(value) {
                    Some(t) => o.selftest = Some(t),
                    None => o.bad_values += 1,
                },
                "loglevel" => match value {
                    "error" => o.log_level = log::LevelFilter::Error,
                    "warn" => o.log_level = log::LevelFilter::Warn,
                    "info" => o.log_level = log::LevelFilter::Info,
                    "debug" => o.log_level = log::LevelFilter::Debug,
                    "trace" => o.log_level = log::LevelFilter::Trace,
                    _ => o.bad_values += 1,
                },
                "place" => match value {
                    "spread" => o.spread = true,
                    "one" => o.spread = false,
                    _ => o.bad_values += 1,
                },
                "run_cpu" => match value.parse::<usize>() {
                    Ok(c) if c < MAX_RUN_CPU => o.run_cpu = c,
                    _ => o.bad_values += 1,
                },
                _ => {}
            }
        }
        o
    }
}

/// The most vCPUs `keel.vcpus=` accepts: as many as the domain's vCPU table
/// holds (`domain::vcpus::MAX_VCPUS`); every vCPU of a domain runs on the
/// domain's CPU (`docs/architecture.md`, "Several vCPUs in a domain").
pub const MAX_CONFIGURED_VCPUS: u8 = crate::domain::vcpus::MAX_VCPUS as u8;

/// What a guest module's command line tells the hypervisor about its domain
/// (the dom0less configuration): the words starting `keel.`, which the guest
/// also sees and ignores. The first word is the domain's name.
///
/// - `keel.mem=<MiB>`: the domain's memory (default: `guest_mem=`);
/// - `keel.control`: the control domain (`domctl`, `VIRQ_DOM_EXC`); at most
///   one (a second is refused at boot);
/// - `keel.service`: a service domain, which does not keep the machine on:
///   once every other domain has ended it is destroyed;
/// - `keel.cpu=<N>`: the CPU its vCPU runs on (`smp::place`);
/// - `keel.vcpus=<n>`: the domain's number of vCPUs (default 1; at most
///   `MAX_CONFIGURED_VCPUS`), all on the domain's CPU unless
/// - `keel.vcpu_cpus=<c0>,<c1>,...`: vCPU `v` runs on CPU `cv` (`c0` must be
///   the domain's CPU; vCPUs beyond the list stay on it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DomainOptions {
    /// `keel.cpu=<N>`.
    pub cpu: Option<usize>,
    /// `keel.mem=<MiB>`.
    pub mem_mib: Option<u64>,
    /// `keel.control`.
    pub control: bool,
    /// `keel.service`.
    pub service: bool,
    /// `keel.vcpus=<n>`.
    pub vcpus: Option<u8>,
    /// `keel.vcpu_cpus=<c0>,<c1>,...`.
    pub vcpu_cpus: Option<VcpuCpus>,
    /// `keel.` words that were not understood (reported in the boot log).
    pub bad_words: u32,
}

/// The CPU of each of a domain's vCPUs (`keel.vcpu_cpus=`), by vCPU number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuCpus {
    cpus: [u8; MAX_CONFIGURED_VCPUS as usize],
    n: u8,
}

impl VcpuCpus {
    /// `c0,c1,...`: 1 to `MAX_CONFIGURED_VCPUS` CPU numbers below
    /// `MAX_RUN_CPU`; `None` for anything else.
    pub fn parse(list: &str) -> Option<Self> {
        let mut c = VcpuCpus::default();
        for w in list.split(',') {
            let cpu = w
                .parse::<u8>()
                .ok()
                .filter(|&x| usize::from(x) < MAX_RUN_CPU)?;
            *c.cpus.get_mut(usize::from(c.n))? = cpu;
            c.n += 1;
        }
        Some(c)
    }

    /// vCPU `v`'s CPU, if the list names one.
    pub fn cpu(&self, v: u32) -> Option<usize> {
        let v = usize::try_from(v).ok()?;
        (v < usize::from(self.n)).then(|| self.cpus.get(v).map(|&c| usize::from(c)))?
    }
}

impl DomainOptions {
    /// Parse a module's command line.
    pub fn parse(cmdline: &str) -> Self {
        let mut o = DomainOptions::default();
        for word in cmdline.split_ascii_whitespace() {
            let Some(opt) = word.strip_prefix("keel.") else {
                continue;
            };
            match opt.split_once('=') {
                Some(("mem", v)) => match v.parse::<u64>() {
                    Ok(m) if m > 0 && m <= 1 << 20 => o.mem_mib = Some(m),
                    _ => o.bad_words += 1,
                },
                Some(("cpu", v)) => match v.parse::<usize>() {
                    Ok(c) if c < MAX_RUN_CPU => o.cpu = Some(c),
                    _ => o.bad_words += 1,
                },
                Some(("vcpus", v)) => match v.parse::<u8>() {
                    Ok(n) if (1..=MAX_CONFIGURED_VCPUS).contains(&n) => o.vcpus = Some(n),
                    _ => o.bad_words += 1,
                },
                Some(("vcpu_cpus", v)) => match VcpuCpus::parse(v) {
                    Some(c) => o.vcpu_cpus = Some(c),
                    None => o.bad_words += 1,
                },
                None if opt == "control" => o.control = true,
                None if opt == "service" => o.service = true,
                _ => o.bad_words += 1,
            }
        }
        o
    }

    /// The domain's name: the command line's first word (the loader puts the
    /// image's name there), or `?`.
    pub fn name(cmdline: &str) -> &str {
        cmdline.split_ascii_whitespace().next().unwrap_or("?")
    }
}
