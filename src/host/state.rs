//! The per-store host state: one [`StoreState`] per request.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasData, ResourceTable};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::sqlite::Databases;
use super::MountedDir;

/// Host resources shared by every request: Spin variables, SQLite databases and the
/// directories mounted into the component.
pub(crate) struct Shared {
    pub(crate) variables: BTreeMap<String, String>,
    pub(crate) databases: Databases,
    pub(crate) mounts: Vec<MountedDir>,
}

/// The data of one `Store`: WASI, WASI HTTP and the Spin interfaces.
pub(crate) struct StoreState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    shared: Arc<Shared>,
}

impl StoreState {
    /// Fresh state for one instance. Guest stdout/stderr go to the host's; the mounted
    /// directories are preopened read-only (a directory that cannot be opened is left out, and
    /// the guest sees it missing).
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let mut wasi = WasiCtxBuilder::new();
        wasi.inherit_stdout().inherit_stderr();
        for mount in &shared.mounts {
            if let Err(e) = wasi.preopened_dir(&mount.host, &mount.guest, FsPerms::ReadOnly) {
                tracing::warn!(target: "edgemeet::host", dir = %mount.host.display(), error = %format!("{e:#}"), "cannot mount a directory into the component");
            }
        }
        Self {
            wasi: wasi.build(),
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
