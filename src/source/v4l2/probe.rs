//! What a device node is and what it offers: VIDIOC_QUERYCAP and the
//! format, size and interval enumerations, read into plain values.

use std::io;
use std::path::{Path, PathBuf};

use super::negotiate::{CameraFormat, FrameSize, Intervals};
use super::sys::{self, Device, Fract};
use crate::media::Fraction;

pub(super) fn fourcc_text(code: u32) -> String {
    code.to_le_bytes()
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect::<String>()
        .trim_end()
        .to_string()
}

pub(super) fn c_text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

pub(super) fn fract(f: Fract) -> Fraction {
    Fraction::new(f.numerator, f.denominator)
}

/// What a device node is.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    pub path: PathBuf,
    pub card: String,
    pub driver: String,
    pub bus_info: String,
    /// Video capture with streaming I/O, single-planar: usable.
    pub capture: bool,
    /// Multi-planar capture only (not supported).
    pub mplane: bool,
}

pub(super) fn query(dev: &Device, path: &Path) -> io::Result<DeviceInfo> {
    let cap = dev.querycap()?;
    let caps = if cap.capabilities & sys::CAP_DEVICE_CAPS != 0 {
        cap.device_caps
    } else {
        cap.capabilities
    };
    Ok(DeviceInfo {
        path: path.to_path_buf(),
        card: c_text(&cap.card),
        driver: c_text(&cap.driver),
        bus_info: c_text(&cap.bus_info),
        capture: caps & sys::CAP_VIDEO_CAPTURE != 0 && caps & sys::CAP_STREAMING != 0,
        mplane: caps & sys::CAP_VIDEO_CAPTURE_MPLANE != 0,
    })
}

fn intervals(dev: &Device, code: u32, w: u32, h: u32) -> io::Result<Intervals> {
    let mut list = Vec::new();
    for index in 0..256 {
        let Some(i) = dev.enum_frameintervals(code, w, h, index)? else {
            break;
        };
        match i.type_ {
            sys::FRMIVAL_TYPE_DISCRETE => list.push(fract(i.u[0])),
            _ => {
                return Ok(Intervals::Range {
                    min: fract(i.u[0]),
                    max: fract(i.u[1]),
                });
            }
        }
    }
    Ok(if list.is_empty() {
        Intervals::Unknown
    } else {
        Intervals::Discrete(list)
    })
}

/// Everything the camera offers. For stepwise sizes, the intervals are
/// those at `at` if it is given and in range, else at the largest size.
pub(super) fn enumerate(dev: &Device, at: Option<(u32, u32)>) -> io::Result<Vec<CameraFormat>> {
    let mut formats = Vec::new();
    for index in 0..256 {
        let Some(d) = dev.enum_fmt(index)? else { break };
        let code = d.pixelformat;
        let mut sizes = Vec::new();
        for si in 0..1024 {
            let Some(s) = dev.enum_framesizes(code, si)? else {
                break;
            };
            if s.type_ == sys::FRMSIZE_TYPE_DISCRETE {
                let (w, h) = (s.u[0], s.u[1]);
                sizes.push(FrameSize::Discrete {
                    width: w,
                    height: h,
                    intervals: intervals(dev, code, w, h)?,
                });
            } else {
                let (min, max) = ((s.u[0], s.u[3]), (s.u[1], s.u[4]));
                let step = if s.type_ == sys::FRMSIZE_TYPE_CONTINUOUS {
                    (1, 1)
                } else {
                    (s.u[2], s.u[5])
                };
                let (w, h) = match at {
                    Some((w, h))
                        if (min.0..=max.0).contains(&w) && (min.1..=max.1).contains(&h) =>
                    {
                        (w, h)
                    }
                    _ => max,
                };
                sizes.push(FrameSize::Stepwise {
                    min,
                    max,
                    step,
                    intervals: intervals(dev, code, w, h)?,
                });
                break;
            }
        }
        if sizes.is_empty() {
            sizes.push(FrameSize::Unlisted);
        }
        formats.push(CameraFormat {
            fourcc: fourcc_text(code),
            description: c_text(&d.description),
            sizes,
        });
    }
    Ok(formats)
}
