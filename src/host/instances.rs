//! Component instances and their reuse, the way Spin and `wasmtime serve` run a
//! `wasi:http/handler@0.3.0` component: an instance serves a bounded number of requests (some
//! of them concurrently, since a p3 handler is async) and is dropped after that count, after a
//! trap, or after being idle for a while. `InstanceReuse { max_requests: 1, .. }` gives every
//! request a fresh instance.
//!
//! The request loop itself is wasmtime-wasi-http's [`ProxyHandler`]; this module only says how
//! to make an instance and when to retire it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use wasmtime::component::GuestTaskId;
use wasmtime::{Engine, Store, StoreContextMut};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, ProxyPre, ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::WasiHttpView as _;

use super::state::{Shared, StoreState};
use super::{EPOCH_TICK, REQUEST_TIMEOUT};

/// How long an instance lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceReuse {
    /// Requests one instance serves before it is dropped (Spin's
    /// `--max-instance-reuse-count`, 128 for p3 components). 1 means a fresh instance per
    /// request.
    pub max_requests: u32,
    /// Requests one instance serves at the same time (Spin's
    /// `--max-instance-concurrent-reuse-count`).
    pub max_concurrent: u32,
    /// An instance with no request for this long is dropped (Spin's `--idle-instance-timeout`).
    pub idle_timeout: Duration,
}

impl Default for InstanceReuse {
    /// Spin's defaults for p3 components.
    fn default() -> Self {
        InstanceReuse {
            max_requests: 128,
            max_concurrent: 16,
            idle_timeout: Duration::from_secs(1),
        }
    }
}

/// Makes component instances for [`ProxyHandler`](wasmtime_wasi_http::handler::ProxyHandler):
/// a fresh `Store` with the host state, instantiated from the linked component.
#[derive(Clone)]
pub(crate) struct Instances(Arc<InstancesInner>);

struct InstancesInner {
    engine: Engine,
    pre: ProxyPre<StoreState>,
    shared: Arc<Shared>,
    reuse: InstanceReuse,
}

impl Instances {
    pub(crate) fn new(
        engine: Engine,
        pre: ServicePre<StoreState>,
        shared: Arc<Shared>,
        reuse: InstanceReuse,
    ) -> Instances {
        Instances(Arc::new(InstancesInner {
            engine,
            pre: ProxyPre::P3(pre),
            shared,
            reuse,
        }))
    }
}

/// Epoch ticks after which a running guest is interrupted.
fn deadline_ticks() -> u64 {
    let ticks = REQUEST_TIMEOUT.as_millis() / EPOCH_TICK.as_millis() + 1;
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

impl HandlerState for Instances {
    type StoreData = StoreState;
    type WorkerExpiration = Expiry;
    type WorkerState = Reuse;

    async fn instantiate(&self) -> wasmtime::Result<Instance<StoreState, Expiry, Reuse>> {
        let inner = &self.0;
        let mut store = Store::new(&inner.engine, StoreState::new(inner.shared.clone()));
        store.set_epoch_deadline(deadline_ticks());
        store.epoch_deadline_trap();
        let proxy = inner.pre.instantiate_async(&mut store).await?;
        Ok(Instance {
            store,
            proxy,
            view: |state: &mut StoreState| state.http(),
            expiration: Expiry {
                idle_timeout: inner.reuse.idle_timeout,
                timer: Box::pin(tokio::time::sleep(inner.reuse.idle_timeout)),
            },
            state: Reuse(inner.reuse),
        })
    }
}

/// When an instance takes another request.
pub(crate) struct Reuse(InstanceReuse);

impl WorkerState for Reuse {
    type StoreData = StoreState;
    type RequestData = ();

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        let reuse = self.0;
        if total >= reuse.max_requests.max(1) as usize {
            ShouldAccept::Never
        } else if concurrent >= reuse.max_concurrent.max(1) as usize {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, StoreState>,
        _data: (),
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        // Each request re-arms the guest's interruption deadline.
        store.set_epoch_deadline(deadline_ticks());
        Box::pin(tokio::time::sleep(REQUEST_TIMEOUT))
    }

    fn drop(&self, store: Store<StoreState>, result: wasmtime::Result<()>) {
        if let Err(e) = result {
            tracing::error!(target: "edgemeet::host", error = %format!("{e:#}"), "component instance dropped after a failure");
        }
        drop(store);
    }
}

/// When an instance is retired by time: idle past [`InstanceReuse::idle_timeout`], or a
/// request (or the guest's work after its response) past [`REQUEST_TIMEOUT`].
pub(crate) struct Expiry {
    idle_timeout: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl WorkerExpiration for Expiry {
    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        since: Instant,
    ) -> Poll<()> {
        let this = self.get_mut();
        let limit = match status {
            WorkerStatus::Idle => this.idle_timeout,
            WorkerStatus::Requests | WorkerStatus::PostReturn => REQUEST_TIMEOUT,
        };
        let deadline = tokio::time::Instant::from_std(since + limit);
        if this.timer.deadline() != deadline {
            this.timer.as_mut().reset(deadline);
        }
        this.timer.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuse_bounds() {
        let reuse = Reuse(InstanceReuse {
            max_requests: 3,
            max_concurrent: 2,
            idle_timeout: Duration::from_secs(1),
        });
        assert!(matches!(
            reuse.should_accept_request(0, 0),
            ShouldAccept::Yes
        ));
        assert!(matches!(
            reuse.should_accept_request(1, 1),
            ShouldAccept::Yes
        ));
        assert!(matches!(
            reuse.should_accept_request(2, 2),
            ShouldAccept::No
        ));
        assert!(matches!(
            reuse.should_accept_request(0, 3),
            ShouldAccept::Never
        ));

        let fresh = Reuse(InstanceReuse {
            max_requests: 1,
            ..InstanceReuse::default()
        });
        assert!(matches!(
            fresh.should_accept_request(0, 0),
            ShouldAccept::Yes
        ));
        assert!(matches!(
            fresh.should_accept_request(0, 1),
            ShouldAccept::Never
        ));
    }
}
