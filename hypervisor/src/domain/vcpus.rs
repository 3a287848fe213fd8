//! # A domain's vCPUs: their states, what `VCPUOP_initialise` accepts, run states
//!
//! The policy of `vcpu_op`'s vCPU operations (ABI 1.2, in progress;
//! `docs/abi/vcpu.md`), as Xen 4.17 has it in `common/domain.c`
//! (`do_vcpu_op`, `map_vcpu_info`) and `arch/x86/domain.c`
//! (`arch_set_info_guest`), on a table of the domain's vCPUs. Pure: the
//! frames a request names are judged by a function the caller passes (the
//! domain's frame table on the hypervisor, a map in the tests), and times are
//! the caller's: the hypervisor passes TSC ticks (read where the vCPU moves,
//! on every domain switch, so nothing is converted there) and converts a
//! record to nanoseconds when the guest asks (`hypercall/vcpu.rs`).
//!
//! **States.** Xen keeps two bits per vCPU, "initialised" and "down"; Keel
//! names their three reachable combinations ([`Power`]): a vCPU that was
//! never given a context is `Offline` (down, not initialised); `VCPUOP_initialise`
//! makes it `Initialised` (still down); `VCPUOP_up` makes it `Up`; `VCPUOP_down`
//! makes it `Initialised` again (Xen never forgets a context: a downed vCPU is
//! brought back with `VCPUOP_up`, and `VCPUOP_initialise` of it is `-EEXIST`).
//! vCPU 0 starts `Up` with the boot state (`CONTRACT.md`).
//!
//! **Run states** ([`Runstate`]): one of `RUNSTATE_*` at a time, entered at a
//! time; the time spent in each is accumulated, so the sum of the four is the
//! time since the vCPU was created, whatever the order of transitions (a
//! proptest). The hypervisor enters them from the points where the run loop
//! and the exit handlers move the vCPU (`vmx/exit/sharing.rs`,
//! `vmx/exit/events.rs`).

use super::{FrameKind, Level};
use crate::addr::{GuestVirt, Mfn};
use keel_abi::time::VcpuInfo;
use keel_abi::vcpu::{
    VcpuGuestContext, VcpuRegisterVcpuInfo, VcpuRunstateInfo, RUNSTATE_OFFLINE, RUNSTATE_RUNNABLE,
    RUNSTATE_RUNNING, VGCF_IN_KERNEL, VGCF_ONLINE,
};
use keel_abi::version::AbiVersion;
use keel_abi::{Errno, PAGE_SIZE};

/// The ABI version that brings the vCPU operations (in progress:
/// `layout::IN_PROGRESS`). Only a domain served it can ask for a run state or
/// move a `vcpu_info`, so only such a domain's run state is kept.
pub const SINCE: AbiVersion = AbiVersion::V1_2;

/// The most vCPUs a domain's table holds: one per CPU Keel brings up
/// (`arch::percpu::MAX_CPUS`). Below `XEN_LEGACY_MAX_VCPUS` (32), so every
/// vCPU has a `vcpu_info` in `shared_info` and Xen's `-EINVAL` for
/// `VCPUOP_initialise` of a vCPU without one never applies.
pub const MAX_VCPUS: usize = 8;

/// The `VGCF_*` flags `VCPUOP_initialise` accepts: the vCPU starts in kernel
/// mode (required), `VGCF_online` (ignored, as Xen does).
pub const VGCF_ACCEPTED: u64 = VGCF_IN_KERNEL | VGCF_ONLINE;

/// Where a vCPU is in its life (Xen's "initialised" and "down" bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Power {
    /// Never given a context: `VCPUOP_initialise` may.
    Offline,
    /// Has a context and is down (never brought up, or brought down).
    Initialised,
    /// Runs (when the scheduler gives it a CPU).
    Up,
}

/// The register state `VCPUOP_initialise` accepted for a vCPU: what it starts
/// with when it first comes up (the rest as vCPU 0 started: selectors, CR0,
/// CR4, EFER, the FPU's reset state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartState {
    /// RAX, RBX, RCX, RDX, RSI, RDI, RBP, R8-R15, in `cpu_user_regs` order
    /// (R15 first).
    pub gprs: [u64; 15],
    /// RIP (canonical).
    pub rip: u64,
    /// RSP (canonical).
    pub rsp: u64,
    /// RFLAGS as the guest gave it with IOPL cleared and IF set (Xen's rule).
    pub rflags: u64,
    /// The L4 the vCPU runs on (`xen_cr3_to_pfn(ctrlreg[3])`): a validated L4
    /// of the domain.
    pub cr3: Mfn,
    /// FS base (canonical).
    pub fs_base: u64,
    /// GS base (canonical).
    pub gs_base: u64,
    /// The other GS base, for SWAPGS (canonical).
    pub kernel_gs_base: u64,
}

/// Where a vCPU's `vcpu_info` is, once the guest placed it
/// (`VCPUOP_register_vcpu_info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuInfoPlace {
    /// The domain's frame.
    pub mfn: Mfn,
    /// The byte offset in it (8-byte aligned, the record inside the page).
    pub offset: u64,
}

impl VcpuInfoPlace {
    /// The record's machine address.
    pub fn addr(&self) -> crate::addr::MachineAddr {
        crate::addr::MachineAddr::new(self.mfn.addr().get() + self.offset)
    }
}

/// A vCPU's run state and the time it spent in each (Xen's
/// `struct vcpu_runstate_info`, kept in the hypervisor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Runstate {
    state: u32,
    entered: u64,
    time: [u64; 4],
}

impl Runstate {
    /// A vCPU created at `now` in `state` (a `RUNSTATE_*`).
    pub const fn new(state: u32, now: u64) -> Self {
        Runstate {
            state: state & 3,
            entered: now,
            time: [0; 4],
        }
    }

    /// The current `RUNSTATE_*`.
    pub const fn state(&self) -> u32 {
        self.state
    }

    /// Enter `state` at `now`: the time since the last transition goes to
    /// the state left. A time before the last transition (two CPUs' clocks,
    /// or a caller's stale `now`) counts as no time, so the sum never runs
    /// backwards. Entering the current state changes nothing.
    #[inline(always)]
    pub fn enter(&mut self, state: u32, now: u64) {
        let state = state & 3;
        if state == self.state {
            return;
        }
        // On every domain switch: plain arithmetic (a 64-bit count of
        // nanoseconds does not overflow in five centuries).
        let spent = now.saturating_sub(self.entered);
        let slot = &mut self.time[self.state as usize & 3];
        *slot = slot.wrapping_add(spent);
        self.entered = self.entered.max(now);
        self.state = state;
    }

    /// The record at `now`, as Xen's `vcpu_runstate_get`: the current state's
    /// time includes the time since it was entered.
    pub fn info(&self, now: u64) -> VcpuRunstateInfo {
        let mut time = self.time;
        let slot = &mut time[self.state as usize & 3];
        *slot = slot.saturating_add(now.saturating_sub(self.entered));
        VcpuRunstateInfo {
            state: self.state as i32,
            state_entry_time: self.entered,
            time,
        }
    }
}

/// One vCPU of a domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuSlot {
    /// Its life.
    pub power: Power,
    /// Its run state.
    pub runstate: Runstate,
    /// Its register state from `VCPUOP_initialise` (vCPU 0: `None`, it starts
    /// with the boot state).
    pub start: Option<StartState>,
    /// Its `vcpu_info`, once placed by the guest (else `shared_info`'s entry).
    pub vcpu_info: Option<VcpuInfoPlace>,
}

/// What `VCPUOP_down` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Down {
    /// The vCPU is down now (or was already).
    Stopped,
    /// It is the domain's last vCPU up: the domain shuts down with
    /// `SHUTDOWN_poweroff` (Xen's `domain_shutdown`), and the vCPU stays up.
    PowerOff,
}

/// A domain's vCPUs: `count` of them (from its boot configuration), vCPU 0
/// up from the start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuTable {
    count: u8,
    slots: [VcpuSlot; MAX_VCPUS],
}

impl VcpuTable {
    /// `count` vCPUs (1 ..= [`MAX_VCPUS`]; out-of-range counts are clamped)
    /// created at `now`: vCPU 0 up and running, the others offline.
    /// [`Self::set_created`] moves the creation time once the clock is known.
    pub fn new(count: u8, now: u64) -> Self {
        let offline = VcpuSlot {
            power: Power::Offline,
            runstate: Runstate::new(RUNSTATE_OFFLINE, now),
            start: None,
            vcpu_info: None,
        };
        let mut slots = [offline; MAX_VCPUS];
        slots[0].power = Power::Up;
        slots[0].runstate = Runstate::new(RUNSTATE_RUNNING, now);
        VcpuTable {
            count: count.clamp(1, MAX_VCPUS as u8),
            slots,
        }
    }

    /// Every vCPU's run state starts again at `now`, with no time spent:
    /// the time the domain's vCPUs are created at, when its clock starts
    /// (the domain is built before the clock it runs on is handed to it).
    pub fn set_created(&mut self, now: u64) {
        for s in self.slots.iter_mut() {
            s.runstate = Runstate::new(s.runstate.state(), now);
        }
    }

    /// vCPU `id` enters run state `state` at `now` (nothing beyond the count).
    pub fn enter_runstate(&mut self, id: u32, state: u32, now: u64) {
        if let Ok(s) = self.get_mut(u64::from(id)) {
            s.runstate.enter(state, now);
        }
    }

    /// Whether vCPU `id` is up (false beyond the count).
    pub fn up_at(&self, id: u32) -> bool {
        self.get(u64::from(id)).is_ok_and(|s| s.power == Power::Up)
    }

    /// Whether vCPU `id` is blocked (its run state; false beyond the count).
    pub fn blocked_at(&self, id: u32) -> bool {
        self.get(u64::from(id))
            .is_ok_and(|s| s.runstate.state() == keel_abi::vcpu::RUNSTATE_BLOCKED)
    }

    /// How many vCPUs the domain has.
    pub const fn count(&self) -> u8 {
        self.count
    }

    /// The vCPU numbered `id` by the guest (`-ENOENT` beyond the count, as
    /// Xen's `domain_vcpu` check before every `vcpu_op`).
    pub fn get(&self, id: u64) -> Result<&VcpuSlot, Errno> {
        usize::try_from(id)
            .ok()
            .filter(|&i| i < usize::from(self.count))
            .and_then(|i| self.slots.get(i))
            .ok_or(Errno::ENOENT)
    }

    fn get_mut(&mut self, id: u64) -> Result<&mut VcpuSlot, Errno> {
        usize::try_from(id)
            .ok()
            .filter(|&i| i < usize::from(self.count))
            .and_then(|i| self.slots.get_mut(i))
            .ok_or(Errno::ENOENT)
    }

    /// vCPU 0 (always present).
    pub fn boot_vcpu(&self) -> &VcpuSlot {
        &self.slots[0]
    }

    /// vCPU 0, to record its run state.
    #[inline(always)]
    pub fn boot_vcpu_mut(&mut self) -> &mut VcpuSlot {
        &mut self.slots[0]
    }

    /// How many vCPUs are up.
    pub fn up_count(&self) -> usize {
        self.slots[..usize::from(self.count)]
            .iter()
            .filter(|s| s.power == Power::Up)
            .count()
    }

    /// `VCPUOP_initialise`: give vCPU `id` the context `c` (already copied
    /// from the guest: `-EFAULT` is the caller's). `-ENOENT` beyond the
    /// count, `-EEXIST` if it has a context (vCPU 0 always has), `-EINVAL`
    /// for a context Keel refuses ([`check_context`]). The vCPU stays down.
    pub fn initialise(
        &mut self,
        id: u64,
        c: &VcpuGuestContext,
        frame: impl Fn(Mfn) -> FrameKind,
    ) -> Result<(), Errno> {
        let slot = self.get_mut(id)?;
        if slot.power != Power::Offline || id == 0 {
            return Err(Errno::EEXIST);
        }
        let start = check_context(c, frame)?;
        slot.start = Some(start);
        slot.power = Power::Initialised;
        Ok(())
    }

    /// `VCPUOP_up`: `-ENOENT` beyond the count, `-EINVAL` if never
    /// initialised; an up vCPU stays up (0). The vCPU becomes runnable at `now`.
    pub fn up(&mut self, id: u64, now: u64) -> Result<(), Errno> {
        let slot = self.get_mut(id)?;
        match slot.power {
            Power::Offline => Err(Errno::EINVAL),
            Power::Up => Ok(()),
            Power::Initialised => {
                slot.power = Power::Up;
                slot.runstate.enter(RUNSTATE_RUNNABLE, now);
                Ok(())
            }
        }
    }

    /// `VCPUOP_down`: `-ENOENT` beyond the count. The last vCPU up powers the
    /// domain off instead ([`Down::PowerOff`]), as Xen does; a vCPU not up
    /// stays as it is (0), another goes down at `now`.
    pub fn down(&mut self, id: u64, now: u64) -> Result<Down, Errno> {
        let others_up = self.slots[..usize::from(self.count)]
            .iter()
            .enumerate()
            .any(|(i, s)| i as u64 != id && s.power == Power::Up);
        let slot = self.get_mut(id)?;
        if !others_up {
            return Ok(Down::PowerOff);
        }
        if slot.power == Power::Up {
            slot.power = Power::Initialised;
            slot.runstate.enter(RUNSTATE_OFFLINE, now);
        }
        Ok(Down::Stopped)
    }

    /// `VCPUOP_is_up`: `-ENOENT` beyond the count.
    pub fn is_up(&self, id: u64) -> Result<bool, Errno> {
        Ok(self.get(id)?.power == Power::Up)
    }

    /// `VCPUOP_get_runstate_info` at `now`: `-ENOENT` beyond the count.
    pub fn runstate(&self, id: u64, now: u64) -> Result<VcpuRunstateInfo, Errno> {
        Ok(self.get(id)?.runstate.info(now))
    }

    /// `VCPUOP_register_vcpu_info` for vCPU `id`, called by vCPU `caller`
    /// (Xen 4.17's `map_vcpu_info`): `-ENOENT` beyond the count; `-ENXIO`
    /// for an offset whose record would leave the page or is not 8-byte
    /// aligned; `-EINVAL` if it was placed already, if the vCPU is another
    /// that is up, or if the frame is not an ordinary writable frame of the
    /// domain (another's, a page table). Records the place; moving the
    /// record's contents is the caller's.
    pub fn register_vcpu_info(
        &mut self,
        id: u64,
        caller: u64,
        req: &VcpuRegisterVcpuInfo,
        frame: impl Fn(Mfn) -> FrameKind,
    ) -> Result<VcpuInfoPlace, Errno> {
        let slot = self.get_mut(id)?;
        let size = core::mem::size_of::<VcpuInfo>() as u64;
        let offset = u64::from(req.offset);
        if offset > PAGE_SIZE - size {
            return Err(Errno::ENXIO);
        }
        if !offset.is_multiple_of(core::mem::align_of::<VcpuInfo>() as u64) {
            return Err(Errno::ENXIO);
        }
        if slot.vcpu_info.is_some() {
            return Err(Errno::EINVAL);
        }
        if id != caller && slot.power == Power::Up {
            return Err(Errno::EINVAL);
        }
        let mfn = Mfn::from_guest(req.mfn).map_err(|_| Errno::EINVAL)?;
        if frame(mfn) != FrameKind::Writable {
            return Err(Errno::EINVAL);
        }
        let place = VcpuInfoPlace { mfn, offset };
        slot.vcpu_info = Some(place);
        Ok(place)
    }
}

/// What Keel accepts of a `vcpu_guest_context` (its `arch_set_info_guest`
/// for a 64-bit PV vCPU), or `-EINVAL`:
///
/// - every address Xen checks is canonical: RIP, RSP, `kernel_sp`,
///   `ldt_base`, the FS and GS bases, the three callbacks, every `trap_ctxt`
///   handler;
/// - `flags` is `VGCF_in_kernel`, with `VGCF_online` or not: a Keel vCPU
///   starts in its kernel, and its FPU in the reset state;
/// - `ctrlreg[3]` names (as `pfn << 12`, low bits clear) an L4 of the
///   domain that is validated already (pinned, as `MMUEXT_NEW_BASEPTR`
///   requires): Xen validates it on the spot;
/// - the state of PV mechanisms Keel guests do not have is zero: the virtual
///   IDT (`trap_ctxt`), the LDT and GDT frames, the ring-1 stack
///   (`kernel_ss`, `kernel_sp`), the user page table (`ctrlreg[1]`), debug
///   registers, the callbacks and `vm_assist`.
///
/// Ignored, as the vCPU starts with vCPU 0's boot values: the selectors,
/// `ctrlreg[0]`, `[2]`, `[4]` to `[7]` (Xen keeps only CR0.TS and fixes
/// CR4), `error_code`, `entry_vector`, `saved_upcall_mask`, `fpu_ctxt`.
pub fn check_context(
    c: &VcpuGuestContext,
    frame: impl Fn(Mfn) -> FrameKind,
) -> Result<StartState, Errno> {
    let canonical = |v: u64| GuestVirt::new(v).is_canonical();
    let r = &c.user_regs;
    let addresses = [
        r.rip,
        r.rsp,
        c.kernel_sp,
        c.ldt_base,
        c.fs_base,
        c.gs_base_kernel,
        c.gs_base_user,
        c.event_callback_eip,
        c.syscall_callback_eip,
        c.failsafe_callback_eip,
    ];
    if !addresses.into_iter().all(canonical) || !c.trap_ctxt.iter().all(|t| canonical(t.address)) {
        return Err(Errno::EINVAL);
    }
    if c.flags & !VGCF_ACCEPTED != 0 || c.flags & VGCF_IN_KERNEL == 0 {
        return Err(Errno::EINVAL);
    }
    let pv_state_zero = c.trap_ctxt.iter().all(|t| *t == Default::default())
        && c.ldt_base == 0
        && c.ldt_ents == 0
        && c.gdt_frames.iter().all(|&f| f == 0)
        && c.gdt_ents == 0
        && c.kernel_ss == 0
        && c.kernel_sp == 0
        && c.ctrlreg[1] == 0
        && c.debugreg.iter().all(|&d| d == 0)
        && c.event_callback_eip == 0
        && c.failsafe_callback_eip == 0
        && c.syscall_callback_eip == 0
        && c.vm_assist == 0;
    if !pv_state_zero {
        return Err(Errno::EINVAL);
    }
    let cr3 = c.ctrlreg[3];
    if cr3 & (PAGE_SIZE - 1) != 0 {
        return Err(Errno::EINVAL);
    }
    let root = Mfn::from_guest(cr3 >> 12).map_err(|_| Errno::EINVAL)?;
    if frame(root) != FrameKind::PageTable(Level::L4) {
        return Err(Errno::EINVAL);
    }
    const IOPL: u64 = 3 << 12;
    const IF: u64 = 1 << 9;
    Ok(StartState {
        gprs: [
            r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx,
            r.rdx, r.rsi, r.rdi,
        ],
        rip: r.rip,
        rsp: r.rsp,
        rflags: (r.rflags & !IOPL) | IF,
        cr3: root,
        fs_base: c.fs_base,
        gs_base: c.gs_base_kernel,
        kernel_gs_base: c.gs_base_user,
    })
}

#[cfg(test)]
mod tests;
