//! The documentation page generated from the tables: `docs/abi/cpuid.md`.

extern crate std;
use super::*;
use crate::policy::generated::generated_note;
use std::fmt::Write;
use std::string::String;

fn hex(v: u32) -> String {
    if v >= 0x1_0000 {
        std::format!("`{:#06x}_{:04x}`", v >> 16, v & 0xffff)
    } else {
        std::format!("`{v:#x}`")
    }
}

/// The whole page.
pub fn page() -> String {
    let mut s = String::from("# CPUID: the virtual CPU a guest sees\n\n");
    s.push_str(&generated_note(
        "cpuid/markdown.rs",
        "the tables `LEAVES`, `MASKED` and `FEATURES` in `cpuid/table.rs`",
    ));
    let _ = writeln!(
        s,
        "CPUID always exits to Keel (SDM 26.1.2). Keel executes it on the host and edits the\n\
answer by two tables: the leaf table below, and an allow-list of feature bits. A\n\
leaf the table does not list reads as zeroes, and so does a feature bit the\n\
allow-list does not name: a feature is shown only once it is known to work in a\n\
Keel guest.\n\n\
- Highest basic leaf: the smaller of the host's and {}; highest extended leaf:\n  \
the smaller of the host's and {}.\n\
- A leaf above the highest basic or extended leaf returns the data of the highest\n  \
basic leaf, as Intel hardware does.\n\
- The hypervisor range `0x4000_0000..=0x4000_00ff` is Keel's own: see\n  \
[version.md](version.md) (signature `KeelKeelKeel`, ABI version, features); leaves\n  \
above `0x4000_0001` read as zeroes.\n\
- Topology is that of one vCPU with APIC id 0.\n\
- XSAVE: the guest may set XCR0 to a combination of x87 (required), SSE and AVX\n  \
(`{:#x}`, intersected with the host's); leaf 0xD describes exactly those, and\n  \
XSETBV refuses anything else with #GP(0) (see [insns.md](insns.md)). When XSAVE is\n  \
not offered, leaf 0xD is zeroes and CPUID.1:ECX.XSAVE is 0.\n\
- Which rule wins: the highest basic leaf first. A leaf above it does not exist for\n  \
the guest, whatever the table says about it: on a model whose highest basic leaf is\n  \
below 0xD (`corei5_arrandale_m520`, `corei5_lynnfield_750`: 0xB; `bx_generic`: 0x5)\n  \
leaf 0xD returns the highest basic leaf's data, not zeroes, and XSAVE is not offered (Keel offers it\n  \
only when the host has leaf 0xD); leaf 4 likewise on a model whose highest basic\n  \
leaf is below 4. A model with no cache leaf (leaf 4 subleaf 0 of type 0,\n  \
`bx_generic`) shows no cache: Keel passes the host's list on and invents none. The\n  \
models and what each lacks: [../platforms.md](../platforms.md).\n",
        hex(MAX_BASIC),
        hex(MAX_EXTENDED),
        XCR0_POLICY.bits()
    );
    s.push_str("## Leaves\n\n| Leaf | Name | Guest sees |\n|---|---|---|\n");
    for l in LEAVES {
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            hex(l.leaf),
            l.name,
            l.kind.describe()
        );
    }
    s.push_str(
        "\n## Feature bits shown (the allow-list)\n\n\
Registers filtered: ",
    );
    let regs: std::vec::Vec<String> = MASKED
        .iter()
        .map(|&(l, sub, r)| std::format!("{}.{}:{}", hex(l), sub, r.name()))
        .collect();
    s.push_str(&regs.join(", "));
    s.push_str(
        ". Every bit of these registers not listed here is 0.\n\n\
| Leaf | Register | Bit | Feature | Shown when |\n|---|---|---:|---|---|\n",
    );
    for ft in FEATURES {
        let _ = writeln!(
            s,
            "| {}.{} | {} | {} | {} | {} |",
            hex(ft.leaf),
            ft.subleaf,
            ft.reg.name(),
            ft.bit,
            ft.name,
            ft.when.describe()
        );
    }
    s.push_str(
        "\nLeaf 0xD subleaf 1 EAX shows XSAVEOPT, XSAVEC and XGETBV(ECX=1) only (bits 0-2);\n\
XSAVES/XRSTORS and XFD stay hidden.\n\n\
## Differences from Xen\n\n\
- Xen's hypervisor leaves (`0x4000_0000` to `0x4000_0005`, signature\n  \
`XenVMMXenVMM`, Xen's version, the hypercall-page MSR, time and HVM/PV feature\n  \
leaves) are not Keel's: Keel answers signature `KeelKeelKeel`, its ABI version and\n  \
feature submap in `0x4000_0001`, and zeroes above (see [version.md](version.md)).\n  \
A guest must not mistake Keel for Xen.\n\
- Xen builds a policy per domain from a featureset the toolstack may edit, and\n  \
levels or faults CPUID for PV guests; Keel has one fixed policy (the tables above),\n  \
applied on every CPUID exit, with no toolstack.\n\
- Xen hides the same kind of features from PV guests (VMX, MONITOR, x2APIC, PCID,\n  \
the APIC), but the two allow-lists are not the same list: compare the table above,\n  \
not Xen's `cpufeatureset.h` annotations.\n\n\
## Differences from bare metal\n\n\
Every CPUID executes in the hypervisor (an exit), so it costs far more than on\n\
bare metal (`cargo keel bench`, docs/performance.md); the topology is always one\n\
logical processor, whatever the machine has.\n",
    );
    s
}
