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
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{FrameSource, SourceError, SourceFormat};
use crate::clock::monotonic_now;
use crate::h264_split::AccessUnitSplitter;
use crate::media::{Fraction, Frame, Image, PixelFormat, Planar};

pub mod policy;
pub mod stream;
mod sys;

use policy::{LineDecision, LineLimiter, StopStep, Stopper, Timeouts, Verdict, Watchdog};
pub use stream::StreamFormat;
use stream::{DETECT_BYTES, Stamper, detect, jpeg_end};

/// How often a wait looks at the stop flag.
const STOP_TICK: Duration = Duration::from_millis(100);
/// How much an H.264 or MJPEG read asks for at once.
const CHUNK: usize = 64 << 10;
/// Longest stderr line logged (longer ones are cut).
const MAX_LINE: usize = 512;
/// Longest y4m header or FRAME line.
const MAX_Y4M_LINE: usize = 1024;
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

/// The child, while it runs.
struct Supervised {
    child: Child,
    grace: Duration,
    /// Its last stderr line, for error messages.
    last_words: Arc<Mutex<String>>,
}

/// Why a read stopped.
enum ReadError {
    Eof,
    Source(SourceError),
}

impl From<SourceError> for ReadError {
    fn from(e: SourceError) -> Self {
        Self::Source(e)
    }
}

/// The read side: the pipe, bytes read ahead (detection, y4m lines), and
/// the watchdog.
struct Pipe {
    file: File,
    ahead: Vec<u8>,
    pos: usize,
    watchdog: Watchdog,
    supervised: bool,
    stop: Option<Arc<AtomicBool>>,
    name: String,
}

impl Pipe {
    /// Waits until the pipe is readable, within the watchdog's deadline.
    fn wait(&mut self) -> Result<(), SourceError> {
        loop {
            let now = monotonic_now();
            match self.watchdog.check(now) {
                Verdict::Wait => {}
                Verdict::NeverStarted(d) if self.supervised => {
                    return Err(SourceError::recoverable(format!(
                        "{}: sent nothing in {:.1} s since it started; stopping it",
                        self.name,
                        d.as_secs_f64()
                    )));
                }
                Verdict::Stalled(d) if self.supervised => {
                    return Err(SourceError::recoverable(format!(
                        "{}: sent nothing for {:.1} s (stalled); stopping it",
                        self.name,
                        d.as_secs_f64()
                    )));
                }
                // Stdin is not restarted: it may pause as long as it likes.
                Verdict::NeverStarted(_) | Verdict::Stalled(_) => {}
            }
            if self
                .stop
                .as_ref()
                .is_some_and(|s| s.load(Ordering::Relaxed))
            {
                return Err(SourceError::recoverable(format!(
                    "{}: not waiting for its output (stopping)",
                    self.name
                )));
            }
            let left = self.watchdog.deadline().saturating_sub(now);
            let slice = if self.supervised {
                left.min(STOP_TICK)
            } else {
                STOP_TICK
            };
            match sys::wait_readable(self.file.as_fd(), slice.max(Duration::from_millis(1))) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => {
                    return Err(SourceError::recoverable(format!(
                        "{}: cannot wait for its output: {e}",
                        self.name
                    )));
                }
            }
        }
    }

    /// Reads some bytes into `dst`: what was read ahead first, then the pipe.
    fn read_some(&mut self, dst: &mut [u8]) -> Result<usize, ReadError> {
        if self.pos < self.ahead.len() {
            let n = (self.ahead.len() - self.pos).min(dst.len());
            dst[..n].copy_from_slice(&self.ahead[self.pos..self.pos + n]);
            self.pos += n;
            if self.pos == self.ahead.len() {
                self.ahead.clear();
                self.pos = 0;
            }
            return Ok(n);
        }
        loop {
            self.wait()?;
            match self.file.read(dst) {
                Ok(0) => return Err(ReadError::Eof),
                Ok(n) => {
                    self.watchdog.data(monotonic_now());
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    return Err(ReadError::Source(SourceError::recoverable(format!(
                        "{}: cannot read its output: {e}",
                        self.name
                    ))));
                }
            }
        }
    }

    /// Fills `dst` completely.
    fn read_exact(&mut self, dst: &mut [u8]) -> Result<(), ReadError> {
        let mut filled = 0;
        while filled < dst.len() {
            filled += self.read_some(&mut dst[filled..])?;
        }
        Ok(())
    }

    /// Makes sure at least `n` bytes are read ahead (fewer at end of file).
    fn peek(&mut self, n: usize) -> Result<&[u8], ReadError> {
        if self.pos > 0 {
            self.ahead.drain(..self.pos);
            self.pos = 0;
        }
        while self.ahead.len() < n {
            let len = self.ahead.len();
            self.ahead.resize(len + CHUNK.max(n - len), 0);
            match self.read_pipe_into_ahead(len) {
                Ok(got) => self.ahead.truncate(len + got),
                Err(ReadError::Eof) => {
                    self.ahead.truncate(len);
                    break;
                }
                Err(e) => {
                    self.ahead.truncate(len);
                    return Err(e);
                }
            }
        }
        Ok(&self.ahead)
    }

    fn read_pipe_into_ahead(&mut self, from: usize) -> Result<usize, ReadError> {
        loop {
            self.wait()?;
            match self.file.read(&mut self.ahead[from..]) {
                Ok(0) => return Err(ReadError::Eof),
                Ok(n) => {
                    self.watchdog.data(monotonic_now());
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(ReadError::Source(SourceError::recoverable(format!(
                        "{}: cannot read its output: {e}",
                        self.name
                    ))));
                }
            }
        }
    }

    /// Reads one line (without its newline) of at most [`MAX_Y4M_LINE`].
    fn read_line(&mut self, line: &mut Vec<u8>) -> Result<(), ReadError> {
        line.clear();
        loop {
            let have = self.ahead.len() - self.pos;
            let window = &self.ahead[self.pos..];
            if let Some(i) = window.iter().position(|&b| b == b'\n') {
                line.extend_from_slice(&window[..i]);
                self.pos += i + 1;
                return Ok(());
            }
            if have > MAX_Y4M_LINE {
                return Err(ReadError::Source(SourceError::fatal(format!(
                    "{}: a YUV4MPEG2 line longer than {MAX_Y4M_LINE} bytes",
                    self.name
                ))));
            }
            let want = have + 1;
            if self.peek(want)?.len() < want {
                return Err(ReadError::Eof);
            }
        }
    }
}

pub struct CommandSource {
    format: SourceFormat,
    framing: Framing,
    stamper: Stamper,
    /// The stamp of the frame last filled.
    pts: Duration,
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
    pub fn open(s: &Settings) -> Result<Self, SourceError> {
        let name = display_name(&s.argv);
        let fps_interval = s.fps.frame_duration();
        let timeouts = Timeouts::for_frame_interval(fps_interval);
        let (file, supervised) = match s.argv.split_first() {
            Some((cmd, args)) => {
                let (file, sup) = spawn(cmd, args, &name, timeouts.grace)?;
                (file, Some(sup))
            }
            None => {
                let fd = io::stdin().as_fd().try_clone_to_owned().map_err(|e| {
                    SourceError::fatal(format!("stdin: cannot take it as a source: {e}"))
                })?;
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
        let eof = |sup: &mut Option<Supervised>, what: &str| {
            SourceError::recoverable(exit_message(&name, sup.as_mut(), what))
        };
        let mut sup = supervised;
        let format = match s.format {
            Some(f) => f,
            None => match pipe.peek(DETECT_BYTES) {
                Ok(first) if first.len() < DETECT_BYTES && detect(first).is_none() => {
                    return Err(eof(&mut sup, "before sending a picture"));
                }
                Ok(first) => detect(first).ok_or_else(|| {
                    SourceError::fatal(format!(
                        "{name}: its output is neither YUV4MPEG2, H.264 nor MJPEG; for raw pictures set \
                         source-format = \"i420\", \"nv12\" or \"yuyv\" (and size)"
                    ))
                })?,
                Err(ReadError::Eof) => return Err(eof(&mut sup, "before sending a picture")),
                Err(ReadError::Source(e)) => return Err(e),
            },
        };
        let framing = match format {
            StreamFormat::I420 | StreamFormat::Nv12 | StreamFormat::Yuyv => {
                let stride = s.stride.unwrap_or(format.min_stride(s.width));
                if stride < format.min_stride(s.width) {
                    return Err(SourceError::fatal(format!(
                        "source-stride {stride} is shorter than a {format} line of {} bytes at width {}",
                        format.min_stride(s.width),
                        s.width
                    )));
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
                    Err(ReadError::Source(e)) => return Err(e),
                }
                let hdr = super::y4m::parse_header(&line)
                    .map_err(|e| SourceError::fatal(format!("{name}: {e}")))?;
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
        log::info!(
            "{name}: reading {format} at {width}x{height}, {fps} fps{}",
            match &framing {
                Framing::Raw { stride, .. } if *stride != format.min_stride(width) =>
                    format!(", line stride {stride} bytes"),
                _ => String::new(),
            }
        );
        Ok(Self {
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
            pipe,
            supervised: sup,
        })
    }

    /// The process id of the child, if one runs (tests).
    pub fn child_id(&self) -> Option<u32> {
        self.supervised.as_ref().map(|s| s.child.id())
    }

    /// The error for an end of file: the child's exit, or the end of stdin.
    /// `Ok`: the end of stdin, the end of the stream.
    fn ended(&mut self, what: &str) -> Result<(), SourceError> {
        match self.supervised.as_mut() {
            Some(sup) => Err(SourceError::recoverable(exit_message(
                &self.format.description,
                Some(sup),
                what,
            ))),
            None => Ok(()),
        }
    }

    /// Reads the next frame into the framing's buffer and stamps it.
    fn fill(&mut self) -> Result<(), ReadError> {
        let name = &self.format.description;
        match &mut self.framing {
            Framing::Raw { buf, .. } => self.pipe.read_exact(buf)?,
            Framing::Y4m { buf } => {
                self.pipe.read_line(&mut self.line)?;
                if !self.line.starts_with(b"FRAME") {
                    return Err(ReadError::Source(SourceError::recoverable(format!(
                        "{name}: lost YUV4MPEG2 framing (no FRAME line)"
                    ))));
                }
                self.pipe.read_exact(buf)?;
            }
            Framing::H264 { splitter, au } => loop {
                match splitter.next_into(au) {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(e) => {
                        return Err(ReadError::Source(SourceError::recoverable(format!(
                            "{name}: {e}"
                        ))));
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
                    return Err(ReadError::Source(SourceError::recoverable(format!(
                        "{name}: {MAX_JPEG} bytes without a whole JPEG"
                    ))));
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
                Planar::from_contiguous(format.pixel_format(), w, h, *stride, buf)
                    .map_err(SourceError::fatal)?,
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
        match self.fill() {
            Ok(()) => self.frame().map(Some),
            Err(ReadError::Source(e)) => Err(e),
            Err(ReadError::Eof) => self.ended("").map(|()| None),
        }
    }
}

/// The message for a child whose output ended: its exit status if it has
/// exited within the grace period, and its last stderr line.
fn exit_message(name: &str, sup: Option<&mut Supervised>, what: &str) -> String {
    let Some(sup) = sup else {
        return format!("{name}: the stream ended {what}")
            .trim_end()
            .to_string();
    };
    let deadline = monotonic_now() + sup.grace;
    let status = loop {
        match sup.child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if monotonic_now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => break None,
        }
    };
    let last = sup.last_words.lock().map(|l| l.clone()).unwrap_or_default();
    let how = match status {
        Some(s) => format!("exited ({s})"),
        None => "closed its output".into(),
    };
    let mut msg = format!("{name}: {how}");
    if !what.is_empty() {
        msg.push(' ');
        msg.push_str(what);
    }
    if !last.is_empty() {
        msg.push_str(&format!("; its last words: {last}"));
    }
    msg
}

/// Starts `cmd` in its own process group, stdout and stderr piped.
fn spawn(
    cmd: &str,
    args: &[String],
    name: &str,
    grace: Duration,
) -> Result<(File, Supervised), SourceError> {
    let mut c = Command::new(cmd);
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    sys::terminate_with_parent(&mut c);
    let mut child = c.spawn().map_err(|e| {
        SourceError::recoverable(match e.kind() {
            io::ErrorKind::NotFound => format!(
                "{name}: cannot start `{cmd}`: command not found (install it, or give its full path)"
            ),
            io::ErrorKind::PermissionDenied => {
                format!("{name}: cannot start `{cmd}`: permission denied (not executable?)")
            }
            _ => format!("{name}: cannot start `{cmd}`: {e}"),
        })
    })?;
    let last_words = Arc::new(Mutex::new(String::new()));
    if let Some(err) = child.stderr.take() {
        let last = last_words.clone();
        let log_name = name.to_string();
        let spawned = std::thread::Builder::new()
            .name("cmd-stderr".into())
            .spawn(move || log_stderr(err, &log_name, &last));
        if let Err(e) = spawned {
            log::warn!("{name}: its stderr is not logged: {e}");
        }
    }
    let Some(out) = child.stdout.take() else {
        let mut sup = Supervised {
            child,
            grace,
            last_words,
        };
        stop(&mut sup);
        return Err(SourceError::fatal(format!("{name}: no stdout pipe")));
    };
    let fd = OwnedFd::from(out);
    sys::grow_pipe(fd.as_fd(), 1 << 20);
    log::debug!("{name}: started, pid {}", child.id());
    Ok((
        File::from(fd),
        Supervised {
            child,
            grace,
            last_words,
        },
    ))
}

/// Logs the child's stderr a line at a time (a `\r`-rewritten progress line
/// counts as its last state), rate-limited.
fn log_stderr(err: std::process::ChildStderr, name: &str, last: &Mutex<String>) {
    let mut reader = BufReader::new(err);
    let mut limiter = LineLimiter::new(20, Duration::from_secs(10));
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match (&mut reader).take(64 << 10).read_until(b'\n', &mut raw) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&raw);
        let Some(line) = text
            .split(['\r', '\n'])
            .map(str::trim_end)
            .rfind(|l| !l.is_empty())
        else {
            continue;
        };
        let line: String = line.chars().take(MAX_LINE).collect();
        if let Ok(mut l) = last.lock() {
            l.clone_from(&line);
        }
        match limiter.line(monotonic_now()) {
            LineDecision::Log { suppressed: 0 } => log::info!("{name}: {line}"),
            LineDecision::Log { suppressed } => {
                log::info!("{name}: ({suppressed} lines not logged) {line}")
            }
            LineDecision::Drop => {}
        }
    }
}

/// Stops the child's whole group and reaps the child.
fn stop(sup: &mut Supervised) {
    let pid = sup.child.id();
    let mut stopper = Stopper::new(sup.grace);
    loop {
        let exited = sys::has_exited(pid).unwrap_or(true);
        match stopper.step(monotonic_now(), exited) {
            StopStep::Send(sig) => {
                if let Err(e) = sys::signal_group(pid, sig) {
                    log::debug!("exec: cannot signal group {pid}: {e}");
                }
            }
            StopStep::Wait => std::thread::sleep(Duration::from_millis(10)),
            StopStep::Reap => break,
        }
    }
    match sup.child.wait() {
        Ok(status) => log::debug!("exec: pid {pid} stopped ({status})"),
        Err(e) => log::debug!("exec: pid {pid}: {e}"),
    }
}

impl Drop for CommandSource {
    fn drop(&mut self) {
        if let Some(sup) = self.supervised.as_mut() {
            stop(sup);
        }
    }
}
