//! VIDIOC_STREAMON and VIDIOC_STREAMOFF, and poll(2) for a filled buffer.

use std::io;
use std::os::raw::{c_int, c_ulong};
use std::time::Duration;

use super::{BUF_TYPE_VIDEO_CAPTURE, Device, IOC_WRITE, ioc, ioctl};

pub(super) const VIDIOC_STREAMON: c_ulong = ioc(IOC_WRITE, 18, std::mem::size_of::<c_int>());
pub(super) const VIDIOC_STREAMOFF: c_ulong = ioc(IOC_WRITE, 19, std::mem::size_of::<c_int>());

impl Device {
    pub fn streamon(&self) -> io::Result<()> {
        let mut t: c_int = BUF_TYPE_VIDEO_CAPTURE as c_int;
        ioctl(self.raw(), VIDIOC_STREAMON, &mut t)
    }

    pub fn streamoff(&self) -> io::Result<()> {
        let mut t: c_int = BUF_TYPE_VIDEO_CAPTURE as c_int;
        ioctl(self.raw(), VIDIOC_STREAMOFF, &mut t)
    }

    /// Waits up to `timeout` for a filled buffer. Returns whether one is
    /// ready; POLLERR/POLLHUP (a vanished device) is an error.
    pub fn poll_readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut p = libc::pollfd {
            fd: self.raw(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as c_int;
        // SAFETY: one valid pollfd, count 1.
        let rc = unsafe { libc::poll(&mut p, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        if rc == 0 {
            return Ok(false);
        }
        if p.revents & libc::POLLIN != 0 {
            return Ok(true);
        }
        if p.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            return Err(io::Error::other(
                "the device reported an error (POLLERR): disconnected or streaming failed",
            ));
        }
        Ok(false)
    }
}
