//! The read side of a command source: the pipe (a child's stdout or our
//! stdin), bytes read ahead of the framing (format detection, y4m lines),
//! and the watchdog that turns silence into an error.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::error::{CommandError, CommandErrorKind};
use super::policy::{Verdict, Watchdog};
use super::sys;
use crate::clock::monotonic_now;

/// How often a wait looks at the stop flag.
const STOP_TICK: Duration = Duration::from_millis(100);
/// Longest y4m header or FRAME line.
const MAX_Y4M_LINE: usize = 1024;
/// How much a y4m line read asks for (a FRAME line is usually 6 bytes).
const Y4M_LINE_READ: usize = 64;

/// Why a read stopped.
pub(super) enum ReadError {
    Eof,
    Failed(CommandError),
}

impl From<CommandError> for ReadError {
    fn from(e: CommandError) -> Self {
        Self::Failed(e)
    }
}

/// The read side: the pipe, bytes read ahead (detection, y4m lines), and
/// the watchdog.
pub(super) struct Pipe {
    pub(super) file: File,
    pub(super) ahead: Vec<u8>,
    pub(super) pos: usize,
    pub(super) watchdog: Watchdog,
    pub(super) supervised: bool,
    pub(super) stop: Option<Arc<AtomicBool>>,
    pub(super) name: String,
}

impl Pipe {
    /// Waits until the pipe is readable, within the watchdog's deadline.
    /// An error about this source.
    fn error(&self, kind: CommandErrorKind) -> CommandError {
        CommandError::new(self.name.clone(), kind)
    }

    pub(super) fn wait(&mut self) -> Result<(), CommandError> {
        loop {
            let now = monotonic_now();
            match self.watchdog.check(now) {
                Verdict::Wait => {}
                Verdict::NeverStarted(d) if self.supervised => {
                    return Err(self.error(CommandErrorKind::NeverStarted(d)));
                }
                Verdict::Stalled(d) if self.supervised => {
                    return Err(self.error(CommandErrorKind::Stalled(d)));
                }
                // Stdin is not restarted: it may pause as long as it likes.
                Verdict::NeverStarted(_) | Verdict::Stalled(_) => {}
            }
            if self
                .stop
                .as_ref()
                .is_some_and(|s| s.load(Ordering::Relaxed))
            {
                return Err(self.error(CommandErrorKind::Stopping));
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
                    return Err(self.error(CommandErrorKind::Wait(e)));
                }
            }
        }
    }

    /// Reads some bytes into `dst`: what was read ahead first, then the pipe.
    pub(super) fn read_some(&mut self, dst: &mut [u8]) -> Result<usize, ReadError> {
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
                    return Err(self.error(CommandErrorKind::Read(e)).into());
                }
            }
        }
    }

    /// Fills `dst` completely.
    pub(super) fn read_exact(&mut self, dst: &mut [u8]) -> Result<(), ReadError> {
        let mut filled = 0;
        while filled < dst.len() {
            filled += self.read_some(&mut dst[filled..])?;
        }
        Ok(())
    }

    /// Makes sure at least `n` bytes are read ahead (fewer at end of file),
    /// reading at most `chunk` bytes at a time.
    pub(super) fn peek(&mut self, n: usize, chunk: usize) -> Result<&[u8], ReadError> {
        if self.pos > 0 {
            self.ahead.drain(..self.pos);
            self.pos = 0;
        }
        while self.ahead.len() < n {
            let len = self.ahead.len();
            self.ahead.resize(len + chunk.max(n - len), 0);
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
                    return Err(self.error(CommandErrorKind::Read(e)).into());
                }
            }
        }
    }

    /// Reads one line (without its newline) of at most [`MAX_Y4M_LINE`].
    pub(super) fn read_line(&mut self, line: &mut Vec<u8>) -> Result<(), ReadError> {
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
                return Err(self
                    .error(CommandErrorKind::Y4mLineTooLong(MAX_Y4M_LINE))
                    .into());
            }
            // Small reads: what comes after the line is picture data, read
            // straight into the frame buffer rather than through here.
            let want = have + 1;
            if self.peek(want, Y4M_LINE_READ)?.len() < want {
                return Err(ReadError::Eof);
            }
        }
    }
}
