//! The system calls the command source needs that std has no safe API for:
//! signalling a process group, waiting for pipe data with a timeout, asking
//! whether a child has exited without reaping it, the parent-death signal
//! and the pipe size. One of the fenced `sys` modules where `unsafe` is
//! allowed; each call says why it is sound.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use super::policy::Signal;

/// Sends `signal` to every process in the group `pgid`. A group that is
/// gone already is not an error.
pub fn signal_group(pgid: u32, signal: Signal) -> io::Result<()> {
    let sig = match signal {
        Signal::Term => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    if pgid <= 1 {
        // killpg(0) and killpg(1) would reach our own group or everyone.
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: killpg takes plain integers and touches no memory of ours;
    // pgid > 1 is a child's own group (it was started with process_group(0),
    // and the caller has not reaped its leader, so the id is not reused).
    let r = unsafe { libc::killpg(pgid, sig) };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ESRCH) {
        return Ok(());
    }
    Err(e)
}

/// Whether the child `pid` has exited, without reaping it (it stays a
/// zombie, holding its pid and group id, until `Child::wait`).
pub fn has_exited(pid: u32) -> io::Result<bool> {
    let pid: libc::id_t = pid;
    // SAFETY: an all-zero siginfo_t is a valid value of the plain C struct.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, writable siginfo_t for the duration of the
    // call; WNOWAIT leaves the child waitable, so std's Child still reaps it.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if r != 0 {
        let e = io::Error::last_os_error();
        // Already reaped: exited.
        return if e.raw_os_error() == Some(libc::ECHILD) {
            Ok(true)
        } else {
            Err(e)
        };
    }
    // SAFETY: waitid filled `info`; si_pid is 0 if no child changed state.
    Ok(unsafe { info.si_pid() } != 0)
}

/// Waits until `fd` is readable (data or end of file) or `timeout` passes.
/// Returns whether it is readable; an interrupted wait returns `false`.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `pfd` is one valid pollfd for the call; the fd is borrowed, so
    // it stays open.
    let r = unsafe { libc::poll(&mut pfd, 1, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(r > 0)
}

/// Grows a pipe's buffer to `bytes` (fewer wake-ups per picture); best effort.
pub fn grow_pipe(fd: BorrowedFd<'_>, bytes: usize) {
    let n = bytes.min(libc::c_int::MAX as usize) as libc::c_int;
    // SAFETY: F_SETPIPE_SZ takes an int and touches no memory; the fd is
    // borrowed, so it stays open. A failure (not a pipe, over the limit in
    // /proc/sys/fs/pipe-max-size) leaves the pipe as it was.
    let _ = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, n) };
}

/// Makes the child get SIGTERM if the thread that starts it dies (edgestream
/// killed with SIGKILL: no orphaned camera process).
pub fn terminate_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec, and calls
    // only prctl, which is async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
