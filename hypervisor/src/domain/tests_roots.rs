//! Host tests of the vCPUs' roots: each vCPU's L4 holds its own type
//! reference, loading one moves no reference, and the teardown drops them
//! all (every count back to zero).

extern crate std;

use super::*;
use crate::domain::elf::testimg::typical;
use crate::domain::elf::GuestImage;
use crate::mem::fake::{FakeFrames, FakeMem};
use keel_abi::Errno;

fn built() -> (Domain, FakeMem, FakeFrames) {
    let bytes = typical();
    let img = GuestImage::parse(&bytes).unwrap();
    let c = DomainConfig {
        id: DomainId(1),
        nr_pages: 64,
        cmd_line: b"test keel.vcpus=3",
        nx: false,
    };
    let mut mem = FakeMem::default();
    let mut frames = FakeFrames::new(0x1000, c.nr_pages + 64);
    let dom = build(&img, &bytes, &c, &mut mem, &mut frames).unwrap();
    (dom, mem, frames)
}

/// The type count of `mfn`.
fn types(dom: &Domain, mem: &FakeMem, mfn: Mfn) -> u64 {
    u64::from(dom.page_info(mem, mfn).unwrap().type_count)
}

#[test]
fn each_root_holds_a_type_reference_until_teardown() {
    let (mut dom, mut mem, _frames) = built();
    let l4 = dom.base();
    // NEW_BASEPTR's rule: the L4 must be pinned (the builder's is not).
    let _ = dom.pin(&mut mem, l4, Level::L4);
    let before = types(&dom, &mem, l4);
    assert_eq!(dom.loaded_vcpu(), 0);
    assert_eq!(dom.vcpu_base(0), Some(l4));
    assert_eq!(dom.vcpu_base(1), None);
    assert_eq!(dom.set_vcpu_base(&mut mem, 1, l4), Ok(()));
    assert_eq!(types(&dom, &mem, l4), before + 1);
    assert_eq!(dom.vcpu_base(1), Some(l4));
    assert_eq!(
        dom.set_vcpu_base(&mut mem, 1, l4),
        Err(Errno::EINVAL),
        "has one"
    );
    assert_eq!(
        dom.set_vcpu_base(&mut mem, 0, l4),
        Err(Errno::EINVAL),
        "loaded"
    );
    assert_eq!(
        dom.set_vcpu_base(&mut mem, vcpus::MAX_VCPUS as u32, l4),
        Err(Errno::EINVAL)
    );
    // Not a pinned L4: a data frame, refused with nothing taken.
    let data = dom.mfn_of(&mem, Pfn::new(0)).unwrap();
    let info = dom.page_info(&mem, data).unwrap();
    assert_eq!(dom.set_vcpu_base(&mut mem, 2, data), Err(Errno::EINVAL));
    assert_eq!(dom.page_info(&mem, data).unwrap(), info);
    // Loading moves no reference; a vCPU without a root is not loaded.
    assert!(!dom.load_vcpu(2));
    assert!(dom.load_vcpu(1));
    assert_eq!(dom.loaded_vcpu(), 1);
    assert_eq!(dom.vcpu_base(0), Some(l4));
    assert_eq!(types(&dom, &mem, l4), before + 1);
    assert!(dom.load_vcpu(0));
    assert_eq!(dom.loaded_vcpu(), 0);
    assert_eq!(dom.release_mm(&mut mem), 0, "every root dropped");
}

#[test]
fn teardown_with_another_vcpu_loaded() {
    let (mut dom, mut mem, mut frames) = built();
    let l4 = dom.base();
    let _ = dom.pin(&mut mem, l4, Level::L4);
    dom.set_vcpu_base(&mut mem, 2, l4).unwrap();
    assert!(dom.load_vcpu(2));
    let t = dom.teardown(&mut mem, &mut frames);
    assert_eq!(t.leaked_counts, 0);
    assert!(frames.outstanding.is_empty());
}
