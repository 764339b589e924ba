//! What the durable relay costs: events per second the sidecar takes from LiveKit and delivers
//! to the edge with its fsync'd outbox, and the latency it adds to each event (from LiveKit's
//! POST until the edge receives it), p50 and p99.
//!
//! Run: `cargo bench -p media-sidecar --bench relay` (the release `media-sidecar` binary). The
//! edge is a minimal in-process receiver that acknowledges at once, so the figures are the
//! sidecar's own (the real edge's cost per request is in docs/benchmarks.md). Webhooks are
//! signed like LiveKit's. No LiveKit runs: heartbeats report it down, which the relay ignores.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use livekit_api::access_token::AccessToken;
use sha2::{Digest as _, Sha256};

const LK_KEY: &str = "benchkey";
const LK_SECRET: &str = "bench-livekit-secret-0123456789abcdef";
const SECRET: &str = "bench-sidecar-secret-0123456789abcdef0123";

/// When each event id reached the receiving edge.
type Arrivals = Arc<Mutex<std::collections::HashMap<String, Instant>>>;

fn receiver() -> (String, Arrivals) {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("receiver");
    let url = format!("http://{}", server.server_addr().to_ip().expect("ip"));
    let arrivals: Arrivals = Arc::default();
    let seen = arrivals.clone();
    std::thread::spawn(move || {
        for mut request in server.incoming_requests() {
            let mut body = String::new();
            let _ = request.as_reader().read_to_string(&mut body);
            let now = Instant::now();
            if request.url().ends_with("/events") {
                let batch: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                let mut seen = seen.lock().expect("arrivals");
                for event in batch["events"].as_array().into_iter().flatten() {
                    if let Some(id) = event["id"].as_str() {
                        seen.entry(id.to_owned()).or_insert(now);
                    }
                }
            }
            let _ = request.respond(tiny_http::Response::from_string(
                r#"{"status":true,"msg":"ok"}"#,
            ));
        }
    });
    (url, arrivals)
}

fn sidecar(edge: &str, dir: &std::path::Path) -> (Child, String) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let config = dir.join("sidecar.toml");
    std::fs::write(
        &config,
        format!(
            "region_id = \"bench\"\nlisten = \"127.0.0.1:{port}\"\nsidecar_secret = \"{SECRET}\"\n\
             data_dir = \"{data}\"\nheartbeat_seconds = 5\n\
             [livekit]\nurl = \"http://127.0.0.1:9\"\napi_key = \"{LK_KEY}\"\napi_secret = \"{LK_SECRET}\"\n\
             [edge]\nurl = \"{edge}\"\n",
            data = dir.join("data").display()
        ),
    )
    .expect("config");
    let child = Command::new(env!("CARGO_BIN_EXE_media-sidecar"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("media-sidecar");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the sidecar did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, base)
}

/// A LiveKit-shaped webhook and its `Authorization`.
fn webhook(n: usize) -> (String, String) {
    let body = format!(
        r#"{{"event":"participant_joined","room":{{"sid":"RM_bench","name":"bench"}},"participant":{{"sid":"PA_{n}","identity":"user-{n}","name":"User {n}"}},"id":"EV_{n:07}","createdAt":"1795497519"}}"#
    );
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&body));
    let jwt = AccessToken::with_api_key(LK_KEY, LK_SECRET)
        .with_sha256(&hash)
        .to_jwt()
        .expect("jwt");
    (body, jwt)
}

fn post(agent: &ureq::Agent, base: &str, (body, jwt): &(String, String)) {
    let status = agent
        .post(&format!("{base}/webhook"))
        .header("Authorization", jwt)
        .header("Content-Type", "application/webhook+json")
        .send(body.as_bytes())
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    assert_eq!(status, 200, "webhook refused");
}

fn wait_all(arrivals: &Arrivals, n: usize) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        {
            let seen = arrivals.lock().expect("arrivals");
            if seen.len() >= n {
                return seen.values().copied().max().expect("some");
            }
        }
        assert!(Instant::now() < deadline, "events were not delivered");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let dir = std::env::temp_dir().join(format!("sidecar-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (edge, arrivals) = receiver();
    let (mut child, base) = sidecar(&edge, &dir);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();

    // Latency: one event at a time, each delivered before the next is posted.
    let rounds = 500;
    let mut latencies = Vec::with_capacity(rounds);
    for n in 0..rounds {
        let hook = webhook(n);
        let posted = Instant::now();
        post(&agent, &base, &hook);
        let id = format!("EV_{n:07}");
        let arrived = loop {
            if let Some(at) = arrivals.lock().expect("arrivals").get(&id) {
                break *at;
            }
            std::thread::sleep(Duration::from_micros(100));
        };
        latencies.push(arrived - posted);
    }
    latencies.sort();

    // Throughput: 8 LiveKit-like senders posting as fast as the sidecar acknowledges.
    let total = 8000;
    let senders = 8;
    let hooks: Vec<(String, String)> = (rounds..rounds + total).map(webhook).collect();
    let hooks = Arc::new(hooks);
    let started = Instant::now();
    let threads: Vec<_> = (0..senders)
        .map(|s| {
            let hooks = hooks.clone();
            let base = base.clone();
            let agent = agent.clone();
            std::thread::spawn(move || {
                for hook in hooks.iter().skip(s).step_by(senders) {
                    post(&agent, &base, hook);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("sender");
    }
    let accepted = started.elapsed();
    let delivered = wait_all(&arrivals, rounds + total) - started;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);

    println!("| measure | value |\n|---|---|");
    println!(
        "| latency added, one event at a time (POST to edge arrival), p50 | {:.2} ms |",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3
    );
    println!(
        "| same, p99 | {:.2} ms |",
        percentile(&latencies, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "| throughput, {total} events from {senders} senders, accepted (committed to the outbox) | {:.0} events/s |",
        total as f64 / accepted.as_secs_f64()
    );
    println!(
        "| same, delivered to the edge | {:.0} events/s |",
        total as f64 / delivered.as_secs_f64()
    );
}
