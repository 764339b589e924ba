//! The room-composite pipeline: a LiveKit room in, one H.264 + AAC encode out to a file, an
//! RTMP broadcast, or both.
//!
//! ```text
//! livekitwebrtcsrc ─video_N─▶ queue ▶ videoconvert ▶ videoscale ─▶ compositor ▶ x264enc ▶ h264parse ▶ tee ─▶ queue ▶ mp4mux ▶ filesink
//!                  ─audio_N─▶ queue ▶ audioconvert ▶ audioresample ─▶ audiomixer ▶ avenc_aac ▶ aacparse ▶ tee ─┘
//! videotestsrc (black) ────────────────────────────────────────────▶ compositor        each tee ─▶ queue ▶ appsink ▶ broadcast
//! audiotestsrc (silence) ──────────────────────────────────────────▶ audiomixer        (the clock of the picture and sound)
//! ```
//!
//! Participants' pads come and go while it runs ([`crate::layout`] places the videos). The file
//! is fragmented MP4 (a fragment a second) so a killed recorder leaves a playable file up to its
//! last second; [`crate::finalize`] turns it into a faststart MP4 after a stop or a crash.
//! Stopping sends EOS into each branch, because `webrtcsrc` does not forward a pipeline-wide EOS.
//! The broadcast runs in its own pipeline ([`crate::broadcast`]) so its failure spares the file.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use gst::prelude::*;

use crate::broadcast::Broadcast;
use crate::layout::{layout, Canvas, VideoKind};
use crate::media::{
    self, add, clamp_i32, end_branch, link, make, Control, Counter, PipelineError, Progress, Room,
    RoomInput, RoomTracks, RunEvent,
};

/// The encode of a room composite.
#[derive(Debug, Clone, Copy)]
pub struct CompositeSettings {
    /// Picture size.
    pub canvas: Canvas,
    /// Frames per second.
    pub framerate: u32,
    /// H.264 bitrate in kbit/s.
    pub video_kbps: u32,
    /// AAC bitrate in bit/s.
    pub audio_bps: u32,
}

impl Default for CompositeSettings {
    fn default() -> Self {
        CompositeSettings {
            canvas: Canvas {
                width: 1280,
                height: 720,
            },
            framerate: 30,
            video_kbps: 2500,
            audio_bps: 128_000,
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
}

impl Tiles {
    /// Applies the layout for the current set of videos to their compositor pads.
    fn relayout(&self) {
        let kinds: Vec<VideoKind> = self.videos.iter().map(|b| b.kind).collect();
        for (branch, tile) in self.videos.iter().zip(layout(self.settings.canvas, &kinds)) {
            branch.sink.set_property("xpos", clamp_i32(tile.x));
            branch.sink.set_property("ypos", clamp_i32(tile.y));
            branch.sink.set_property("width", clamp_i32(tile.width));
            branch.sink.set_property("height", clamp_i32(tile.height));
        }
        tracing::info!(videos = self.videos.len(), "layout updated");
    }

    /// Takes out the branch fed by the room pad `source_pad` (its track ended).
    fn remove(&mut self, pipeline: &gst::Pipeline, source_pad: &gst::Pad) {
        let is_video = source_pad.name().starts_with("video");
        let (branches, aggregator) = if is_video {
            (&mut self.videos, &self.compositor)
        } else {
            (&mut self.audios, &self.mixer)
        };
        let Some(index) = branches.iter().position(|b| &b.source_pad == source_pad) else {
            return;
        };
        let branch = branches.remove(index);
        for element in &branch.elements {
            let _ = element.set_state(gst::State::Null);
        }
        let _ = pipeline.remove_many(&branch.elements);
        aggregator.release_request_pad(&branch.sink);
        if is_video {
            self.relayout();
        }
        tracing::info!(pad = %source_pad.name(), "track left the recording");
    }

    /// Takes out every participant branch (the room source is being replaced).
    fn remove_all(&mut self, pipeline: &gst::Pipeline) {
        let pads: Vec<gst::Pad> = self
            .videos
            .iter()
            .chain(&self.audios)
            .map(|b| b.source_pad.clone())
            .collect();
        for pad in pads {
            self.remove(pipeline, &pad);
        }
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
        let Canvas { width, height } = settings.canvas;
        let fps = i32::try_from(settings.framerate.max(1)).unwrap_or(30);

        // Picture: a black live background sets the canvas and keeps time when nobody publishes.
        let background = make("videotestsrc")?;
        background.set_property("is-live", true);
        background.set_property_from_str("pattern", "black");
        // The canvas format: the background is made in it and the composite leaves in it.
        // I420 throughout: left to itself the compositor blends in AYUV, and blending plus the
        // conversion to the encoder's I420 cost four times the whole encode at 720p30.
        let canvas_format = gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", clamp_i32(width))
            .field("height", clamp_i32(height))
            .field("framerate", gst::Fraction::new(fps, 1))
            .build();
        let background_caps = make("capsfilter")?;
        background_caps.set_property("caps", &canvas_format);
        let compositor = make("compositor")?;
        compositor.set_property_from_str("background", "black");
        let canvas_caps = make("capsfilter")?;
        canvas_caps.set_property("caps", &canvas_format);
        let video_convert = make("videoconvert")?;
        let x264 = make("x264enc")?;
        x264.set_property_from_str("speed-preset", "veryfast");
        x264.set_property_from_str("tune", "zerolatency");
        x264.set_property("bitrate", settings.video_kbps);
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
            i32::try_from(settings.audio_bps).unwrap_or(128_000),
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

    /// Number of participant videos on the canvas now.
    pub fn videos(&self) -> usize {
        self.tiles.lock().map(|t| t.videos.len()).unwrap_or(0)
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

/// Wires one track: queue, convert, scale or resample, then a new compositor or mixer pad.
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
    let elements = if is_video {
        vec![make("queue")?, make("videoconvert")?, make("videoscale")?]
    } else {
        vec![
            make("queue")?,
            make("audioconvert")?,
            make("audioresample")?,
        ]
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
        sink.set_property_from_str("sizing-policy", "keep-aspect-ratio");
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
    pad.link(&entry)
        .map_err(|e| PipelineError::Setup(format!("linking the track: {e:?}")))?;
    let branch = Branch {
        source_pad: pad.clone(),
        entry,
        sink,
        elements,
        kind,
    };
    if is_video {
        tiles.videos.push(branch);
        tiles.relayout();
        tracing::info!(pad = %pad.name(), ?kind, "video track joined the composite");
    } else {
        tiles.audios.push(branch);
        tracing::info!(pad = %pad.name(), "audio track joined the mix");
    }
    Ok(())
}
