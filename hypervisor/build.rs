//! Link the bare-metal binary with `link.ld`, and only it: host builds (tests, the
//! host shim binary) must link normally.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("TARGET").as_deref() == Ok("x86_64-unknown-none") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
        // Keep sections page-aligned in the file but do not pad the file to the
        // (default 4 KiB) max page size beyond that; the multiboot1 header must stay
        // within the first 8 KiB of the file.
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=0x1000");
        println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
    }
}
