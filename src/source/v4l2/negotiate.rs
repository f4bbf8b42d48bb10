//! Choosing a camera format: pure code over the lists a camera reports
//! (`VIDIOC_ENUM_FMT`, `_FRAMESIZES`, `_FRAMEINTERVALS`), so it is tested
//! from given lists with no device.
//!
//! Order of preference at the configured size and frame rate:
//! 1. `YU12` (I420) and `NV12`: x264 reads them straight from the capture
//!    buffer;
//! 2. `YUYV` and `UYVY`: one conversion pass into a reused I420 buffer;
//! 3. `MJPG`: decoded to I420 (when built with the `mjpeg` feature);
//! 4. `H264`: the camera's own stream, passed through without x264.
//!
//! The size must match exactly (no scaling); the frame rate must be one the
//! camera lists for that size, within 1% (29.97 counts as 30). When nothing
//! fits, the error lists what the camera can do.

use std::fmt;

use crate::media::{Fraction, PixelFormat};

/// Frame intervals offered for one size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intervals {
    /// Seconds per frame, as fractions (1/30 is 30 fps).
    Discrete(Vec<Fraction>),
    /// Any interval from `min` to `max` seconds per frame.
    Range { min: Fraction, max: Fraction },
    /// The driver does not enumerate intervals.
    Unknown,
}

/// Sizes offered for one pixel format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameSize {
    Discrete {
        width: u32,
        height: u32,
        intervals: Intervals,
    },
    /// Any size in the range on the steps. `intervals` are those at the
    /// size asked for (or at the largest size, for listings).
    Stepwise {
        min: (u32, u32),
        max: (u32, u32),
        step: (u32, u32),
        intervals: Intervals,
    },
    /// The driver does not list sizes: the size is asked for and checked
    /// against what the driver sets.
    Unlisted,
}

/// One pixel format a camera offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraFormat {
    /// The V4L2 fourcc as text, e.g. `YUYV`.
    pub fourcc: String,
    /// The driver's description, e.g. `YUYV 4:2:2`.
    pub description: String,
    pub sizes: Vec<FrameSize>,
}

/// What was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Only this pixel format (`--camera-format`), or the best one.
    pub format: Option<PixelFormat>,
}

/// What was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub pixel_format: PixelFormat,
    /// The frame interval to set (seconds per frame).
    pub interval: Fraction,
}

/// How edgestream takes a camera format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Read by x264 in place.
    Direct,
    /// Converted to I420 in one pass.
    Converted,
    /// Decoded to I420.
    Decoded,
    /// The camera's H.264, sent as it is.
    Passthrough,
}

impl fmt::Display for Handling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Direct => "zero-copy into x264",
            Self::Converted => "converted to I420",
            Self::Decoded => "decoded to I420",
            Self::Passthrough => "H.264 passthrough",
        })
    }
}

/// The formats edgestream takes, best first.
pub fn preference() -> &'static [PixelFormat] {
    if cfg!(feature = "mjpeg") {
        &[
            PixelFormat::I420,
            PixelFormat::Nv12,
            PixelFormat::Yuyv,
            PixelFormat::Uyvy,
            PixelFormat::Mjpeg,
            PixelFormat::H264,
        ]
    } else {
        &[
            PixelFormat::I420,
            PixelFormat::Nv12,
            PixelFormat::Yuyv,
            PixelFormat::Uyvy,
            PixelFormat::H264,
        ]
    }
}

/// The pixel format for a V4L2 fourcc, if edgestream takes it.
pub fn pixel_format(fourcc: &str) -> Option<PixelFormat> {
    preference().iter().copied().find(|p| p.fourcc() == fourcc)
}

pub fn handling(p: PixelFormat) -> Handling {
    match p {
        PixelFormat::I420 | PixelFormat::Nv12 => Handling::Direct,
        PixelFormat::Yuyv | PixelFormat::Uyvy => Handling::Converted,
        PixelFormat::Mjpeg => Handling::Decoded,
        PixelFormat::H264 => Handling::Passthrough,
    }
}

/// Frames per second of an interval (seconds per frame).
fn fps_of(interval: Fraction) -> f64 {
    if interval.num == 0 {
        0.0
    } else {
        interval.den as f64 / interval.num as f64
    }
}

fn fps_matches(interval: Fraction, fps: u32) -> bool {
    let got = fps_of(interval);
    (got - fps as f64).abs() <= fps as f64 * 0.01
}

/// The interval to ask for at `fps` if `intervals` allow it.
fn pick_interval(intervals: &Intervals, fps: u32) -> Option<Fraction> {
    let exact = Fraction::new(1, fps);
    match intervals {
        Intervals::Discrete(list) => list.iter().copied().find(|&i| fps_matches(i, fps)),
        Intervals::Range { min, max } => {
            let (lo, hi) = (fps_of(*max), fps_of(*min));
            (fps as f64 >= lo * 0.99 && fps as f64 <= hi * 1.01).then_some(exact)
        }
        Intervals::Unknown => Some(exact),
    }
}

fn size_fits(size: &FrameSize, w: u32, h: u32) -> Option<&Intervals> {
    match size {
        FrameSize::Discrete {
            width,
            height,
            intervals,
        } => (*width == w && *height == h).then_some(intervals),
        FrameSize::Stepwise {
            min,
            max,
            step,
            intervals,
        } => {
            let on_step = |v: u32, lo: u32, st: u32| st <= 1 || (v - lo) % st == 0;
            (w >= min.0
                && w <= max.0
                && h >= min.1
                && h <= max.1
                && on_step(w, min.0, step.0)
                && on_step(h, min.1, step.1))
            .then_some(intervals)
        }
        FrameSize::Unlisted => Some(&Intervals::Unknown),
    }
}

/// No format fits: what was asked and what the camera offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoFit {
    pub request: Request,
    pub offers: String,
}

impl fmt::Display for NoFit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let usable: Vec<&str> = match self.request.format {
            Some(p) => vec![p.fourcc()],
            None => preference().iter().map(|p| p.fourcc()).collect(),
        };
        write!(
            f,
            "the camera cannot deliver {}x{} at {} fps in {} ({}); set --size, --fps or --camera-format to what it offers:\n{}",
            self.request.width,
            self.request.height,
            self.request.fps,
            if self.request.format.is_some() {
                "the format asked for"
            } else {
                "a format edgestream takes"
            },
            usable.join(", "),
            self.offers.trim_end()
        )
    }
}

impl std::error::Error for NoFit {}

/// Picks the best format for `req` from what the camera offers.
pub fn negotiate(formats: &[CameraFormat], req: Request) -> Result<Choice, NoFit> {
    let only = req.format.map(|p| [p]);
    let order: &[PixelFormat] = match &only {
        Some(one) => one,
        None => preference(),
    };
    for &want in order {
        for f in formats.iter().filter(|f| f.fourcc == want.fourcc()) {
            for size in &f.sizes {
                if let Some(intervals) = size_fits(size, req.width, req.height) {
                    if let Some(interval) = pick_interval(intervals, req.fps) {
                        return Ok(Choice {
                            pixel_format: want,
                            interval,
                        });
                    }
                }
            }
        }
    }
    Err(NoFit {
        request: req,
        offers: describe(formats),
    })
}

fn fmt_fps(interval: Fraction) -> String {
    let fps = fps_of(interval);
    if (fps - fps.round()).abs() < 0.005 {
        format!("{}", fps.round() as u64)
    } else {
        format!("{fps:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

fn describe_intervals(i: &Intervals) -> String {
    match i {
        Intervals::Discrete(list) => {
            let mut l = list.clone();
            l.sort_by(|a, b| fps_of(*b).total_cmp(&fps_of(*a)));
            let v: Vec<String> = l.into_iter().map(fmt_fps).collect();
            format!("{} fps", v.join(", "))
        }
        Intervals::Range { min, max } => format!("{}-{} fps", fmt_fps(*max), fmt_fps(*min)),
        Intervals::Unknown => "fps not listed".into(),
    }
}

/// One line per format and size, like `v4l2-ctl --list-formats-ext`:
///
/// ```text
/// YUYV (YUYV 4:2:2): converted to I420
///     640x480: 25, 15, 10 fps
/// ```
pub fn describe(formats: &[CameraFormat]) -> String {
    let mut out = String::new();
    for f in formats {
        let how = match pixel_format(&f.fourcc) {
            Some(p) => handling(p).to_string(),
            None => "not usable by edgestream".into(),
        };
        out.push_str(&format!("  {} ({}): {how}\n", f.fourcc, f.description));
        for s in &f.sizes {
            let line = match s {
                FrameSize::Discrete {
                    width,
                    height,
                    intervals,
                } => format!("{width}x{height}: {}", describe_intervals(intervals)),
                FrameSize::Stepwise {
                    min,
                    max,
                    step,
                    intervals,
                } => format!(
                    "{}x{} to {}x{} in steps of {}x{}: {} at the largest size",
                    min.0,
                    min.1,
                    max.0,
                    max.1,
                    step.0,
                    step.1,
                    describe_intervals(intervals)
                ),
                FrameSize::Unlisted => "sizes and rates not listed by the driver".into(),
            };
            out.push_str(&format!("      {line}\n"));
        }
    }
    if formats.is_empty() {
        out.push_str("  (no capture formats)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ivals(fps: &[u32]) -> Intervals {
        Intervals::Discrete(fps.iter().map(|&f| Fraction::new(1, f)).collect())
    }

    fn fmt(fourcc: &str, sizes: &[(u32, u32, &[u32])]) -> CameraFormat {
        CameraFormat {
            fourcc: fourcc.into(),
            description: format!("{fourcc} desc"),
            sizes: sizes
                .iter()
                .map(|&(width, height, fps)| FrameSize::Discrete {
                    width,
                    height,
                    intervals: ivals(fps),
                })
                .collect(),
        }
    }

    fn req(width: u32, height: u32, fps: u32) -> Request {
        Request {
            width,
            height,
            fps,
            format: None,
        }
    }

    /// A typical USB webcam: YUYV only at low sizes/rates, MJPEG higher.
    fn webcam() -> Vec<CameraFormat> {
        vec![
            fmt(
                "YUYV",
                &[
                    (640, 480, &[30, 15]),
                    (1280, 720, &[10, 5]),
                    (320, 240, &[30]),
                ],
            ),
            fmt("MJPG", &[(640, 480, &[30]), (1280, 720, &[30, 15])]),
            fmt("H264", &[(1280, 720, &[30]), (1920, 1080, &[30])]),
        ]
    }

    #[test]
    fn prefers_planar_then_packed_then_mjpeg_then_h264() {
        let mut all = webcam();
        assert_eq!(
            negotiate(&all, req(640, 480, 30)).unwrap().pixel_format,
            PixelFormat::Yuyv
        );
        // YUYV cannot do 720p at 30: MJPEG can (or H.264 without the feature).
        let c = negotiate(&all, req(1280, 720, 30)).unwrap();
        if cfg!(feature = "mjpeg") {
            assert_eq!(c.pixel_format, PixelFormat::Mjpeg);
        } else {
            assert_eq!(c.pixel_format, PixelFormat::H264);
        }
        assert_eq!(c.interval, Fraction::new(1, 30));
        assert_eq!(
            negotiate(&all, req(1920, 1080, 30)).unwrap().pixel_format,
            PixelFormat::H264
        );
        // NV12 and YU12 beat everything; YU12 first even if listed last.
        all.insert(0, fmt("NV12", &[(640, 480, &[30])]));
        all.push(fmt("YU12", &[(640, 480, &[30])]));
        assert_eq!(
            negotiate(&all, req(640, 480, 30)).unwrap().pixel_format,
            PixelFormat::I420
        );
        all.pop();
        assert_eq!(
            negotiate(&all, req(640, 480, 30)).unwrap().pixel_format,
            PixelFormat::Nv12
        );
        // UYVY after YUYV.
        let packed = vec![
            fmt("UYVY", &[(640, 480, &[30])]),
            fmt("YUYV", &[(640, 480, &[30])]),
        ];
        assert_eq!(
            negotiate(&packed, req(640, 480, 30)).unwrap().pixel_format,
            PixelFormat::Yuyv
        );
        // --camera-format insists on one.
        let forced = Request {
            format: Some(PixelFormat::Uyvy),
            ..req(640, 480, 30)
        };
        assert_eq!(
            negotiate(&packed, forced).unwrap().pixel_format,
            PixelFormat::Uyvy
        );
    }

    #[test]
    fn frame_rates_match_within_one_percent() {
        let ntsc = vec![CameraFormat {
            fourcc: "YUYV".into(),
            description: String::new(),
            sizes: vec![FrameSize::Discrete {
                width: 640,
                height: 480,
                intervals: Intervals::Discrete(vec![
                    Fraction::new(1001, 30000),
                    Fraction::new(1, 15),
                ]),
            }],
        }];
        let c = negotiate(&ntsc, req(640, 480, 30)).unwrap();
        assert_eq!(c.interval, Fraction::new(1001, 30000));
        assert!(negotiate(&ntsc, req(640, 480, 25)).is_err());
    }

    #[test]
    fn stepwise_sizes_and_interval_ranges() {
        let pi = vec![CameraFormat {
            fourcc: "YU12".into(),
            description: "Planar YUV 4:2:0".into(),
            sizes: vec![FrameSize::Stepwise {
                min: (32, 32),
                max: (2592, 1944),
                step: (2, 2),
                intervals: Intervals::Range {
                    min: Fraction::new(1, 90),
                    max: Fraction::new(1, 1),
                },
            }],
        }];
        let c = negotiate(&pi, req(1280, 720, 30)).unwrap();
        assert_eq!(c.pixel_format, PixelFormat::I420);
        assert_eq!(c.interval, Fraction::new(1, 30));
        assert!(negotiate(&pi, req(1281, 720, 30)).is_err(), "off the step");
        assert!(negotiate(&pi, req(4096, 720, 30)).is_err(), "too wide");
        assert!(negotiate(&pi, req(640, 480, 120)).is_err(), "too fast");
        // A driver that lists no sizes: ask, and let S_FMT say.
        let unlisted = vec![CameraFormat {
            fourcc: "YUYV".into(),
            description: String::new(),
            sizes: vec![FrameSize::Unlisted],
        }];
        assert_eq!(
            negotiate(&unlisted, req(800, 600, 20))
                .unwrap()
                .pixel_format,
            PixelFormat::Yuyv
        );
        assert!(describe(&unlisted).contains("not listed by the driver"));
        // A driver that does not list intervals: take the size, set the rate.
        let unknown = vec![CameraFormat {
            fourcc: "NV12".into(),
            description: String::new(),
            sizes: vec![FrameSize::Discrete {
                width: 640,
                height: 480,
                intervals: Intervals::Unknown,
            }],
        }];
        assert_eq!(
            negotiate(&unknown, req(640, 480, 24)).unwrap().interval,
            Fraction::new(1, 24)
        );
    }

    #[test]
    fn error_lists_what_the_camera_can_do() {
        let cam = vec![
            fmt("YUYV", &[(640, 480, &[15, 30]), (1280, 720, &[10])]),
            fmt("RGB3", &[(640, 480, &[30])]),
        ];
        let e = negotiate(&cam, req(1280, 720, 30)).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("the camera cannot deliver 1280x720 at 30 fps"),
            "{text}"
        );
        assert!(text.contains("YU12, NV12, YUYV, UYVY"), "{text}");
        assert!(
            text.contains("YUYV (YUYV desc): converted to I420"),
            "{text}"
        );
        assert!(text.contains("640x480: 30, 15 fps"), "{text}");
        assert!(text.contains("1280x720: 10 fps"), "{text}");
        let odd = vec![CameraFormat {
            fourcc: "NV12".into(),
            description: "Y/UV 4:2:0".into(),
            sizes: vec![FrameSize::Discrete {
                width: 640,
                height: 480,
                intervals: Intervals::Discrete(vec![
                    Fraction::new(2, 25),
                    Fraction::new(1001, 30000),
                ]),
            }],
        }];
        assert!(
            describe(&odd).contains("640x480: 29.97, 12.5 fps"),
            "{}",
            describe(&odd)
        );
        assert!(
            text.contains("RGB3 (RGB3 desc): not usable by edgestream"),
            "{text}"
        );
        // Nothing usable at all.
        let e = negotiate(&[], req(640, 480, 30)).unwrap_err();
        assert!(e.to_string().contains("(no capture formats)"), "{e}");
        // Right size, wrong rate.
        let e = negotiate(&cam, req(640, 480, 25)).unwrap_err();
        assert!(e.to_string().contains("640x480 at 25 fps"), "{e}");
        // A forced format the camera lacks.
        let forced = Request {
            format: Some(PixelFormat::Nv12),
            ..req(640, 480, 30)
        };
        let e = negotiate(&cam, forced).unwrap_err().to_string();
        assert!(e.contains("in the format asked for (NV12)"), "{e}");
    }
}
