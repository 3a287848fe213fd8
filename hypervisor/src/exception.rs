//! # Exception delivery: what the CPU does with a fault raised while it delivers an event
//!
//! Keel raises exceptions in the guest itself (a reflected `#PF`, `#GP(0)` or
//! `#UD` from a policy table, the `#PF` or `#GP` of an emulated string I/O), and
//! sees faults the guest's own event delivery runs into (a write-protection `#PF`
//! exit whose IDT-vectoring information says an event was being delivered). Both
//! must end as on the CPU, by the SDM's rule (vol. 3, "Interrupt 8 — Double Fault
//! Exception", table "Conditions for Generating a Double Fault"):
//!
//! | first event \ second fault | benign | contributory | page fault |
//! |---|---|---|---|
//! | benign | serially | serially | serially |
//! | contributory | serially | `#DF` | serially |
//! | page fault | serially | `#DF` | `#DF` |
//! | double fault | serially | shutdown | shutdown |
//!
//! "Serially" means the second fault is delivered and the first event is dropped
//! (a fault re-occurs when its instruction is re-executed; an interrupt Keel
//! injected is injected again while it stays pending). A contributory fault or
//! page fault while delivering `#DF` is a triple fault: the processor shuts down,
//! which for a Keel guest means the domain is crashed with its diagnostic (never
//! a loop of reflections). Classes (same table): contributory are `#DE` (0),
//! `#TS` (10), `#NP` (11), `#SS` (12) and `#GP` (13); page faults are `#PF` (14)
//! and `#VE` (20); `#DF` (8) is its own; everything else, every interrupt, NMI and
//! software interrupt (`INT n`) included, is benign.

/// Vector of `#DF`.
pub const DOUBLE_FAULT: u8 = 8;

/// The class of an exception vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Never combines into `#DF`.
    Benign,
    /// `#DE`, `#TS`, `#NP`, `#SS`, `#GP`.
    Contributory,
    /// `#PF`, `#VE`.
    PageFault,
    /// `#DF` itself.
    DoubleFault,
}

/// The class of hardware exception `vector`.
pub const fn class(vector: u8) -> Class {
    match vector {
        0 | 10..=13 => Class::Contributory,
        14 | 20 => Class::PageFault,
        DOUBLE_FAULT => Class::DoubleFault,
        _ => Class::Benign,
    }
}

/// An event whose delivery was under way (the VMCS IDT-vectoring information,
/// or an event already queued for injection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivering {
    /// A hardware exception (type 3) with this vector.
    Exception(u8),
    /// Anything else: an external interrupt, NMI, `INT n`, `INT3`/`INTO`
    /// (software exceptions), `INT1`: all benign.
    Other,
}

impl Delivering {
    /// Decode an IDT-vectoring / VM-entry interruption-information word; `None`
    /// when its valid bit (31) is clear.
    pub const fn from_info(info: u32) -> Option<Delivering> {
        if info & (1 << 31) == 0 {
            return None;
        }
        Some(if (info >> 8) & 7 == 3 {
            Delivering::Exception(info as u8)
        } else {
            Delivering::Other
        })
    }

    const fn class(self) -> Class {
        match self {
            Delivering::Exception(v) => class(v),
            Delivering::Other => Class::Benign,
        }
    }
}

/// What the guest gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The new fault, as it is (no event was being delivered, or the two are
    /// handled serially).
    Deliver,
    /// `#DF` with error code 0 instead.
    DoubleFault,
    /// A triple fault: the domain is crashed.
    TripleFault,
}

/// The outcome of hardware exception `fault` raised while `during` was being
/// delivered (`None`: no delivery was under way).
pub const fn combine(during: Option<Delivering>, fault: u8) -> Outcome {
    let Some(first) = during else {
        return Outcome::Deliver;
    };
    match (first.class(), class(fault)) {
        (Class::DoubleFault, Class::Contributory | Class::PageFault | Class::DoubleFault) => {
            Outcome::TripleFault
        }
        (Class::Contributory, Class::Contributory)
        | (Class::PageFault, Class::Contributory | Class::PageFault) => Outcome::DoubleFault,
        // A #DF raised while another event is delivered (Keel never raises one
        // itself; the CPU would not either) counts as its own kind of second
        // fault: it is delivered, the first event dropped.
        _ => Outcome::Deliver,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BENIGN: [u8; 13] = [1, 2, 3, 4, 5, 6, 7, 9, 16, 17, 18, 19, 32];
    const CONTRIBUTORY: [u8; 5] = [0, 10, 11, 12, 13];
    const PAGE: [u8; 2] = [14, 20];

    #[test]
    fn classes_are_the_sdms() {
        for v in BENIGN {
            assert_eq!(class(v), Class::Benign, "vector {v}");
        }
        for v in CONTRIBUTORY {
            assert_eq!(class(v), Class::Contributory, "vector {v}");
        }
        for v in PAGE {
            assert_eq!(class(v), Class::PageFault, "vector {v}");
        }
        assert_eq!(class(8), Class::DoubleFault);
    }

    /// Every cell of the SDM's table, for every vector of each class.
    #[test]
    fn the_double_fault_table() {
        use Outcome::*;
        let classes: [(&[u8], Class); 4] = [
            (&BENIGN, Class::Benign),
            (&CONTRIBUTORY, Class::Contributory),
            (&PAGE, Class::PageFault),
            (&[8], Class::DoubleFault),
        ];
        for (firsts, c1) in classes {
            for (seconds, c2) in [
                (&BENIGN[..], Class::Benign),
                (&CONTRIBUTORY[..], Class::Contributory),
                (&PAGE[..], Class::PageFault),
            ] {
                let want = match (c1, c2) {
                    (Class::Contributory, Class::Contributory) => DoubleFault,
                    (Class::PageFault, Class::Contributory | Class::PageFault) => DoubleFault,
                    (Class::DoubleFault, Class::Contributory | Class::PageFault) => TripleFault,
                    _ => Deliver,
                };
                for &a in firsts {
                    for &b in seconds {
                        assert_eq!(
                            combine(Some(Delivering::Exception(a)), b),
                            want,
                            "{a} then {b}"
                        );
                    }
                }
            }
        }
        // Nothing under way: the fault is delivered as it is.
        for v in 0..=255u8 {
            assert_eq!(combine(None, v), Deliver);
            // Interrupts, NMI and INT n are benign, whatever their vector.
            assert_eq!(combine(Some(Delivering::Other), v), Deliver);
        }
    }

    #[test]
    fn decoding_interruption_information() {
        assert_eq!(Delivering::from_info(0x0000_0b0e), None, "not valid");
        // Valid, hardware exception, #PF, error code valid.
        assert_eq!(
            Delivering::from_info(0x8000_0b0e),
            Some(Delivering::Exception(14))
        );
        assert_eq!(
            Delivering::from_info(0x8000_0308),
            Some(Delivering::Exception(8))
        );
        // External interrupt 14 (type 0), NMI (2), INT 14 (4), INT3 (6): benign.
        for info in [0x8000_000e, 0x8000_0202, 0x8000_040e, 0x8000_0603] {
            assert_eq!(Delivering::from_info(info), Some(Delivering::Other));
            assert_eq!(combine(Delivering::from_info(info), 14), Outcome::Deliver);
        }
        // A #PF while #DF is delivered: a triple fault.
        assert_eq!(
            combine(Delivering::from_info(0x8000_0b08), 14),
            Outcome::TripleFault
        );
    }
}
