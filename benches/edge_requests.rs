//! Per-request cost of the edge: `room/getJoinToken` and `/api/session`, natively (the edge-api
//! core compiled for this machine) and as the Spin component in the local wasmtime host, both
//! in-process and over loopback HTTP; plus the host's cold start.
//!
//! Run: `scripts/bench.sh` (or `cargo bench --bench edge_requests` after scripts/build.sh).
//! Both paths keep the configuration they read once (as a Spin instance does), and on every
//! request verify the HMAC, read and write SQLite (a WAL file, same pragmas as the host) and
//! sign JWTs, so the ratio compares like with like.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use edge_api::exchange::EdgeRequest;
use edge_api::native::{SqliteStore, SystemClock};
use edge_api::platform::{
    ConfigSource, HttpClient, OutboundError, OutboundRequest, OutboundResponse,
};
use edge_api::{Edge, EdgeConfig};
use edgemeet::host::{Host, HostSettings, InstanceReuse};

/// The allocator the `edgemeet` binary runs with (src/main.rs), for the native core and the host
/// alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const API_SECRET: &str = "bench-api-secret-0123456789abcdef0123456789";

fn variables() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("api_key".into(), "plugnmeet".into()),
        ("api_secret".into(), API_SECRET.into()),
        (
            "regions".into(),
            r#"[{"id":"eu","name":"Frankfurt","lat":50.1,"lon":8.7,"livekit_url":"ws://127.0.0.1:7880","api_key":"lk"},
                {"id":"ap","name":"Singapore","lat":1.35,"lon":103.8,"livekit_url":"ws://127.0.0.1:7880","api_key":"lk"}]"#
                .into(),
        ),
        (
            "livekit_secrets".into(),
            r#"{"eu":"bench-livekit-secret-0123456789abcdef","ap":"bench-livekit-secret-0123456789abcdef"}"#.into(),
        ),
    ])
}

// ------------------------------------------------------------------ the native platform

struct Variables(BTreeMap<String, String>);
impl ConfigSource for Variables {
    async fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

/// A test double for outbound HTTP: the benchmarked requests make no outbound call, and this
/// fails loudly if one ever does.
struct NoOutbound;
impl HttpClient for NoOutbound {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, OutboundError> {
        Err(OutboundError(format!(
            "benchmark made an outbound call to {}",
            request.url
        )))
    }
}

/// One request through the native core, with the configuration read once and kept, as a Spin
/// instance keeps it across the requests it serves.
async fn native_request(store: &SqliteStore, config: &EdgeConfig, request: EdgeRequest) -> u16 {
    let edge = Edge {
        config: config.clone(),
        store,
        http: NoOutbound,
        clock: SystemClock,
    };
    edge.handle(request).await.status
}

// ------------------------------------------------------------------ requests

fn signed(path: &str, body: &str) -> (String, Vec<(String, String)>, Vec<u8>) {
    let mac = edge_api::auth::sign(API_SECRET.as_bytes(), body.as_bytes());
    (
        path.to_owned(),
        vec![
            ("api-key".into(), "plugnmeet".into()),
            ("hash-signature".into(), mac),
            ("content-type".into(), "application/json".into()),
        ],
        body.as_bytes().to_vec(),
    )
}

type Call = (String, Vec<(String, String)>, Vec<u8>);

fn edge_request((path, headers, body): &Call) -> EdgeRequest {
    let mut r = EdgeRequest::new(http::Method::POST, path);
    for (k, v) in headers {
        r.headers.insert(
            http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            http::HeaderValue::from_str(v).expect("value"),
        );
    }
    r.body = body.clone();
    r
}

fn http_request((path, headers, body): &Call) -> http::Request<Bytes> {
    let mut b = http::Request::builder().method("POST").uri(path.as_str());
    for (k, v) in headers {
        b = b.header(k, v);
    }
    b.body(Bytes::from(body.clone())).expect("request")
}

const JOIN_BODY: &str = r#"{"room_id":"bench-room","user_info":{"name":"Bench User","user_id":"bench-user","is_admin":true,"user_metadata":{"preferred_lang":"en"}}}"#;

fn component() -> PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let path = target.join("wasm32-wasip2/component/edge_api.wasm");
    assert!(
        path.is_file(),
        "{} missing: run scripts/build.sh",
        path.display()
    );
    path
}

async fn start_host(dir: &Path, cache: &Path) -> Host {
    start_host_with(dir, cache, InstanceReuse::default()).await
}

async fn start_host_with(dir: &Path, cache: &Path, instance_reuse: InstanceReuse) -> Host {
    std::fs::write(dir.join("schema.sql"), edge_api::db::SCHEMA).expect("schema");
    Host::start(HostSettings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        component: component(),
        variables: variables(),
        sqlite_databases: BTreeMap::from([("default".into(), dir.join("edge.sqlite"))]),
        sqlite_migrations: vec![dir.join("schema.sql")],
        cache_dir: cache.to_path_buf(),
        max_instances: 16,
        instance_reuse,
        mounts: Vec::new(),
    })
    .await
    .expect("host")
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("edgemeet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");

    // Native core.
    let native_dir = dir.join("native");
    std::fs::create_dir_all(&native_dir).expect("dir");
    let store = SqliteStore::open(&native_dir.join("edge.sqlite")).expect("open sqlite");
    let config = rt
        .block_on(EdgeConfig::load(&Variables(variables())))
        .expect("config");
    let create = signed(
        "/auth/room/create",
        r#"{"room_id":"bench-room","metadata":{"room_title":"Bench"}}"#,
    );
    let join = signed("/auth/room/getJoinToken", JOIN_BODY);
    assert_eq!(
        rt.block_on(native_request(&store, &config, edge_request(&create))),
        200
    );
    let token = {
        let edge = Edge {
            config: config.clone(),
            store: &store,
            http: NoOutbound,
            clock: SystemClock,
        };
        let response = rt.block_on(edge.handle(edge_request(&join)));
        let json: serde_json::Value = serde_json::from_slice(&response.body).expect("json");
        json["token"].as_str().expect("token").to_owned()
    };
    let session: Call = (
        "/api/session".into(),
        vec![("authorization".into(), token)],
        b"{}".to_vec(),
    );

    // Component in the host.
    let wasm_dir = dir.join("wasm");
    std::fs::create_dir_all(&wasm_dir).expect("dir");
    let cache = dir.join("cache");
    let host = rt.block_on(start_host(&wasm_dir, &cache));
    let status = |r: anyhow::Result<http::Response<Bytes>>| r.expect("host").status().as_u16();
    assert_eq!(status(rt.block_on(host.handle(http_request(&create)))), 200);
    let wasm_session = {
        let r = rt.block_on(host.handle(http_request(&join))).expect("join");
        let json: serde_json::Value = serde_json::from_slice(r.body()).expect("json");
        let token = json["token"].as_str().expect("token").to_owned();
        (
            "/api/session".to_string(),
            vec![("authorization".to_string(), token)],
            b"{}".to_vec(),
        )
    };

    // Measured on a current-thread runtime, as each of the host's serving threads runs: the
    // instance's worker task and the caller share the thread.
    let serving_thread = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("in_process");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("get_join_token/native", |b| {
        b.to_async(&serving_thread).iter(|| async {
            assert_eq!(
                native_request(&store, &config, edge_request(&join)).await,
                200
            )
        })
    });
    group.bench_function("get_join_token/wasm", |b| {
        b.to_async(&serving_thread)
            .iter(|| async { assert_eq!(status(host.handle(http_request(&join)).await), 200) })
    });
    // Spin's p2 behaviour, and this host's before instance reuse: a fresh instance per request.
    let fresh_dir = dir.join("wasm-fresh");
    std::fs::create_dir_all(&fresh_dir).expect("dir");
    let fresh = rt.block_on(start_host_with(
        &fresh_dir,
        &cache,
        InstanceReuse {
            max_requests: 1,
            ..InstanceReuse::default()
        },
    ));
    assert_eq!(
        status(rt.block_on(fresh.handle(http_request(&create)))),
        200
    );
    group.bench_function("get_join_token/wasm_fresh_instance", |b| {
        b.to_async(&serving_thread)
            .iter(|| async { assert_eq!(status(fresh.handle(http_request(&join)).await), 200) })
    });
    // The host's floor: one `SELECT 1`, no body to read, no JWT.
    let health: Call = ("/healthCheck".into(), Vec::new(), Vec::new());
    group.bench_function("health_check/wasm", |b| {
        b.to_async(&serving_thread)
            .iter(|| async { assert_eq!(status(host.handle(http_request(&health)).await), 200) })
    });
    group.bench_function("session/native", |b| {
        b.to_async(&serving_thread).iter(|| async {
            assert_eq!(
                native_request(&store, &config, edge_request(&session)).await,
                200
            )
        })
    });
    group.bench_function("session/wasm", |b| {
        b.to_async(&serving_thread).iter(|| async {
            assert_eq!(status(host.handle(http_request(&wasm_session)).await), 200)
        })
    });
    group.finish();

    // Over loopback HTTP, one keep-alive connection, like a backend calling the edge.
    let serving = rt.block_on(start_host(&wasm_dir, &cache));
    let base = format!("http://{}", serving.local_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(serving.serve(async {
        let _ = stop_rx.await;
    }));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let send = |call: &Call| {
        let mut req = agent.post(format!("{base}{}", call.0));
        for (k, v) in &call.1 {
            req = req.header(k.as_str(), v.as_str());
        }
        let mut resp = req.send(&call.2[..]).expect("http");
        let _ = resp.body_mut().read_to_vec();
        resp.status().as_u16()
    };
    // This machine's loopback floor: a bare hyper server on the same runtime that answers at once.
    let (plain_base, plain_stop) = rt.block_on(start_plain_hyper());
    let plain: Call = ("/healthCheck".into(), Vec::new(), Vec::new());
    let mut group = c.benchmark_group("http_loopback");
    group.bench_function("plain_hyper_floor", |b| {
        b.iter(|| {
            let mut resp = agent
                .post(format!("{plain_base}{}", plain.0))
                .send(&plain.2[..])
                .expect("http");
            let _ = resp.body_mut().read_to_vec();
            assert_eq!(resp.status().as_u16(), 200)
        })
    });
    let _ = plain_stop.send(());
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("get_join_token", |b| {
        b.iter(|| assert_eq!(send(&join), 200))
    });
    group.bench_function("session", |b| {
        b.iter(|| assert_eq!(send(&wasm_session), 200))
    });
    group.bench_function("health_check", |b| {
        b.iter(|| assert_eq!(send(&health), 200))
    });
    group.finish();
    let _ = stop_tx.send(());
    let _ = rt.block_on(server);

    // Cold start: the host up to its first answer, with and without the compiled-component cache.
    let mut group = c.benchmark_group("cold_start");
    group.sample_size(10);
    group.bench_function("host_start_cached_component", |b| {
        b.to_async(&rt).iter(|| async {
            let host = start_host(&wasm_dir, &cache).await;
            assert_eq!(status(host.handle(http_request(&join)).await), 200);
        })
    });
    group.bench_function("host_start_compiling_component", |b| {
        b.to_async(&rt).iter(|| async {
            let fresh = dir.join(format!(
                "cache-{}",
                edgemeet::settings::random_hex(4).expect("rand")
            ));
            let host = start_host(&wasm_dir, &fresh).await;
            assert_eq!(status(host.handle(http_request(&join)).await), 200);
        })
    });
    group.finish();
    drop(host);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A bare hyper HTTP/1.1 server answering 200 at once: the floor any host on this machine pays.
async fn start_plain_hyper() -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, _) = accepted.expect("accept");
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                        hyper_util::rt::TokioIo::new(stream),
                        hyper::service::service_fn(|_req| async {
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                http_body_util::Full::new(Bytes::from_static(b"Healthy")),
                            ))
                        }),
                    ));
                }
                _ = &mut stop_rx => break,
            }
        }
    });
    (base, stop_tx)
}

/// One placement decision with 100 regions registered: read the registry (100 rows) and pick
/// the nearest available region for a user, as the first join of a room does.
fn placement(c: &mut Criterion) {
    use edge_api::config::{GeoHeaders, GeoPoint, Region};
    use edge_api::registry::{self, Capacity, Heartbeat, Load};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("edgemeet-bench-placement-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let store = SqliteStore::open(&dir.join("edge.sqlite")).expect("open sqlite");
    // 100 regions on a grid over the globe; every fourth one full, draining or silent.
    let regions: Vec<Region> = (0..100)
        .map(|i| Region {
            id: format!("r{i:03}"),
            name: format!("Region {i}"),
            location: GeoPoint {
                lat: -60.0 + f64::from(i / 10) * 13.0,
                lon: -170.0 + f64::from(i % 10) * 36.0,
            },
            livekit_url: "ws://127.0.0.1:7880".into(),
            api_key: "lk".into(),
            api_secret: "bench-livekit-secret-0123456789abcdef".into(),
            direct_webhooks: false,
        })
        .collect();
    let config = EdgeConfig {
        api_key: "plugnmeet".into(),
        api_secret: API_SECRET.into(),
        token_validity_secs: 600,
        max_participants_cap: 0,
        max_room_duration_minutes: 0,
        sidecar_secrets: regions
            .iter()
            .map(|r| {
                (
                    r.id.clone(),
                    "bench-sidecar-secret-0123456789abcdef".to_string(),
                )
            })
            .collect(),
        default_region: regions[0].id.clone(),
        regions,
        geo_headers: GeoHeaders {
            latitude: "x-lat".into(),
            longitude: "x-lon".into(),
        },
        // Long enough that the live regions stay live through the whole run.
        region_timeout_secs: 3600,
        max_events_per_batch: 100,
        past_rooms_retention_days: 0,
        recorders: Default::default(),
        webhooks: Default::default(),
        public_url: String::new(),
    };
    let edge = Edge {
        config,
        store: &store,
        http: NoOutbound,
        clock: SystemClock,
    };
    let now = edge_api::platform::Clock::now_ms(&edge.clock);
    for (i, region) in edge.config.regions.iter().enumerate() {
        let heartbeat = Heartbeat {
            region_id: region.id.clone(),
            sidecar_id: "bench".into(),
            sent_at_ms: now,
            livekit_ok: true,
            events_ok: true,
            load: Load {
                rooms: if i % 4 == 1 { 50 } else { 3 },
                participants: 10,
                publishers: 5,
                cpu_load: Some(0.3),
            },
            capacity: Capacity {
                max_rooms: 50,
                max_participants: 0,
            },
            draining: i % 4 == 2,
            leaving: false,
            undelivered_events: 0,
        };
        let received = if i % 4 == 3 { now - 7_200_000 } else { now };
        rt.block_on(edge_api::db::record_heartbeat(&store, &heartbeat, received))
            .expect("heartbeat");
    }
    let paris = GeoPoint {
        lat: 48.9,
        lon: 2.35,
    };
    let mut group = c.benchmark_group("placement");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("100_regions/registry_and_choice", |b| {
        b.iter(|| {
            let registry = rt.block_on(registry::load(&edge)).expect("registry");
            let chosen = edge_api::placement::choose(&edge.config, None, Some(paris), |r| {
                registry.is_available(&r.id)
            });
            assert!(chosen.is_some());
        })
    });
    group.bench_function("100_regions/choice_only", |b| {
        let registry = rt.block_on(registry::load(&edge)).expect("registry");
        b.iter(|| {
            let chosen = edge_api::placement::choose(&edge.config, None, Some(paris), |r| {
                registry.is_available(&r.id)
            });
            assert!(chosen.is_some());
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(edge, benches, placement);
criterion_main!(edge);
