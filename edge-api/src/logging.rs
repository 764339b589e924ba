//! Where the core's warnings and errors go on the WASM platforms. The core logs through
//! `tracing` (store failures, bad configuration, a media server that did not answer); without
//! a subscriber those events would vanish and an operator would see only "internal server
//! error". Each adapter installs one, once per instance, writing to what its platform logs:
//! stderr on Spin, the console on Workers.

use std::sync::OnceLock;

use tracing_subscriber::fmt::MakeWriter;

/// Installs the subscriber (WARN and above, one line per event, no timestamps: the platform
/// stamps its log lines) on first use; later calls do nothing.
pub fn install<W>(make_writer: W)
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_writer(make_writer)
            .without_time()
            .with_ansi(false)
            .try_init();
    });
}
