//! A command source: pictures from a child's stdout (`source =
//! "exec:rpicam-vid ..."`, no shell unless the command is `sh -c ...`) or
//! from our own stdin (`source = "-"`).
//!
//! The stream is raw I420/NV12/YUYV at the configured size and stride,
//! YUV4MPEG2, H.264 Annex-B (split into access units and passed through) or
//! MJPEG; y4m, H.264 and MJPEG are also recognised from the first bytes.
//! Raw pictures are read straight from the pipe into one reused buffer.
//!
//! Supervision (the policy is pure, in [`policy`]): the child runs in its own
//! process group with SIGTERM as its parent-death signal; its stderr lines go
//! to our log, rate-limited; when it exits, or sends nothing for a few frame
//! intervals, the read fails with a recoverable error, the pipeline drops the
//! source, which stops the whole group (TERM, KILL after a grace period,
//! reaped: no zombie, no orphan), and the pipeline starts it again with its
//! reopen backoff. A command that cannot start (not found) is the same kind
//! of error, naming the command.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::{FrameSource, SourceError, SourceFormat};
use crate::clock::monotonic_now;
use crate::h264_split::AccessUnitSplitter;
use crate::media::{Fraction, Frame, Image, PixelFormat, Planar};

mod child;
mod error;
mod pipe;
pub mod policy;
pub mod stream;
#[allow(unsafe_code)]
mod sys;

use child::{Supervised, exit_error, spawn};
pub use error::{CommandError, CommandErrorKind, Exit};
use pipe::{Pipe, ReadError};
use policy::{Timeouts, Watchdog};
pub use stream::StreamFormat;
use stream::{DETECT_BYTES, Stamper, detect, jpeg_end};

/// How much an H.264 or MJPEG read asks for at once.
const CHUNK: usize = 64 << 10;
/// Largest MJPEG frame.
const MAX_JPEG: usize = 8 << 20;

/// What to run and how to read it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The command and its arguments; empty: read our stdin.
    pub argv: Vec<String>,
    /// `None`: recognise y4m, H.264 or MJPEG from the first bytes.
    pub format: Option<StreamFormat>,
    pub width: u32,
    pub height: u32,
    pub fps: Fraction,
    /// Luma line stride in bytes of raw pictures; `None`: tightly packed.
    pub stride: Option<usize>,
    /// Checked while waiting for the producer (a stop does not wait out
    /// the startup timeout).
    pub stop: Option<Arc<AtomicBool>>,
}

/// How the byte stream is cut into frames.
enum Framing {
    Raw {
        format: StreamFormat,
        stride: usize,
        buf: Vec<u8>,
    },
    Y4m {
        buf: Vec<u8>,
    },
    H264 {
        splitter: Box<AccessUnitSplitter>,
        au: Vec<u8>,
    },
    Mjpeg {
        buf: Vec<u8>,
        jpeg: Vec<u8>,
    },
}

pub struct CommandSource {
    format: SourceFormat,
    framing: Framing,
    stamper: Stamper,
    /// The stamp of the frame last filled.
    pts: Duration,
    /// The frame last filled has not been handed out yet (the first H.264
    /// access unit, read at open).
    pending: bool,
    line: Vec<u8>,
    // Field order: the pipe closes before the child is stopped in Drop.
    pipe: Pipe,
    supervised: Option<Supervised>,
}

/// The name in messages: `exec:rpicam-vid` or `stdin`.
pub fn display_name(argv: &[String]) -> String {
    match argv.first() {
        Some(cmd) => format!("exec:{cmd}"),
        None => "stdin".into(),
    }
}

impl CommandSource {
    /// Starts the command (or takes stdin) and, if the format must be
    /// recognised or is y4m, waits for the first bytes.
    pub fn open(s: &Settings) -> Result<Self, CommandError> {
        let name = display_name(&s.argv);
        let fps_interval = s.fps.frame_duration();
        let timeouts = Timeouts::for_frame_interval(fps_interval);
        let (file, supervised) = match s.argv.split_first() {
            Some((cmd, args)) => {
                let (file, sup) = spawn(cmd, args, &name, timeouts.grace)?;
                (file, Some(sup))
            }
            None => {
                let fd = io::stdin()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| CommandError::new(&name, CommandErrorKind::Stdin(e)))?;
                (File::from(fd), None)
            }
        };
        let mut pipe = Pipe {
            file,
            ahead: Vec::new(),
            pos: 0,
            watchdog: Watchdog::new(timeouts, monotonic_now()),
            supervised: supervised.is_some(),
            stop: s.stop.clone(),
            name: name.clone(),
        };
        let mut width = s.width;
        let mut height = s.height;
        let mut fps = s.fps;
        let eof = |sup: &mut Option<Supervised>, what| exit_error(&name, sup.as_mut(), what);
        let fail = |kind| CommandError::new(&name, kind);
        let mut sup = supervised;
        let format = match s.format {
            Some(f) => f,
            None => match pipe.peek(DETECT_BYTES, CHUNK) {
                Ok(first) if first.len() < DETECT_BYTES && detect(first).is_none() => {
                    return Err(eof(&mut sup, "before sending a picture"));
                }
                Ok(first) => detect(first).ok_or_else(|| fail(CommandErrorKind::Unrecognized))?,
                Err(ReadError::Eof) => return Err(eof(&mut sup, "before sending a picture")),
                Err(ReadError::Failed(e)) => return Err(e),
            },
        };
        let framing = match format {
            StreamFormat::I420 | StreamFormat::Nv12 | StreamFormat::Yuyv => {
                let stride = s.stride.unwrap_or(format.min_stride(s.width));
                if stride < format.min_stride(s.width) {
                    return Err(fail(CommandErrorKind::ShortStride {
                        stride,
                        format,
                        line: format.min_stride(s.width),
                        width: s.width,
                    }));
                }
                let size = format.frame_bytes(stride, s.height).unwrap_or(0);
                Framing::Raw {
                    format,
                    stride,
                    buf: vec![0; size],
                }
            }
            StreamFormat::Y4m => {
                let mut line = Vec::new();
                match pipe.read_line(&mut line) {
                    Ok(()) => {}
                    Err(ReadError::Eof) => {
                        return Err(eof(&mut sup, "before its YUV4MPEG2 header"));
                    }
                    Err(ReadError::Failed(e)) => return Err(e),
                }
                let hdr = super::y4m::parse_header(&line)
                    .map_err(|e| fail(CommandErrorKind::Y4mHeader(e)))?;
                (width, height, fps) = (hdr.width, hdr.height, hdr.fps);
                Framing::Y4m {
                    buf: vec![0; width as usize * height as usize * 3 / 2],
                }
            }
            StreamFormat::H264 => Framing::H264 {
                splitter: Box::new(AccessUnitSplitter::new()),
                au: Vec::new(),
            },
            StreamFormat::Mjpeg => Framing::Mjpeg {
                buf: Vec::new(),
                jpeg: Vec::new(),
            },
        };
        if fps != s.fps {
            // The y4m header's rate sets the stall timeout from here on.
            let now = monotonic_now();
            pipe.watchdog = Watchdog::new(Timeouts::for_frame_interval(fps.frame_duration()), now);
            pipe.watchdog.data(now);
        }
        let stride_note = match &framing {
            Framing::Raw { stride, .. } if *stride != format.min_stride(width) => {
                format!(", line stride {stride} bytes")
            }
            _ => String::new(),
        };
        let mut src = Self {
            format: SourceFormat {
                width,
                height,
                fps,
                pixel_format: format.pixel_format(),
                description: name,
            },
            framing,
            stamper: Stamper::new(fps),
            pts: Duration::ZERO,
            line: Vec::new(),
            pending: false,
            pipe,
            supervised: sup,
        };
        if format == StreamFormat::H264 {
            src.first_access_unit()?;
        }
        let f = &src.format;
        log::info!(
            "{}: reading {format} at {}x{}, {} fps{stride_note}",
            f.description,
            f.width,
            f.height,
            f.fps
        );
        Ok(src)
    }

    /// Reads the first H.264 access unit now (kept for the first
    /// `next_frame`), so that the picture size is the one its SPS announces,
    /// not only the configured one.
    fn first_access_unit(&mut self) -> Result<(), CommandError> {
        match self.fill() {
            Ok(()) => self.pending = true,
            Err(ReadError::Failed(e)) => return Err(e),
            Err(ReadError::Eof) => {
                return Err(exit_error(
                    &self.format.description,
                    self.supervised.as_mut(),
                    "before sending a picture",
                ));
            }
        }
        let Framing::H264 { au, .. } = &self.framing else {
            return Ok(());
        };
        let size = crate::h264::annex_b_nals(au)
            .map(|r| &au[r])
            .find(|n| crate::h264::nal_unit_type(n[0]) == crate::h264::nal_type::SPS)
            .and_then(crate::h264_split::sps_size);
        let f = &mut self.format;
        match size {
            Some((w, h)) if (w, h) != (f.width, f.height) => {
                log::info!(
                    "{}: its SPS says {w}x{h}, not the configured {}x{}; using {w}x{h}",
                    f.description,
                    f.width,
                    f.height
                );
                (f.width, f.height) = (w, h);
            }
            Some(_) => {}
            None => log::debug!(
                "{}: the first access unit has no readable SPS; assuming {}x{}",
                f.description,
                f.width,
                f.height
            ),
        }
        Ok(())
    }

    /// The error for an end of file: the child's exit, or the end of stdin.
    /// `Ok`: the end of stdin, the end of the stream.
    fn ended(&mut self, what: &'static str) -> Result<(), CommandError> {
        match self.supervised.as_mut() {
            Some(sup) => Err(exit_error(&self.format.description, Some(sup), what)),
            None => Ok(()),
        }
    }

    /// Reads the next frame into the framing's buffer and stamps it.
    fn fill(&mut self) -> Result<(), ReadError> {
        match &mut self.framing {
            Framing::Raw { buf, .. } => self.pipe.read_exact(buf)?,
            Framing::Y4m { buf } => {
                self.pipe.read_line(&mut self.line)?;
                if !self.line.starts_with(b"FRAME") {
                    return Err(ReadError::Failed(CommandError::new(
                        self.format.description.clone(),
                        CommandErrorKind::LostY4mFraming,
                    )));
                }
                self.pipe.read_exact(buf)?;
            }
            Framing::H264 { splitter, au } => loop {
                match splitter.next_into(au) {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(e) => {
                        let kind = CommandErrorKind::H264(e);
                        return Err(ReadError::Failed(CommandError::new(
                            self.format.description.clone(),
                            kind,
                        )));
                    }
                }
                let space = splitter.space(CHUNK);
                let got = self.pipe.read_some(space);
                splitter.filled(CHUNK, *got.as_ref().unwrap_or(&0));
                got?;
            },
            Framing::Mjpeg { buf, jpeg } => loop {
                if let Some(start) = buf.windows(2).position(|p| p == [0xff, 0xd8]) {
                    buf.drain(..start);
                    if let Some(end) = jpeg_end(buf) {
                        jpeg.clear();
                        jpeg.extend(buf.drain(..end));
                        break;
                    }
                }
                if buf.len() > MAX_JPEG {
                    buf.clear();
                    return Err(ReadError::Failed(CommandError::new(
                        self.format.description.clone(),
                        CommandErrorKind::JpegTooLong(MAX_JPEG),
                    )));
                }
                let len = buf.len();
                buf.resize(len + CHUNK, 0);
                let got = self.pipe.read_some(&mut buf[len..]);
                buf.truncate(len + *got.as_ref().unwrap_or(&0));
                got?;
            },
        }
        self.pts = self.stamper.stamp(monotonic_now());
        Ok(())
    }

    /// The frame last filled, borrowing its buffer.
    fn frame(&self) -> Result<Frame<'_>, SourceError> {
        let (w, h) = (self.format.width, self.format.height);
        let image = match &self.framing {
            Framing::Raw {
                format: StreamFormat::Yuyv,
                stride,
                buf,
            } => Image::Packed {
                format: PixelFormat::Yuyv,
                width: w,
                height: h,
                stride: *stride,
                data: buf,
            },
            Framing::Raw {
                format,
                stride,
                buf,
            } => Image::Planar(
                Planar::from_contiguous(format.pixel_format(), w, h, *stride, buf).map_err(
                    |error| SourceError::Frame {
                        source: self.format.description.clone(),
                        error,
                    },
                )?,
            ),
            Framing::Y4m { buf } => return super::i420_frame(&self.format, buf, self.pts),
            Framing::H264 { au, .. } => Image::Compressed {
                format: PixelFormat::H264,
                data: au,
            },
            Framing::Mjpeg { jpeg, .. } => Image::Compressed {
                format: PixelFormat::Mjpeg,
                data: jpeg,
            },
        };
        Ok(Frame::new(self.pts, image))
    }
}

impl FrameSource for CommandSource {
    fn format(&self) -> &SourceFormat {
        &self.format
    }

    fn next_frame(&mut self) -> Result<Option<Frame<'_>>, SourceError> {
        if std::mem::take(&mut self.pending) {
            return self.frame().map(Some);
        }
        match self.fill() {
            Ok(()) => self.frame().map(Some),
            Err(ReadError::Failed(e)) => Err(e.into()),
            Err(ReadError::Eof) => self.ended("").map(|()| None).map_err(Into::into),
        }
    }
}
