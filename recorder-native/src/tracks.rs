//! Track recording without re-encoding (pass-through): each participant track the room
//! publishes goes to its own Matroska file, as the publisher encoded it.
//!
//! ```text
//! livekitwebrtcsrc ─video_N─▶ queue ▶ capsfilter (VP8|VP9|H.264|AV1) ▶ matroskamux ▶ filesink  <identity>_<track>.mkv
//!                  ─audio_N─▶ queue ▶ capsfilter (Opus)              ▶ matroskamux ▶ filesink
//! ```
//!
//! `webrtcsrc` asks downstream which caps it takes when a track arrives; encoded caps make it
//! depayload and parse without decoding. Matroska needs no index to be playable, so a killed
//! recorder leaves every file usable up to its last cluster. A track that ends gets EOS at once,
//! which finishes its file.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use gst::prelude::*;

use crate::media::{
    self, add, end_branch, link, link_into, make, Control, Counter, PipelineError, Progress, Room,
    RoomInput, RoomTracks, RunEvent,
};

/// A built pass-through recording of every track into `dir`.
pub struct TrackRecording {
    pipeline: gst::Pipeline,
    keeper: gst::Element,
    files: Arc<TrackFiles>,
    room: Room,
}

/// One track's file.
struct TrackBranch {
    /// The room pad feeding it.
    source_pad: gst::Pad,
    /// The queue's sink pad: EOS goes in here.
    entry: gst::Pad,
    /// The queue before the muxer, whose level shows buffers waiting to be written.
    queue: gst::Element,
    /// Whether it has had its EOS.
    ended: bool,
}

/// Whether a writer is stuck: buffers wait in one of `queues` although none was written
/// between two reports (`written_before`, `written_now`). Waiting buffers while writing goes on
/// are normal, and an empty queue is a muted or absent track, not a stuck one.
fn backlog<'a>(
    written_before: u64,
    written_now: u64,
    queues: impl IntoIterator<Item = &'a gst::Element>,
) -> bool {
    written_now == written_before
        && queues
            .into_iter()
            .any(|queue| queue.property::<u32>("current-level-buffers") > 0)
}

fn encoded_video() -> gst::Caps {
    gst::Caps::builder_full()
        .structure(gst::Structure::new_empty("video/x-vp8"))
        .structure(gst::Structure::new_empty("video/x-vp9"))
        .structure(
            gst::Structure::builder("video/x-h264")
                .field("stream-format", "avc")
                .field("alignment", "au")
                .build(),
        )
        .structure(gst::Structure::new_empty("video/x-av1"))
        .build()
}

fn encoded_audio() -> gst::Caps {
    gst::Caps::builder("audio/x-opus").build()
}

/// A file name (without extension) made from the participant and track, safe anywhere.
fn track_file_name(pad: &gst::Pad) -> String {
    let identity = pad
        .find_property("participant-info")
        .and_then(|_| pad.property::<Option<gst::Structure>>("participant-info"))
        .and_then(|info| info.get::<String>("identity").ok());
    let track = pad
        .find_property("msid")
        .and_then(|_| pad.property::<Option<String>>("msid"))
        .and_then(|msid| msid.split_once('|').map(|(_, track)| track.to_owned()));
    let name = match (identity, track) {
        (Some(identity), Some(track)) => format!("{identity}_{track}"),
        (None, Some(track)) => track,
        _ => pad.name().to_string(),
    };
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    safe
}

/// The tracks' side of the room source: each pad in gets its own file.
struct TrackFiles {
    pipeline: gst::glib::WeakRef<gst::Pipeline>,
    dir: PathBuf,
    branches: Arc<Mutex<Vec<TrackBranch>>>,
    counter: Arc<Counter>,
    /// The buffer count at the last progress report.
    reported: std::sync::atomic::AtomicU64,
}

impl TrackFiles {
    /// Ends the branches fed by `pad` (or all, for `None`): their files are finished.
    fn end(&self, pad: Option<&gst::Pad>) {
        if let Ok(mut branches) = self.branches.lock() {
            for branch in branches
                .iter_mut()
                .filter(|b| !b.ended && pad.is_none_or(|p| &b.source_pad == p))
            {
                branch.ended = true;
                end_branch(&branch.entry);
                tracing::info!(pad = %branch.source_pad.name(), "track ended; its file is finished");
            }
        }
    }
}

impl RoomTracks for Arc<TrackFiles> {
    fn wire(&self, room: &gst::Element) {
        let added = self.clone();
        room.connect_pad_added(move |_, pad| {
            let Some(pipeline) = added.pipeline.upgrade() else {
                return;
            };
            match attach(&pipeline, pad, &added.dir, &added.counter) {
                Ok(Some(branch)) => {
                    if let Ok(mut branches) = added.branches.lock() {
                        branches.push(branch);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(pad = %pad.name(), error = %e, "could not record a track")
                }
            }
        });
        let removed = self.clone();
        room.connect_pad_removed(move |_, pad| removed.end(Some(pad)));
    }

    fn release_all(&self) {
        self.end(None);
    }
}

impl TrackRecording {
    /// Builds the recording; track files appear in `dir` as tracks arrive.
    pub fn build(input: &RoomInput, dir: PathBuf) -> Result<TrackRecording, PipelineError> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| PipelineError::Setup(format!("creating {}: {e}", dir.display())))?;
        let pipeline = gst::Pipeline::with_name("tracks");
        // A live source into a fakesink keeps the pipeline running (and from posting EOS) while
        // no track is being written, and ends it on stop.
        let keeper = make("audiotestsrc")?;
        keeper.set_property("is-live", true);
        keeper.set_property_from_str("wave", "silence");
        keeper.set_property("samplesperbuffer", 4800i32);
        let keeper_sink = make("fakesink")?;
        keeper_sink.set_property("sync", false);
        add(&pipeline, &[&keeper, &keeper_sink])?;
        link(&[&keeper, &keeper_sink])?;
        let files = Arc::new(TrackFiles {
            pipeline: pipeline.downgrade(),
            dir,
            branches: Arc::new(Mutex::new(Vec::new())),
            counter: Arc::new(Counter::default()),
            reported: std::sync::atomic::AtomicU64::new(0),
        });
        let room = Room::join(&pipeline, input, Arc::new(files.clone()))?;
        Ok(TrackRecording {
            pipeline,
            keeper,
            files,
            room,
        })
    }

    /// Runs until `stop` receives, then finishes every file; see [`media::run`].
    pub fn run(
        &self,
        stop: &std::sync::mpsc::Receiver<()>,
        report: &mut dyn FnMut(RunEvent),
    ) -> Result<(), PipelineError> {
        media::run(&self.pipeline, self, None, stop, report)
    }
}

impl Control for TrackRecording {
    fn end(&self) {
        self.files.end(None);
        self.keeper.send_event(gst::event::Eos::new());
    }

    fn maintain(&self) -> Result<(), PipelineError> {
        self.room.maintain(&self.pipeline)
    }

    fn recover(&self, element: &gst::Object) -> bool {
        self.room.recover(&self.pipeline, element)
    }

    fn progress(&self) -> Progress {
        let mut progress = self.files.counter.progress();
        let before = self
            .files
            .reported
            .swap(progress.frames, std::sync::atomic::Ordering::Relaxed);
        if let Ok(branches) = self.files.branches.lock() {
            let open = branches.iter().filter(|b| !b.ended).map(|b| &b.queue);
            progress.backlog = backlog(before, progress.frames, open);
        }
        progress
    }

    fn has_file(&self) -> bool {
        true
    }
}

/// Wires one track into its own file; `None` for pads that are not media.
fn attach(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    dir: &std::path::Path,
    counter: &Arc<Counter>,
) -> Result<Option<TrackBranch>, PipelineError> {
    let name = pad.name();
    let (caps, template) = if name.starts_with("video") {
        (encoded_video(), "video_%u")
    } else if name.starts_with("audio") {
        (encoded_audio(), "audio_%u")
    } else {
        return Ok(None);
    };
    let queue = make("queue")?;
    let filter = make("capsfilter")?;
    filter.set_property("caps", &caps);
    // Not `streamable`: a normal stop seeks back to write the duration and the index; a killed
    // worker's file lacks them but plays up to its last cluster.
    let mux = make("matroskamux")?;
    let sink = make("filesink")?;
    // A re-join brings the same tracks again: never overwrite an earlier file. The name is
    // taken by creating the file, so two pads arriving at once cannot both pick it.
    let name = track_file_name(pad);
    let mut part = 1;
    let file = loop {
        let candidate = match part {
            1 => dir.join(format!("{name}.mkv")),
            _ => dir.join(format!("{name}-{part}.mkv")),
        };
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
        {
            Ok(_) => break candidate,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => part += 1,
            Err(e) => {
                return Err(PipelineError::Setup(format!(
                    "creating {}: {e}",
                    candidate.display()
                )))
            }
        }
    };
    sink.set_property("location", file.to_string_lossy().to_string());
    add(pipeline, &[&queue, &filter, &mux, &sink])?;
    link(&[&queue, &filter])?;
    link_into(&filter, &mux, template)?;
    link(&[&mux, &sink])?;
    for element in [&queue, &filter, &mux, &sink] {
        element
            .sync_state_with_parent()
            .map_err(|e| PipelineError::Setup(e.to_string()))?;
    }
    let entry = queue
        .static_pad("sink")
        .ok_or_else(|| PipelineError::Setup("queue without sink pad".into()))?;
    if let Some(out) = queue.static_pad("src") {
        counter.watch(&out);
    }
    pad.link(&entry)
        .map_err(|e| PipelineError::Setup(format!("linking the track: {e:?}")))?;
    tracing::info!(pad = %name, file = %file.display(), "recording a track without re-encoding");
    Ok(Some(TrackBranch {
        source_pad: pad.clone(),
        entry,
        queue,
        ended: false,
    }))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// Waits until `check` holds, for at most five seconds.
    fn eventually(check: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if check() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// A writer that never returns (a blocking probe stands in for a hung disk) leaves buffers
    /// in the branch's queue: a backlog while nothing is written, none once writing resumes.
    #[test]
    fn a_stuck_writer_is_a_backlog_and_an_idle_one_is_not() {
        gst::init().expect("gstreamer");
        let pipeline = gst::Pipeline::new();
        let source = gst_app::AppSrc::builder().format(gst::Format::Time).build();
        let queue = make("queue").expect("queue");
        let writer = make("fakesink").expect("fakesink");
        writer.set_property("sync", false);
        add(&pipeline, &[source.upcast_ref(), &queue, &writer]).expect("add");
        link(&[source.upcast_ref(), &queue, &writer]).expect("link");
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Mutex::new(released);
        let stuck = writer
            .static_pad("sink")
            .expect("sink pad")
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                let _ = released.lock().map(|r| r.recv());
                gst::PadProbeReturn::Ok
            })
            .expect("probe");
        pipeline.set_state(gst::State::Playing).expect("play");

        // Nothing published: nothing waits.
        assert!(!backlog(0, 0, [&queue]));
        for n in 0..4u64 {
            let mut buffer = gst::Buffer::with_size(16).expect("buffer");
            buffer
                .get_mut()
                .expect("writable")
                .set_pts(gst::ClockTime::from_mseconds(n * 20));
            source.push_buffer(buffer).expect("push");
        }
        assert!(
            eventually(|| backlog(1, 1, [&queue])),
            "buffers wait behind a stuck writer"
        );
        assert!(!backlog(1, 2, [&queue]), "something was written");

        writer
            .static_pad("sink")
            .expect("sink pad")
            .remove_probe(stuck);
        for _ in 0..4 {
            let _ = release.send(());
        }
        assert!(
            eventually(|| !backlog(5, 5, [&queue])),
            "the queue drained once the writer moved"
        );
        pipeline.set_state(gst::State::Null).expect("stop");
    }
}
