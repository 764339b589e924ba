//! What the GStreamer pipelines share: errors, element construction, the room source, and the
//! loop that runs a recording until it is stopped, reporting progress on the way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;

use crate::broadcast::Broadcast;

/// Why a recording could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A GStreamer element is missing (a plugin package is not installed) or refused a setting.
    #[error("cannot create GStreamer element `{element}`: {reason}")]
    Element {
        /// The element factory name.
        element: &'static str,
        /// GStreamer's message.
        reason: String,
    },
    /// Elements could not be linked or the pipeline refused a state change.
    #[error("pipeline setup failed: {0}")]
    Setup(String),
    /// The pipeline reported an error while running (element and message).
    #[error("recording failed in {element}: {message}")]
    Runtime {
        /// The element that posted the error.
        element: String,
        /// GStreamer's message and debug detail.
        message: String,
    },
}

impl PipelineError {
    /// The error of a bus error message.
    pub fn from_message(err: &gst::message::Error) -> PipelineError {
        PipelineError::Runtime {
            element: err
                .src()
                .map(|s| s.path_string().to_string())
                .unwrap_or_default(),
            message: format!(
                "{} ({})",
                err.error(),
                err.debug().map(|d| d.to_string()).unwrap_or_default()
            ),
        }
    }
}

/// Which LiveKit room to record and how to join it.
#[derive(Debug, Clone)]
pub struct RoomInput {
    /// The LiveKit signalling URL, `ws://` or `wss://`.
    pub ws_url: String,
    /// A LiveKit access token for a hidden subscriber of the room.
    pub token: RoomToken,
}

/// The token the room is joined with, replaceable while the recording runs: every re-join uses
/// the newest, so a control plane can keep a long recording's token from expiring.
#[derive(Clone)]
pub struct RoomToken(Arc<std::sync::RwLock<String>>);

impl RoomToken {
    /// A token cell holding `token`.
    pub fn new(token: String) -> RoomToken {
        RoomToken(Arc::new(std::sync::RwLock::new(token)))
    }

    /// The newest token.
    pub fn current(&self) -> String {
        self.0
            .read()
            .map_or_else(|poisoned| poisoned.into_inner().clone(), |t| t.clone())
    }

    /// Replaces the token for the next join.
    pub fn replace(&self, token: String) {
        match self.0.write() {
            Ok(mut t) => *t = token,
            Err(poisoned) => *poisoned.into_inner() = token,
        }
    }
}

impl std::fmt::Debug for RoomToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoomToken(***)")
    }
}

/// Registers the GStreamer elements the recorder brings in-process (`livekitwebrtcsrc`).
/// Idempotent; call once before building pipelines.
pub fn init() -> Result<(), PipelineError> {
    gst::init().map_err(|e| PipelineError::Setup(format!("gstreamer init: {e}")))?;
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| gstrswebrtc::plugin_register_static().map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| PipelineError::Setup(format!("registering livekitwebrtcsrc: {e}")))
}

/// Creates an element or says which plugin is missing.
pub fn make(factory: &'static str) -> Result<gst::Element, PipelineError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|e| PipelineError::Element {
            element: factory,
            reason: e.to_string(),
        })
}

/// Links elements in a chain.
pub fn link(chain: &[&gst::Element]) -> Result<(), PipelineError> {
    gst::Element::link_many(chain.iter().copied()).map_err(|e| PipelineError::Setup(e.to_string()))
}

/// Links `src`'s "src" pad into `dst`'s pad `pad` (a name or a request template such as
/// `video_%u`): for muxers, whose pads cannot be chosen by caps before the caps are known.
pub fn link_into(src: &gst::Element, dst: &gst::Element, pad: &str) -> Result<(), PipelineError> {
    src.link_pads(Some("src"), dst, Some(pad)).map_err(|e| {
        PipelineError::Setup(format!(
            "linking {} into {} {pad}: {e}",
            src.name(),
            dst.name()
        ))
    })
}

/// Adds elements to a pipeline or bin.
pub fn add(bin: &impl IsA<gst::Bin>, elements: &[&gst::Element]) -> Result<(), PipelineError> {
    bin.add_many(elements.iter().copied())
        .map_err(|e| PipelineError::Setup(e.to_string()))
}

/// A `u32` size or position as the `gint` GStreamer properties want.
pub fn clamp_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// The room source: `livekitwebrtcsrc` joined with the job's URL and token, and a watch on
/// LiveKit's offers to it.
pub fn room_source(input: &RoomInput) -> Result<(gst::Element, Arc<Offers>), PipelineError> {
    let room = make("livekitwebrtcsrc")?;
    // LiveKit hands out its own ICE servers; never ask a public STUN server.
    room.set_property("stun-server", None::<String>);
    let signaller = room.property::<glib::Object>("signaller");
    signaller.set_property("ws-url", &input.ws_url);
    signaller.set_property("auth-token", input.token.current());
    let offers = Arc::new(Offers {
        joined_ms: now_ms(),
        ..Offers::default()
    });
    let counted = offers.clone();
    signaller.connect("session-description", false, move |args| {
        let description = args
            .get(2)
            .and_then(|v| v.get::<gst_webrtc::WebRTCSessionDescription>().ok());
        if let Some(description) = description {
            if description.type_() == gst_webrtc::WebRTCSDPType::Offer {
                let (media, tracks) = active_media_sections(description.sdp());
                tracing::debug!(
                    media,
                    pads = counted.pads.load(Ordering::Relaxed),
                    "room offer"
                );
                counted.offered.store(media, Ordering::Relaxed);
                counted.offered_tracks.store(tracks, Ordering::Relaxed);
                counted.last_ms.store(now_ms(), Ordering::Relaxed);
            }
        }
        None
    });
    let padded = offers.clone();
    room.connect_pad_added(move |_, _| {
        padded.pads.fetch_add(1, Ordering::Relaxed);
    });
    let unpadded = offers.clone();
    room.connect_pad_removed(move |_, _| {
        let _ = unpadded
            .pads
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    });
    Ok((room, offers))
}

/// Audio and video sections of an offer that carry a track: how many, and which (a hash of
/// their `msid`s, in any order: a fresh session may be offered the same tracks in another
/// order). LiveKit keeps the section of a track that went away, as `recvonly` and without an
/// `msid`.
fn active_media_sections(sdp: &gst_sdp::SDPMessageRef) -> (u64, u64) {
    use std::hash::{Hash as _, Hasher as _};
    let mut msids: Vec<&str> = sdp
        .medias()
        .filter(|m| matches!(m.media(), Some("audio" | "video")) && m.port() != 0)
        .filter(|m| {
            !m.attributes()
                .any(|a| matches!(a.key(), "recvonly" | "inactive"))
        })
        .filter_map(|m| m.attribute_val("msid"))
        .collect();
    msids.sort_unstable();
    tracing::debug!(?msids, "offered tracks");
    let mut tracks = std::collections::hash_map::DefaultHasher::new();
    msids.hash(&mut tracks);
    (msids.len() as u64, tracks.finish())
}

fn now_ms() -> u64 {
    u64::try_from(crate::events::now_ms()).unwrap_or(0)
}

/// LiveKit's subscriber offers to one room source, and the tracks it actually delivered.
///
/// LiveKit renegotiates (sends a new offer) whenever tracks are published or unpublished. The
/// `webrtcbin` of GStreamer 1.22 handles this only partly (gst-plugin-webrtc warns about
/// transceivers on "GStreamer <= 1.24"): in our tests new tracks usually got their pads, but a
/// track that goes away never removes its pad, so its picture would stay frozen on the canvas.
/// So when the media the room offers and the pads the source has differ, and the offers have
/// settled, the recording re-joins: the fresh session's first offer carries exactly the
/// current tracks.
#[derive(Debug, Default)]
pub struct Offers {
    joined_ms: u64,
    offered: AtomicU64,
    /// Which tracks the last offer carried (a hash of their `msid`s).
    offered_tracks: AtomicU64,
    pads: AtomicU64,
    last_ms: AtomicU64,
}

/// How long after the last offer the tracks it announced must have arrived.
const SETTLE_MS: u64 = 4000;

impl Offers {
    /// Whether the room's offered tracks and this source's pads differ, long enough after the
    /// offer (and after joining) that the difference is not merely on its way.
    pub fn renegotiated(&self) -> bool {
        let now = now_ms();
        let last = self.last_ms.load(Ordering::Relaxed);
        last != 0
            && now.saturating_sub(last) >= SETTLE_MS
            && now.saturating_sub(self.joined_ms) >= SETTLE_MS
            && self.offered.load(Ordering::Relaxed) != self.pads.load(Ordering::Relaxed)
    }

    /// Which tracks the last offer carried.
    fn tracks(&self) -> u64 {
        self.offered_tracks.load(Ordering::Relaxed)
    }
}

/// Ends a branch fed by a room pad: the pad stops passing data and the branch gets EOS.
pub fn end_branch(entry: &gst::Pad) {
    if let Some(source) = entry.peer() {
        source.add_probe(gst::PadProbeType::BUFFER, |_, _| gst::PadProbeReturn::Drop);
    }
    entry.send_event(gst::event::Eos::new());
}

/// Counts what a recording has produced, updated from a streaming thread.
#[derive(Debug, Default)]
pub struct Counter {
    frames: AtomicU64,
    first_ns: AtomicU64,
    last_ns: AtomicU64,
}

impl Counter {
    /// Counts every buffer leaving `pad` (a video encoder's output, for composites).
    pub fn watch(self: &Arc<Self>, pad: &gst::Pad) {
        let counter = self.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
                let ns = pts.nseconds();
                let _ = counter.first_ns.compare_exchange(
                    0,
                    ns.max(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                counter.last_ns.fetch_max(ns, Ordering::Relaxed);
            }
            counter.frames.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    }

    /// Frames so far and the media time they span.
    pub fn progress(&self) -> Progress {
        let first = self.first_ns.load(Ordering::Relaxed);
        let last = self.last_ns.load(Ordering::Relaxed);
        Progress {
            frames: self.frames.load(Ordering::Relaxed),
            media_ms: last.saturating_sub(first) / 1_000_000,
            backlog: false,
        }
    }
}

/// How far a recording has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Buffers counted (encoded video frames for composites, media buffers for tracks).
    pub frames: u64,
    /// Media time recorded, in milliseconds.
    pub media_ms: u64,
    /// Buffers wait to be written and none was written since the last report: the writing
    /// side is stuck. (Tracks only: a composite's frame count stops by itself then.)
    pub backlog: bool,
}

/// What a running recording reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEvent {
    /// The pipeline is playing: the room is joined and output is being written.
    Playing,
    /// Once a second.
    Progress(Progress),
    /// The RTMP broadcast ended on its own; the file goes on.
    BroadcastEnded(String),
}

/// What [`run`] needs of a recording.
pub trait Control {
    /// Sends EOS into every branch, so that the pipeline drains and posts EOS.
    fn end(&self);
    /// Called on every turn of the loop (at least ten times a second) from the loop's thread:
    /// where the room source is re-joined after a renegotiation.
    fn maintain(&self) -> Result<(), PipelineError> {
        Ok(())
    }
    /// An element posted an error: whether the recording recovered from it (by re-joining the
    /// room when the error came from the room source) instead of failing.
    fn recover(&self, _element: &gst::Object) -> bool {
        false
    }
    /// Progress so far.
    fn progress(&self) -> Progress;
    /// Whether anything but the broadcast writes output (if not, losing it fails the job).
    fn has_file(&self) -> bool;
}

/// How long a stopped recording may take to drain before it is closed as it is.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `pipeline` on the calling thread until `stop` receives (then ends it cleanly) or it
/// fails. Call it from a plain thread, not an async runtime: the LiveKit signaller blocks on
/// its own runtime during state changes.
pub fn run(
    pipeline: &gst::Pipeline,
    recording: &dyn Control,
    broadcast: Option<&Broadcast>,
    stop: &std::sync::mpsc::Receiver<()>,
    report: &mut dyn FnMut(RunEvent),
) -> Result<(), PipelineError> {
    let bus = pipeline
        .bus()
        .ok_or_else(|| PipelineError::Setup("pipeline without a bus".into()))?;
    if let Some(broadcast) = broadcast {
        broadcast.start(pipeline)?;
    }
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| PipelineError::Setup(format!("starting: {e}")))?;
    let mut stopping = false;
    let mut stopped_at = Instant::now();
    let mut broadcasting = broadcast.is_some();
    let mut next_report = Instant::now() + Duration::from_secs(1);
    let result = loop {
        if !stopping && !matches!(stop.try_recv(), Err(std::sync::mpsc::TryRecvError::Empty)) {
            stopping = true;
            stopped_at = Instant::now();
            recording.end();
            tracing::info!("stopping: EOS sent into each branch");
        }
        if stopping && stopped_at.elapsed() > DRAIN_TIMEOUT {
            // Seen rarely with two recordings of one room: a branch never passes its EOS on.
            // The file is fragmented, so closing now loses at most its last second.
            tracing::warn!(timeout = ?DRAIN_TIMEOUT, "the pipeline did not drain after the stop; closing it");
            break Ok(());
        }
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(1);
            report(RunEvent::Progress(recording.progress()));
        }
        if let (true, Some(broadcast)) = (broadcasting, broadcast) {
            if let Some(reason) = broadcast.failure() {
                broadcasting = false;
                broadcast.abandon();
                tracing::warn!(%reason, "the RTMP broadcast ended");
                report(RunEvent::BroadcastEnded(reason.clone()));
                if !recording.has_file() {
                    break Err(PipelineError::Runtime {
                        element: "rtmp".into(),
                        message: reason,
                    });
                }
            }
        }
        if !stopping {
            if let Err(e) = recording.maintain() {
                break Err(e);
            }
        }
        let Some(message) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        match message.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(err) => {
                let Some(element) = err.src() else {
                    break Err(PipelineError::from_message(err));
                };
                if !element.has_as_ancestor(pipeline) {
                    // From a room source already replaced: it no longer matters.
                    continue;
                }
                if !stopping && recording.recover(element) {
                    tracing::warn!(error = %err.error(), element = %element.path_string(), "the room connection failed; re-joined the room");
                    continue;
                }
                break Err(PipelineError::from_message(err));
            }
            gst::MessageView::Warning(w) => {
                tracing::warn!(warning = %w.error(), "pipeline warning");
            }
            gst::MessageView::StateChanged(change)
                if change.src() == Some(pipeline.upcast_ref())
                    && change.current() == gst::State::Playing =>
            {
                report(RunEvent::Playing);
            }
            _ => {}
        }
    };
    tracing::info!(
        ok = result.is_ok(),
        "recording loop ended; closing the pipeline"
    );
    if let (true, Some(broadcast)) = (broadcasting, broadcast) {
        broadcast.finish(Duration::from_secs(5));
    }
    let _ = pipeline.set_state(gst::State::Null);
    tracing::info!("pipeline closed");
    result
}

/// What a recording does with the tracks of a room source.
pub trait RoomTracks: Send + Sync {
    /// Connects the source's `pad-added` and `pad-removed` to the recording's branches.
    fn wire(&self, room: &gst::Element);
    /// The source is being replaced: every branch it fed is ended or taken out.
    fn release_all(&self);
}

/// The recording's current room source, re-joined after each renegotiation (see [`Offers`]).
pub struct Room {
    input: RoomInput,
    tracks: Arc<dyn RoomTracks>,
    current: std::sync::Mutex<(gst::Element, Arc<Offers>)>,
    error_rejoins: AtomicU64,
    /// The tracks of the offer the last renegotiation re-join was for.
    rejoined_for: AtomicU64,
}

/// Re-joins after room-source errors a job may make before an error fails it.
pub const MAX_ERROR_REJOINS: u64 = 5;

impl Room {
    /// Adds a room source to `pipeline`, wired to `tracks`.
    pub fn join(
        pipeline: &gst::Pipeline,
        input: &RoomInput,
        tracks: Arc<dyn RoomTracks>,
    ) -> Result<Room, PipelineError> {
        let (room, offers) = room_source(input)?;
        add(pipeline, &[&room])?;
        tracks.wire(&room);
        Ok(Room {
            input: input.clone(),
            tracks,
            current: std::sync::Mutex::new((room, offers)),
            error_rejoins: AtomicU64::new(0),
            rejoined_for: AtomicU64::new(0),
        })
    }

    /// Re-joins if the room renegotiated; call from the run loop's thread (the old source's
    /// state change blocks on its signaller). Once per set of offered tracks: when a fresh
    /// session is offered the same tracks and still lacks media for some, those tracks have
    /// none to send (a muted camera), and re-joining again would only blank the picture.
    pub fn maintain(&self, pipeline: &gst::Pipeline) -> Result<(), PipelineError> {
        let tracks = {
            let current = self
                .current
                .lock()
                .map_err(|_| PipelineError::Setup("room lock poisoned".into()))?;
            if !current.1.renegotiated() {
                return Ok(());
            }
            current.1.tracks()
        };
        if self.rejoined_for.swap(tracks, Ordering::Relaxed) == tracks {
            return Ok(());
        }
        tracing::info!("the room renegotiated: re-joining it to receive its current tracks");
        self.rejoin(pipeline)
    }

    /// After an error from the current room source (a lost signalling connection, a failed
    /// data channel), re-joins, at most [`MAX_ERROR_REJOINS`] times a job; whether it did.
    pub fn recover(&self, pipeline: &gst::Pipeline, element: &gst::Object) -> bool {
        let from_source = self.current.lock().is_ok_and(|current| {
            element == current.0.upcast_ref::<gst::Object>() || element.has_as_ancestor(&current.0)
        });
        if !from_source || self.error_rejoins.fetch_add(1, Ordering::Relaxed) >= MAX_ERROR_REJOINS {
            return false;
        }
        match self.rejoin(pipeline) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "could not re-join the room");
                false
            }
        }
    }

    /// Replaces the room source with a fresh one.
    fn rejoin(&self, pipeline: &gst::Pipeline) -> Result<(), PipelineError> {
        let mut current = self
            .current
            .lock()
            .map_err(|_| PipelineError::Setup("room lock poisoned".into()))?;
        let old = current.0.clone();
        let _ = old.set_state(gst::State::Null);
        self.tracks.release_all();
        let _ = pipeline.remove(&old);
        let (room, offers) = room_source(&self.input)?;
        add(pipeline, &[&room])?;
        self.tracks.wire(&room);
        room.sync_state_with_parent()
            .map_err(|e| PipelineError::Setup(format!("re-joining the room: {e}")))?;
        *current = (room, offers);
        Ok(())
    }
}
