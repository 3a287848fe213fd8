//! Keel's ABI against Xen's public headers, field by field.
//!
//! `ci/xen-abi-check/xen_abi_check.c` is compiled against Debian's `libxen-dev`
//! headers (`/usr/include/xen`, or `$KEEL_XEN_INCLUDE/xen`) and prints Xen's
//! layouts and numbers; this test compares them with the layout data of the
//! crate ([`keel_abi::layout`]): every structure, field, constant, hypercall
//! number and error code that claims to be Xen's ([`XenRelation::Same`]) must
//! match, every claimed difference ([`XenRelation::Differs`]) must name a Xen
//! item that exists, and every family Keel implements (`layout::XEN_SCOPE`: the
//! headers are read here for every constant, sub-command and structure of the
//! family) must have no Xen item without a Keel counterpart except those in
//! `layout::XEN_NOT_ADOPTED`, each with its reason; so must the error codes.
//!
//! Without the headers the test FAILS, naming the package to install; set
//! `KEEL_SKIP_XEN_CHECK=1` to skip it deliberately (it then says so loudly).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use keel_abi::layout::{self, ConstValue, XenRelation};

/// What the C program printed.
#[derive(Default)]
struct Xen {
    interface: String,
    structs: BTreeMap<String, (usize, usize)>,
    fields: BTreeMap<(String, String), (usize, usize)>,
    consts: BTreeMap<String, u64>,
    hypercalls: BTreeMap<String, u64>,
    errnos: BTreeMap<String, (i32, bool)>,
    /// Named structures of the headers in `layout::XEN_SCOPE`.
    scoped_structs: BTreeSet<String>,
    /// In-scope `#define`s the current interface version hides (old-interface
    /// blocks): not part of what a guest built today sees.
    hidden: BTreeSet<String>,
}

/// `key=value` -> value.
fn kv(tok: &str, key: &str) -> usize {
    tok.strip_prefix(key)
        .and_then(|t| t.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("xen-abi-check: expected {key}=<n>, got {tok:?}"))
}

fn parse(out: &str) -> Xen {
    let mut x = Xen::default();
    for line in out.lines() {
        let t: Vec<&str> = line.split(' ').collect();
        match t.as_slice() {
            ["interface", v] => x.interface = v.to_string(),
            ["struct", name, size, align] => {
                x.structs
                    .insert(name.to_string(), (kv(size, "size"), kv(align, "align")));
            }
            ["field", s, f, off, size] => {
                x.fields.insert(
                    (s.to_string(), f.to_string()),
                    (kv(off, "offset"), kv(size, "size")),
                );
            }
            ["const", name, v] => {
                x.consts.insert(name.to_string(), v.parse().unwrap());
            }
            ["hypercall", name, v] => {
                x.hypercalls.insert(name.to_string(), v.parse().unwrap());
            }
            ["scope", "struct", name] => {
                x.scoped_structs.insert(name.to_string());
            }
            ["scope", "hidden", name] => {
                x.hidden.insert(name.to_string());
            }
            ["errno", name, v, rest @ ..] => {
                let internal = rest == ["internal"];
                x.errnos
                    .insert(name.to_string(), (v.parse().unwrap(), internal));
            }
            _ => panic!("xen-abi-check printed an unexpected line: {line:?}"),
        }
    }
    x
}

/// The C program's output, compiled and run once for all tests of this file
/// (they run in parallel and would otherwise race on the executable).
fn run_xen_abi_check() -> Option<String> {
    static OUT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    OUT.get_or_init(compile_and_run).clone()
}

/// Compile and run the C program; `None` when the check is deliberately skipped.
fn compile_and_run() -> Option<String> {
    let include = std::env::var_os("KEEL_XEN_INCLUDE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/include"));
    let skip = std::env::var("KEEL_SKIP_XEN_CHECK").as_deref() == Ok("1");
    if !include.join("xen/xen.h").is_file() {
        if skip {
            eprintln!(
                "SKIPPED: Xen ABI cross-check: {}/xen/xen.h is missing and \
                 KEEL_SKIP_XEN_CHECK=1 is set. Nothing was compared.",
                include.display()
            );
            return None;
        }
        panic!(
            "the Xen ABI cross-check needs Xen's public headers, but {}/xen/xen.h does \
             not exist. Install them (Debian/Ubuntu: `apt-get install libxen-dev`), or \
             point KEEL_XEN_INCLUDE at a directory containing xen/, or set \
             KEEL_SKIP_XEN_CHECK=1 to skip this check knowingly.",
            include.display()
        );
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/xen-abi-check/xen_abi_check.c");
    let mut out = compile_run(&include, &src, "xen-abi-check");
    // The families' whole extent, read from the headers themselves.
    let (scope_src, structs) = scope_program(&include);
    let scope_c = Path::new(env!("CARGO_TARGET_TMPDIR")).join("xen-abi-scope.c");
    std::fs::write(&scope_c, scope_src).expect("write the scope program");
    out.push_str(&compile_run(&include, &scope_c, "xen-abi-scope"));
    for s in structs {
        out.push_str(&format!("scope struct {s}\n"));
    }
    Some(out)
}

/// Compile one C program against the headers and return what it prints.
fn compile_run(include: &Path, src: &Path, name: &str) -> String {
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let out = Command::new(&cc)
        // GNU C: domctl.h includes hvm/save.h, which refuses strict ISO C
        // (its anonymous unions); the layouts are the same either way.
        .args(["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(include)
        .arg("-o")
        .arg(&exe)
        .arg(src)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run the C compiler `{cc}` (set CC, or KEEL_SKIP_XEN_CHECK=1): {e}")
        });
    assert!(
        out.status.success(),
        "compiling {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe)
        .output()
        .expect("run the Xen header program");
    assert!(run.status.success(), "{name} failed");
    String::from_utf8(run.stdout).expect("ASCII output")
}

/// The object-like `#define`s of a header (names only).
fn defines(text: &str) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut v = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.trim_start().strip_prefix('#') else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix("define") else {
            continue;
        };
        if !rest.starts_with([' ', '\t']) {
            continue;
        }
        let rest = rest.trim_start();
        let end = rest.find(|c: char| !ident(c)).unwrap_or(rest.len());
        // `NAME(` is a function-like macro, not a constant; `NAME {` is an
        // initialiser (grant_table.h's GNTTABOP_error_msgs), not one either.
        if end > 0 && !rest[end..].starts_with('(') && !rest[end..].trim_start().starts_with('{') {
            v.push(rest[..end].to_string());
        }
    }
    v
}

/// The named structure definitions of a header (`struct name {`, the brace
/// possibly on the next line).
fn struct_names(text: &str) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut v = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("struct") {
        let before_ok = rest[..i].chars().last().is_none_or(|c| !ident(c));
        rest = &rest[i + "struct".len()..];
        if !before_ok || !rest.starts_with(char::is_whitespace) {
            continue;
        }
        let t = rest.trim_start();
        let end = t.find(|c: char| !ident(c)).unwrap_or(t.len());
        if end > 0 && t[end..].trim_start().starts_with('{') {
            v.push(t[..end].to_string());
        }
    }
    v
}

/// A C program that prints every in-scope constant of the headers of
/// `layout::XEN_SCOPE` (`const NAME value`, or `scope hidden NAME` when the
/// current interface version does not define it), and the in-scope structures.
fn scope_program(include: &Path) -> (String, BTreeSet<String>) {
    let mut c = String::from(
        "#define __XEN_INTERFACE_VERSION__ __XEN_LATEST_INTERFACE_VERSION__\n\
         /* Toolstack-only items are part of the families too. */\n\
         #define __XEN_TOOLS__\n\
         #include <stdint.h>\n#include <stdio.h>\n#include <xen/xen.h>\n",
    );
    let mut names = BTreeSet::new();
    let mut structs = BTreeSet::new();
    for s in layout::XEN_SCOPE {
        let path = include.join("xen").join(s.header);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        c.push_str(&format!("#include <xen/{}>\n", s.header));
        for d in defines(&text) {
            if s.prefixes.iter().any(|p| d.starts_with(p)) {
                names.insert(d);
            }
        }
        if s.structs {
            structs.extend(struct_names(&text));
        }
    }
    c.push_str("int main(void)\n{\n");
    for n in &names {
        c.push_str(&format!(
            "#ifdef {n}\n    printf(\"const %s %llu\\n\", \"{n}\", (unsigned long long)({n}));\n\
             #else\n    printf(\"scope hidden %s\\n\", \"{n}\");\n#endif\n"
        ));
    }
    c.push_str("    return 0;\n}\n");
    (c, structs)
}

/// The result of a comparison.
struct Report {
    errors: Vec<String>,
    compared: usize,
    differences: Vec<String>,
}

/// Compare everything keel-abi claims about Xen with what Xen's headers say.
fn compare(xen: &Xen) -> Report {
    let mut errors: Vec<String> = Vec::new();
    let mut compared = 0usize;
    let mut differences: Vec<String> = Vec::new();

    // Structures and their fields, both ways: each structure's own Xen name,
    // then the other Xen structures with the same layout.
    let mut claimed_structs = BTreeSet::new();
    let own = layout::STRUCTS.iter().filter_map(|s| match s.xen {
        XenRelation::Same(x) => Some((s, x)),
        _ => None,
    });
    let aliases = layout::XEN_STRUCT_ALIASES.iter().map(|&(k, x)| {
        let s = layout::STRUCTS
            .iter()
            .find(|s| s.name == k)
            .unwrap_or_else(|| panic!("XEN_STRUCT_ALIASES names no structure {k}"));
        (s, x)
    });
    for (s, xname) in own.chain(aliases) {
        claimed_structs.insert(xname);
        match xen.structs.get(xname) {
            None => errors.push(format!(
                "struct {} claims to be Xen's `{xname}`, which xen-abi-check does not print",
                s.name
            )),
            Some(&(size, align)) => {
                compared += 1;
                if (size, align) != (s.size, s.align) {
                    errors.push(format!(
                        "struct {} (Xen `{xname}`): Keel size={} align={}, Xen size={size} align={align}",
                        s.name, s.size, s.align
                    ));
                }
            }
        }
        let mut claimed = BTreeSet::new();
        for f in s.fields {
            let Some(xf) = f.xen else { continue };
            claimed.insert(xf);
            match xen.fields.get(&(xname.to_string(), xf.to_string())) {
                None => errors.push(format!(
                    "field {}.{} claims to be Xen's `{xname}.{xf}`, which Xen does not have",
                    s.name, f.name
                )),
                Some(&(off, size)) => {
                    compared += 1;
                    if (off, size) != (f.offset, f.size) {
                        errors.push(format!(
                            "field {}.{} (Xen `{xname}.{xf}`): Keel offset={} size={}, \
                             Xen offset={off} size={size}",
                            s.name, f.name, f.offset, f.size
                        ));
                    }
                }
            }
        }
        for (xs, xf) in xen.fields.keys() {
            if xs == xname && !claimed.contains(xf.as_str()) {
                errors.push(format!(
                    "Xen's `{xname}` has a field `{xf}` that Keel's {} does not describe",
                    s.name
                ));
            }
        }
    }
    let absent = |name: &str| layout::XEN_NOT_ADOPTED.iter().any(|a| a.xen == name);
    for name in &xen.scoped_structs {
        if absent(name) {
            differences.push(format!("Xen struct `{name}` not adopted"));
        } else if !claimed_structs.contains(name.as_str()) {
            errors.push(format!(
                "Xen defines `struct {name}` in a family Keel implements, but keel-abi has \
                 no structure for it (add it, or list it in layout::XEN_NOT_ADOPTED with the reason)"
            ));
        }
    }

    // Constants.
    let mut claimed_consts = BTreeSet::new();
    for c in layout::constants() {
        match c.xen {
            XenRelation::Same(xname) => {
                claimed_consts.insert(xname);
                let v = match c.value {
                    ConstValue::Int(v) => v,
                    // C prints a negative constant as `unsigned long long`.
                    ConstValue::Signed(v) => v as u64,
                    ConstValue::Bytes(_) => {
                        errors.push(format!(
                            "{}: only integer constants can be compared",
                            c.name
                        ));
                        continue;
                    }
                };
                match xen.consts.get(xname) {
                    None => errors.push(format!(
                        "{} claims to be Xen's `{xname}`, which xen-abi-check does not print",
                        c.name
                    )),
                    Some(&x) if x != v => errors.push(format!(
                        "{} (Xen `{xname}`): Keel {v:#x}, Xen {x:#x}",
                        c.name
                    )),
                    Some(_) => compared += 1,
                }
            }
            XenRelation::Differs {
                xen: Some(xname),
                why,
            } => {
                claimed_consts.insert(xname);
                match xen.consts.get(xname) {
                    None => errors.push(format!(
                        "{} is marked as differing from Xen's `{xname}`, which Xen does not have",
                        c.name
                    )),
                    Some(&x) => differences.push(format!(
                        "{}: Keel {}, Xen `{xname}` = {x:#x}: {why}",
                        c.name, c.value
                    )),
                }
            }
            XenRelation::Differs { xen: None, why } => {
                differences.push(format!("{}: Keel {} (no Xen item): {why}", c.name, c.value));
            }
            XenRelation::KeelOnly => {}
        }
    }
    // The CPUID signature is three registers in Xen; Keel's single constant names
    // the first, the other two belong to the same difference.
    claimed_consts.insert("XEN_CPUID_SIGNATURE_ECX");
    claimed_consts.insert("XEN_CPUID_SIGNATURE_EDX");
    // Every constant of an implemented family (layout::XEN_SCOPE) is Keel's or
    // deliberately absent.
    let in_scope = |name: &str| {
        layout::XEN_SCOPE
            .iter()
            .any(|s| s.prefixes.iter().any(|p| name.starts_with(p)))
    };
    for name in xen.consts.keys() {
        let not_adopted = absent(name);
        if not_adopted {
            differences.push(format!("Xen `{name}` not adopted"));
        }
        if in_scope(name) && !not_adopted && !claimed_consts.contains(name.as_str()) {
            errors.push(format!(
                "Xen defines `{name}` but keel-abi has no constant for it \
                 (add it, or list it in layout::XEN_NOT_ADOPTED with the reason)"
            ));
        }
    }
    // Every error code Xen returns to guests is Keel's or deliberately absent.
    for (name, &(_, internal)) in &xen.errnos {
        let keel = keel_abi::errno::ALL.iter().any(|e| e.name() == Some(name));
        if !keel && !internal && !absent(name) {
            errors.push(format!(
                "Xen error code `{name}` is neither in keel-abi nor in layout::XEN_NOT_ADOPTED"
            ));
        }
    }
    // An absent item must be one Xen still has (else the entry is stale).
    for a in layout::XEN_NOT_ADOPTED {
        let known = xen.consts.contains_key(a.xen)
            || xen.scoped_structs.contains(a.xen)
            || xen.errnos.contains_key(a.xen);
        if !known {
            errors.push(format!(
                "layout::XEN_NOT_ADOPTED lists `{}`, which Xen's headers do not define",
                a.xen
            ));
        }
    }

    // Hypercall numbers, both ways.
    let keel_hc: BTreeMap<&str, u64> = keel_abi::hypercall::ALL
        .iter()
        .map(|h| (h.name().unwrap(), h.0))
        .collect();
    for (name, &nr) in &xen.hypercalls {
        match keel_hc.get(name.as_str()) {
            None => errors.push(format!(
                "Xen hypercall `{name}` ({nr}) is missing from keel-abi"
            )),
            Some(&k) if k != nr => errors.push(format!("hypercall `{name}`: Keel {k}, Xen {nr}")),
            Some(_) => compared += 1,
        }
    }
    for name in keel_hc.keys() {
        if !xen.hypercalls.contains_key(*name) {
            errors.push(format!("keel-abi hypercall `{name}` is not one of Xen's"));
        }
    }

    // Error codes: every Keel errno is Xen's, with Xen's value.
    for e in keel_abi::errno::ALL {
        let name = e.name().unwrap();
        match (layout::errno_xen(*e), xen.errnos.get(name)) {
            (_, None) => errors.push(format!("errno {name}: Xen has no such error code")),
            (_, Some(&(v, _))) if v != e.0 => {
                errors.push(format!("errno {name}: Keel {}, Xen {v}", e.0))
            }
            (XenRelation::Same(_), Some(&(_, true))) => errors.push(format!(
                "errno {name} is internal to Xen (never returned to guests): mark it Differs"
            )),
            (XenRelation::Differs { why, .. }, Some(_)) => {
                compared += 1;
                differences.push(format!("errno {name} = {}: {why}", e.0));
            }
            _ => compared += 1,
        }
    }

    Report {
        errors,
        compared,
        differences,
    }
}

#[test]
fn keel_matches_xen_public_headers() {
    let Some(out) = run_xen_abi_check() else {
        return;
    };
    let xen = parse(&out);
    let r = compare(&xen);
    eprintln!(
        "Xen ABI cross-check against headers of interface {}: {} items equal",
        xen.interface, r.compared
    );
    eprintln!(
        "in-scope Xen items the current interface hides (old-interface blocks): {:?}",
        xen.hidden
    );
    eprintln!("deliberate differences ({}):", r.differences.len());
    for d in &r.differences {
        eprintln!("  {d}");
    }
    assert!(
        r.errors.is_empty(),
        "keel-abi disagrees with Xen's public headers:\n  {}",
        r.errors.join("\n  ")
    );
    assert!(
        r.compared > 100,
        "suspiciously little was compared ({})",
        r.compared
    );
}

/// The comparison can fail: doctor single lines of Xen's real output and check
/// that each doctored item is reported by name.
#[test]
fn a_doctored_xen_output_is_reported() {
    let Some(out) = run_xen_abi_check() else {
        return;
    };
    let cases = [
        (
            "field start_info flags offset=48 size=4",
            "field start_info flags offset=52 size=4",
            "StartInfo.flags",
        ),
        ("const SCHEDOP_poll 3", "const SCHEDOP_poll 4", "SCHEDOP_POLL"),
        ("hypercall console_io 18", "hypercall console_io 19", "console_io"),
        ("errno ENOSYS 38", "errno ENOSYS 40", "ENOSYS"),
        ("const XENVER_build_id 10", "const XENVER_new_thing 11\nconst XENVER_build_id 10", "XENVER_new_thing"),
        // The two constants once mislabelled are compared with Xen's own.
        (
            "const HVM_PARAM_CALLBACK_TYPE_VECTOR 2",
            "const HVM_PARAM_CALLBACK_TYPE_VECTOR 3",
            "HVM_PARAM_CALLBACK_TYPE_VECTOR",
        ),
        (
            "const EVTCHN_2L_NR_CHANNELS 4096",
            "const EVTCHN_2L_NR_CHANNELS 2048",
            "EVTCHN_2L_NR_CHANNELS",
        ),
        // A new item of each implemented family is reported until it is adopted
        // or listed as absent.
        (
            "const EVTCHNOP_unmask 9",
            "const EVTCHNOP_unmask 9\nconst EVTCHNOP_new_thing 99",
            "EVTCHNOP_new_thing",
        ),
        (
            "const VCPUOP_up 1",
            "const VCPUOP_up 1\nconst VCPUOP_new_thing 99",
            "VCPUOP_new_thing",
        ),
        (
            "const HVM_PARAM_CALLBACK_IRQ 0",
            "const HVM_PARAM_CALLBACK_IRQ 0\nconst HVM_PARAM_NEW_THING 99",
            "HVM_PARAM_NEW_THING",
        ),
        (
            "const MMUEXT_PIN_L1_TABLE 0",
            "const MMUEXT_PIN_L1_TABLE 0\nconst MMUEXT_NEW_THING 99",
            "MMUEXT_NEW_THING",
        ),
        (
            "const VIRQ_TIMER 0",
            "const VIRQ_TIMER 0\nconst VIRQ_NEW_THING 23",
            "VIRQ_NEW_THING",
        ),
        (
            "const DOMID_SELF 32752",
            "const DOMID_SELF 32752\nconst DOMID_NEW_THING 32760",
            "DOMID_NEW_THING",
        ),
        (
            "errno ENOSYS 38",
            "errno ENOSYS 38\nerrno ENEWTHING 200",
            "ENEWTHING",
        ),
        (
            "scope struct evtchn_bind_pirq",
            "scope struct evtchn_bind_pirq\nscope struct evtchn_new_thing",
            "evtchn_new_thing",
        ),
        // Negative status codes are compared as C prints them.
        (
            "const GNTST_bad_gntref 18446744073709551613",
            "const GNTST_bad_gntref 18446744073709551612",
            "GNTST_BAD_GNTREF",
        ),
        (
            "field grant_entry_v1 frame offset=4 size=4",
            "field grant_entry_v1 frame offset=8 size=4",
            "GrantEntryV1.frame",
        ),
        (
            "const GNTTABOP_query_size 6",
            "const GNTTABOP_query_size 6\nconst GNTTABOP_new_thing 99",
            "GNTTABOP_new_thing",
        ),
        (
            "const XEN_DOMCTL_getdomaininfo 5",
            "const XEN_DOMCTL_getdomaininfo 5\nconst XEN_DOMCTL_new_thing 99",
            "XEN_DOMCTL_new_thing",
        ),
        // An absent entry must name something Xen has.
        (
            "const DOMID_COW 32755",
            "const DOMID_OTHER 32755",
            "DOMID_COW",
        ),
        // The structures sharing EvtchnPort's layout are compared field by field.
        (
            "field evtchn_unmask port offset=0 size=4",
            "field evtchn_unmask port offset=4 size=4",
            "evtchn_unmask",
        ),
        (
            "field start_info nr_p2m_frames offset=1160 size=8",
            "field start_info nr_p2m_frames offset=1160 size=8\nfield start_info extra offset=1168 size=8",
            "extra",
        ),
    ];
    for (line, doctored, item) in cases {
        assert!(out.contains(line), "{line:?} not in the real output");
        let r = compare(&parse(&out.replace(line, doctored)));
        assert!(
            r.errors.iter().any(|e| e.contains(item)),
            "doctoring {line:?} was not reported: {:?}",
            r.errors
        );
    }
}
