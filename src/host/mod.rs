//! The local host for the edge-api Spin component, on wasmtime.
//!
//! It serves a Spin 4-style component (exporting `wasi:http/handler@0.3.0`) the way
//! `spin up` would: component instances from the pooling allocator, each in its own `Store`,
//! reused for a bounded number of requests as Spin reuses p3 instances ([`InstanceReuse`]),
//! with `spin:variables` and `spin:sqlite` (backed by local SQLite files), WASI 0.2/0.3 and
//! outbound `wasi:http` provided by the host.
//!
//! The engine, the compiled component (cached on disk under
//! [`HostSettings::cache_dir`]) and the linked, pre-instantiated component are built
//! once in [`Host::start`].

mod bindings;
mod cache;
mod instances;
mod server;
mod sqlite;
mod state;
mod variables;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use tokio::net::TcpListener;
use wasmtime::component::Linker;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::handler::{InstantiationError, ProxyHandler};
use wasmtime_wasi_http::p3::bindings::ServicePre;

pub use instances::InstanceReuse;
use instances::Instances;

use state::{Shared, Spin, StoreState};

/// Largest request body the host accepts; larger ones get `413 Payload Too Large`.
pub const MAX_REQUEST_BODY: usize = 1024 * 1024;

/// Wall-clock budget of one request, guest execution and host I/O together.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of each pooled linear memory reset in place between requests rather than decommitted.
/// With `PAGEMAP_SCAN` only the pages a request dirtied are reset, so this can cover the whole
/// working set of a request: the Rust stack (the first MiB), static data and the heap.
const KEEP_RESIDENT_MEMORY: usize = 8 << 20;
/// Bytes of each pooled table reset in place.
const KEEP_RESIDENT_TABLE: usize = 64 << 10;
/// Bytes of each pooled async stack reset in place.
const KEEP_RESIDENT_STACK: usize = 256 << 10;
/// Freed instance slots decommitted together, so one batch of IPIs serves many requests.
const DECOMMIT_BATCH: usize = 16;
/// Period of the engine's epoch; the guest is interrupted at the next epoch past
/// its deadline.
const EPOCH_TICK: Duration = Duration::from_millis(100);
/// Largest linear memory one component instance may grow to.
const MAX_MEMORY_SIZE: usize = 256 << 20;

/// Everything the host needs to serve one component.
#[derive(Debug, Clone)]
pub struct HostSettings {
    /// Address to listen on, e.g. `127.0.0.1:8080` (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The `.wasm` component to serve.
    pub component: PathBuf,
    /// Spin variables, by lowercase name. Values are secrets and never logged.
    pub variables: BTreeMap<String, String>,
    /// SQLite databases by the name the guest opens (`"default"`), to their files.
    pub sqlite_databases: BTreeMap<String, PathBuf>,
    /// SQL files run (as one batch each, in order) on every database at start;
    /// they must be idempotent.
    pub sqlite_migrations: Vec<PathBuf>,
    /// Directory of the compiled-component cache.
    pub cache_dir: PathBuf,
    /// Most component instances alive at once (size of the pooling allocator).
    pub max_instances: u32,
    /// How many requests an instance serves before it is dropped.
    pub instance_reuse: InstanceReuse,
    /// Host directories mounted read-only into the component, like spin.toml's `files`.
    pub mounts: Vec<MountedDir>,
}

/// A host directory the component sees at `guest` (spin.toml: `{ source, destination }`).
#[derive(Debug, Clone)]
pub struct MountedDir {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the component sees it, e.g. `/web`.
    pub guest: String,
}

/// A started host: component compiled and linked, databases migrated, socket bound.
pub struct Host {
    inner: Arc<Inner>,
    /// Instances for [`Host::handle`]; each serving thread has its own.
    in_process: ProxyHandler<Instances>,
    listener: TcpListener,
    local_addr: SocketAddr,
}

/// What every request shares.
struct Inner {
    instances: Instances,
    _epoch: EpochTicker,
}

/// Advances the engine epoch every [`EPOCH_TICK`] until dropped.
struct EpochTicker(tokio::task::JoinHandle<()>);

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Host {
    /// Compiles (or loads the cached compilation of) the component, links it, runs
    /// migrations, binds.
    pub async fn start(settings: HostSettings) -> anyhow::Result<Host> {
        let started = Instant::now();
        let engine = build_engine(settings.max_instances)?;

        let loaded = {
            let engine = engine.clone();
            let component = settings.component.clone();
            let cache_dir = settings.cache_dir.clone();
            tokio::task::spawn_blocking(move || {
                cache::load_or_compile(&engine, &component, &cache_dir)
            })
            .await
            .context("component compilation task failed")??
        };
        tracing::info!(
            target: "edgemeet::host",
            component = %settings.component.display(),
            cached = loaded.from_cache,
            elapsed_ms = loaded.elapsed.as_secs_f64() * 1e3,
            cache_file = %loaded.cache_file.display(),
            "component loaded"
        );

        let link_started = Instant::now();
        let linker = build_linker(&engine)?;
        let instance_pre = linker
            .instantiate_pre(&loaded.component)
            .map_err(anyhow::Error::from)
            .context("linking the component (does it import an interface this host lacks?)")?;
        let pre = ServicePre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .context("the component does not export wasi:http/handler@0.3.0")?;
        tracing::debug!(target: "edgemeet::host", elapsed_us = link_started.elapsed().as_micros() as u64, "component linked");

        let mut migrations = Vec::with_capacity(settings.sqlite_migrations.len());
        for file in &settings.sqlite_migrations {
            let sql = tokio::fs::read_to_string(file)
                .await
                .with_context(|| format!("reading migration {}", file.display()))?;
            migrations.push((file.clone(), sql));
        }
        let databases = {
            let dbs = settings.sqlite_databases.clone();
            tokio::task::spawn_blocking(move || sqlite::Databases::open(&dbs, &migrations))
                .await
                .context("sqlite setup task failed")??
        };
        // Checked once here, so instances do not each fail (and warn) on a missing directory.
        let mounts = settings
            .mounts
            .iter()
            .filter(|mount| {
                let present = mount.host.is_dir();
                if !present {
                    tracing::warn!(target: "edgemeet::host", dir = %mount.host.display(), guest = %mount.guest, "directory to mount is missing; the component will not see it");
                }
                present
            })
            .cloned()
            .collect();
        let shared = Arc::new(Shared {
            variables: settings.variables.clone(),
            databases,
            mounts,
        });

        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        let local_addr = listener.local_addr().context("reading the bound address")?;

        let ticker = {
            let engine = engine.clone();
            EpochTicker(tokio::spawn(async move {
                let mut tick = tokio::time::interval(EPOCH_TICK);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    engine.increment_epoch();
                }
            }))
        };

        tracing::info!(
            target: "edgemeet::host",
            addr = %local_addr,
            variables = shared.variables.len(),
            databases = settings.sqlite_databases.len(),
            startup_ms = started.elapsed().as_secs_f64() * 1e3,
            "host ready"
        );
        let instances = Instances::new(engine, pre, shared, settings.instance_reuse);
        Ok(Host {
            in_process: ProxyHandler::new(instances.clone()),
            inner: Arc::new(Inner {
                instances,
                _epoch: ticker,
            }),
            listener,
            local_addr,
        })
    }

    /// The address the host listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight
    /// requests finish.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        server::serve(self.inner, self.listener, self.local_addr, shutdown).await
    }

    /// One request straight into a component instance, without the socket (for
    /// benchmarks). A relative URI is completed with `http://` and the `Host` header
    /// (or the listen address). A guest trap gives a 500 response, not an error.
    pub async fn handle(&self, req: http::Request<Bytes>) -> anyhow::Result<http::Response<Bytes>> {
        let req = server::complete_request(req, self.local_addr)?;
        handle_request(&self.in_process, req).await
    }
}

impl Inner {
    /// Instances for one serving thread: its requests go to instances on that thread.
    fn thread_instances(&self) -> ProxyHandler<Instances> {
        ProxyHandler::new(self.instances.clone())
    }
}

/// Runs `req` (with a full URI) through an instance of the component from `instances`.
async fn handle_request(
    instances: &ProxyHandler<Instances>,
    req: http::Request<Bytes>,
) -> anyhow::Result<http::Response<Bytes>> {
    if req.body().len() > MAX_REQUEST_BODY {
        return Ok(text_response(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large\n",
        ));
    }
    match tokio::time::timeout(REQUEST_TIMEOUT, run_guest(instances, req)).await {
        Ok(Ok(res)) => Ok(res),
        Ok(Err(GuestFailure::Instantiate(e))) => {
            if is_pool_exhausted(&e) {
                tracing::warn!(target: "edgemeet::host", "all component instances busy; answering 503");
                return Ok(text_response(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "server busy\n",
                ));
            }
            Err(e.context("instantiating the component"))
        }
        Ok(Err(GuestFailure::Trap(e))) => {
            tracing::error!(target: "edgemeet::host", error = %format!("{e:#}"), "component trapped");
            Ok(text_response(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error\n",
            ))
        }
        Err(_elapsed) => {
            tracing::error!(target: "edgemeet::host", timeout_s = REQUEST_TIMEOUT.as_secs(), "request timed out in the component");
            Ok(text_response(
                http::StatusCode::GATEWAY_TIMEOUT,
                "request timed out\n",
            ))
        }
    }
}

/// Hands `req` to an instance and collects the response body (the guest may still be writing
/// it after returning the response head).
async fn run_guest(
    instances: &ProxyHandler<Instances>,
    req: http::Request<Bytes>,
) -> Result<http::Response<Bytes>, GuestFailure> {
    let req = req.map(|body| {
        Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync()
    });
    let response = instances.handle((), req).await.map_err(|e| {
        if e.is::<InstantiationError<()>>() {
            GuestFailure::Instantiate(anyhow::Error::from(e))
        } else {
            GuestFailure::Trap(anyhow::Error::from(e))
        }
    })?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| GuestFailure::Trap(anyhow::anyhow!("response body: {e:?}")))?
        .to_bytes();
    Ok(http::Response::from_parts(parts, body))
}

/// Why a request produced no guest response.
enum GuestFailure {
    /// The instance could not be created (e.g. the pool is exhausted).
    Instantiate(anyhow::Error),
    /// The guest trapped or the host failed while it ran.
    Trap(anyhow::Error),
}

fn is_pool_exhausted(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
            .is_some()
    }) || format!("{e:#}").contains("concurrency limit")
}

/// A plain-text response generated by the host itself.
pub(crate) fn text_response(status: http::StatusCode, body: &'static str) -> http::Response<Bytes> {
    let mut res = http::Response::new(Bytes::from_static(body.as_bytes()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

fn build_engine(max_instances: u32) -> anyhow::Result<Engine> {
    let max = max_instances.max(1);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(max)
        .total_core_instances(max.saturating_mul(16))
        .total_memories(max.saturating_mul(4))
        .total_tables(max.saturating_mul(8))
        .total_stacks(max.saturating_mul(4))
        .max_memory_size(MAX_MEMORY_SIZE)
        // Reset what a request touched with memset instead of madvise, and decommit the rest in
        // batches: every madvise in a multi-threaded process costs TLB-shootdown IPIs and the
        // page faults to bring the pages back.
        .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
        .table_keep_resident(KEEP_RESIDENT_TABLE)
        .async_stack_keep_resident(KEEP_RESIDENT_STACK)
        .decommit_batch_size(DECOMMIT_BATCH)
        // Find the dirty pages with the PAGEMAP_SCAN ioctl (Linux 6.7+) where the kernel has it,
        // instead of resetting the low addresses blindly.
        .pagemap_scan(Enabled::Auto);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .wasm_component_model_async(true)
        .epoch_interruption(true)
        .parallel_compilation(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    if std::env::var_os("EDGEMEET_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("creating the wasmtime engine")
}

fn build_linker(engine: &Engine) -> anyhow::Result<Linker<StoreState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .map_err(anyhow::Error::from)
        .context("linking WASI 0.2")?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)
        .map_err(anyhow::Error::from)
        .context("linking WASI 0.3")?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)
        .map_err(anyhow::Error::from)
        .context("linking wasi:http 0.3")?;
    bindings::spin::sqlite::sqlite::add_to_linker::<_, Spin>(&mut linker, StoreState::spin)
        .map_err(anyhow::Error::from)
        .context("linking spin:sqlite")?;
    bindings::spin::variables::variables::add_to_linker::<_, Spin>(&mut linker, StoreState::spin)
        .map_err(anyhow::Error::from)
        .context("linking spin:variables")?;
    Ok(linker)
}
