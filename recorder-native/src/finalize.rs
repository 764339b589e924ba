//! Turns a recording's fragmented MP4 into a finalized, faststart MP4 (index up front), without
//! re-encoding. The same step finishes a normal stop and repairs what a crash left behind: a
//! fragmented file is playable up to its last complete fragment, and the remux rewrites the
//! index with the true duration.

use std::path::Path;

use gst::prelude::*;

use crate::media::PipelineError;

/// Remuxes `fragmented` into `output` (faststart MP4). `output` is written under a temporary
/// name and renamed into place, so a reader never sees half a file.
pub fn remux_faststart(fragmented: &Path, output: &Path) -> Result<(), PipelineError> {
    let partial = output.with_extension("remux.tmp");
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
    outcome?;
    std::fs::rename(&partial, output)
        .map_err(|e| PipelineError::Setup(format!("moving the finished file into place: {e}")))
}
