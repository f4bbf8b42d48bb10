//! Unit tests of the V4L2 source (buffer layouts, format choice) without a
//! device.

use super::probe::c_text;
use super::*;
use crate::media::Image;

#[test]
fn layouts_honour_the_stride_and_check_sizes() {
    let l = Layout::new(PixelFormat::I420, 6, 4, 8).unwrap();
    assert_eq!(l.min_bytes, 8 * 4 + 2 * 4 * 2);
    let buf = vec![0u8; l.min_bytes];
    match l.image(&buf) {
        Some(Image::Planar(p)) => {
            assert_eq!(p.strides, [8, 4, 4]);
            assert_eq!(p.planes.map(|p| p.len()), [32, 8, 8]);
        }
        other => panic!("{other:?}"),
    }
    assert!(l.image(&buf[1..]).is_none(), "short frame");
    let l = Layout::new(PixelFormat::Nv12, 6, 4, 8).unwrap();
    assert_eq!(l.min_bytes, 8 * 4 + 8 * 2);
    let l = Layout::new(PixelFormat::Yuyv, 6, 4, 16).unwrap();
    assert_eq!(l.min_bytes, 16 * 3 + 12);
    assert!(Layout::new(PixelFormat::Yuyv, 6, 4, 10).is_err());
    let l = Layout::new(PixelFormat::Mjpeg, 6, 4, 0).unwrap();
    assert!(matches!(
        l.image(&[0xff, 0xd8]),
        Some(Image::Compressed { data, .. }) if data.len() == 2
    ));
}

#[test]
fn slow_cameras_get_three_frame_intervals() {
    assert_eq!(stall_timeout(Fraction::new(30, 1)), STALL_TIMEOUT);
    assert_eq!(stall_timeout(Fraction::new(1, 1)), Duration::from_secs(3));
}

#[test]
fn helpers() {
    assert_eq!(fourcc_text(sys::fourcc(b"Y16 ")), "Y16");
    assert_eq!(fourcc_text(sys::fourcc(b"MJPG")), "MJPG");
    assert_eq!(c_text(b"vivid\0\0junk"), "vivid");
    assert_eq!(reduce(Fraction::new(30000, 1000)), Fraction::new(30, 1));
    assert_eq!(
        reduce(Fraction::new(30000, 1001)),
        Fraction::new(30000, 1001)
    );
}

#[test]
fn a_missing_camera_is_recoverable() {
    let e = V4l2Source::open(
        Path::new("/dev/video-edgestream-test-missing"),
        Request {
            width: 640,
            height: 480,
            fps: 30,
            format: None,
        },
    )
    .err()
    .unwrap();
    assert_eq!(e.recovery(), crate::source::Recovery::Reopen, "{e}");
    assert!(e.to_string().contains("is not there"), "{e}");
    let e = V4l2Source::open(
        Path::new("/dev/null"),
        Request {
            width: 640,
            height: 480,
            fps: 30,
            format: None,
        },
    )
    .err()
    .unwrap();
    assert_eq!(e.recovery(), crate::source::Recovery::Fatal, "{e}");
    assert!(e.to_string().contains("not a V4L2 device"), "{e}");
}

#[test]
fn whether_a_camera_error_is_worth_a_reopen_follows_from_its_kind() {
    use crate::source::Recovery;
    let errno = io::Error::from_raw_os_error;
    let missing = CameraError::open("/dev/video9", errno(libc::ENOENT));
    assert_eq!(missing.recovery(), Recovery::Reopen);
    assert_eq!(missing.to_string(), "camera /dev/video9 is not there");
    let denied = CameraError::open("/dev/video9", errno(libc::EACCES));
    assert_eq!(denied.recovery(), Recovery::Fatal);
    assert!(denied.to_string().contains("`video` group"), "{denied}");
    let gone = CameraError::capture("/dev/video9", "VIDIOC_DQBUF", errno(libc::ENODEV));
    assert_eq!(gone.recovery(), Recovery::Reopen);
    assert_eq!(gone.to_string(), "camera /dev/video9 gone (unplugged?)");
    let failed = CameraError::capture("/dev/video9", "VIDIOC_DQBUF", errno(libc::EIO));
    let source = std::error::Error::source(&failed).map(|s| s.to_string());
    assert_eq!(
        source,
        Some(errno(libc::EIO).to_string()),
        "the errno is the source"
    );
    assert!(
        failed
            .to_string()
            .starts_with("camera /dev/video9: capture error: VIDIOC_DQBUF: ")
    );
}
