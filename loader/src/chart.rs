//! `cargo keel bench --svg FILE`: Keel's figures beside the peer hypervisors'
//! (`shared/peers/figures.json`: KVM and Xen measured in the same Bochs model),
//! drawn with plotters' SVG backend.
//!
//! Only plotters' SVG backend is used, without its font features: the SVG holds
//! `<text>` elements that the viewer lays out, so building the tool needs no
//! font library (fontconfig, freetype) that a fresh Debian lacks.
//!
//! Which Keel figure stands beside which peer figure is the table [`GROUPS`]:
//! the peers' operations and Keel's closest benchmark of the same work.

use crate::bench::Report;
use crate::error::{Context, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the peer figures are, relative to a directory above the clone.
pub const PEERS_PATH: &str = "shared/peers/figures.json";
/// The machine the peer figures were measured on (the file's `about` says so).
pub const PEERS_BACKEND: &str = "bochs";
/// The CPU model of the peer figures.
pub const PEERS_CPU_MODEL: &str = "corei7_skylake_x";

/// One group of bars: an operation, the peers' figure names for it (the first
/// that a peer has is used), and Keel's figure for the same work.
#[derive(Clone, Copy, Debug)]
pub struct Group {
    /// The operation.
    pub title: &'static str,
    /// The peer figure names, in order of preference, with a note for the label.
    pub peer_keys: &'static [(&'static str, &'static str)],
    /// Keel's figure (`program/name`) and what it is.
    pub keel: (&'static str, &'static str),
}

/// The groups the chart draws.
pub const GROUPS: &[Group] = &[
    Group {
        title: "null hypercall",
        peer_keys: &[("null_hypercall", "")],
        keel: ("bench_hypercalls/xen_version", "xen_version"),
    },
    Group {
        title: "CPUID (leaf 0)",
        peer_keys: &[("cpuid", "")],
        keel: ("bench_policy/cpuid_0", "CPUID exit"),
    },
    Group {
        title: "port write (OUT)",
        peer_keys: &[
            ("port_write", ""),
            ("port_write_to_userspace", "to userspace"),
        ],
        keel: ("bench_policy/out_0x80", "OUT 0x80"),
    },
];

/// The peer figures file.
#[derive(Clone, Debug, Deserialize)]
pub struct Peers {
    /// How they were measured.
    #[serde(default)]
    pub about: String,
    /// Their unit.
    pub unit: String,
    /// Each peer configuration.
    pub peers: Vec<Peer>,
}

/// One peer configuration.
#[derive(Clone, Debug, Deserialize)]
pub struct Peer {
    /// The hypervisor and how the guest reaches it.
    pub name: String,
    /// `default` or `off`.
    #[serde(default)]
    pub mitigations: String,
    /// Figure name -> instructions per operation.
    pub figures: BTreeMap<String, f64>,
}

/// Read the peer figures.
pub fn load_peers(path: &Path) -> Result<Peers> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The peer figures for a clone at `root`: `../shared/peers/figures.json` (where
/// CI puts them beside the clone), or the same path beside any directory above
/// it (a worktree deeper down).
pub fn find_peers(root: &Path) -> Option<PathBuf> {
    root.ancestors()
        .skip(1)
        .map(|d| d.join(PEERS_PATH))
        .find(|p| p.is_file())
}

/// One bar.
struct Bar {
    label: String,
    value: f64,
    color: RGBColor,
}

const KEEL: RGBColor = RGBColor(0x1f, 0x5f, 0xa8);

fn peer_color(name: &str, mitigations: &str) -> RGBColor {
    let base = if name.starts_with("KVM") {
        (0xd9, 0x6c, 0x1c)
    } else if name.contains("PV") {
        (0x7b, 0x4f, 0xa6)
    } else {
        (0x3a, 0x8f, 0x4a)
    };
    if mitigations == "off" {
        // Lighter: the same hypervisor without speculation mitigations.
        let l = |c: u8| c + (255 - c) / 2;
        RGBColor(l(base.0), l(base.1), l(base.2))
    } else {
        RGBColor(base.0, base.1, base.2)
    }
}

fn groups_of(report: &Report, peers: &Peers) -> Vec<(&'static str, Vec<Bar>)> {
    GROUPS
        .iter()
        .map(|g| {
            let mut bars = Vec::new();
            if let Some(m) = report.get(g.keel.0).and_then(|f| f.measured()) {
                bars.push(Bar {
                    label: format!("Keel ({})", g.keel.1),
                    value: m.cost(),
                    color: KEEL,
                });
            }
            for p in &peers.peers {
                let Some((v, note)) = g
                    .peer_keys
                    .iter()
                    .find_map(|(k, note)| p.figures.get(*k).map(|v| (*v, *note)))
                else {
                    continue;
                };
                let mut label = p.name.clone();
                if !p.mitigations.is_empty() {
                    label += &format!(", mitigations {}", p.mitigations);
                }
                if !note.is_empty() {
                    label += &format!(", {note}");
                }
                bars.push(Bar {
                    label,
                    value: v,
                    color: peer_color(&p.name, &p.mitigations),
                });
            }
            (g.title, bars)
        })
        .filter(|(_, bars)| !bars.is_empty())
        .collect()
}

const WIDTH: i32 = 1040;
const LABEL_W: i32 = 470;
const BAR_X: i32 = LABEL_W + 10;
const BAR_MAX: i32 = WIDTH - BAR_X - 80;
const ROW: i32 = 22;
const GROUP_GAP: i32 = 34;
const TOP: i32 = 64;

/// The chart as an SVG document. The figures must come from the peers' machine
/// (Bochs, corei7_skylake_x): instruction counts of another model, or cycles,
/// do not compare.
pub fn svg(report: &Report, peers: &Peers) -> Result<String> {
    if report.machine.backend != PEERS_BACKEND || report.machine.cpu_model != PEERS_CPU_MODEL {
        crate::usage_bail!(
            "the peer figures were measured on {PEERS_BACKEND} cpu {PEERS_CPU_MODEL}; this run is on {} cpu {}: --svg needs --backend {PEERS_BACKEND} --cpu-model {PEERS_CPU_MODEL}",
            report.machine.backend,
            report.machine.cpu_model
        );
    }
    let groups = groups_of(report, peers);
    if !groups
        .iter()
        .any(|(_, b)| b.iter().any(|b| b.color == KEEL))
    {
        crate::usage_bail!(
            "no figure of this run compares with the peers' ({}): run their programs too",
            GROUPS
                .iter()
                .map(|g| g.keel.0)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let rows: i32 = groups.iter().map(|(_, b)| b.len() as i32 + 1).sum();
    let height = TOP + rows * ROW + groups.len() as i32 * GROUP_GAP + 40;
    let mut out = String::new();
    {
        let root =
            SVGBackend::with_string(&mut out, (WIDTH as u32, height as u32)).into_drawing_area();
        let err = |e: DrawingAreaErrorKind<_>| anyhow::anyhow!("drawing the chart: {e:?}");
        root.fill(&WHITE).map_err(err)?;
        let font = |size: i32| ("sans-serif", size).into_font();
        let left = |size| TextStyle::from(font(size)).pos(Pos::new(HPos::Left, VPos::Center));
        let right = |size| TextStyle::from(font(size)).pos(Pos::new(HPos::Right, VPos::Center));
        root.draw(&Text::new(
            "Keel and peer hypervisors: instructions per operation",
            (12, 20),
            left(24),
        ))
        .map_err(err)?;
        root.draw(&Text::new(
            format!(
                "Bochs 2.7, {PEERS_CPU_MODEL}: the guest's TSC counts emulated instructions (a VM exit and entry count 4); shorter is faster; each group has its own scale"
            ),
            (12, 42),
            left(14).color(&RGBColor(90, 90, 90)),
        ))
        .map_err(err)?;
        let mut y = TOP;
        for (title, bars) in &groups {
            let max = bars.iter().map(|b| b.value).fold(0.0, f64::max).max(1.0);
            root.draw(&Text::new(title.to_string(), (12, y + ROW / 2), left(18)))
                .map_err(err)?;
            y += ROW;
            for b in bars {
                let w = ((b.value / max) * f64::from(BAR_MAX)).round().max(1.0) as i32;
                root.draw(&Text::new(
                    b.label.clone(),
                    (LABEL_W, y + ROW / 2),
                    right(15),
                ))
                .map_err(err)?;
                root.draw(&Rectangle::new(
                    [(BAR_X, y + 3), (BAR_X + w, y + ROW - 3)],
                    b.color.filled(),
                ))
                .map_err(err)?;
                root.draw(&Text::new(
                    format!("{:.0}", b.value),
                    (BAR_X + w + 6, y + ROW / 2),
                    left(15),
                ))
                .map_err(err)?;
                y += ROW;
            }
            y += GROUP_GAP;
        }
        root.draw(&Text::new(
            format!("peers: {}", PEERS_PATH),
            (12, height - 16),
            left(13).color(&RGBColor(90, 90, 90)),
        ))
        .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{Figure, MachineId, Measure, Measured};

    fn report(cpu: &str) -> Report {
        let fig = |key: &str, cost: f64| {
            let (program, name) = key.split_once('/').unwrap();
            Figure {
                program: program.into(),
                name: name.into(),
                measure: Measure::Measured(Measured::timing(1, 1, [cost; 5])),
            }
        };
        Report {
            machine: MachineId {
                backend: "bochs".into(),
                cpu_model: cpu.into(),
                ips: 2_000_000,
            },
            runs: 1,
            rustc: None,
            figures: vec![
                fig("bench_hypercalls/xen_version", 194.0),
                fig("bench_policy/cpuid_0", 189.0),
            ],
        }
    }

    fn peers() -> Peers {
        serde_json::from_str(
            r#"{"unit": "instructions per operation", "peers": [
                {"name": "KVM (Linux 6.1, in-kernel)", "mitigations": "default",
                 "figures": {"null_hypercall": 1098, "cpuid": 1059, "port_write_to_userspace": 7260}},
                {"name": "Xen 4.17 PV guest", "mitigations": "off",
                 "figures": {"null_hypercall": 240, "cpuid": 351, "port_write": 1388}}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn draws_keel_beside_the_peers() {
        let s = svg(&report(PEERS_CPU_MODEL), &peers()).unwrap();
        assert!(s.starts_with("<svg"), "{s}");
        for text in [
            "Keel (xen_version)",
            "194",
            "1098",
            "KVM (Linux 6.1, in-kernel), mitigations default",
            "Xen 4.17 PV guest, mitigations off",
            "to userspace",
            "7260",
            "CPUID (leaf 0)",
        ] {
            assert!(s.contains(text), "no {text:?}");
        }
        // Keel has no port-write figure in this report: that group has only peers.
        assert_eq!(s.matches("Keel (").count(), 2);
        // Seven bars: 2 Keel + 2 x 3 peers... less none: every peer has every group.
        assert_eq!(s.matches("<rect").count(), 1 + 2 + 6);
    }

    #[test]
    fn refuses_another_machine_or_no_comparable_figure() {
        let e = svg(&report("tigerlake"), &peers()).unwrap_err();
        assert!(crate::error::is_usage(&e), "{e:#}");
        let mut r = report(PEERS_CPU_MODEL);
        r.figures.clear();
        assert!(svg(&r, &peers()).is_err());
    }

    #[test]
    fn the_shared_peer_file_reads_and_maps() {
        let ws = crate::cargo::Workspace::locate().unwrap();
        let Some(path) = find_peers(ws.root()) else {
            eprintln!("NOTE: no {PEERS_PATH} above {}", ws.root().display());
            return;
        };
        let p = load_peers(&path).unwrap();
        assert!(p.unit.contains("instructions"));
        // Every group finds a figure in every peer.
        for g in GROUPS {
            for peer in &p.peers {
                assert!(
                    g.peer_keys
                        .iter()
                        .any(|(k, _)| peer.figures.contains_key(*k)),
                    "{} has no figure for {}",
                    peer.name,
                    g.title
                );
            }
        }
    }
}
