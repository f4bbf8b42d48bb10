//! Why the program could not start or stopped with an error: the top of the
//! error chains, with what was being set up (which listener, which push
//! target, which pin) and the error underneath as `source()`.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::config::GpioLine;
use crate::pipeline::PipelineError;
use crate::push::{TargetError, TlsSetupError};
use crate::source::SourceError;

/// A failure that ends [`super::run`] (logged, exit status 1).
#[derive(Debug)]
pub enum RunError {
    /// The signal handlers could not be installed.
    Signals(io::Error),
    /// A `--push` URL that does not parse.
    PushTarget(TargetError),
    /// A push target's TLS could not be set up.
    PushTls(TlsSetupError),
    /// No random key for the digest nonces.
    RandomKey(io::Error),
    /// The RTSP listener could not be bound.
    Rtsp {
        listen: SocketAddr,
        source: io::Error,
    },
    /// A bound listener's address could not be read.
    LocalAddr {
        what: &'static str,
        source: io::Error,
    },
    /// The source could not be opened.
    Source(SourceError),
    /// Neither a source nor a way to open one (not expected).
    NoSource,
    /// The pipeline could not be built, or it ended with an error.
    Pipeline(PipelineError),
    /// The encoder thread could not be started.
    SpawnEncoder(io::Error),
    /// The encoder thread went away without saying why.
    EncoderDied,
    /// The encoder thread panicked.
    EncoderPanicked,
    /// A reload's old pipeline did not stop within this long.
    ReloadStuck(Duration),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Signals(e) => write!(f, "cannot install signal handlers: {e}"),
            Self::PushTarget(e) => write!(f, "--push: {e}"),
            Self::PushTls(e) => e.fmt(f),
            Self::RandomKey(e) => write!(f, "cannot draw a random nonce key: {e}"),
            Self::Rtsp { listen, source } => write!(f, "cannot serve RTSP on {listen}: {source}"),
            Self::LocalAddr { what, source } => {
                write!(f, "{what}: cannot read the bound address: {source}")
            }
            Self::Source(e) => e.fmt(f),
            Self::NoSource => f.write_str("no source"),
            Self::Pipeline(e) => e.fmt(f),
            Self::SpawnEncoder(e) => write!(f, "cannot start the encoder thread: {e}"),
            Self::EncoderDied => f.write_str("the encoder thread died"),
            Self::EncoderPanicked => f.write_str("the encoder thread panicked"),
            Self::ReloadStuck(limit) => write!(
                f,
                "SIGHUP: the pipeline did not stop within {} s to restart; exiting",
                limit.as_secs()
            ),
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Signals(e)
            | Self::RandomKey(e)
            | Self::SpawnEncoder(e)
            | Self::Rtsp { source: e, .. }
            | Self::LocalAddr { source: e, .. } => Some(e),
            Self::PushTarget(e) => Some(e),
            Self::PushTls(e) => Some(e),
            Self::Source(e) => Some(e),
            Self::Pipeline(e) => Some(e),
            Self::NoSource | Self::EncoderDied | Self::EncoderPanicked | Self::ReloadStuck(_) => {
                None
            }
        }
    }
}

impl RunError {
    /// For `map_err`: `what`'s bound address could not be read.
    pub fn local_addr(what: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::LocalAddr { what, source }
    }
}

impl From<SourceError> for RunError {
    fn from(e: SourceError) -> Self {
        Self::Source(e)
    }
}

impl From<PipelineError> for RunError {
    fn from(e: PipelineError) -> Self {
        Self::Pipeline(e)
    }
}

/// A GPIO line (the status LED, the privacy button) that cannot be used.
#[derive(Debug)]
pub struct GpioError {
    /// "status LED", "privacy button".
    pub what: &'static str,
    pub line: GpioLine,
    pub kind: GpioErrorKind,
}

/// What went wrong with a GPIO line.
#[derive(Debug)]
pub enum GpioErrorKind {
    /// Opening the chip, getting or requesting the line.
    Cdev(linux_embedded_hal::gpio_cdev::errors::Error),
    /// The chip has fewer lines.
    NoSuchLine { chip: String, lines: u32 },
    /// Reading the pin (the button's first level).
    Pin(linux_embedded_hal::CdevPinError),
}

impl fmt::Display for GpioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { what, line, kind } = self;
        match kind {
            GpioErrorKind::Cdev(e) => write!(f, "{what}: {line}: {e}"),
            GpioErrorKind::NoSuchLine { chip, lines } => write!(
                f,
                "{what}: {line}: {chip} has lines 0 to {}",
                lines.saturating_sub(1)
            ),
            GpioErrorKind::Pin(e) => write!(f, "{what}: {line}: {e}"),
        }
    }
}

impl std::error::Error for GpioError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            GpioErrorKind::Cdev(e) => Some(e),
            GpioErrorKind::Pin(e) => Some(e),
            GpioErrorKind::NoSuchLine { .. } => None,
        }
    }
}
