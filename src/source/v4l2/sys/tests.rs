use std::io;
use std::path::Path;

use super::buffer::{VIDIOC_DQBUF, VIDIOC_QBUF};
use super::ctrl::VIDIOC_S_CTRL;
use super::enum_fmt::VIDIOC_ENUM_FMT;
use super::fmt::VIDIOC_S_FMT;
use super::frameintervals::VIDIOC_ENUM_FRAMEINTERVALS;
use super::framesizes::VIDIOC_ENUM_FRAMESIZES;
use super::parm::VIDIOC_S_PARM;
use super::querycap::VIDIOC_QUERYCAP;
use super::reqbufs::VIDIOC_REQBUFS;
use super::stream::VIDIOC_STREAMON;
use super::{Device, fourcc};

#[test]
fn request_numbers_match_the_kernel_headers() {
    // Values from linux/videodev2.h on x86_64.
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(VIDIOC_QUERYCAP, 0x80685600);
        assert_eq!(VIDIOC_ENUM_FMT, 0xc0405602);
        assert_eq!(VIDIOC_S_FMT, 0xc0d05605);
        assert_eq!(VIDIOC_REQBUFS, 0xc0145608);
        assert_eq!(VIDIOC_QBUF, 0xc058560f);
        assert_eq!(VIDIOC_DQBUF, 0xc0585611);
        assert_eq!(VIDIOC_STREAMON, 0x40045612);
        assert_eq!(VIDIOC_S_PARM, 0xc0cc5616);
        assert_eq!(VIDIOC_S_CTRL, 0xc008561c);
        assert_eq!(VIDIOC_ENUM_FRAMESIZES, 0xc02c564a);
        assert_eq!(VIDIOC_ENUM_FRAMEINTERVALS, 0xc034564b);
    }
    assert_eq!(fourcc(b"YUYV"), 0x56595559);
}

#[test]
fn opening_a_missing_node_is_an_error_not_a_panic() {
    let e = Device::open(Path::new("/dev/nonexistent-video")).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
}
