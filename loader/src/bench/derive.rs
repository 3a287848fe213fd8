//! Figures the tool derives from others: the worst of one operation measured
//! on several CPUs at once.
//!
//! A program whose domains run on several CPUs (the `bench_cpus_N` programs)
//! reports one figure per CPU, `<base>.cpu<K>`, each from its own domain;
//! none of them sees the others' numbers. The tool adds `<base>.worst`: a
//! copy of the dearest of them (the highest cost; on a tie the lowest CPU),
//! so that one figure per program says whether running on more CPUs slowed
//! any of them down, and the gate holds it like any other.

use super::*;

/// What precedes the CPU number in a per-CPU figure's name.
pub const CPU_INFIX: &str = ".cpu";
/// The suffix of the derived figure.
pub const WORST_SUFFIX: &str = ".worst";

/// `(base, K)` when `name` is a per-CPU figure `<base>.cpu<K>`.
pub fn per_cpu(name: &str) -> Option<(&str, u32)> {
    let at = name.rfind(CPU_INFIX)?;
    let (base, k) = (&name[..at], &name[at + CPU_INFIX.len()..]);
    if base.is_empty() || k.is_empty() || !k.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((base, k.parse().ok()?))
}

/// Add `<base>.worst` for every program and base that has per-CPU figures,
/// right after the last of them. When one of them is missing, so is the worst
/// (naming that CPU): a worst of fewer CPUs than ran would flatter.
pub fn add_worst(figures: &mut Vec<Figure>) {
    let mut groups: Vec<(String, String)> = Vec::new();
    for f in figures.iter() {
        if let Some((base, _)) = per_cpu(&f.name) {
            let g = (f.program.clone(), base.to_string());
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
    }
    for (program, base) in groups {
        let name = format!("{base}{WORST_SUFFIX}");
        if figures
            .iter()
            .any(|f| f.program == program && f.name == name)
        {
            continue;
        }
        let members: Vec<(usize, u32)> = figures
            .iter()
            .enumerate()
            .filter(|(_, f)| f.program == program)
            .filter_map(|(i, f)| match per_cpu(&f.name) {
                Some((b, k)) if b == base => Some((i, k)),
                _ => None,
            })
            .collect();
        let Some(&(last, _)) = members.iter().max_by_key(|(i, _)| *i) else {
            continue;
        };
        let missing = members
            .iter()
            .find_map(|&(i, k)| match &figures[i].measure {
                Measure::Missing(why) => Some(format!("cpu {k}: {why}")),
                Measure::Measured(_) => None,
            });
        let measure = match missing {
            Some(why) => Measure::Missing(why),
            None => {
                let (i, _) = members
                    .iter()
                    .copied()
                    .min_by(|&(a, ka), &(b, kb)| {
                        let cost = |i: usize| figures[i].measured().map_or(0.0, Measured::cost);
                        cost(b).total_cmp(&cost(a)).then(ka.cmp(&kb))
                    })
                    .expect("a group has a member");
                figures[i].measure.clone()
            }
        };
        figures.insert(
            last + 1,
            Figure {
                program,
                name,
                measure,
            },
        );
    }
}
