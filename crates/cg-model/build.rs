//! With the `libtorch` feature: libtorch's folder (from torch-sys) on the run path of this crate's
//! tests, so that they start without LD_LIBRARY_PATH, and recorded for the messages.
fn main() {
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB").unwrap_or_default();
    if !lib.is_empty() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    println!("cargo:rustc-env=CG_LIBTORCH_BUILD_LIB={lib}");
}
