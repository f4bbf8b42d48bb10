//! What can go wrong with a command source, by operation: starting the
//! command, waiting for and reading its output, framing it. Every error
//! names the source (`exec:CMD` or `stdin`); the underlying error is its
//! `source()`. Whether restarting may help follows from the kind.

use std::fmt;
use std::io;
use std::process::ExitStatus;
use std::time::Duration;

use super::stream::StreamFormat;
use crate::h264_split::SplitError;
use crate::source::Recovery;
use crate::source::y4m::HeaderError;

/// A command source that cannot start, or whose output cannot be used.
#[derive(Debug)]
pub struct CommandError {
    /// `exec:CMD` or `stdin`.
    pub name: String,
    pub kind: CommandErrorKind,
}

/// How the stream ended, for [`CommandErrorKind::Ended`].
#[derive(Debug)]
pub enum Exit {
    /// Not a child of ours (stdin): the stream just ended.
    Stream,
    /// The command exited with this status.
    Exited(ExitStatus),
    /// The command closed its output (its status unknown yet).
    Closed,
}

/// What went wrong with a command source.
#[derive(Debug)]
pub enum CommandErrorKind {
    /// stdin cannot be duplicated as the source.
    Stdin(io::Error),
    /// The command would not start.
    Spawn { command: String, source: io::Error },
    /// The child has no stdout pipe.
    NoStdout,
    /// The stream ended: `what` says when ("before sending a picture");
    /// `last_words` is the last line of its stderr.
    Ended {
        exit: Exit,
        what: &'static str,
        last_words: String,
    },
    /// Not YUV4MPEG2, H.264 or MJPEG, and no raw format was set.
    Unrecognized,
    /// `source-stride` is shorter than a line.
    ShortStride {
        stride: usize,
        format: StreamFormat,
        line: usize,
        width: u32,
    },
    /// A YUV4MPEG2 stream header that does not parse.
    Y4mHeader(HeaderError),
    /// A YUV4MPEG2 header line longer than this.
    Y4mLineTooLong(usize),
    /// No FRAME line where one must be.
    LostY4mFraming,
    /// The H.264 stream cannot be split into access units.
    H264(SplitError),
    /// This many bytes without a whole JPEG.
    JpegTooLong(usize),
    /// Nothing in this long since it started.
    NeverStarted(Duration),
    /// Nothing for this long.
    Stalled(Duration),
    /// Stopping: not waiting for its output.
    Stopping,
    /// poll(2) on its output failed.
    Wait(io::Error),
    /// read(2) on its output failed.
    Read(io::Error),
}

impl CommandError {
    pub fn new(name: impl Into<String>, kind: CommandErrorKind) -> Self {
        Self {
            name: name.into(),
            kind,
        }
    }

    /// Whether restarting the command (or reading stdin again) may help.
    pub fn recovery(&self) -> Recovery {
        use CommandErrorKind::*;
        match self.kind {
            Stdin(_) | NoStdout | Unrecognized | ShortStride { .. } | Y4mHeader(_) => {
                Recovery::Fatal
            }
            Y4mLineTooLong(_) => Recovery::Fatal,
            Spawn { .. } | Ended { .. } | LostY4mFraming | H264(_) | JpegTooLong(_) => {
                Recovery::Reopen
            }
            NeverStarted(_) | Stalled(_) | Stopping | Wait(_) | Read(_) => Recovery::Reopen,
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CommandErrorKind::*;
        let name = &self.name;
        match &self.kind {
            Stdin(e) => write!(f, "{name}: cannot take it as a source: {e}"),
            Spawn { command, source } => match source.kind() {
                io::ErrorKind::NotFound => write!(
                    f,
                    "{name}: cannot start `{command}`: command not found (install it, or give its full path)"
                ),
                io::ErrorKind::PermissionDenied => write!(
                    f,
                    "{name}: cannot start `{command}`: permission denied (not executable?)"
                ),
                _ => write!(f, "{name}: cannot start `{command}`: {source}"),
            },
            NoStdout => write!(f, "{name}: no stdout pipe"),
            Ended {
                exit: Exit::Stream,
                what: "",
                ..
            } => write!(f, "{name}: the stream ended"),
            Ended {
                exit: Exit::Stream,
                what,
                ..
            } => write!(f, "{name}: the stream ended {what}"),
            Ended {
                exit,
                what,
                last_words,
            } => {
                match exit {
                    Exit::Exited(s) => write!(f, "{name}: exited ({s})")?,
                    _ => write!(f, "{name}: closed its output")?,
                }
                if !what.is_empty() {
                    write!(f, " {what}")?;
                }
                if !last_words.is_empty() {
                    write!(f, "; its last words: {last_words}")?;
                }
                Ok(())
            }
            Unrecognized => write!(
                f,
                "{name}: its output is neither YUV4MPEG2, H.264 nor MJPEG; for raw pictures set \
                 source-format = \"i420\", \"nv12\" or \"yuyv\" (and size)"
            ),
            ShortStride {
                stride,
                format,
                line,
                width,
            } => write!(
                f,
                "source-stride {stride} is shorter than a {format} line of {line} bytes at width {width}"
            ),
            Y4mHeader(e) => write!(f, "{name}: {e}"),
            Y4mLineTooLong(max) => {
                write!(f, "{name}: a YUV4MPEG2 line longer than {max} bytes")
            }
            LostY4mFraming => write!(f, "{name}: lost YUV4MPEG2 framing (no FRAME line)"),
            H264(e) => write!(f, "{name}: {e}"),
            JpegTooLong(max) => write!(f, "{name}: {max} bytes without a whole JPEG"),
            NeverStarted(d) => write!(
                f,
                "{name}: sent nothing in {:.1} s since it started; stopping it",
                d.as_secs_f64()
            ),
            Stalled(d) => write!(
                f,
                "{name}: sent nothing for {:.1} s (stalled); stopping it",
                d.as_secs_f64()
            ),
            Stopping => write!(f, "{name}: not waiting for its output (stopping)"),
            Wait(e) => write!(f, "{name}: cannot wait for its output: {e}"),
            Read(e) => write!(f, "{name}: cannot read its output: {e}"),
        }
    }
}

impl std::error::Error for CommandError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        use CommandErrorKind::*;
        match &self.kind {
            Stdin(e) | Spawn { source: e, .. } | Wait(e) | Read(e) => Some(e),
            Y4mHeader(e) => Some(e),
            H264(e) => Some(e),
            NoStdout
            | Ended { .. }
            | Unrecognized
            | ShortStride { .. }
            | Y4mLineTooLong(_)
            | LostY4mFraming
            | JpegTooLong(_)
            | NeverStarted(_)
            | Stalled(_)
            | Stopping => None,
        }
    }
}
