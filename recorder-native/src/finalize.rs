//! Turns a recording's fragmented MP4 into a finalized, faststart MP4 (index up front), without
//! re-encoding. The same step finishes a normal stop and repairs what a crash left behind: a
//! fragmented file is playable up to its last complete fragment, and the remux rewrites the
//! index with the true duration.

use std::path::Path;

use gst::prelude::*;

use crate::media::PipelineError;

/// Extension of the output while the remux writes it (renamed into place when done).
const PARTIAL_EXTENSION: &str = "remux.tmp";
/// Extension of the media mp4mux holds aside while it writes the index first.
const MEDIA_ASIDE_EXTENSION: &str = "faststart.tmp";

/// If the file `name` is what a finalize writes beside its output (its half-written output, or
/// the media it holds aside), the name of that output without `.mp4`: the job id. A killed
/// finalize leaves these behind; the fragmented file they came from is still there, so they can
/// go once no finalize of that job is running.
pub fn temp_file_of(name: &str) -> Option<&str> {
    [PARTIAL_EXTENSION, MEDIA_ASIDE_EXTENSION]
        .iter()
        .find_map(|ext| name.strip_suffix(ext)?.strip_suffix('.'))
        .filter(|stem| !stem.is_empty())
}

/// Remuxes `fragmented` into `output` (faststart MP4). `output` is written under a temporary
/// name and renamed into place, so a reader never sees half a file.
pub fn remux_faststart(fragmented: &Path, output: &Path) -> Result<(), PipelineError> {
    let partial = output.with_extension(PARTIAL_EXTENSION);
    // mp4mux holds the media aside while it writes the index first. Left to itself it would put
    // that copy of the whole recording in the system's temporary directory, readable by others
    // and left behind by a kill; beside the output it stays private and recovery cleans it.
    let media_aside = output.with_extension(MEDIA_ASIDE_EXTENSION);
    let pipeline = gst::Pipeline::with_name("finalize");
    let make = |factory: &'static str| {
        gst::ElementFactory::make(factory)
            .build()
            .map_err(|e| PipelineError::Element {
                element: factory,
                reason: e.to_string(),
            })
    };
    let source = make("filesrc")?;
    source.set_property("location", fragmented.to_string_lossy().to_string());
    let demux = make("qtdemux")?;
    let mux = make("mp4mux")?;
    mux.set_property("faststart", true);
    mux.set_property("faststart-file", media_aside.to_string_lossy().to_string());
    let sink = make("filesink")?;
    sink.set_property("location", partial.to_string_lossy().to_string());
    pipeline
        .add_many([&source, &demux, &mux, &sink])
        .map_err(|e| PipelineError::Setup(e.to_string()))?;
    source
        .link(&demux)
        .and_then(|()| mux.link(&sink))
        .map_err(|e| PipelineError::Setup(e.to_string()))?;
    let weak_pipeline = pipeline.downgrade();
    let weak_mux = mux.downgrade();
    demux.connect_pad_added(move |_, pad| {
        let (Some(pipeline), Some(mux)) = (weak_pipeline.upgrade(), weak_mux.upgrade()) else {
            return;
        };
        let template = if pad.name().starts_with("video") {
            "video_%u"
        } else if pad.name().starts_with("audio") {
            "audio_%u"
        } else {
            return;
        };
        // qtdemux pushes each stream in file order while mp4mux waits for both: a bounded queue
        // that fills with one stream while the muxer waits for the other deadlocks the remux. A
        // recording interleaves every second, so these hold a second or so of one stream.
        let Ok(queue) = gst::ElementFactory::make("queue")
            .property("max-size-buffers", 0u32)
            .property("max-size-time", 0u64)
            .property("max-size-bytes", 256u32 * 1024 * 1024)
            .build()
        else {
            return;
        };
        let linked = pipeline.add(&queue).is_ok()
            && queue.sync_state_with_parent().is_ok()
            && queue
                .static_pad("sink")
                .is_some_and(|sink| pad.link(&sink).is_ok())
            && mux
                .request_pad_simple(template)
                .zip(queue.static_pad("src"))
                .is_some_and(|(mux_pad, src)| src.link(&mux_pad).is_ok());
        if !linked {
            tracing::error!(pad = %pad.name(), "could not link a stream into the remux");
        }
    });

    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| PipelineError::Setup(format!("starting the remux: {e}")))?;
    let bus = pipeline
        .bus()
        .ok_or_else(|| PipelineError::Setup("pipeline without a bus".into()))?;
    let mut outcome = Err(PipelineError::Setup("remux ended without EOS".into()));
    for message in bus.iter_timed(gst::ClockTime::NONE) {
        match message.view() {
            gst::MessageView::Eos(_) => {
                outcome = Ok(());
                break;
            }
            gst::MessageView::Error(err) => {
                outcome = Err(PipelineError::Runtime {
                    element: err
                        .src()
                        .map(|s| s.path_string().to_string())
                        .unwrap_or_default(),
                    message: err.error().to_string(),
                });
                break;
            }
            _ => {}
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    let _ = std::fs::remove_file(&media_aside);
    outcome?;
    // Durable before it replaces anything: the callers delete the fragmented file next, and a
    // power loss must not leave neither (filesink does not sync).
    let durable = |what: &str, result: std::io::Result<()>| {
        result.map_err(|e| PipelineError::Setup(format!("{what}: {e}")))
    };
    durable(
        "syncing the finished file",
        std::fs::File::open(&partial).and_then(|f| f.sync_all()),
    )?;
    durable(
        "moving the finished file into place",
        std::fs::rename(&partial, output),
    )?;
    durable("syncing the recordings directory", sync_parent(output))
}

/// Makes a rename or removal in `path`'s directory durable.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
        _ => std::fs::File::open(".")?.sync_all(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Top-level MP4 box types in file order.
    fn boxes(file: &Path) -> Vec<String> {
        let bytes = std::fs::read(file).expect("read");
        let mut at = 0usize;
        let mut found = Vec::new();
        while at + 8 <= bytes.len() {
            let size = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
            found.push(String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned());
            if size < 8 {
                break;
            }
            at += size;
        }
        found
    }

    /// A fragmented recording becomes a faststart MP4 (index before media), and nothing is left
    /// beside it: not the half-written output, not the media mp4mux held aside.
    #[test]
    fn fragmented_to_faststart_leaves_nothing_behind() {
        gst::init().expect("gstreamer");
        let dir = std::env::temp_dir().join(format!("finalize-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let fragmented = dir.join("job.part.mp4");
        let record = gst::parse::launch(&format!(
            "videotestsrc num-buffers=60 ! video/x-raw,width=320,height=240,framerate=30/1 \
             ! x264enc speed-preset=ultrafast key-int-max=15 ! h264parse \
             ! mp4mux fragment-duration=500 ! filesink location={}",
            fragmented.display()
        ))
        .expect("pipeline");
        record.set_state(gst::State::Playing).expect("play");
        let bus = record.bus().expect("bus");
        let end = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        assert!(matches!(
            end.map(|m| m.type_()),
            Some(gst::MessageType::Eos)
        ));
        record.set_state(gst::State::Null).expect("stop");
        assert!(boxes(&fragmented).contains(&"moof".to_owned()));

        let output = dir.join("job.mp4");
        remux_faststart(&fragmented, &output).expect("remux");
        let order = boxes(&output);
        let moov = order.iter().position(|b| b == "moov").expect("moov");
        let mdat = order.iter().position(|b| b == "mdat").expect("mdat");
        assert!(moov < mdat, "index first: {order:?}");
        assert!(!order.contains(&"moof".to_owned()), "{order:?}");
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["job.mp4", "job.part.mp4"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The temporary files of a finalize name the job they belong to (recovery spares those of
    /// running jobs); nothing else is taken for one.
    #[test]
    fn temp_files_name_their_job() {
        let output = Path::new("/r/job-1.mp4");
        for temp in [
            output.with_extension(PARTIAL_EXTENSION),
            output.with_extension(MEDIA_ASIDE_EXTENSION),
        ] {
            let name = temp.file_name().and_then(|n| n.to_str()).expect("name");
            assert_eq!(temp_file_of(name), Some("job-1"), "{name}");
        }
        for other in [
            "job-1.mp4",
            "job-1.part.mp4",
            "remux.tmp",
            ".remux.tmp",
            "x.tmp",
        ] {
            assert_eq!(temp_file_of(other), None, "{other}");
        }
    }
}
