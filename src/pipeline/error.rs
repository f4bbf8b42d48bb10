//! Why the capture/encode loop ended with an error: which source or stage,
//! and the error underneath as its `source()`. Cheap to clone (the reload
//! reports the same end to the main loop and to whoever joins the thread).

use std::fmt;
use std::sync::Arc;

use crate::convert::ConvertError;
use crate::encode::EncodeError;
use crate::media::PixelFormat;
use crate::source::SourceError;

/// The loop's end with an error; see [`PipelineErrorKind`].
#[derive(Debug, Clone)]
pub struct PipelineError(Arc<PipelineErrorKind>);

/// What ended the loop.
#[derive(Debug)]
pub enum PipelineErrorKind {
    /// The source failed in a way reopening does not fix.
    Source(SourceError),
    /// x264 would not open for the source's format.
    OpenEncoder(EncodeError),
    /// The source's pixel format cannot go to x264 in this build.
    Unsupported {
        /// The source's description.
        source: String,
        format: PixelFormat,
    },
    /// A packed picture could not be converted.
    Convert { source: String, error: ConvertError },
    /// x264 failed on a frame.
    Encode { source: String, error: EncodeError },
    /// A compressed frame other than MJPEG reached x264.
    NotForX264 { source: String, format: PixelFormat },
    /// A frame of a kind the coder is not set up for.
    NoEncoder { source: String, image: &'static str },
}

impl PipelineError {
    pub fn kind(&self) -> &PipelineErrorKind {
        &self.0
    }
}

impl From<PipelineErrorKind> for PipelineError {
    fn from(kind: PipelineErrorKind) -> Self {
        Self(Arc::new(kind))
    }
}

impl From<SourceError> for PipelineError {
    fn from(e: SourceError) -> Self {
        PipelineErrorKind::Source(e).into()
    }
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use PipelineErrorKind::*;
        match self.kind() {
            // Source errors name their source already.
            Source(e) => e.fmt(f),
            OpenEncoder(e) => e.fmt(f),
            Unsupported { source, format } => {
                write!(f, "{source}: {format} input is not supported in this build")
            }
            Convert { source, error } => write!(f, "{source}: {error}"),
            Encode { source, error } => write!(f, "{source}: {error}"),
            NotForX264 { source, format } => {
                write!(f, "{source}: {format} frames cannot go to x264")
            }
            NoEncoder { source, image } => write!(f, "{source}: no encoder for {image} frames"),
        }
    }
}

impl std::error::Error for PipelineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        use PipelineErrorKind::*;
        match self.kind() {
            Source(e) => Some(e),
            OpenEncoder(e) | Encode { error: e, .. } => Some(e),
            Convert { error, .. } => Some(error),
            Unsupported { .. } | NotForX264 { .. } | NoEncoder { .. } => None,
        }
    }
}
