//! YUV4MPEG2 (`.y4m`) files with 4:2:0 frames: repeatable input for tests and
//! benchmarks. Paced at the file's frame rate, or as fast as possible.
//!
//! Format: a header line `YUV4MPEG2 W<w> H<h> F<n>:<d> ...`, then per frame a
//! line starting `FRAME` and w*h*3/2 bytes of I420.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::{FrameSource, Pace, Pacer, SourceError, SourceFormat, i420_frame};
use crate::media::{Fraction, Frame, PixelFormat};

/// Longest header or frame line accepted.
const MAX_LINE: usize = 1024;

pub struct Y4mFile {
    format: SourceFormat,
    path: PathBuf,
    pacer: Pacer,
    reader: BufReader<File>,
    buf: Vec<u8>,
    line: Vec<u8>,
    frames: u64,
}

/// The parsed stream header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Y4mHeader {
    pub width: u32,
    pub height: u32,
    pub fps: Fraction,
}

/// Why a YUV4MPEG2 header line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    NotText,
    /// The line does not start with `YUV4MPEG2`.
    NoSignature,
    /// `F<n>:<d>` with a missing part, a non-number or a zero.
    FrameRate(String),
    /// A `C` tag other than 4:2:0.
    ColourSpace(String),
    /// An `I` tag other than progressive.
    Interlaced(String),
    /// `W` and `H` not both even and within 16..=8192.
    Size(u32, u32),
    /// No `W` or no `H` tag.
    NoSize,
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotText => f.write_str("the header is not text"),
            Self::NoSignature => f.write_str("not a YUV4MPEG2 file (no YUV4MPEG2 signature)"),
            Self::FrameRate(val) => write!(f, "frame rate {val:?} is not N:D with N, D > 0"),
            Self::ColourSpace(val) => write!(
                f,
                "colour space C{val} is not 4:2:0; convert with ffmpeg -pix_fmt yuv420p"
            ),
            Self::Interlaced(val) => write!(f, "interlaced files (I{val}) are not supported"),
            Self::Size(w, h) => write!(f, "size {w}x{h}: both must be even, 16..=8192"),
            Self::NoSize => f.write_str("the header has no W and H"),
        }
    }
}

impl std::error::Error for HeaderError {}

/// Parses the header line (without its newline).
pub fn parse_header(line: &[u8]) -> Result<Y4mHeader, HeaderError> {
    let line = std::str::from_utf8(line).map_err(|_| HeaderError::NotText)?;
    let mut words = line.split(' ');
    if words.next() != Some("YUV4MPEG2") {
        return Err(HeaderError::NoSignature);
    }
    let (mut w, mut h, mut fps) = (None, None, None);
    for word in words.filter(|w| !w.is_empty()) {
        // The tag is one ASCII letter; anything else is an unknown tag
        // (split at the first character's boundary, which need not be 1).
        let first = word.chars().next().map_or(0, char::len_utf8);
        let (tag, val) = word.split_at(first);
        match tag {
            "W" => w = val.parse::<u32>().ok(),
            "H" => h = val.parse::<u32>().ok(),
            "F" => {
                let rate = val
                    .split_once(':')
                    .map(|(n, d)| (n.parse::<u32>(), d.parse::<u32>()));
                match rate {
                    Some((Ok(n), Ok(d))) if n > 0 && d > 0 => fps = Some(Fraction::new(n, d)),
                    _ => return Err(HeaderError::FrameRate(val.into())),
                }
            }
            "C" if !val.starts_with("420") => return Err(HeaderError::ColourSpace(val.into())),
            "I" if !matches!(val, "p" | "?") => return Err(HeaderError::Interlaced(val.into())),
            _ => {}
        }
    }
    let (width, height) = match (w, h) {
        (Some(w), Some(h))
            if w >= 16 && h >= 16 && w % 2 == 0 && h % 2 == 0 && w <= 8192 && h <= 8192 =>
        {
            (w, h)
        }
        (Some(w), Some(h)) => return Err(HeaderError::Size(w, h)),
        _ => return Err(HeaderError::NoSize),
    };
    Ok(Y4mHeader {
        width,
        height,
        fps: fps.unwrap_or(Fraction::new(25, 1)),
    })
}

fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<bool> {
    line.clear();
    let n = reader.take(MAX_LINE as u64).read_until(b'\n', line)?;
    if n == 0 {
        return Ok(false);
    }
    if line.last() != Some(&b'\n') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("line longer than {MAX_LINE} bytes or cut short"),
        ));
    }
    line.pop();
    Ok(true)
}

/// What went wrong reading a YUV4MPEG2 file.
#[derive(Debug)]
pub enum FileErrorKind {
    Open(std::io::Error),
    Empty,
    Read(std::io::Error),
    Header(HeaderError),
    NoFrameMarker,
    /// The frame's bytes end early: the file is truncated.
    CutShort(std::io::Error),
}

/// A YUV4MPEG2 file that cannot be read: which file, which frame, why.
#[derive(Debug)]
pub struct FileError {
    pub file: PathBuf,
    /// The frame being read (`None`: opening the file).
    pub frame: Option<u64>,
    pub kind: FileErrorKind,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.file.display();
        match (&self.kind, self.frame) {
            (FileErrorKind::Open(e), _) => write!(f, "cannot open {name}: {e}"),
            (FileErrorKind::Empty, _) => write!(f, "{name} is empty"),
            (FileErrorKind::Read(e), None) => write!(f, "{name}: {e}"),
            (FileErrorKind::Header(e), _) => write!(f, "{name}: {e}"),
            (FileErrorKind::Read(e), Some(n)) => write!(f, "file {name}: frame {n}: {e}"),
            (FileErrorKind::NoFrameMarker, n) => {
                write!(f, "file {name}: frame {}: no FRAME marker", n.unwrap_or(0))
            }
            (FileErrorKind::CutShort(e), n) => write!(
                f,
                "file {name}: frame {} is cut short ({e}); the file is truncated",
                n.unwrap_or(0)
            ),
        }
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            FileErrorKind::Open(e) | FileErrorKind::Read(e) | FileErrorKind::CutShort(e) => Some(e),
            FileErrorKind::Header(e) => Some(e),
            FileErrorKind::Empty | FileErrorKind::NoFrameMarker => None,
        }
    }
}

impl Y4mFile {
    pub fn open(path: &Path, pace: Pace) -> Result<Self, FileError> {
        let name = path.display();
        let fail = |kind| FileError {
            file: path.to_path_buf(),
            frame: None,
            kind,
        };
        let file = File::open(path).map_err(|e| fail(FileErrorKind::Open(e)))?;
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let mut line = Vec::new();
        match read_line(&mut reader, &mut line) {
            Ok(true) => {}
            Ok(false) => return Err(fail(FileErrorKind::Empty)),
            Err(e) => return Err(fail(FileErrorKind::Read(e))),
        }
        let hdr = parse_header(&line).map_err(|e| fail(FileErrorKind::Header(e)))?;
        let size = hdr.width as usize * hdr.height as usize * 3 / 2;
        Ok(Self {
            format: SourceFormat {
                width: hdr.width,
                height: hdr.height,
                fps: hdr.fps,
                pixel_format: PixelFormat::I420,
                description: format!("file {name}"),
            },
            path: path.to_path_buf(),
            pacer: Pacer::new(hdr.fps, pace),
            reader,
            buf: vec![0; size],
            line,
            frames: 0,
        })
    }
}

impl FrameSource for Y4mFile {
    fn format(&self) -> &SourceFormat {
        &self.format
    }

    fn next_frame(&mut self) -> Result<Option<Frame<'_>>, SourceError> {
        let n = self.frames;
        let fail = |kind| FileError {
            file: self.path.clone(),
            frame: Some(n),
            kind,
        };
        match read_line(&mut self.reader, &mut self.line) {
            Ok(false) => return Ok(None),
            Ok(true) if self.line.starts_with(b"FRAME") => {}
            Ok(true) => return Err(fail(FileErrorKind::NoFrameMarker).into()),
            Err(e) => return Err(fail(FileErrorKind::Read(e)).into()),
        }
        if let Err(e) = self.reader.read_exact(&mut self.buf) {
            return Err(fail(FileErrorKind::CutShort(e)).into());
        }
        self.frames += 1;
        let (_, pts) = self.pacer.wait_next();
        i420_frame(&self.format, &self.buf, pts).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Image;
    use std::io::Write;

    #[test]
    fn headers() {
        let h = parse_header(b"YUV4MPEG2 W320 H240 F30000:1001 Ip A1:1 C420jpeg XYSCSS=420JPEG")
            .unwrap();
        assert_eq!(
            (h.width, h.height, h.fps),
            (320, 240, Fraction::new(30000, 1001))
        );
        assert_eq!(
            parse_header(b"YUV4MPEG2 W16 H16").unwrap().fps,
            Fraction::new(25, 1)
        );
        // Found by fuzzing: a tag starting with a multi-byte character.
        let odd = "YUV4MPEG2 W320 \u{ac}eq: H240";
        assert_eq!(parse_header(odd.as_bytes()).unwrap().height, 240);
        for bad in [
            &b"YUV4MPEG W320 H240"[..],
            b"YUV4MPEG2 W320",
            b"YUV4MPEG2 W321 H240",
            b"YUV4MPEG2 W320 H240 F30",
            b"YUV4MPEG2 W320 H240 F0:1",
            b"YUV4MPEG2 W320 H240 C422",
            b"YUV4MPEG2 W320 H240 It",
            b"\xff",
        ] {
            assert!(
                parse_header(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn reads_frames_until_eof_and_flags_truncation() {
        let dir = std::env::temp_dir().join(format!("edgestream-y4m-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.y4m");
        let mut f = File::create(&path).unwrap();
        f.write_all(b"YUV4MPEG2 W16 H16 F10:1 Ip C420jpeg\n")
            .unwrap();
        for i in 0..3u8 {
            f.write_all(b"FRAME\n").unwrap();
            f.write_all(&[i; 384]).unwrap();
        }
        drop(f);
        let mut src = Y4mFile::open(&path, Pace::Asap).unwrap();
        assert_eq!(src.format().fps, Fraction::new(10, 1));
        for i in 0..3u8 {
            let frame = src.next_frame().unwrap().unwrap();
            let Image::Planar(p) = frame.image else {
                panic!()
            };
            assert!(p.planes[0].iter().all(|&b| b == i));
        }
        assert!(src.next_frame().unwrap().is_none());

        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"FRAME\n").unwrap();
        f.write_all(&[0; 100]).unwrap();
        drop(f);
        let mut src = Y4mFile::open(&path, Pace::Asap).unwrap();
        for _ in 0..3 {
            src.next_frame().unwrap().unwrap();
        }
        let err = src.next_frame().unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
