//! The RTMP broadcast: the composite's encoded H.264 and AAC, muxed to FLV and sent with
//! `rtmp2sink`.
//!
//! It runs in a pipeline of its own, fed through `appsink` taps on the recording's encoders, so
//! that an RTMP failure (a refused connection, a server that goes away) only ends the broadcast:
//! within one pipeline the error flow would travel back through the shared encoders and stop the
//! file too. The broadcast pipeline is not live and `rtmp2sink` does not sync: the recording's
//! pipeline already paces the data.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;

use crate::media::{add, link, link_into, make, PipelineError};

/// Most bytes held for a slow RTMP server before the oldest are dropped.
const MAX_QUEUED_BYTES: u64 = 16 * 1024 * 1024;

/// An RTMP broadcast fed by taps in the recording pipeline.
pub struct Broadcast {
    pipeline: gst::Pipeline,
    video_src: gst_app::AppSrc,
    audio_src: gst_app::AppSrc,
    abandoned: Arc<AtomicBool>,
    failure: Mutex<Option<String>>,
}

impl Broadcast {
    /// Builds the broadcast to `url` (`rtmp://host[:port]/app/stream`). Nothing connects until
    /// the recording starts.
    pub fn build(url: &str) -> Result<Broadcast, PipelineError> {
        let pipeline = gst::Pipeline::with_name("broadcast");
        // Caps (with the encoders' codec data) come with each sample from the taps.
        let source = || {
            gst_app::AppSrc::builder()
                .format(gst::Format::Time)
                .is_live(false)
                .max_bytes(MAX_QUEUED_BYTES)
                .leaky_type(gst_app::AppLeakyType::Downstream)
                .build()
        };
        let video_src = source();
        let audio_src = source();
        let video_queue = make("queue")?;
        let audio_queue = make("queue")?;
        let mux = make("flvmux")?;
        mux.set_property("streamable", true);
        let sink = make("rtmp2sink")?;
        sink.set_property("location", url);
        sink.set_property("sync", false);
        sink.set_property("async", false);
        add(
            &pipeline,
            &[
                video_src.upcast_ref(),
                audio_src.upcast_ref(),
                &video_queue,
                &audio_queue,
                &mux,
                &sink,
            ],
        )?;
        link(&[video_src.upcast_ref(), &video_queue])?;
        link(&[audio_src.upcast_ref(), &audio_queue])?;
        // The caps only come with the first sample, so pick flvmux's pads by name.
        for (queue, pad) in [(&video_queue, "video"), (&audio_queue, "audio")] {
            link_into(queue, &mux, pad)?;
        }
        link(&[&mux, &sink])?;
        Ok(Broadcast {
            pipeline,
            video_src,
            audio_src,
            abandoned: Arc::new(AtomicBool::new(false)),
            failure: Mutex::new(None),
        })
    }

    /// The tap for the recording's H.264 (`stream-format=avc`).
    pub fn video_tap(&self) -> gst::Element {
        self.tap(&self.video_src, video_caps())
    }

    /// The tap for the recording's AAC (`stream-format=raw`).
    pub fn audio_tap(&self) -> gst::Element {
        self.tap(&self.audio_src, audio_caps())
    }

    fn tap(&self, into: &gst_app::AppSrc, caps: gst::Caps) -> gst::Element {
        let for_samples = into.clone();
        let for_eos = into.clone();
        let abandoned = self.abandoned.clone();
        gst_app::AppSink::builder()
            .caps(&caps)
            .sync(false)
            .async_(false)
            .callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        if !abandoned.load(Ordering::Relaxed) {
                            // A failing broadcast must never push back into the recording.
                            if let Some(sample) = in_running_time(&sample) {
                                let _ = for_samples.push_sample(&sample);
                            }
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .eos(move |_| {
                        let _ = for_eos.end_of_stream();
                    })
                    .build(),
            )
            .build()
            .upcast()
    }

    /// Starts the broadcast pipeline (it connects to the RTMP server).
    pub fn start(&self, _recording: &gst::Pipeline) -> Result<(), PipelineError> {
        self.pipeline
            .set_state(gst::State::Playing)
            .map(|_| ())
            .map_err(|e| PipelineError::Setup(format!("starting the broadcast: {e}")))
    }

    /// Why the broadcast failed, once it has.
    pub fn failure(&self) -> Option<String> {
        let mut failure = self.failure.lock().ok()?;
        if failure.is_none() {
            let bus = self.pipeline.bus()?;
            while let Some(message) = bus.pop_filtered(&[gst::MessageType::Error]) {
                if let gst::MessageView::Error(err) = message.view() {
                    *failure = Some(format!(
                        "{}: {}",
                        err.src()
                            .map(|s| s.name().to_string())
                            .unwrap_or_else(|| "rtmp".into()),
                        err.error()
                    ));
                    break;
                }
            }
        }
        failure.clone()
    }

    /// Stops feeding and tears the broadcast down after a failure.
    pub fn abandon(&self) {
        self.abandoned.store(true, Ordering::Relaxed);
        let _ = self.pipeline.set_state(gst::State::Null);
    }

    /// After the recording's EOS (which the taps pass on), waits up to `timeout` for the
    /// broadcast to send its last data and close the stream, then tears it down.
    pub fn finish(&self, timeout: Duration) {
        if let Some(bus) = self.pipeline.bus() {
            let deadline = gst::ClockTime::from_nseconds(
                u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX),
            );
            match bus
                .timed_pop_filtered(deadline, &[gst::MessageType::Eos, gst::MessageType::Error])
            {
                Some(m) if m.type_() == gst::MessageType::Eos => {
                    tracing::info!("the RTMP broadcast finished");
                }
                Some(_) => tracing::warn!("the RTMP broadcast failed while finishing"),
                None => tracing::warn!(?timeout, "the RTMP broadcast did not finish in time"),
            }
        }
        self.abandon();
    }
}

/// `sample` with its buffer's timestamps in the recording's running time, without a segment.
/// The two taps' streams come out of different elements (the encoders after the compositor and
/// the audio mixer), each in a segment of its own: pushed with their raw timestamps, flvmux
/// compares numbers from two timelines, holds the stream that seems ahead until the other
/// catches up (the video, for the whole broadcast) and the viewers get audio only. In running
/// time both are on the pipeline's one clock. `None` for a buffer outside its segment.
fn in_running_time(sample: &gst::Sample) -> Option<gst::Sample> {
    let buffer = sample.buffer()?;
    let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
    let pts = buffer.pts().and_then(|pts| segment.to_running_time(pts));
    // A decode time before the segment's start (B-frames at the very start) has no running
    // time: the muxer then goes by the presentation time.
    let dts = buffer.dts().and_then(|dts| segment.to_running_time(dts));
    if pts.is_none() && buffer.pts().is_some() {
        return None;
    }
    let mut buffer = buffer.copy();
    {
        let buffer = buffer.get_mut()?;
        buffer.set_pts(pts);
        buffer.set_dts(dts);
    }
    let mut builder = gst::Sample::builder().buffer(&buffer);
    let caps = sample.caps_owned();
    if let Some(caps) = &caps {
        builder = builder.caps(caps);
    }
    Some(builder.build())
}

fn video_caps() -> gst::Caps {
    gst::Caps::builder("video/x-h264")
        .field("stream-format", "avc")
        .field("alignment", "au")
        .build()
}

fn audio_caps() -> gst::Caps {
    gst::Caps::builder("audio/mpeg")
        .field("mpegversion", 4i32)
        .field("stream-format", "raw")
        .build()
}
