//! Host-side bindings for the Spin interfaces the edge-api component imports.
//!
//! Generated from `src/host/wit` (the `spin:sqlite@3.1.0` and `spin:variables@3.0.0`
//! packages as shipped in spin-sdk 7.0.0). WIT `async func`s become `...WithStore`
//! traits whose functions take an `&Accessor`.

#![allow(missing_docs, clippy::all)]

wasmtime::component::bindgen!({
    path: "src/host/wit",
    world: "edgemeet:host/spin-host",
    imports: { default: trappable },
    with: {
        "spin:sqlite/sqlite.connection": crate::host::sqlite::GuestConnection,
    },
});

pub use spin::sqlite::sqlite;
pub use spin::variables::variables;
