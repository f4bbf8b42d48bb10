//! VIDIOC_QUERYBUF and mmap(2): maps a capture buffer, unmapped on drop.

use std::io;
use std::os::raw::c_ulong;
use std::ptr::NonNull;

use super::buffer::Buffer;
use super::{Device, ioctl, iowr};

pub(super) const VIDIOC_QUERYBUF: c_ulong = iowr::<Buffer>(9);

impl Device {
    /// Maps buffer `index` (after `reqbufs`).
    pub fn map_buffer(&self, index: u32) -> io::Result<Mapping> {
        let mut b = Self::buffer(index);
        ioctl(self.raw(), VIDIOC_QUERYBUF, &mut b)?;
        // SAFETY: for MMAP buffers the kernel sets `m.offset`.
        let offset = unsafe { b.m.offset };
        let len = b.length as usize;
        if len == 0 {
            return Err(io::Error::other(format!("buffer {index} has length 0")));
        }
        // SAFETY: mapping a V4L2 buffer as its documentation says: a fresh
        // shared read-only mapping of `length` bytes at the offset the driver
        // gave; the kernel chooses the address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                self.raw(),
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null pointer"))?;
        Ok(Mapping { ptr, len })
    }
}

/// One mmap'd capture buffer, read-only. Unmapped on drop (errors ignored).
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory owned by this value; it is only
// read through `&self`, and moving it to another thread moves the ownership.
unsafe impl Send for Mapping {}

impl Mapping {
    pub fn len(&self) -> usize {
        self.len
    }

    /// The first `n` bytes (at most the whole buffer).
    pub fn bytes(&self, n: usize) -> &[u8] {
        // SAFETY: `ptr` is a live PROT_READ mapping of `len` bytes, valid
        // until this value is dropped, which the returned borrow prevents.
        // The driver writes into it only while the buffer is queued, and
        // callers read only buffers they have dequeued and not requeued.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), n.min(self.len)) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region mmap returned, once; no borrow of
        // it outlives `self`. A failure (not expected) only leaks the region.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}
