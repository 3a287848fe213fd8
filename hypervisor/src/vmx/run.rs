//! # Running a domain
//!
//! [`run_domain`] builds the VMCS (`setup`), checks it in software (`checks`, on
//! what `readback` reads), starts time and events, and launches the guest on this
//! CPU with a [`Vcpu`] handling its exits (`stub`, `exit`). It returns when the
//! domain has ended, with the VMCS cleared and its frames given back.

use core::sync::atomic::Ordering::Relaxed;

use super::bitmaps::{build_msr_bitmap, ones_frame};
use super::checks::check_vm_entry;
use super::control_bits::PinbasedControls;
use super::controls::TlbFlush;
use super::exit::{msr_env, Vcpu};
use super::frame::{DomainEnd, GuestGprs};
use super::insn::{invvpid, vm_result, InvvpidType};
use super::percpu::{self, PerCpu, VmxCpu, COUNTED_EXIT_REASONS};
use super::readback::read_state;
use super::setup::{clear_vmcs, host_efer_for_guest, load_vmcs, setup_vmcs, VmcsFrames};
use super::stub::{launch, Leave};
use crate::domain::Domain;
use crate::mem::{Console, FrameSource, PhysMem};

/// Run `dom` on this CPU (in VMX operation: `enable::enable`) until it shuts
/// down, crashes, or cannot be entered.
pub fn run_domain(
    dom: &mut Domain,
    mem: &mut impl PhysMem,
    console: &mut impl Console,
    frames: &mut impl FrameSource,
) -> DomainEnd {
    let pc = percpu::this();
    let Some(cpu) = pc.vmx() else {
        log::error!("vmx: CPU {} is not in VMX operation", pc.index());
        return DomainEnd::EntryFailed;
    };
    // --- The VMCS region: a zeroed frame starting with the revision identifier,
    // VMCLEARed (which also initializes its launch state) and made current.
    let Some(vmcs) = frames.alloc_frame() else {
        log::error!("vmx: no free frame for the VMCS");
        return DomainEnd::EntryFailed;
    };
    mem.zero_frame(vmcs);
    mem.write(vmcs.addr(), &cpu.caps.revision_id.to_le_bytes());
    let mut vf = VmcsFrames {
        vmcs,
        msr_bitmap: None,
        io_bitmaps: None,
    };
    if cpu.controls.msr_bitmaps {
        vf.msr_bitmap = build_msr_bitmap(frames, mem, &msr_env(cpu));
    }
    if cpu.controls.io_bitmaps {
        vf.io_bitmaps = ones_frame(frames, mem).zip(ones_frame(frames, mem));
    }
    if (cpu.controls.msr_bitmaps && vf.msr_bitmap.is_none())
        || (cpu.controls.io_bitmaps && vf.io_bitmaps.is_none())
    {
        log::error!("vmx: no free frames for the MSR/I/O bitmaps");
        vf.free(frames);
        return DomainEnd::EntryFailed;
    }
    if let Err(e) = load_vmcs(pc, vmcs) {
        log::error!(
            "vmx: VMCLEAR/VMPTRLD of the VMCS at {:#x} failed: {e}",
            vmcs.addr().get()
        );
        vf.free(frames);
        return DomainEnd::EntryFailed;
    }

    // VPID: the domain id (0 would mean "no VPID", so domain 0 would get 0xffff).
    let vpid = if dom.id.0 == 0 { 0xffff } else { dom.id.0 };

    if !cpu.controls.load_efer {
        host_efer_for_guest(dom.nx_enabled());
    }

    if let Err((field, e)) = setup_vmcs(pc, cpu, dom, vpid, &vf) {
        log::error!("vmx: VMWRITE of VMCS field {field:#x} failed: {e}");
        return finish(pc, vf, frames, DomainEnd::EntryFailed);
    }

    // --- The software VM-entry checks, on what the CPU actually holds.
    let state = read_state(cpu);
    if let Err(f) = check_vm_entry(&state, &cpu.caps) {
        log::error!("vmx: VM-entry check failed: {f}");
        return finish(pc, vf, frames, DomainEnd::EntryFailed);
    }
    log::info!(
        "vmx: VMCS for domain {} passes the software VM-entry checks (pin {:#x} proc {:#x} proc2 {:#x} exit {:#x} entry {:#x}; host CR0 {:#x} CR4 {:#x})",
        dom.id.0,
        state.pin,
        state.proc,
        state.proc2,
        state.exit,
        state.entry,
        state.host_cr0,
        state.host_cr4
    );

    // An earlier domain may have used this VPID: drop its translations.
    if cpu.controls.vpid {
        let ty = match cpu.controls.tlb_flush {
            TlbFlush::InvvpidAllContext => InvvpidType::AllContext,
            _ if cpu.caps.ept_vpid.invvpid_single_context() => InvvpidType::SingleContext,
            _ => InvvpidType::AllContext,
        };
        if let Err(e) = invvpid(ty, vpid, 0) {
            log::error!("vmx: INVVPID before the first entry failed: {e}");
            return finish(pc, vf, frames, DomainEnd::EntryFailed);
        }
    }

    // --- Run: `launch` returns when the domain is over.
    let (dom_id, entry, start_info) = (dom.id.0, dom.boot.entry.get(), dom.boot.start_info.get());
    let ev = start_time_and_events(dom, mem, cpu);
    let mut vcpu = Vcpu::new(cpu, dom, mem, console, vpid, ev);
    log::info!("vmx: entering domain {dom_id} at {entry:#x}");
    let gprs = GuestGprs {
        rsi: start_info,
        ..GuestGprs::ZERO
    };
    let end = match launch(pc, &mut vcpu, gprs) {
        Leave::DomainEnded(end) => end,
        leave @ (Leave::LaunchFailed(rflags) | Leave::ResumeFailed(rflags)) => {
            let what = if matches!(leave, Leave::LaunchFailed(_)) {
                "VMLAUNCH"
            } else {
                "VMRESUME"
            };
            match vm_result(rflags) {
                Err(e) => log::error!("vmx: {what} failed: {e}"),
                Ok(()) => log::error!("vmx: {what} failed with RFLAGS {rflags:#x}"),
            }
            if matches!(leave, Leave::LaunchFailed(_)) {
                // Which check did the CPU apply that Keel's software does not?
                let again = read_state(cpu);
                match check_vm_entry(&again, &cpu.caps) {
                    Ok(()) => log::error!("vmx: the software VM-entry checks pass: the CPU applied a check Keel does not model"),
                    Err(f) => log::error!("vmx: VM-entry check now fails: {f}"),
                }
            }
            DomainEnd::EntryFailed
        }
        Leave::Unexpected(code) => {
            log::error!("vmx: unexpected return {code} from the VM-entry path");
            DomainEnd::Crashed
        }
    };
    finish(pc, vf, frames, end)
}

/// The hardware set-up before the first entry: mask the PIC, calibrate the
/// TSC against the PIT, read the RTC, enable the local APIC and its timer, and
/// make the domain's event state (shared_info page, pvclock, wall clock).
fn start_time_and_events(
    dom: &Domain,
    mem: &mut impl PhysMem,
    cpu: &VmxCpu,
) -> crate::event::EventState {
    use crate::arch::timer;
    timer::mask_pic();
    // 50 ms of PIT ticks.
    let pit = (timer::PIT_HZ / 20) as u16;
    let (tsc_ticks, pit_ticks) = timer::calibrate_tsc(pit);
    let hz = crate::time::calibrate(tsc_ticks, pit_ticks, timer::PIT_HZ).unwrap_or(1_000_000_000);
    crate::arch::serial::set_tsc_hz(hz);
    let tsc0 = timer::rdtsc();
    let clock = crate::time::Clock::new(tsc0, hz);
    let rtc = timer::read_rtc();
    let wall = crate::time::rtc_to_unix(rtc).unwrap_or(0);
    let deadline = timer::init_lapic();
    log::info!(
        "time: TSC {} kHz (PIT, 50 ms), scale mul {:#x} shift {}; wall clock {} ({:04}-{:02}-{:02} {:02}:{:02}:{:02} RTC); local APIC timer {}; guest timers via {}",
        hz / 1000,
        clock.scale.mul,
        clock.scale.shift,
        wall,
        rtc.year,
        rtc.month,
        rtc.day,
        rtc.hour,
        rtc.min,
        rtc.sec,
        if deadline { "TSC-deadline" } else { "one-shot" },
        if cpu.caps.pin.can_set(PinbasedControls::PREEMPTION_TIMER) {
            "the VMX-preemption timer"
        } else {
            "the local APIC timer (no VMX-preemption timer)"
        }
    );
    let ev = crate::event::EventState::new(dom, mem, clock, wall);
    match ev.shared {
        Some(m) => log::info!("events: shared_info at machine {:#x}", m.addr().get()),
        None => log::warn!(
            "events: domain {} has no free frame for shared_info: no events",
            dom.id.0
        ),
    }
    ev
}

/// VMCLEAR the VMCS (writes its state back to memory and makes it not current),
/// give its frames back, and report how the run ended.
fn finish(pc: &PerCpu, vf: VmcsFrames, frames: &mut impl FrameSource, end: DomainEnd) -> DomainEnd {
    if let Err(e) = clear_vmcs(pc) {
        // Do not reuse a frame the CPU may still cache.
        log::error!("vmx: VMCLEAR at domain end failed: {e}; leaking the VMCS frame");
        return end;
    }
    vf.free(frames);
    log::info!(
        "vmx: {} exits, {} VMREADs, {} VMWRITEs",
        pc.stats.total_exits(),
        pc.stats.vmreads.load(Relaxed),
        pc.stats.vmwrites.load(Relaxed)
    );
    // By reason, so a benchmark can be checked for the exits it should (not) cause,
    // e.g. that a pass-through WRMSR never exits.
    for (basic, c) in pc.stats.exits.iter().enumerate() {
        let n = c.load(Relaxed);
        if n != 0 {
            let basic = basic as u16;
            log::info!(
                "vmx:   {n} exits for reason {basic} ({}{})",
                super::names::exit_reason_name(basic),
                if usize::from(basic) == COUNTED_EXIT_REASONS - 1 {
                    " or higher"
                } else {
                    ""
                }
            );
        }
    }
    end
}
