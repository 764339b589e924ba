//! Where the core's warnings and errors go on the WASM platforms. The core logs through
//! `tracing` (store failures, bad configuration, a media server that did not answer); without
//! a subscriber those events would vanish and an operator would see only "internal server
//! error". Each adapter installs one, once per instance, writing to what its platform logs:
//! stderr on Spin, the console on Workers.
//!
//! The subscriber is this module's own rather than `tracing-subscriber`'s `fmt`: the edge opens
//! no spans and needs one line per event, while `fmt` brings a span registry (sharded slabs,
//! thread-local pools) that cost the component more than its whole size budget had left.

use std::fmt::{Debug, Write as _};
use std::sync::OnceLock;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{span, Event, Level, Metadata, Subscriber};

/// Installs the subscriber (WARN and above, one line per event, no timestamps: the platform
/// stamps its log lines) on first use, writing each line with `write_line`; later calls do
/// nothing.
pub fn install<W>(write_line: W)
where
    W: Fn(&str) + Send + Sync + 'static,
{
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let _ = tracing::subscriber::set_global_default(Lines { write_line });
    });
}

/// Writes each enabled event as `LEVEL target: message field=value ...`.
struct Lines<W> {
    write_line: W,
}

impl<W> Subscriber for Lines<W>
where
    W: Fn(&str) + Send + Sync + 'static,
{
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= Level::WARN
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::WARN)
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        // Spans are disabled (`enabled` takes events only at WARN and above, and the edge opens
        // none); one id serves any that gets here.
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let line = format!(
            "{} {}: {}{}",
            metadata.level(),
            metadata.target(),
            fields.message,
            fields.rest
        );
        (self.write_line)(&line);
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

/// An event's message, and its other fields as ` name=value`.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    // Values are written with `Debug`, so a text field is quoted and escaped: a value with a
    // newline or `=` in it cannot pass for another field or line.
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
}
