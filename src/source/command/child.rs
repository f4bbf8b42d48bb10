//! The child of a command source: started in its own process group, its
//! stderr logged, stopped with its whole group (the steps from
//! [`super::policy::Stopper`]) and reaped.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::{CommandError, CommandErrorKind, Exit};
use super::policy::{self, LineDecision, LineLimiter, StopStep, Stopper};
use super::sys;
use crate::clock::monotonic_now;

/// Longest stderr line logged (longer ones are cut).
const MAX_LINE: usize = 512;

/// The child, while it runs.
pub(super) struct Supervised {
    pub(super) child: Child,
    /// The child was reaped after its group got its last KILL.
    pub(super) reaped: bool,
    pub(super) grace: Duration,
    /// Its last stderr line, for error messages.
    pub(super) last_words: Arc<Mutex<String>>,
}

/// The message for a child whose output ended: its exit status if it has
/// exited within the grace period, and its last stderr line.
pub(super) fn exit_error(
    name: &str,
    sup: Option<&mut Supervised>,
    what: &'static str,
) -> CommandError {
    let ended = |exit, last_words| {
        CommandError::new(
            name,
            CommandErrorKind::Ended {
                exit,
                what,
                last_words,
            },
        )
    };
    let Some(sup) = sup else {
        return ended(Exit::Stream, String::new());
    };
    // Wait (without reaping) for the leader to exit, clear the rest of
    // its group while its zombie still holds the group id, then reap it.
    let pid = sup.child.id();
    let deadline = monotonic_now() + sup.grace;
    let status = loop {
        match sys::has_exited(pid) {
            Ok(true) => {
                let _ = sys::signal_group(pid, policy::Signal::Kill);
                let status = sup.child.wait().ok();
                sup.reaped = true;
                break status;
            }
            Ok(false) if monotonic_now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => break None,
        }
    };
    let last = sup.last_words.lock().map(|l| l.clone()).unwrap_or_default();
    let exit = match status {
        Some(s) => Exit::Exited(s),
        None => Exit::Closed,
    };
    ended(exit, last)
}

/// Starts `cmd` in its own process group, stdout and stderr piped.
pub(super) fn spawn(
    cmd: &str,
    args: &[String],
    name: &str,
    grace: Duration,
) -> Result<(File, Supervised), CommandError> {
    let mut c = Command::new(cmd);
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    sys::terminate_with_parent(&mut c);
    let mut child = c.spawn().map_err(|source| {
        let command = cmd.to_string();
        CommandError::new(name, CommandErrorKind::Spawn { command, source })
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
            reaped: false,
            grace,
            last_words,
        };
        stop(&mut sup);
        return Err(CommandError::new(name, CommandErrorKind::NoStdout));
    };
    let fd = OwnedFd::from(out);
    sys::grow_pipe(fd.as_fd(), 1 << 20);
    log::debug!("{name}: started, pid {}", child.id());
    Ok((
        File::from(fd),
        Supervised {
            child,
            reaped: false,
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
    if sup.reaped {
        return;
    }
    sup.reaped = true;
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

/// However the source ends (dropped by the pipeline, or an error while it
/// opens), the child's group is stopped and the child reaped.
impl Drop for Supervised {
    fn drop(&mut self) {
        stop(self);
    }
}
