//! The per-store host state: one [`StoreState`] per request.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasData, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::sqlite::Databases;

/// Host resources shared by every request: Spin variables and SQLite databases.
pub(crate) struct Shared {
    pub(crate) variables: BTreeMap<String, String>,
    pub(crate) databases: Databases,
}

/// The data of one `Store`: WASI, WASI HTTP and the Spin interfaces.
pub(crate) struct StoreState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    shared: Arc<Shared>,
}

impl StoreState {
    /// Fresh state for one request. Guest stdout/stderr go to the host's.
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            wasi: WasiCtxBuilder::new()
                .inherit_stdout()
                .inherit_stderr()
                .build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            shared,
        }
    }

    /// The view the Spin interface implementations work on.
    pub(crate) fn spin(&mut self) -> SpinView<'_> {
        SpinView {
            table: &mut self.table,
            shared: &self.shared,
        }
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StoreState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: wasmtime_wasi_http::default_hooks(),
        }
    }
}

/// What the `spin:*` host functions see of the store: its resource table and the
/// shared variables and databases.
pub(crate) struct SpinView<'a> {
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) shared: &'a Shared,
}

/// The [`HasData`] marker under which the `spin:*` interfaces are linked.
pub(crate) struct Spin;

impl HasData for Spin {
    type Data<'a> = SpinView<'a>;
}
