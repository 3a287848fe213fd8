//! Where an emulator Keel is tested on is not the hardware the Intel SDM
//! describes, in a way no test can be right about: the tests that such a
//! defect stops from meaning anything, on the platforms that have it.
//!
//! The rule (docs/platforms.md): a test never loosens its expectation to fit
//! a platform. Where Keel can be right on a platform it is made right there;
//! where the platform itself breaks what a test checks, the test is reported
//! SKIP on that platform with the defect's name, and a boot test
//! (`loader/tests/platforms.rs`) attempts it on purpose and checks the platform
//! still fails it *in the way named here*, so an emulator that is fixed (or a
//! Keel change that works around it) shows at once.

use crate::backend::Backend;
use crate::machine::Machine;

/// A platform defect that breaks some tests.
#[derive(Clone, Copy, Debug)]
pub struct Defect {
    /// Its name, as the SKIP reason and docs/platforms.md give it.
    pub name: &'static str,
    /// The backend that has it.
    pub backend: Backend,
    /// The Bochs CPU models that have it: the machine's own model on `bochs`;
    /// on `nested`, the model L0 (Linux/KVM) runs on, [`crate::nested::L0_CPU_MODEL`].
    pub models: &'static [&'static str],
    /// The tests it breaks.
    pub tests: &'static [&'static str],
    /// What the platform does, in one line.
    pub what: &'static str,
}

/// Every known defect.
pub const DEFECTS: &[Defect] = &[
    Defect {
        name: "bochs-extint-masked-by-guest-if",
        backend: Backend::Bochs,
        // The models without the VMX-preemption timer: only there does Keel end a
        // time slice with the local-APIC timer (an external-interrupt exit).
        models: &["core2_penryn_t9600", "bx_generic"],
        tests: &["sched_spin"],
        what: "Bochs 2.7 enters a guest whose RFLAGS.IF is 0 with host interrupts masked, \
               although external-interrupt exiting is on, and unmasks them only when the \
               guest changes IF: a domain that keeps interrupts off is not preempted",
    },
    Defect {
        name: "bochs-extint-masked-by-guest-if-under-l0",
        backend: Backend::Nested,
        // L0 runs on this model, which has the VMX-preemption timer: Keel does
        // use it, but the KVM beneath emulates it with one of L0's own timers.
        models: &[crate::nested::L0_CPU_MODEL],
        tests: &["sched_spin"],
        what: "the same Bochs 2.7 defect one level down: L0's KVM enters Keel's guest (L2) \
               with that guest's RFLAGS.IF 0, Bochs masks L0's own interrupts until the guest \
               changes IF, and L0's KVM emulates Keel's VMX-preemption timer with an L0 \
               hrtimer: a domain that keeps interrupts off is not preempted until it exits \
               (L0 reports a soft lockup)",
    },
];

/// The Bochs model a defect of `machine`'s platform is looked up by: the
/// machine's own on `bochs`, L0's on `nested` (where the machine's model is
/// QEMU's `-cpu` inside L0).
pub fn emulated_model(machine: &Machine) -> &str {
    match machine.backend {
        Backend::Nested => crate::nested::L0_CPU_MODEL,
        _ => &machine.cpu_model,
    }
}

/// The defect that breaks `test` on `machine`, if one does.
pub fn breaking(machine: &Machine, test: &str) -> Option<&'static Defect> {
    let model = emulated_model(machine);
    DEFECTS.iter().find(|d| {
        d.backend == machine.backend && d.models.contains(&model) && d.tests.contains(&test)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn machine(backend: Backend, model: &str) -> Machine {
        let mut m = Machine::new(backend, Duration::from_secs(1));
        m.cpu_model = model.to_string();
        m
    }

    #[test]
    fn a_defect_applies_to_its_tests_on_its_models_only() {
        let penryn = machine(Backend::Bochs, "core2_penryn_t9600");
        assert_eq!(
            breaking(&penryn, "sched_spin").map(|d| d.name),
            Some("bochs-extint-masked-by-guest-if")
        );
        assert!(breaking(&penryn, "sched_idle").is_none());
        assert!(breaking(&machine(Backend::Bochs, "corei7_skylake_x"), "sched_spin").is_none());
        assert!(breaking(
            &machine(Backend::Native, "core2_penryn_t9600"),
            "sched_spin"
        )
        .is_none());
    }

    #[test]
    fn a_nested_defect_is_looked_up_by_l0s_model_not_qemus() {
        // The nested machine's model is QEMU's `-cpu` inside L0.
        let nested = machine(Backend::Nested, "host");
        assert_eq!(
            breaking(&nested, "sched_spin").map(|d| d.name),
            Some("bochs-extint-masked-by-guest-if-under-l0")
        );
        assert!(breaking(&nested, "sched_idle").is_none());
        assert!(breaking(&machine(Backend::Kvm, "host"), "sched_spin").is_none());
    }

    #[test]
    fn every_defect_names_known_models() {
        for d in DEFECTS {
            for m in d.models {
                assert!(
                    crate::backend::BOCHS_CPU_MODELS.contains(m),
                    "{}: {m} is no Bochs model",
                    d.name
                );
            }
        }
    }
}
