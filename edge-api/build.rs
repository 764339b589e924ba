//! Link settings for the WASM builds of the edge.
//!
//! A fresh component instance serves every request. Its heap starts in the linear memory the
//! module declares up front (wasi-libc's allocator uses all of it before calling `memory.grow`),
//! so declaring enough for a whole request means the host never grows the memory mid-request:
//! each grow costs the host an `mprotect` on the way up and another when the instance is
//! recycled, with a TLB shootdown across cores each time. Untouched pages cost nothing.

/// Linear memory the component starts with: the 1 MiB Rust stack, static data and a heap that
/// covers a request's allocations.
const INITIAL_MEMORY_BYTES: u64 = 4 << 20;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if arch == "wasm32" {
        println!("cargo:rustc-link-arg-cdylib=--initial-memory={INITIAL_MEMORY_BYTES}");
    }
}
