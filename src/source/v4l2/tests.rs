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
    assert!(e.recoverable, "{e}");
    assert!(e.message.contains("is not there"), "{e}");
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
    assert!(!e.recoverable, "{e}");
    assert!(e.message.contains("not a V4L2 device"), "{e}");
}
