//! The room-composite pipeline: a LiveKit room in, one H.264 + AAC encode out to a file.
//!
//! ```text
//! livekitwebrtcsrc ─video_N─▶ queue ▶ videoconvert ▶ videoscale ─▶ compositor ▶ x264enc ▶ h264parse ─▶ mp4mux ▶ filesink
//!                  ─audio_N─▶ queue ▶ audioconvert ▶ audioresample ─▶ audiomixer ▶ avenc_aac ▶ aacparse ─┘
//! videotestsrc (black) ────────────────────────────────────────────▶ compositor   (the clock of the
//! audiotestsrc (silence) ──────────────────────────────────────────▶ audiomixer    picture and sound)
//! ```
//!
//! Participants' pads come and go while it runs ([`crate::layout`] places the videos). The file
//! is fragmented MP4 (a fragment a second) so a killed recorder leaves a playable file up to its
//! last second; [`crate::finalize`] turns it into a faststart MP4 after a stop or a crash.
//! Stopping sends EOS into each branch, because `webrtcsrc` does not forward a pipeline-wide EOS.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use gst::glib;
use gst::prelude::*;

use crate::layout::{layout, Canvas, VideoKind};

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

/// Which LiveKit room to record and how to join it.
#[derive(Debug, Clone)]
pub struct RoomInput {
    /// The LiveKit signalling URL, `ws://` or `wss://`.
    pub ws_url: String,
    /// A LiveKit access token for a hidden subscriber of the room.
    pub token: String,
}

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

/// A built room-composite recording into one file.
pub struct Recording {
    pipeline: gst::Pipeline,
    /// Sources whose EOS ends the recording (the background picture and sound).
    clocks: [gst::Element; 2],
    tiles: Arc<Mutex<Tiles>>,
    output: PathBuf,
}

/// One participant track wired into the compositor or the mixer.
struct Branch {
    /// Name of the room source's pad feeding it (`video_N` / `audio_N`).
    source_pad: String,
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
    fn remove(&mut self, pipeline: &gst::Pipeline, source_pad: &str) {
        let is_video = source_pad.starts_with("video");
        let (branches, aggregator) = if is_video {
            (&mut self.videos, &self.compositor)
        } else {
            (&mut self.audios, &self.mixer)
        };
        let Some(index) = branches.iter().position(|b| b.source_pad == source_pad) else {
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
        tracing::info!(pad = source_pad, "track left the recording");
    }
}

fn clamp_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn make(factory: &'static str) -> Result<gst::Element, PipelineError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|e| PipelineError::Element {
            element: factory,
            reason: e.to_string(),
        })
}

fn link(chain: &[&gst::Element]) -> Result<(), PipelineError> {
    gst::Element::link_many(chain.iter().copied()).map_err(|e| PipelineError::Setup(e.to_string()))
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

impl Recording {
    /// Builds the pipeline; nothing runs until [`Recording::run`].
    pub fn build(
        input: &RoomInput,
        settings: CompositeSettings,
        output: PathBuf,
    ) -> Result<Recording, PipelineError> {
        let pipeline = gst::Pipeline::with_name("room-composite");
        let Canvas { width, height } = settings.canvas;
        let fps = i32::try_from(settings.framerate.max(1)).unwrap_or(30);

        // Picture: a black live background sets the canvas and keeps time when nobody publishes.
        let background = make("videotestsrc")?;
        background.set_property("is-live", true);
        background.set_property_from_str("pattern", "black");
        // The canvas format: the background is made in it and the composite leaves in it.
        let canvas_format = gst::Caps::builder("video/x-raw")
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

        // The file: fragmented MP4, a fragment a second.
        let video_queue = make("queue")?;
        let audio_queue = make("queue")?;
        let mux = make("mp4mux")?;
        mux.set_property("fragment-duration", 1000u32);
        let sink = make("filesink")?;
        sink.set_property("location", output.to_string_lossy().to_string());

        let room = make("livekitwebrtcsrc")?;
        // LiveKit hands out its own ICE servers; never ask a public STUN server.
        room.set_property("stun-server", None::<String>);
        let signaller = room.property::<glib::Object>("signaller");
        signaller.set_property("ws-url", &input.ws_url);
        signaller.set_property("auth-token", &input.token);

        pipeline
            .add_many([
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
                &video_queue,
                &audio_queue,
                &mux,
                &sink,
                &room,
            ])
            .map_err(|e| PipelineError::Setup(e.to_string()))?;
        link(&[&background, &background_caps, &compositor])?;
        link(&[
            &compositor,
            &canvas_caps,
            &video_convert,
            &x264,
            &h264_caps,
            &h264parse,
            &video_queue,
            &mux,
            &sink,
        ])?;
        link(&[&silence, &mixer])?;
        link(&[
            &mixer,
            &mixed_caps,
            &audio_convert,
            &aac,
            &aacparse,
            &audio_queue,
            &mux,
        ])?;

        let tiles = Arc::new(Mutex::new(Tiles {
            settings,
            compositor: compositor.clone(),
            mixer: mixer.clone(),
            videos: Vec::new(),
            audios: Vec::new(),
        }));
        attach_participants(&pipeline, &room, &tiles);

        Ok(Recording {
            pipeline,
            clocks: [background, silence],
            tiles,
            output,
        })
    }

    /// The file being written.
    pub fn output(&self) -> &std::path::Path {
        &self.output
    }

    /// Number of participant videos on the canvas now.
    pub fn videos(&self) -> usize {
        self.tiles.lock().map(|t| t.videos.len()).unwrap_or(0)
    }

    /// Runs on the calling thread until `stop` receives (then ends the file cleanly) or the
    /// pipeline fails. Call it from a plain thread, not from an async runtime: the LiveKit
    /// signaller blocks on its own runtime during state changes.
    pub fn run(&self, stop: &std::sync::mpsc::Receiver<()>) -> Result<(), PipelineError> {
        let bus = self
            .pipeline
            .bus()
            .ok_or_else(|| PipelineError::Setup("pipeline without a bus".into()))?;
        self.pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| PipelineError::Setup(format!("starting: {e}")))?;
        let mut stopping = false;
        let result = loop {
            if !stopping && !matches!(stop.try_recv(), Err(std::sync::mpsc::TryRecvError::Empty)) {
                stopping = true;
                self.end_branches();
            }
            let Some(message) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
                continue;
            };
            match message.view() {
                gst::MessageView::Eos(_) => break Ok(()),
                gst::MessageView::Error(err) => {
                    break Err(PipelineError::Runtime {
                        element: err
                            .src()
                            .map(|s| s.path_string().to_string())
                            .unwrap_or_default(),
                        message: format!(
                            "{} ({})",
                            err.error(),
                            err.debug().map(|d| d.to_string()).unwrap_or_default()
                        ),
                    });
                }
                gst::MessageView::Warning(w) => {
                    tracing::warn!(warning = %w.error(), "pipeline warning");
                }
                _ => {}
            }
        };
        let _ = self.pipeline.set_state(gst::State::Null);
        result
    }

    /// Ends the recording: each participant branch gets EOS (its room pad stops passing data
    /// first) and the background sources send EOS, so the compositor, mixer, encoders and muxer
    /// drain and finish the file.
    fn end_branches(&self) {
        if let Ok(tiles) = self.tiles.lock() {
            for branch in tiles.videos.iter().chain(&tiles.audios) {
                if let Some(source) = branch.entry.peer() {
                    source.add_probe(gst::PadProbeType::BUFFER, |_, _| gst::PadProbeReturn::Drop);
                }
                branch.entry.send_event(gst::event::Eos::new());
            }
        }
        for source in &self.clocks {
            source.send_event(gst::event::Eos::new());
        }
        tracing::info!("stopping: EOS sent into each branch");
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
        tiles.remove(&pipeline, &pad.name());
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
    pipeline
        .add_many(&elements)
        .map_err(|e| PipelineError::Setup(e.to_string()))?;
    link(&elements.iter().collect::<Vec<_>>())?;
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
        source_pad: pad.name().to_string(),
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
