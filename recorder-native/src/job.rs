//! One recording job as the worker process receives it: which room, how to join, where to
//! write. Read from a file (never the command line: the token is a secret).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A room-composite recording into an MP4 file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordJob {
    /// LiveKit signalling URL (`ws://` or `wss://`).
    pub livekit_url: String,
    /// LiveKit access token of a hidden subscriber of the room.
    pub token: String,
    /// The finished MP4. While recording, the fragmented file sits beside it with the
    /// extension `.part.mp4`.
    pub output: PathBuf,
}

/// Why a job file was refused.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The file could not be read.
    #[error("reading the job file {path}: {source}")]
    Read {
        /// The job file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid job.
    #[error("invalid job: {0}")]
    Invalid(String),
}

impl RecordJob {
    /// Reads and checks a job file.
    pub fn load(path: &Path) -> Result<RecordJob, JobError> {
        let text = std::fs::read_to_string(path).map_err(|source| JobError::Read {
            path: path.to_owned(),
            source,
        })?;
        let job: RecordJob =
            serde_json::from_str(&text).map_err(|e| JobError::Invalid(e.to_string()))?;
        job.check()?;
        Ok(job)
    }

    /// Refuses jobs that cannot work, before anything starts.
    pub fn check(&self) -> Result<(), JobError> {
        if !(self.livekit_url.starts_with("ws://") || self.livekit_url.starts_with("wss://")) {
            return Err(JobError::Invalid(
                "livekit_url must start with ws:// or wss://".into(),
            ));
        }
        if self.token.trim().is_empty() {
            return Err(JobError::Invalid("token is empty".into()));
        }
        if self.output.extension().and_then(|e| e.to_str()) != Some("mp4") {
            return Err(JobError::Invalid("output must be a .mp4 file".into()));
        }
        Ok(())
    }

    /// The fragmented file written while recording.
    pub fn part_file(&self) -> PathBuf {
        self.output.with_extension("part.mp4")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(url: &str, token: &str, output: &str) -> RecordJob {
        RecordJob {
            livekit_url: url.into(),
            token: token.into(),
            output: output.into(),
        }
    }

    #[test]
    fn checks_refuse_unusable_jobs() {
        assert!(job("ws://h:7880", "t", "/r/a.mp4").check().is_ok());
        assert!(job("http://h", "t", "/r/a.mp4").check().is_err());
        assert!(job("ws://h", " ", "/r/a.mp4").check().is_err());
        assert!(job("ws://h", "t", "/r/a.mkv").check().is_err());
    }

    #[test]
    fn part_file_sits_beside_the_output() {
        assert_eq!(
            job("ws://h", "t", "/r/a.mp4").part_file(),
            PathBuf::from("/r/a.part.mp4")
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<RecordJob>(
            r#"{"livekit_url":"ws://h","token":"t","output":"/a.mp4","extra":1}"#,
        );
        assert!(err.is_err());
    }
}
