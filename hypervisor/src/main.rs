//! The Keel hypervisor binary: the boot flow, from the first Rust instruction to
//! power-off. Every step logs one line; every failure ends in
//! `keel: power off, status N (...)` with the status the contract gives it.
//!
//! 1. serial console and `log`; our own GDT/TSS/IDT (so any later fault is reported);
//! 2. boot information (multiboot1 or 2) and the command line;
//! 3. the frame allocator (all RAM minus image, boot data, modules, firmware);
//!    the direct map extended to all RAM;
//! 4. ACPI (CPUs, local APIC, S5 power-off);
//! 5. VMX on;
//! 6. the other CPUs in the MADT started, checked and parked (`smp`);
//! 7. the first module becomes domain 1; run it on CPU 0; power off with the
//!    status its end implies.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
mod bare {
    use keel_abi::platform::ExitStatus;
    use keel_abi::sched::{shutdown_reason_name, SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
    use keel_hypervisor::arch;
    use keel_hypervisor::arch::power::power_off;
    use keel_hypervisor::boot::{self as boot_info, BootInfo, MachineRange, Options, SelfTest};
    use keel_hypervisor::domain::elf;
    use keel_hypervisor::lifecycle::{self, End};
    use keel_hypervisor::mem::frames::LOW_MEMORY_END;
    use keel_hypervisor::mem::FrameSource;
    use keel_hypervisor::vmx::frame::DomainEnd;
    use keel_hypervisor::{domain, smp, vmx};

    keel_hypervisor::entry_point!(boot);

    fn boot(magic: u32, info_addr: u32) -> ! {
        arch::serial::init_logging(log::LevelFilter::Info);
        log::info!("Keel hypervisor {}", env!("CARGO_PKG_VERSION"));
        // The boot CPU's GDT and TSS live in its per-CPU state; loading them
        // resets the GS base, so GS is pointed at that state afterwards.
        arch::gdt::init(&vmx::percpu::PERCPU[0].arch, arch::gdt::boot_ist_tops());
        arch::idt::init();
        let _ = vmx::percpu::init(0);
        log::info!("cpu: GDT, TSS (IST stacks for #DF/NMI/#MC) and IDT loaded");

        // ---- 2. boot information ---------------------------------------------------
        let bi = match boot_info::parse(magic, u64::from(info_addr), &arch::mem::BootWindow) {
            Ok(bi) => bi,
            Err(e) => {
                log::error!("boot: {e}");
                power_off(ExitStatus::HypervisorPanic)
            }
        };
        let opts = Options::parse(bi.cmdline.as_str());
        log::set_max_level(opts.log_level);
        log_boot_info(&bi, &opts);

        // ---- 3. frames and the direct map ------------------------------------------
        let (img_start, img_end) = arch::boot::image_range();
        let mut reserved =
            [MachineRange::default(); 2 + boot_info::MAX_BOOT_DATA + boot_info::MAX_MODULES];
        let mut n = 0;
        let mut reserve = |r: MachineRange| {
            if n < reserved.len() {
                reserved[n] = r;
                n += 1;
            }
        };
        reserve(MachineRange::from_len(0, LOW_MEMORY_END));
        reserve(MachineRange::from_len(img_start, img_end - img_start));
        bi.boot_data().iter().copied().for_each(&mut reserve);
        bi.modules().iter().map(|m| m.range).for_each(&mut reserve);
        let (mut frames, bitmap) =
            match arch::mem::build_frame_allocator(bi.regions(), &reserved[..n]) {
                Ok(x) => x,
                Err(e) => {
                    log::error!("frames: {e}");
                    power_off(ExitStatus::OutOfMemory)
                }
            };
        log::info!(
            "frames: {} free ({} MiB); image {}, bitmap {}",
            frames.free_count(),
            frames.free_count() >> 8,
            MachineRange::from_len(img_start, img_end - img_start),
            bitmap
        );
        match arch::mem::extend_direct_map(bi.ram_top(), &mut frames) {
            Ok(0) => log::info!(
                "direct map: identity, up to {:#x}",
                arch::mem::direct_map_top().get()
            ),
            Ok(added) => log::info!(
                "direct map: identity, extended by {} MiB to {:#x}",
                added >> 20,
                arch::mem::direct_map_top().get()
            ),
            Err(e) => {
                log::error!("direct map: cannot map RAM above 4 GiB: {e:?}");
                power_off(ExitStatus::OutOfMemory)
            }
        }

        if arch::mem::RACY_CMPXCHG {
            log::error!(
                "mm: built with KEEL_RACY_CMPXCHG: the frame table's updates are NOT atomic (a test build: guest race tests must fail on it)"
            );
        }

        // ---- 4. ACPI ---------------------------------------------------------------
        let acpi = arch::acpi::init(bi.rsdp);
        match &acpi {
            Ok(a) => {
                log::info!(
                    "acpi: RSDP at {:#x} ({}), revision {}; {} CPU(s), local APIC at {:#x}",
                    a.rsdp.get(),
                    a.rsdp_source,
                    a.revision,
                    a.cpus,
                    a.local_apic
                );
                match (a.s5, a.s5_missing) {
                    (Some(s5), _) => log::info!(
                        "acpi: S5 via PM1a_CNT {:#x}{}, SLP_TYP {}/{}",
                        s5.pm1a_cnt,
                        if s5.pm1b_cnt.is_some() { " + PM1b" } else { "" },
                        s5.slp_typa,
                        s5.slp_typb
                    ),
                    (None, why) => log::warn!("acpi: no S5 power-off: {}", why.unwrap_or("?")),
                }
            }
            // Not fatal: Keel needs ACPI only for S5 power-off in 0.1.
            Err(e) => log::warn!("acpi: tables unavailable ({e:?}); no ACPI power-off"),
        }

        // Page 0 unmapped, image W^X, stack guard page (after ACPI: its BIOS scan
        // reads page 0).
        if let Err(e) = arch::mem::harden(&mut frames) {
            log::error!("paging: cannot remap the first 4 MiB: {e:?}");
            power_off(ExitStatus::OutOfMemory)
        }
        log::info!(
            "paging: page 0 unmapped, image text read-only, data no-execute, stack guard page"
        );
        if let Some(t) = opts.selftest {
            log::info!(
                "selftest: provoking {} (keel_selftest={})",
                vector_hint(t),
                t.name()
            );
            arch::idt::selftest(t);
        }

        // ---- 5. VMX and the guest --------------------------------------------------
        let cpu = match vmx::enable::enable(0, &mut frames) {
            Ok(cpu) => cpu,
            Err(e) => {
                log::error!("vmx: {e}");
                power_off(e.status())
            }
        };
        log::info!(
            "vmx: VMX root operation on ({} frames free)",
            frames.free_count()
        );
        vmx::exit::note_platform();

        // ---- 6. the other CPUs: up, checked, parked -------------------------------
        if let Ok(a) = &acpi {
            let mut taken =
                [MachineRange::default(); boot_info::MAX_BOOT_DATA + boot_info::MAX_MODULES];
            let mut n = 0;
            for r in bi
                .boot_data()
                .iter()
                .chain(bi.modules().iter().map(|m| &m.range))
            {
                if let Some(slot) = taken.get_mut(n) {
                    *slot = *r;
                    n += 1;
                }
            }
            smp::bringup::bring_up(
                a.apic_ids(),
                a.enabled,
                cpu.caps(),
                bi.regions(),
                &taken[..n],
                &mut frames,
            );
        }

        // Every module is a domain (dom0less), ids from 1 in module order; its
        // command line is the guest's, and its `keel.` words configure it.
        if bi.modules().is_empty() {
            log::error!("domain: no guest image (the first boot module is the guest)");
            power_off(ExitStatus::BadGuestImage)
        }
        let domains = DOMAINS.take();
        let machines = MACHINES.try_lock().map(spin::MutexGuard::leak);
        let consoles = CONSOLES.try_lock().map(spin::MutexGuard::leak);
        let (Some(domains), Some(machines), Some(consoles)) = (domains, machines, consoles) else {
            log::error!("domain: the domain table is in use");
            power_off(ExitStatus::HypervisorPanic)
        };
        let mut mem = arch::mem::DirectMap;
        let mut n = 0;
        let mut control: Option<domain::DomainId> = None;
        let mut service = [false; vmx::run::MAX_DOMAINS];
        let mut requested = [None; vmx::run::MAX_DOMAINS];
        let mut vcpu_cpus = [None; vmx::run::MAX_DOMAINS];
        for (i, module) in bi.modules().iter().enumerate() {
            let Some(slot) = domains.get_mut(i) else {
                log::error!("domain: more than {} guest modules", vmx::run::MAX_DOMAINS);
                power_off(ExitStatus::BadGuestImage)
            };
            let id = domain::DomainId(i as u16 + 1);
            let cmd = module.cmdline.as_str();
            let dopts = boot_info::DomainOptions::parse(cmd);
            if dopts.bad_words > 0 {
                log::warn!(
                    "domain {}: {} keel. word(s) not understood",
                    id.0,
                    dopts.bad_words
                );
            }
            let Some(bytes) = arch::mem::module_bytes(module) else {
                log::error!(
                    "domain: guest module at {} is empty or unmapped",
                    module.range
                );
                power_off(ExitStatus::BadGuestImage)
            };
            let img = match elf::GuestImage::parse(bytes) {
                Ok(img) => img,
                Err(e) => {
                    log::error!("domain {}: bad guest image: {e}", id.0);
                    power_off(ExitStatus::BadGuestImage)
                }
            };
            let mib = dopts.mem_mib.unwrap_or(opts.guest_mem_mib);
            let cfg = domain::DomainConfig {
                id,
                nr_pages: mib.saturating_mul(256),
                cmd_line: module.cmdline.as_bytes(),
                nx: arch::cpu::nx_enabled(),
            };
            match domain::build(&img, bytes, &cfg, &mut mem, &mut frames) {
                Ok(dom) => *slot = Some(dom),
                Err(e) => {
                    log::error!("domain: cannot build domain {}: {e}", id.0);
                    power_off(e.exit_status())
                }
            }
            if dopts.control {
                if let Some(first) = control {
                    log::error!(
                        "domain {}: keel.control, but domain {} is already the control domain (at most one)",
                        id.0,
                        first.0
                    );
                    power_off(ExitStatus::BadGuestImage)
                }
                control = Some(id);
            }
            if let Some(s) = service.get_mut(i) {
                *s = dopts.service;
            }
            if let Some(r) = requested.get_mut(i) {
                *r = dopts.cpu;
            }
            if let Some(r) = vcpu_cpus.get_mut(i) {
                *r = dopts.vcpu_cpus;
            }
            log::info!(
                "domain {}: {:?}, {mib} MiB, command line {cmd:?}{}{}; {} frames left",
                id.0,
                boot_info::DomainOptions::name(cmd),
                if control == Some(id) {
                    ", control domain"
                } else {
                    ""
                },
                if dopts.service {
                    ", service domain"
                } else {
                    ""
                },
                frames.free_count()
            );
            n += 1;
        }
        let several = n > 1;
        // Where each domain runs (`smp::place`): its `keel.cpu=`, else the
        // online CPUs in turn with `place=spread`, else `run_cpu=` (CPU 0).
        let mut online = [0usize; arch::percpu::MAX_CPUS];
        let mut n_online = 0;
        for c in 0..arch::percpu::MAX_CPUS {
            if c == 0 || smp::bringup::online(c).is_some() {
                online[n_online] = c;
                n_online += 1;
            }
        }
        let online = &online[..n_online];
        let mut used = 0u32;
        let mut live = 0u32;
        let mut work: [WorkList; arch::percpu::MAX_CPUS] = Default::default();
        let to_run = domains
            .iter_mut()
            .zip(machines.iter_mut())
            .zip(consoles.iter_mut())
            .zip(service)
            .zip(requested.iter().zip(vcpu_cpus))
            .take(n)
            .enumerate();
        for (i, ((((d, mem), console), service), (&req, vcpu_cpus))) in to_run {
            let Some(dom) = d.as_mut() else { continue };
            let (cpu, why) = smp::place(req, i, online, opts.run_cpu, opts.spread);
            if let Some(why) = why {
                log::warn!("domain {}: {why}: it runs on CPU {cpu}", dom.id.0);
            }
            if online.len() > 1 {
                log::info!("domain {}: runs on CPU {cpu}", dom.id.0);
            }
            vmx::run::place(dom.id, cpu);
            live += u32::from(!service);
            used |= 1 << cpu;
            // Its vCPUs placed on other CPUs (`keel.vcpu_cpus=`).
            if let Some(vc) = vcpu_cpus {
                used |= place_vcpus(dom, &vc, cpu, online);
            }
            if let Some(slot) = work.get_mut(cpu).and_then(|w| w.doms.get_mut(i)) {
                *slot = Some(vmx::run::ToRun {
                    dom,
                    mem,
                    console,
                    service,
                });
            }
        }
        vmx::run::set_live_domains(live);
        let frames: &'static spin::Mutex<_> = FRAMES.call_once(|| spin::Mutex::new(frames));
        SHARED.call_once(|| Shared {
            frames,
            several,
            control,
        });
        RUNNING.store(used.count_ones(), core::sync::atomic::Ordering::Release);
        for (c, w) in work.into_iter().enumerate() {
            if used & (1 << c) == 0 {
                continue;
            }
            let apic = smp::bringup::online(c).unwrap_or(0);
            if used.count_ones() > 1 {
                vmx::lend::activate(c, apic);
            }
            if let Some(slot) = WORK.get(c) {
                *slot.lock() = Some(w);
            }
        }
        // The boot log goes out before the guests run: draining it is boot
        // time, not theirs.
        arch::serial::flush();
        for c in 1..arch::percpu::MAX_CPUS {
            if used & (1 << c) == 0 {
                continue;
            }
            let apic = smp::bringup::online(c).unwrap_or(0);
            if !arch::smp::start_on(c, apic, run_here) {
                log::error!("smp: CPU {c}: the wake-up IPI was not sent; its domains cannot run");
                power_off(ExitStatus::HypervisorPanic)
            }
        }
        if used & 1 != 0 {
            run_here();
        }
        // CPU 0 runs no domain (or has ended its own): the last CPU to finish
        // powers the machine off.
        arch::cpu::halt_forever()
    }

    /// Place domain `dom`'s vCPUs as `keel.vcpu_cpus=` asks, its own CPU being
    /// `home`: the CPUs it puts them on, as bits. vCPU 0 stays home; a CPU
    /// that is not online keeps the vCPU home (logged).
    fn place_vcpus(
        dom: &domain::Domain,
        vc: &boot_info::VcpuCpus,
        home: usize,
        online: &[usize],
    ) -> u32 {
        let mut used = 0;
        if vc.cpu(0).is_some_and(|c| c != home) {
            log::warn!(
                "domain {}: vCPU 0 runs on the domain's CPU {home} (keel.vcpu_cpus names another)",
                dom.id.0
            );
        }
        for v in 1..u32::from(dom.vcpus.count()) {
            match vc.cpu(v) {
                Some(c) if c == home => {}
                Some(c) if online.contains(&c) => {
                    smp::remote::place_vcpu(dom.id, v, c);
                    used |= 1 << c;
                    log::info!("domain {}: vCPU {v} runs on CPU {c}", dom.id.0);
                }
                Some(c) => log::warn!(
                    "domain {}: CPU {c} is not online: vCPU {v} runs on CPU {home}",
                    dom.id.0
                ),
                None => {}
            }
        }
        used
    }

    /// The domains one CPU runs (index: boot order).
    #[derive(Default)]
    struct WorkList {
        doms: [Option<vmx::run::ToRun<'static, arch::mem::DirectMap, arch::serial::SerialConsole>>;
            vmx::run::MAX_DOMAINS],
    }

    /// What every CPU that runs domains shares.
    struct Shared {
        frames: &'static spin::Mutex<keel_hypervisor::mem::frames::FrameAllocator<'static>>,
        several: bool,
        control: Option<domain::DomainId>,
    }

    static FRAMES: spin::Once<spin::Mutex<keel_hypervisor::mem::frames::FrameAllocator<'static>>> =
        spin::Once::new();
    static SHARED: spin::Once<Shared> = spin::Once::new();
    /// Each CPU's domains, taken by it when it starts.
    static WORK: [spin::Mutex<Option<WorkList>>; arch::percpu::MAX_CPUS] =
        [const { spin::Mutex::new(None) }; arch::percpu::MAX_CPUS];
    /// CPUs still running domains.
    static RUNNING: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
    /// How every domain ended, on every CPU, in the order they ended.
    static ALL_ENDS: spin::Mutex<(
        [(domain::DomainId, DomainEnd); vmx::run::MAX_DOMAINS],
        usize,
    )> = spin::Mutex::new((
        [(domain::DomainId(0), DomainEnd::EntryFailed); vmx::run::MAX_DOMAINS],
        0,
    ));

    /// Run the domains placed on the executing CPU until each has ended; the
    /// last CPU to finish powers the machine off.
    fn run_here() {
        let pc = vmx::percpu::this();
        let me = pc.index();
        let (Some(shared), Some(cpu)) = (SHARED.get(), pc.vmx()) else {
            log::error!("vmx: CPU {me} is not in VMX operation");
            power_off(ExitStatus::HypervisorPanic)
        };
        let work = WORK
            .get(me)
            .and_then(|w| w.lock().take())
            .unwrap_or_default();
        let mut frames = keel_hypervisor::mem::SharedFrames(shared.frames);
        let Some(guests) = arch::slots::slots_in_frames::<
            vmx::run::Guest<'static, arch::mem::DirectMap, arch::serial::SerialConsole>,
            { vmx::run::MAX_DOMAINS },
        >(&mut frames) else {
            log::error!("domain: no memory left for CPU {me}'s vCPU table");
            power_off(ExitStatus::HypervisorPanic)
        };
        let Some(parked) = PARKED.get(me).and_then(|g| g.take()) else {
            log::error!("domain: CPU {me}'s parked vCPU table is in use");
            power_off(ExitStatus::HypervisorPanic)
        };
        let mut idle_console = arch::serial::SerialConsole;
        // With several domains, each is torn down as it ends (its frames
        // scrubbed and freed while the others run); a last domain alone is
        // only checked: the machine powers off next. Either way every type
        // and reference count must come back to zero (`crate::paging`: no
        // cycles, so nothing can stay referenced), so every guest test run
        // checks this invariant for the state it left.
        let ends = vmx::run::run_domains(
            cpu,
            work.doms.into_iter().flatten(),
            vmx::run::CpuTables { guests, parked },
            &mut idle_console,
            &mut frames,
            shared.several,
            shared.control,
        );
        if ends.accounting_bug {
            power_off(ExitStatus::HypervisorPanic)
        }
        {
            let mut all = ALL_ENDS.lock();
            for &e in ends.ends.get(..ends.n).unwrap_or(&[]) {
                let k = all.1;
                if let Some(slot) = all.0.get_mut(k) {
                    *slot = e;
                    all.1 += 1;
                }
            }
        }
        if RUNNING.fetch_sub(1, core::sync::atomic::Ordering::AcqRel) == 1 {
            let all = ALL_ENDS.lock();
            let ended = all.0.get(..all.1).unwrap_or(&[]);
            power_off(machine_status(ended, shared.several))
        }
    }

    /// The domain table: too large for the boot stack, so a static, taken
    /// once for the rest of the run (all zeroes until then: `.bss`).
    static DOMAINS: arch::slots::EmptySlots<domain::Domain, { vmx::run::MAX_DOMAINS }> =
        arch::slots::EmptySlots::new();
    /// The parked vCPUs of several-vCPU domains, one pool per CPU.
    static PARKED: [arch::slots::EmptySlots<vmx::run::Place, { vmx::run::PARKED_PER_CPU }>;
        arch::percpu::MAX_CPUS] =
        [const { arch::slots::EmptySlots::new() }; arch::percpu::MAX_CPUS];
    /// The machine as each vCPU reaches it (the direct map: no state).
    static MACHINES: spin::Mutex<[arch::mem::DirectMap; vmx::run::MAX_DOMAINS]> =
        spin::Mutex::new([const { arch::mem::DirectMap }; vmx::run::MAX_DOMAINS]);
    /// Each vCPU's console (the serial console: no state of its own).
    static CONSOLES: spin::Mutex<[arch::serial::SerialConsole; vmx::run::MAX_DOMAINS]> =
        spin::Mutex::new([const { arch::serial::SerialConsole }; vmx::run::MAX_DOMAINS]);

    /// The power-off status: one domain's end by the contract's mapping
    /// (`domain_end_status`); several domains' by `lifecycle::machine_status`,
    /// after a line naming each one's end.
    fn machine_status(ended: &[(domain::DomainId, DomainEnd)], several: bool) -> ExitStatus {
        if !several {
            return match ended.first() {
                Some(&(id, end)) => domain_end_status(id, end),
                None => ExitStatus::VmEntryFailed,
            };
        }
        let mut ends = [(domain::DomainId(0), End::Crash); vmx::run::MAX_DOMAINS];
        let mut n = 0;
        for &(id, end) in ended {
            let _ = domain_end_status(id, end);
            // A service domain ends because the others did, and a domain the
            // control domain destroyed was ended on purpose: not verdicts.
            if matches!(end, DomainEnd::Destroyed | DomainEnd::DestroyedByControl) {
                continue;
            }
            if let Some(slot) = ends.get_mut(n) {
                *slot = (id, vmx::run::lifecycle_end(end));
                n += 1;
            }
        }
        let ends = ends.get(..n).unwrap_or(&[]);
        let status = lifecycle::machine_status(ends);
        log::info!(
            "domains: {} ended (service domains not counted); the status is by their ends (docs/abi/domains.md)",
            ends.len()
        );
        status
    }

    /// The contract's mapping from how a domain ended to the power-off status;
    /// prints `domain <id> shut down: <reason>`.
    fn domain_end_status(id: domain::DomainId, end: DomainEnd) -> ExitStatus {
        let id = id.0;
        match end {
            DomainEnd::Shutdown(r) => {
                match shutdown_reason_name(r) {
                    Some(name) => log::info!("domain {id} shut down: {name}"),
                    None => log::info!("domain {id} shut down: unknown reason {r}"),
                }
                match r {
                    SHUTDOWN_POWEROFF => ExitStatus::Success,
                    SHUTDOWN_CRASH => ExitStatus::GuestCrash,
                    _ => ExitStatus::GuestOtherShutdown,
                }
            }
            DomainEnd::Crashed => {
                log::info!("domain {id} shut down: crash (killed by the hypervisor)");
                ExitStatus::GuestCrash
            }
            DomainEnd::Destroyed => {
                log::info!(
                    "domain {id} destroyed: a service domain, once every other domain had ended"
                );
                ExitStatus::Success
            }
            DomainEnd::DestroyedByControl => {
                log::info!("domain {id} destroyed by the control domain");
                ExitStatus::GuestOtherShutdown
            }
            DomainEnd::EntryFailed => {
                log::info!("domain {id} shut down: VM entry failed");
                ExitStatus::VmEntryFailed
            }
        }
    }

    /// What a self-test should end in, for the log.
    fn vector_hint(t: SelfTest) -> &'static str {
        match t {
            SelfTest::Ud2 => "#UD",
            SelfTest::PageFault | SelfTest::NullRead | SelfTest::WriteText => "#PF",
            SelfTest::StackOverflow => "#DF",
            SelfTest::Panic => "a panic",
        }
    }

    fn log_boot_info(bi: &BootInfo, opts: &Options) {
        log::info!(
            "boot: {:?} from {:?}, command line {:?}",
            bi.protocol,
            bi.loader_name.as_str(),
            bi.cmdline.as_str()
        );
        if bi.cmdline.truncated() {
            log::warn!(
                "boot: command line truncated to {} bytes",
                boot_info::CMDLINE_MAX
            );
        }
        if opts.bad_values > 0 {
            log::warn!(
                "boot: {} command-line option(s) with a bad value ignored",
                opts.bad_values
            );
        }
        for r in bi.regions() {
            log::info!("boot: memory {} {}", r.range, r.kind.name());
        }
        log::info!(
            "boot: {} MiB usable RAM, top of RAM {:#x}",
            bi.usable_bytes() >> 20,
            bi.ram_top().get()
        );
        for (i, m) in bi.modules().iter().enumerate() {
            log::info!(
                "boot: module {i} at {} ({} bytes), command line {:?}",
                m.range,
                m.range.len(),
                m.cmdline.as_str()
            );
        }
        if bi.dropped > 0 {
            log::warn!(
                "boot: {} boot-information entries did not fit and were dropped",
                bi.dropped
            );
        }
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        arch::idt::report_panic(info)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("keel-hypervisor is a bare-metal image: build and boot it with `cargo keel run`");
    std::process::exit(2);
}
