//! One nested boot: Bochs started on the image, the console followed as it
//! grows, each guest's result handed on as soon as its run ends.

use super::conf::{bochsrc, l0_cpus, module_list_len};
use super::image::image;
use super::transcript::{outcome, split_runs, Transcript};
use super::{Plan, BOOT_ALLOWANCE, L0_CPU_MODEL, L0_IPS, L0_MEGS, MODULE_LIST_MAX, SILENCE_LIMIT};
use crate::bochs;
use crate::console;
use crate::error::{Context, Result};
use crate::machine::{EmulatorEnd, Outcome};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The result of one nested boot.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Every requested guest, in the plan's order: its outcome, or why it has none.
    pub outcomes: Vec<(String, std::result::Result<Outcome, String>)>,
    /// What the console said.
    pub transcript: Transcript,
    /// How Bochs ended.
    pub bochs: EmulatorEnd,
    /// Wall time of the Bochs run.
    pub wall: Duration,
}

/// Boot the nested machine for `plan`. The whole console (Linux, /init, every
/// QEMU run) is copied to `echo` as it arrives; progress and the phase timings go
/// to `log`; each guest's result is handed to `on_result` (with its index in the
/// plan) as soon as its run ends.
pub fn run(
    ws_root: &Path,
    plan: &Plan<'_>,
    echo: &mut dyn Write,
    log: &mut dyn Write,
    on_result: &mut dyn FnMut(usize, &std::result::Result<Outcome, String>),
) -> Result<Batch> {
    for g in plan.guests {
        crate::machine::check_guest_name(&g.name)?;
        for c in &g.companions {
            crate::machine::check_guest_name(&c.name)?;
        }
        let modules = module_list_len(g);
        if modules >= MODULE_LIST_MAX {
            crate::bail!(
                "{}: its modules take {modules} bytes in QEMU's -initrd; /init holds {MODULE_LIST_MAX}",
                g.name
            );
        }
    }
    let (iso, nonce) = image(ws_root, plan, log)?;
    let dir = crate::machine::RunDir::new("nested")?;
    std::fs::write(
        dir.path.join("bochsrc"),
        bochsrc(
            &iso.display().to_string(),
            "serial.txt",
            "bochs.log",
            l0_cpus(plan),
        ),
    )?;
    std::fs::write(dir.path.join("rc"), bochs::RC_SCRIPT)?;
    let out = std::fs::File::create(dir.path.join("emulator.out"))?;
    let limit = BOOT_ALLOWANCE + plan.per_guest_timeout * plan.guests.len() as u32;
    let _ = writeln!(
        log,
        "[keel] nested: booting Linux/KVM under Bochs {L0_CPU_MODEL} ({} CPU(s), {L0_MEGS} MiB, ips {L0_IPS}); {} QEMU run(s); limit {}s",
        l0_cpus(plan),
        plan.guests.len(),
        limit.as_secs()
    );
    let started = Instant::now();
    let child = Command::new("bochs-bin")
        .args(["-q", "-f", "bochsrc", "-rc", "rc"])
        .current_dir(&dir.path)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("starting bochs-bin")?;
    let mut child = crate::machine::Reaper(child);
    let serial = dir.path.join("serial.txt");
    let tag = format!("NK-{nonce}: ");
    let mut bytes: Vec<u8> = Vec::new();
    let mut file: Option<std::fs::File> = None;
    let mut scanned = 0usize;
    let mut last_news = Instant::now();
    let mut first_line: Option<Duration> = None;
    let mut run_started: Option<Instant> = None;
    let mut walls: BTreeMap<usize, Duration> = BTreeMap::new();
    let mut reported = 0usize;
    let mut done_at: Option<Instant> = None;
    let bochs_end = loop {
        let exited = child.0.try_wait().context("waiting for bochs-bin")?;
        if file.is_none() {
            file = std::fs::File::open(&serial).ok();
        }
        if let Some(f) = file.as_mut() {
            let before = bytes.len();
            f.seek(SeekFrom::Start(before as u64))?;
            f.read_to_end(&mut bytes)?;
            if bytes.len() > before {
                last_news = Instant::now();
                first_line.get_or_insert(started.elapsed());
                let fresh: Vec<u8> = bytes[before..]
                    .iter()
                    .copied()
                    .filter(|&b| b != b'\r')
                    .collect();
                let _ = echo.write_all(&fresh);
                let _ = echo.flush();
            }
        }
        // Look at the complete new lines for brackets.
        if let Some(end) = bytes.iter().rposition(|&b| b == b'\n') {
            if end + 1 > scanned {
                let text = String::from_utf8_lossy(&bytes[scanned..end + 1]).into_owned();
                scanned = end + 1;
                for line in console::lines(&text) {
                    let Some(rest) = line.strip_prefix(&tag) else {
                        continue;
                    };
                    if rest.starts_with("start ") {
                        run_started = Some(Instant::now());
                    } else if rest.starts_with("exit ") {
                        let i = walls.len();
                        walls.insert(
                            i,
                            run_started.take().map_or(Duration::ZERO, |t| t.elapsed()),
                        );
                    } else if rest.starts_with("done ") {
                        done_at = Some(Instant::now());
                    } else if rest.starts_with("phase ") {
                        let _ = writeln!(
                            log,
                            "[keel] nested: {} at {:.0}s wall",
                            rest,
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
                // Results of runs whose diagnostics are complete (the next
                // run has started, or /init is done).
                let t = split_runs(&String::from_utf8_lossy(&bytes), &nonce);
                let complete = if t.done {
                    t.runs.len()
                } else {
                    t.runs.len().saturating_sub(1)
                };
                while reported < complete.min(t.runs.len()) {
                    let (_, rec) = &t.runs[reported];
                    if rec.end.is_none() {
                        break;
                    }
                    let w = walls.get(&reported).copied().unwrap_or_default();
                    let _ = writeln!(
                        log,
                        "[keel] nested: {} ran: wall {:.1}s, {}",
                        t.runs[reported].0,
                        w.as_secs_f64(),
                        rec.timing()
                    );
                    on_result(reported, &Ok(outcome(rec, EmulatorEnd::Exited(0), w)));
                    reported += 1;
                }
            }
        }
        if let Some(st) = exited {
            break st
                .code()
                .map_or(EmulatorEnd::Signalled, EmulatorEnd::Exited);
        }
        if done_at.is_some_and(|t| t.elapsed() > Duration::from_secs(60)) {
            break EmulatorEnd::StoppedAfterPowerOff;
        }
        if started.elapsed() > limit
            || (first_line.is_some() && last_news.elapsed() > SILENCE_LIMIT)
        {
            break EmulatorEnd::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(child);
    let wall = started.elapsed();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let transcript = split_runs(&text, &nonce);
    let bochs_out = std::fs::read_to_string(dir.path.join("emulator.out")).unwrap_or_default();
    let mut outcomes = Vec::new();
    for (i, g) in plan.guests.iter().enumerate() {
        let rec = transcript.runs.get(i).filter(|(n, _)| *n == g.name);
        let r = match rec {
            Some((_, rec)) => Ok(outcome(
                rec,
                bochs_end,
                walls.get(&i).copied().unwrap_or_default(),
            )),
            None => Err(format!(
                "the nested machine stopped before this guest ran (Bochs {bochs_end} after {:.0}s; {}); last console lines:\n{}\nBochs:\n{}",
                wall.as_secs_f64(),
                if transcript.errors.is_empty() {
                    "no /init error".to_string()
                } else {
                    transcript.errors.join("; ")
                },
                console::tail(&text, 10),
                console::tail(&bochs_out, 5)
            )),
        };
        if i >= reported {
            on_result(i, &r);
        }
        outcomes.push((g.name.clone(), r));
    }
    let _ = writeln!(
        log,
        "[keel] nested: Bochs {bochs_end} after {:.0}s wall (first console line at {:.0}s); emulated: {}; kvm_intel {}",
        wall.as_secs_f64(),
        first_line.unwrap_or_default().as_secs_f64(),
        transcript
            .phases
            .iter()
            .map(|(n, s)| format!("{n} {s:.1}s"))
            .collect::<Vec<_>>()
            .join(", "),
        transcript.kvm_intel.join(" ")
    );
    for e in &transcript.errors {
        let _ = writeln!(log, "[keel] nested: /init: {e}");
    }
    Ok(Batch {
        outcomes,
        transcript,
        bochs: bochs_end,
        wall,
    })
}
