//! The room-composite pipeline: a LiveKit room in, one H.264 + AAC encode out to a file, an
//! RTMP broadcast, or both.
//!
//! ```text
//! livekitwebrtcsrc ─video_N─▶ queue ▶ videoconvert ▶ videoscale ▶ tile size ─▶ compositor ▶ x264enc ▶ h264parse ▶ tee ─▶ queue ▶ mp4mux ▶ filesink
//!                  ─audio_N─▶ queue ▶ audioconvert ▶ audioresample ─▶ audiomixer ▶ avenc_aac ▶ aacparse ▶ tee ─┘
//! videotestsrc (black) ────────────────────────────────────────────▶ compositor        each tee ─▶ queue ▶ appsink ▶ broadcast
//! audiotestsrc (silence) ──────────────────────────────────────────▶ audiomixer        (the clock of the picture and sound)
//! ```
//!
//! Participants' pads come and go while it runs ([`crate::layout`] places the videos). Each
//! video is scaled to its tile in its own branch, once per frame it receives (15 or 30 a
//! second) and on its own thread, rather than by the compositor once per frame it sends; the
//! branch's `videoscale` letterboxes to keep the picture's aspect ratio. The file
//! is fragmented MP4 (a fragment a second) so a killed recorder leaves a playable file up to its
//! last second; [`crate::finalize`] turns it into a faststart MP4 after a stop or a crash.
//! Stopping sends EOS into each branch, because `webrtcsrc` does not forward a pipeline-wide EOS.
//! The broadcast runs in its own pipeline ([`crate::broadcast`]) so its failure spares the file.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use serde::{Deserialize, Serialize};

use crate::broadcast::Broadcast;
use crate::layout::{layout, shown, Canvas, Contender, VideoKind};
use crate::media::{
    self, add, clamp_i32, end_branch, link, make, Control, Counter, PipelineError, Progress, Room,
    RoomInput, RoomTracks, RunEvent,
};

/// The encode of a room composite: the `[composite]` section of the service's config, handed
/// to each worker in its job file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompositeSettings {
    /// Picture width in pixels (even).
    pub width: u32,
    /// Picture height in pixels (even).
    pub height: u32,
    /// Frames per second.
    pub framerate: u32,
    /// H.264 bitrate in kbit/s.
    pub video_kbps: u32,
    /// AAC bitrate in kbit/s.
    pub audio_kbps: u32,
    /// x264's speed preset: slower presets compress better at the same bitrate and cost more
    /// CPU per job, so fewer jobs fit a node (docs/benchmarks.md).
    pub preset: EncoderPreset,
    /// x264's threads; 0 lets x264 choose (about 1.5 per core). One thread keeps a node's cores
    /// for jobs side by side and wastes nothing handing slices between threads; a picture that
    /// one core cannot encode in real time (1080p, or a slow preset) needs more.
    pub encoder_threads: u32,
    /// The most videos on the canvas at once. Each shown video costs its decode and scale, and
    /// a tile of a 720p canvas shared by more is too small to see a face; videos beyond it are
    /// switched off at LiveKit (nothing sent, nothing decoded) until a place frees up.
    pub max_videos: u32,
}

impl Default for CompositeSettings {
    fn default() -> Self {
        CompositeSettings {
            width: 1280,
            height: 720,
            framerate: 30,
            video_kbps: 2500,
            audio_kbps: 128,
            preset: EncoderPreset::Veryfast,
            encoder_threads: 1,
            max_videos: 16,
        }
    }
}

impl CompositeSettings {
    /// The picture's size.
    pub fn canvas(&self) -> Canvas {
        Canvas {
            width: self.width,
            height: self.height,
        }
    }

    /// Why these settings cannot be encoded, if they cannot.
    pub fn problem(&self) -> Option<&'static str> {
        if !(16..=3840).contains(&self.width) || !(16..=2160).contains(&self.height) {
            return Some("composite width and height must be within 16x16 and 3840x2160");
        }
        if !self.width.is_multiple_of(2) || !self.height.is_multiple_of(2) {
            return Some("composite width and height must be even (4:2:0 video)");
        }
        if !(1..=60).contains(&self.framerate) {
            return Some("composite framerate must be 1 to 60");
        }
        if !(100..=50_000).contains(&self.video_kbps) {
            return Some("composite video_kbps must be 100 to 50000");
        }
        if !(16..=512).contains(&self.audio_kbps) {
            return Some("composite audio_kbps must be 16 to 512");
        }
        if self.encoder_threads > 64 {
            return Some("composite encoder_threads must be 0 (automatic) to 64");
        }
        if !(1..=64).contains(&self.max_videos) {
            return Some("composite max_videos must be 1 to 64");
        }
        None
    }
}

/// x264's speed presets, fastest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncoderPreset {
    /// Least CPU, least compression.
    Ultrafast,
    /// About 0.3 core per 720p30 composite on the reference machine (docs/benchmarks.md).
    Superfast,
    /// The default: about 0.45 core per 720p30 composite on the reference machine.
    Veryfast,
    /// Slower than veryfast, better compression.
    Faster,
    /// Slower again.
    Fast,
    /// x264's own default; for nodes with cores to spare.
    Medium,
}

impl EncoderPreset {
    /// The name x264enc's `speed-preset` takes.
    pub fn x264_name(self) -> &'static str {
        match self {
            EncoderPreset::Ultrafast => "ultrafast",
            EncoderPreset::Superfast => "superfast",
            EncoderPreset::Veryfast => "veryfast",
            EncoderPreset::Faster => "faster",
            EncoderPreset::Fast => "fast",
            EncoderPreset::Medium => "medium",
        }
    }
}

/// Where a composite goes.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// The fragmented MP4 written while recording.
    pub file: Option<PathBuf>,
    /// An `rtmp://` or `rtmps://` URL to broadcast to.
    pub rtmp_url: Option<String>,
}

/// A built room-composite recording.
pub struct Recording {
    pipeline: gst::Pipeline,
    /// Sources whose EOS ends the recording (the background picture and sound).
    clocks: [gst::Element; 2],
    tiles: Arc<Mutex<Tiles>>,
    outputs: Outputs,
    broadcast: Option<Broadcast>,
    counter: Arc<Counter>,
    room: Room,
}

/// One participant track wired into the compositor or the mixer.
struct Branch {
    /// The room source's pad feeding it (`video_N` / `audio_N`).
    source_pad: gst::Pad,
    /// The first element (a queue): EOS goes in here.
    entry: gst::Pad,
    /// The compositor or mixer pad it feeds.
    sink: gst::Pad,
    /// When its track first reached this recording (kept across re-joins): the earlier, the
    /// sooner it gets a place on a full canvas.
    arrival: u64,
    /// For videos, whether it has a place on the canvas.
    shown: bool,
    /// For videos, whether LiveKit is asked to send it: when shown, and when stalled (to see
    /// its pictures come back); a video waiting for a place costs nothing.
    sending: bool,
    /// For videos, when LiveKit was last asked to send it (ms since [`Tiles::epoch`]).
    sending_since: u64,
    /// When its last buffer came in (ms since [`Tiles::epoch`]); 0 before the first.
    last_buffer: Arc<AtomicU64>,
    /// For cameras, whether their pictures stopped coming while LiveKit was sending them.
    stalled: bool,
    /// For videos, the capsfilter that sets the tile's size (the layout changes it).
    tile_size: Option<gst::Element>,
    /// Its own elements, removed with it.
    elements: Vec<gst::Element>,
    /// For videos, what it shows.
    kind: VideoKind,
}

/// The participants' branches and where they plug in.
struct Tiles {
    settings: CompositeSettings,
    compositor: gst::Element,
    mixer: gst::Element,
    videos: Vec<Branch>,
    audios: Vec<Branch>,
    /// When each track (by its `msid`) first arrived, so a re-join keeps who is on the canvas.
    arrivals: HashMap<String, u64>,
    /// The start of the branches' clocks ([`Branch::last_buffer`], [`Branch::sending_since`]).
    epoch: Instant,
}

/// How long a camera LiveKit sends may go without a picture before it is taken off the canvas
/// (turned off: muted, the track stays): cameras send many frames a second, even at their
/// lowest quality. Screen shares may rightly send none for a while and are never taken off.
const CAMERA_STALLED_AFTER: Duration = Duration::from_secs(3);

/// Milliseconds since `epoch`: the branches' clock, read on streaming threads and the run loop.
fn ms_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Tiles {
    /// The arrival of the track behind `pad`: its first, if it was here before a re-join.
    fn arrival(&mut self, pad: &gst::Pad) -> u64 {
        let next = u64::try_from(self.arrivals.len()).unwrap_or(u64::MAX);
        match track_id(pad) {
            Some(id) => *self.arrivals.entry(id).or_insert(next),
            None => next,
        }
    }

    /// Milliseconds since [`Tiles::epoch`].
    fn now_ms(&self) -> u64 {
        ms_since(self.epoch)
    }

    /// Takes cameras whose pictures stopped coming off the canvas, and puts those whose
    /// pictures came back on it again (laying the canvas out when either happens).
    fn follow_stalls(&mut self) {
        let now = self.now_ms();
        let stalled_after = u64::try_from(CAMERA_STALLED_AFTER.as_millis()).unwrap_or(u64::MAX);
        let mut changed = false;
        for branch in &mut self.videos {
            if branch.kind != VideoKind::Camera || !branch.sending {
                continue;
            }
            let heard = branch
                .last_buffer
                .load(Ordering::Relaxed)
                .max(branch.sending_since);
            let stalled = now.saturating_sub(heard) > stalled_after;
            if stalled != branch.stalled {
                branch.stalled = stalled;
                changed = true;
                tracing::info!(pad = %branch.source_pad.name(), stalled, "a camera's pictures stopped or came back");
            }
        }
        if changed {
            self.relayout();
        }
    }

    /// Picks the videos that have a place (screen shares first, then the earliest arrivals
    /// whose pictures are coming, up to `max_videos`), switches off at LiveKit those that wait
    /// for a place, and applies the layout of the shown ones to their compositor pads.
    fn relayout(&mut self) {
        let contenders: Vec<Contender> = self
            .videos
            .iter()
            .map(|b| Contender {
                kind: b.kind,
                arrival: b.arrival,
                stalled: b.stalled,
            })
            .collect();
        let places = usize::try_from(self.settings.max_videos).unwrap_or(usize::MAX);
        let shown = shown(&contenders, places);
        let now = self.now_ms();
        for (branch, show) in self.videos.iter_mut().zip(shown) {
            let send = show || branch.stalled;
            if branch.sending != send {
                branch.sending = send;
                branch.sending_since = now;
                set_track_sending(&branch.source_pad, send);
            }
            if branch.shown != show {
                branch.shown = show;
                branch
                    .sink
                    .set_property("alpha", if show { 1.0f64 } else { 0.0 });
            }
        }
        let on_canvas: Vec<&Branch> = self.videos.iter().filter(|b| b.shown).collect();
        let kinds: Vec<VideoKind> = on_canvas.iter().map(|b| b.kind).collect();
        for (branch, tile) in on_canvas.iter().zip(layout(self.settings.canvas(), &kinds)) {
            branch.sink.set_property("xpos", clamp_i32(tile.x));
            branch.sink.set_property("ypos", clamp_i32(tile.y));
            if let Some(tile_size) = &branch.tile_size {
                tile_size.set_property("caps", tile_caps(tile.width, tile.height));
            }
        }
        tracing::info!(
            videos = self.videos.len(),
            shown = on_canvas.len(),
            "layout updated"
        );
    }

    /// Takes out the branch fed by the room pad `source_pad` (its track ended); a waiting
    /// video may take its place.
    fn remove(&mut self, pipeline: &gst::Pipeline, source_pad: &gst::Pad) {
        if self.detach(pipeline, source_pad) && source_pad.name().starts_with("video") {
            self.relayout();
        }
    }

    /// Takes out every participant branch (the room source is being replaced). Nothing is
    /// switched at LiveKit: the old source's connection is already closed.
    fn remove_all(&mut self, pipeline: &gst::Pipeline) {
        let pads: Vec<gst::Pad> = self
            .videos
            .iter()
            .chain(&self.audios)
            .map(|b| b.source_pad.clone())
            .collect();
        for pad in pads {
            self.detach(pipeline, &pad);
        }
        tracing::info!("every track left the recording");
    }

    /// Removes the branch fed by `source_pad` from the pipeline; whether there was one.
    fn detach(&mut self, pipeline: &gst::Pipeline, source_pad: &gst::Pad) -> bool {
        let (branches, aggregator) = if source_pad.name().starts_with("video") {
            (&mut self.videos, &self.compositor)
        } else {
            (&mut self.audios, &self.mixer)
        };
        let Some(index) = branches.iter().position(|b| &b.source_pad == source_pad) else {
            return false;
        };
        let branch = branches.remove(index);
        for element in &branch.elements {
            let _ = element.set_state(gst::State::Null);
        }
        let _ = pipeline.remove_many(&branch.elements);
        aggregator.release_request_pad(&branch.sink);
        tracing::info!(pad = %source_pad.name(), "track left the recording");
        true
    }
}

/// The composite's side of the room source: tracks in, branches out.
struct CompositeTracks {
    pipeline: gst::glib::WeakRef<gst::Pipeline>,
    tiles: Arc<Mutex<Tiles>>,
}

impl RoomTracks for CompositeTracks {
    fn wire(&self, room: &gst::Element) {
        if let Some(pipeline) = self.pipeline.upgrade() {
            attach_participants(&pipeline, room, &self.tiles);
        }
    }

    fn release_all(&self) {
        if let (Some(pipeline), Ok(mut tiles)) = (self.pipeline.upgrade(), self.tiles.lock()) {
            tiles.remove_all(&pipeline);
        }
    }
}

impl Recording {
    /// Builds the pipelines; nothing runs (or connects) until [`Recording::run`].
    pub fn build(
        input: &RoomInput,
        settings: CompositeSettings,
        outputs: Outputs,
    ) -> Result<Recording, PipelineError> {
        let pipeline = gst::Pipeline::with_name("room-composite");
        let Canvas { width, height } = settings.canvas();
        let fps = i32::try_from(settings.framerate.max(1)).unwrap_or(30);

        // Picture: a live source keeps time when nobody publishes. It is a tiny frame the
        // compositor does not draw (alpha 0): the compositor paints the black background itself
        // where no video covers it, so a canvas-sized black frame need not be made and copied
        // 30 times a second.
        let background = make("videotestsrc")?;
        background.set_property("is-live", true);
        background.set_property_from_str("pattern", "black");
        let background_caps = make("capsfilter")?;
        background_caps.set_property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .field("width", 16i32)
                .field("height", 16i32)
                .field("framerate", gst::Fraction::new(fps, 1))
                .build(),
        );
        // The canvas format the composite leaves in. I420 throughout: left to itself the
        // compositor blends in AYUV, and blending plus the conversion to the encoder's I420 cost
        // four times the whole encode at 720p30.
        let canvas_format = gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", clamp_i32(width))
            .field("height", clamp_i32(height))
            .field("framerate", gst::Fraction::new(fps, 1))
            .field("colorimetry", CANVAS_COLORIMETRY)
            .field("chroma-site", CANVAS_CHROMA_SITE)
            .build();
        let compositor = make("compositor")?;
        compositor.set_property_from_str("background", "black");
        // Blend on the compositor's own thread: a frame's copies are too short to be worth
        // handing to helper threads 30 times a second, and a node's cores go to its other jobs.
        compositor.set_property("max-threads", 1u32);
        let canvas_caps = make("capsfilter")?;
        canvas_caps.set_property("caps", &canvas_format);
        let video_convert = make("videoconvert")?;
        let x264 = make("x264enc")?;
        x264.set_property_from_str("speed-preset", settings.preset.x264_name());
        x264.set_property_from_str("tune", "zerolatency");
        x264.set_property("bitrate", settings.video_kbps);
        // One thread by default: at 720p30 veryfast a frame takes about a third of its 33 ms,
        // and a single-threaded encoder costs 8% less CPU than sliced threads.
        x264.set_property("threads", settings.encoder_threads);
        // A keyframe a second: each MP4 fragment starts with one.
        x264.set_property("key-int-max", settings.framerate.max(1));
        let h264_caps = make("capsfilter")?;
        h264_caps.set_property(
            "caps",
            gst::Caps::builder("video/x-h264")
                .field("profile", "high")
                .build(),
        );
        let h264parse = make("h264parse")?;

        // Sound: live silence, mixed with every participant.
        let silence = make("audiotestsrc")?;
        silence.set_property("is-live", true);
        silence.set_property_from_str("wave", "silence");
        let mixer = make("audiomixer")?;
        // 40 ms of sound per mix instead of 10: a quarter of the wake-ups, and latency does not
        // matter to a recording (an RTMP viewer is seconds behind anyway).
        mixer.set_property("output-buffer-duration", 40_000_000u64);
        let mixed_caps = make("capsfilter")?;
        mixed_caps.set_property(
            "caps",
            gst::Caps::builder("audio/x-raw")
                .field("rate", 48_000i32)
                .field("channels", 2i32)
                .build(),
        );
        let audio_convert = make("audioconvert")?;
        let aac = make("avenc_aac")?;
        aac.set_property(
            "bitrate",
            i32::try_from(settings.audio_kbps.saturating_mul(1000)).unwrap_or(128_000),
        );
        let aacparse = make("aacparse")?;

        add(
            &pipeline,
            &[
                &background,
                &background_caps,
                &compositor,
                &canvas_caps,
                &video_convert,
                &x264,
                &h264_caps,
                &h264parse,
                &silence,
                &mixer,
                &mixed_caps,
                &audio_convert,
                &aac,
                &aacparse,
            ],
        )?;
        link(&[&background, &background_caps, &compositor])?;
        if let Some(pad) = background_caps.static_pad("src").and_then(|p| p.peer()) {
            pad.set_property("alpha", 0.0f64);
        }
        link(&[
            &compositor,
            &canvas_caps,
            &video_convert,
            &x264,
            &h264_caps,
            &h264parse,
        ])?;
        link(&[&silence, &mixer])?;
        link(&[&mixer, &mixed_caps, &audio_convert, &aac, &aacparse])?;

        // One encode, split to each output.
        let video_tee = make("tee")?;
        let audio_tee = make("tee")?;
        add(&pipeline, &[&video_tee, &audio_tee])?;
        link(&[&h264parse, &video_tee])?;
        link(&[&aacparse, &audio_tee])?;
        let counter = Arc::new(Counter::default());
        if let Some(pad) = h264parse.static_pad("src") {
            counter.watch(&pad);
        }
        // mp4mux fails the whole recording on a buffer without a timestamp, and once (in the
        // bench, starting two recordings at once) one came out of the encoders at start-up.
        for parser in [&h264parse, &aacparse] {
            if let Some(pad) = parser.static_pad("src") {
                pad.add_probe(gst::PadProbeType::BUFFER, |pad, info| {
                    if info.buffer().is_some_and(|b| b.pts().is_none()) {
                        tracing::warn!(pad = %pad.path_string(), "dropped an encoded buffer without a timestamp");
                        return gst::PadProbeReturn::Drop;
                    }
                    gst::PadProbeReturn::Ok
                });
            }
        }

        // The file: fragmented MP4, a fragment a second.
        if let Some(file) = &outputs.file {
            let video_queue = make("queue")?;
            let audio_queue = make("queue")?;
            let mux = make("mp4mux")?;
            mux.set_property("fragment-duration", 1000u32);
            let sink = make("filesink")?;
            sink.set_property("location", file.to_string_lossy().to_string());
            add(&pipeline, &[&video_queue, &audio_queue, &mux, &sink])?;
            link(&[&video_tee, &video_queue, &mux, &sink])?;
            link(&[&audio_tee, &audio_queue, &mux])?;
        }

        // The broadcast, through taps into its own pipeline.
        let broadcast = match &outputs.rtmp_url {
            Some(url) => {
                let broadcast = Broadcast::build(url)?;
                let video_queue = make("queue")?;
                let audio_queue = make("queue")?;
                let (video_tap, audio_tap) = (broadcast.video_tap(), broadcast.audio_tap());
                add(
                    &pipeline,
                    &[&video_queue, &audio_queue, &video_tap, &audio_tap],
                )?;
                link(&[&video_tee, &video_queue, &video_tap])?;
                link(&[&audio_tee, &audio_queue, &audio_tap])?;
                Some(broadcast)
            }
            None => None,
        };

        let tiles = Arc::new(Mutex::new(Tiles {
            settings,
            compositor: compositor.clone(),
            mixer: mixer.clone(),
            videos: Vec::new(),
            audios: Vec::new(),
            arrivals: HashMap::new(),
            epoch: Instant::now(),
        }));
        let room = Room::join(
            &pipeline,
            input,
            Arc::new(CompositeTracks {
                pipeline: pipeline.downgrade(),
                tiles: tiles.clone(),
            }),
        )?;

        Ok(Recording {
            pipeline,
            clocks: [background, silence],
            tiles,
            outputs,
            broadcast,
            counter,
            room,
        })
    }

    /// Runs on the calling thread until `stop` receives (then ends the outputs cleanly) or the
    /// recording fails; see [`media::run`].
    pub fn run(
        &self,
        stop: &std::sync::mpsc::Receiver<()>,
        report: &mut dyn FnMut(RunEvent),
    ) -> Result<(), PipelineError> {
        media::run(&self.pipeline, self, self.broadcast.as_ref(), stop, report)
    }
}

impl Control for Recording {
    /// Each participant branch gets EOS (its room pad stops passing data first) and the
    /// background sources send EOS, so the compositor, mixer, encoders and muxer drain.
    fn end(&self) {
        if let Ok(tiles) = self.tiles.lock() {
            for branch in tiles.videos.iter().chain(&tiles.audios) {
                end_branch(&branch.entry);
            }
        }
        for source in &self.clocks {
            source.send_event(gst::event::Eos::new());
        }
    }

    fn maintain(&self) -> Result<(), PipelineError> {
        if let Ok(mut tiles) = self.tiles.lock() {
            tiles.follow_stalls();
        }
        self.room.maintain(&self.pipeline)
    }

    fn recover(&self, element: &gst::Object) -> bool {
        self.room.recover(&self.pipeline, element)
    }

    fn progress(&self) -> Progress {
        self.counter.progress()
    }

    fn has_file(&self) -> bool {
        self.outputs.file.is_some()
    }
}

/// Wires every audio or video pad the room source adds into the mixer or the compositor, and
/// takes the branch out when the track goes away.
fn attach_participants(pipeline: &gst::Pipeline, room: &gst::Element, tiles: &Arc<Mutex<Tiles>>) {
    let weak_pipeline = pipeline.downgrade();
    let added = tiles.clone();
    room.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak_pipeline.upgrade() else {
            return;
        };
        let name = pad.name();
        let result = if name.starts_with("video") {
            attach(&pipeline, pad, &added, true)
        } else if name.starts_with("audio") {
            attach(&pipeline, pad, &added, false)
        } else {
            Ok(())
        };
        if let Err(e) = result {
            tracing::error!(pad = %name, error = %e, "could not attach a participant track");
        }
    });
    let weak_pipeline = pipeline.downgrade();
    let removed = tiles.clone();
    room.connect_pad_removed(move |_, pad| {
        let (Some(pipeline), Ok(mut tiles)) = (weak_pipeline.upgrade(), removed.lock()) else {
            return;
        };
        tiles.remove(&pipeline, pad);
    });
}

/// The track behind a room pad: LiveKit's `participant_sid|track_sid`, the same across
/// re-joins.
fn track_id(pad: &gst::Pad) -> Option<String> {
    pad.find_property("msid")?;
    pad.property::<Option<String>>("msid")
}

/// Asks LiveKit to send (or stop sending) the track behind a room pad. A track switched off
/// costs no bandwidth and no decoding; switched on again, LiveKit starts it with a keyframe.
fn set_track_sending(pad: &gst::Pad, sending: bool) {
    if gst::glib::subclass::signal::SignalId::lookup("set-track-disabled", pad.type_()).is_some() {
        pad.emit_by_name::<()>("set-track-disabled", &[&!sending]);
        tracing::info!(pad = %pad.name(), sending, "video switched at LiveKit");
    }
}

/// The canvas's colour description, which every tile is converted to in its own branch. Left
/// open, each picture's default follows its size (BT.601 up to 576 lines, BT.709 above), the
/// tiles of one layout disagree, and the compositor converts whole tiles on every frame it
/// makes.
const CANVAS_COLORIMETRY: &str = "bt709";
/// Where the canvas's chroma samples sit (MPEG-2 style, as H.264 assumes).
const CANVAS_CHROMA_SITE: &str = "mpeg2";

/// What a video branch hands the compositor: I420 (the canvas's format, so the compositor
/// converts nothing) at the tile's size, square pixels.
fn tile_caps(width: u32, height: u32) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", clamp_i32(width))
        .field("height", clamp_i32(height))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .field("colorimetry", CANVAS_COLORIMETRY)
        .field("chroma-site", CANVAS_CHROMA_SITE)
        .build()
}

/// Wires one track: queue, convert, scale to the tile or resample, then a new compositor or
/// mixer pad.
fn attach(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    tiles: &Arc<Mutex<Tiles>>,
    is_video: bool,
) -> Result<(), PipelineError> {
    let kind = match pad
        .property::<Option<gst::Structure>>("track-info")
        .and_then(|info| info.get::<String>("source").ok())
        .as_deref()
    {
        Some("SCREEN_SHARE") => VideoKind::ScreenShare,
        _ => VideoKind::Camera,
    };
    let (elements, tile_size) = if is_video {
        // The size is set by the layout once the branch is in the list.
        let tile_size = make("capsfilter")?;
        tile_size.set_property("caps", tile_caps(2, 2));
        let elements = vec![
            make("queue")?,
            make("videoconvert")?,
            make("videoscale")?,
            tile_size.clone(),
        ];
        (elements, Some(tile_size))
    } else {
        let elements = vec![
            make("queue")?,
            make("audioconvert")?,
            make("audioresample")?,
        ];
        (elements, None)
    };
    let chain: Vec<&gst::Element> = elements.iter().collect();
    add(pipeline, &chain)?;
    link(&chain)?;
    let mut tiles = tiles
        .lock()
        .map_err(|_| PipelineError::Setup("layout lock poisoned".into()))?;
    let aggregator = if is_video {
        tiles.compositor.clone()
    } else {
        tiles.mixer.clone()
    };
    let sink = aggregator
        .request_pad_simple("sink_%u")
        .ok_or_else(|| PipelineError::Setup("no compositor or mixer pad".into()))?;
    if is_video {
        sink.set_property(
            "zorder",
            1u32 + u32::try_from(tiles.videos.len()).unwrap_or(0),
        );
    }
    let (first, last) = match (elements.first(), elements.last()) {
        (Some(first), Some(last)) => (first, last),
        _ => return Err(PipelineError::Setup("empty branch".into())),
    };
    last.static_pad("src")
        .ok_or_else(|| PipelineError::Setup("branch without src pad".into()))?
        .link(&sink)
        .map_err(|e| PipelineError::Setup(format!("linking to the aggregator: {e:?}")))?;
    for element in &elements {
        element
            .sync_state_with_parent()
            .map_err(|e| PipelineError::Setup(e.to_string()))?;
    }
    let entry = first
        .static_pad("sink")
        .ok_or_else(|| PipelineError::Setup("queue without sink pad".into()))?;
    let arrival = tiles.arrival(pad);
    let last_buffer = Arc::new(AtomicU64::new(0));
    if is_video {
        let (heard, epoch) = (last_buffer.clone(), tiles.epoch);
        entry.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            heard.store(ms_since(epoch), Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    }
    let branch = Branch {
        source_pad: pad.clone(),
        entry: entry.clone(),
        sink,
        arrival,
        // A new video is on the canvas until the layout says otherwise (LiveKit sends it).
        shown: true,
        sending: true,
        sending_since: tiles.now_ms(),
        last_buffer,
        stalled: false,
        tile_size,
        elements,
        kind,
    };
    // Into the layout before data flows, so the first frame is already scaled to its tile.
    if is_video {
        tiles.videos.push(branch);
        tiles.relayout();
    } else {
        tiles.audios.push(branch);
    }
    if let Err(e) = pad.link(&entry) {
        tiles.remove(pipeline, pad);
        return Err(PipelineError::Setup(format!("linking the track: {e:?}")));
    }
    if is_video {
        tracing::info!(pad = %pad.name(), ?kind, track = ?track_id(pad), "video track joined the composite");
    } else {
        tracing::info!(pad = %pad.name(), "audio track joined the mix");
    }
    Ok(())
}
