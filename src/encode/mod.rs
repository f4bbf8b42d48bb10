//! The safe wrapper around libx264. Every `unsafe` block of the program that
//! touches libx264 is in this file.
//!
//! Settings follow the low-latency live recipe: preset `ultrafast`, tune
//! `zerolatency` (no B-frames, no lookahead, sliced threads), profile
//! `baseline`, ABR with a VBV cap at the target bitrate, SPS/PPS repeated
//! before every IDR, Annex-B output. The input planes are read in place (a
//! capture buffer, say): x264 copies them into its own frame before
//! `x264_encoder_encode` returns.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::fmt;
use std::ptr::{self, NonNull};
use std::time::Duration;

use x264_sys as sys;

pub mod threads;

use crate::h264::{ParameterSets, nal_type, nal_unit_type};
use crate::media::{EncodedFrame, Fraction, PixelFormat, Planar};

/// What the encoder is opened with.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderSettings {
    pub width: u32,
    pub height: u32,
    pub fps: Fraction,
    /// Target and VBV maximum bitrate, kbit/s.
    pub bitrate_kbps: u32,
    /// Frames between IDRs.
    pub keyint: u32,
    /// x264 threads; 0 lets x264 choose (1.5 x cores). The pipeline never
    /// passes 0: see [`threads::ThreadPolicy`].
    pub threads: u32,
    /// `I420` or `Nv12`: what the pictures handed to [`Encoder::encode`] are.
    pub input: PixelFormat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// x264 rejected the settings (which step, and why).
    Open(OpenError),
    /// A picture that does not match what the encoder was opened with.
    Input(InputError),
    /// `x264_encoder_encode` failed.
    Encode(i32),
    /// The output could not be indexed.
    Output(crate::media::FrameError),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open(m) => write!(f, "cannot open the x264 encoder: {m}"),
            Self::Input(m) => write!(f, "picture does not fit the encoder: {m}"),
            Self::Encode(code) => write!(f, "x264_encoder_encode failed ({code})"),
            Self::Output(m) => write!(f, "bad encoder output: {m}"),
        }
    }
}

impl std::error::Error for EncodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Output(e) => Some(e),
            Self::Open(e) => Some(e),
            Self::Input(e) => Some(e),
            Self::Encode(_) => None,
        }
    }
}

impl From<OpenError> for EncodeError {
    fn from(e: OpenError) -> Self {
        Self::Open(e)
    }
}

/// Which step of opening x264 failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// x264 takes I420 or NV12 only.
    Input(PixelFormat),
    /// A 4:2:0 picture needs an even width and height.
    OddSize { width: u32, height: u32 },
    /// `x264_param_default_preset` does not know ultrafast/zerolatency.
    Preset,
    /// `x264_param_apply_profile("baseline")` refused the settings.
    Profile,
    /// `x264_encoder_open` refused (x264 logged why).
    Refused {
        width: u32,
        height: u32,
        fps: crate::media::Fraction,
        bitrate_kbps: u32,
        threads: u32,
    },
    /// `x264_encoder_headers` failed.
    Headers,
    /// The SPS/PPS x264 wrote do not parse.
    ParameterSets(&'static str),
    /// x264 wrote no SPS/PPS.
    NoParameterSets,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Input(other) => write!(f, "input must be I420 or NV12, not {other}"),
            Self::OddSize { width, height } => {
                write!(
                    f,
                    "{width}x{height} is not a 4:2:0 size (both must be even)"
                )
            }
            Self::Preset => f.write_str("preset ultrafast/zerolatency unknown"),
            Self::Profile => f.write_str("the settings do not fit the baseline profile"),
            Self::Refused {
                width,
                height,
                fps,
                bitrate_kbps,
                threads,
            } => write!(
                f,
                "x264_encoder_open refused {width}x{height} at {fps} fps, {bitrate_kbps} kbit/s, {threads} threads (see the x264 error above)"
            ),
            Self::Headers => f.write_str("x264_encoder_headers failed"),
            Self::ParameterSets(e) => f.write_str(e),
            Self::NoParameterSets => f.write_str("x264 produced no SPS/PPS"),
        }
    }
}

impl std::error::Error for OpenError {}

/// A picture that does not fit the encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// Another format or size than the encoder was opened with.
    Mismatch {
        got: (PixelFormat, u32, u32),
        takes: (PixelFormat, u32, u32),
    },
    /// A plane shorter than its rows.
    ShortPlane {
        plane: usize,
        len: usize,
        stride: usize,
        rows: usize,
        row: usize,
    },
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mismatch { got, takes } => write!(
                f,
                "got {} {}x{}, the encoder takes {} {}x{}",
                got.0, got.1, got.2, takes.0, takes.1, takes.2
            ),
            Self::ShortPlane {
                plane,
                len,
                stride,
                rows,
                row,
            } => write!(
                f,
                "plane {plane} holds {len} bytes with stride {stride}, needs {rows} rows of {row}"
            ),
        }
    }
}

impl std::error::Error for InputError {}

/// Called by the C shim with each finished x264 log line.
extern "C" fn log_line(level: c_int, line: *const c_char) {
    if line.is_null() {
        return;
    }
    // SAFETY: the shim passes a NUL-terminated buffer that lives for this call.
    let text = unsafe { CStr::from_ptr(line) }.to_string_lossy();
    let text = text.trim_end();
    let level = match level {
        l if l == sys::X264_LOG_ERROR as c_int => log::Level::Error,
        l if l == sys::X264_LOG_WARNING as c_int => log::Level::Warn,
        l if l == sys::X264_LOG_INFO as c_int => log::Level::Debug,
        _ => log::Level::Trace,
    };
    log::log!(target: "edgestream::x264", level, "{text}");
}

unsafe extern "C" {
    /// From `x264_log.c`: the pf_log callback that formats and forwards to
    /// the function pointer in p_log_private.
    fn edgestream_x264_log_callback() -> *mut c_void;
}

/// The x264 log level matching the `log` crate's current maximum.
fn x264_log_level() -> c_int {
    match log::max_level() {
        log::LevelFilter::Off => sys::X264_LOG_NONE,
        log::LevelFilter::Error => sys::X264_LOG_ERROR as c_int,
        log::LevelFilter::Warn | log::LevelFilter::Info => sys::X264_LOG_WARNING as c_int,
        log::LevelFilter::Debug => sys::X264_LOG_INFO as c_int,
        log::LevelFilter::Trace => sys::X264_LOG_DEBUG as c_int,
    }
}

/// An open libx264 encoder.
pub struct Encoder {
    handle: NonNull<sys::x264_t>,
    settings: EncoderSettings,
    params: ParameterSets,
    /// Input frame counter (x264 `i_pts`), mapped back to capture times.
    next_pts: i64,
    pending: heapless::Deque<(i64, Duration), 16>,
    seq: u64,
}

// SAFETY: an x264_t may be used from any thread as long as calls are not
// concurrent; `Encoder` owns it exclusively and every call takes `&mut self`
// (or `&self` for read-only `x264_encoder_parameters`-free accessors).
unsafe impl Send for Encoder {}

impl Encoder {
    pub fn open(settings: EncoderSettings) -> Result<Self, EncodeError> {
        let csp = match settings.input {
            PixelFormat::I420 => sys::X264_CSP_I420,
            PixelFormat::Nv12 => sys::X264_CSP_NV12,
            other => {
                return Err(OpenError::Input(other).into());
            }
        } as c_int;
        if settings.width % 2 != 0
            || settings.height % 2 != 0
            || settings.width == 0
            || settings.height == 0
        {
            return Err(OpenError::OddSize {
                width: settings.width,
                height: settings.height,
            }
            .into());
        }
        let preset = CString::new("ultrafast").unwrap_or_default();
        let tune = CString::new("zerolatency").unwrap_or_default();
        let profile = CString::new("baseline").unwrap_or_default();
        let mut p = std::mem::MaybeUninit::<sys::x264_param_t>::zeroed();
        // SAFETY: `p` points to writable memory the size of x264_param_t;
        // the preset and tune strings are NUL-terminated and outlive the call.
        let rc = unsafe {
            sys::x264_param_default_preset(p.as_mut_ptr(), preset.as_ptr(), tune.as_ptr())
        };
        if rc < 0 {
            return Err(OpenError::Preset.into());
        }
        // SAFETY: x264_param_default_preset initialized every field.
        let mut p = unsafe { p.assume_init() };
        p.i_width = settings.width as c_int;
        p.i_height = settings.height as c_int;
        p.i_csp = csp;
        p.i_fps_num = settings.fps.num;
        p.i_fps_den = settings.fps.den;
        p.i_timebase_num = settings.fps.den;
        p.i_timebase_den = settings.fps.num;
        p.b_vfr_input = 0;
        p.i_threads = settings.threads as c_int;
        p.i_keyint_max = settings.keyint.max(1) as c_int;
        p.i_keyint_min = sys::X264_KEYINT_MIN_AUTO as c_int;
        p.i_bframe = 0;
        p.rc.i_lookahead = 0;
        p.i_sync_lookahead = 0;
        p.rc.i_rc_method = sys::X264_RC_ABR as c_int;
        p.rc.i_bitrate = settings.bitrate_kbps as c_int;
        p.rc.i_vbv_max_bitrate = settings.bitrate_kbps as c_int;
        p.rc.i_vbv_buffer_size = settings.bitrate_kbps as c_int;
        p.b_repeat_headers = 1;
        p.b_annexb = 1;
        p.b_aud = 0;
        p.i_log_level = x264_log_level();
        // SAFETY: the shim returns a function with exactly the signature of
        // pf_log (an Option of a C function pointer, pointer-sized, whose
        // va_list parameter type differs per target), so writing the pointer
        // into the field's storage is the same as assigning it.
        unsafe {
            ptr::write(
                ptr::addr_of_mut!(p.pf_log).cast::<*mut c_void>(),
                edgestream_x264_log_callback(),
            );
        }
        p.p_log_private = log_line as *const () as *mut c_void;
        // SAFETY: `p` is initialized; `profile` is NUL-terminated.
        if unsafe { sys::x264_param_apply_profile(&mut p, profile.as_ptr()) } < 0 {
            return Err(OpenError::Profile.into());
        }
        // SAFETY: `p` is a complete parameter set; x264 copies it.
        let handle = unsafe { sys::x264_encoder_open(&mut p) };
        let handle = NonNull::new(handle).ok_or(OpenError::Refused {
            width: settings.width,
            height: settings.height,
            fps: settings.fps,
            bitrate_kbps: settings.bitrate_kbps,
            threads: settings.threads,
        })?;
        let mut enc = Self {
            handle,
            settings,
            params: ParameterSets {
                sps: Vec::new(),
                pps: Vec::new(),
                profile: crate::h264::ProfileLevel {
                    profile_idc: 0,
                    constraints: 0,
                    level_idc: 0,
                },
            },
            next_pts: 0,
            pending: heapless::Deque::new(),
            seq: 0,
        };
        enc.params = enc.read_headers()?;
        Ok(enc)
    }

    fn read_headers(&mut self) -> Result<ParameterSets, EncodeError> {
        let mut nals: *mut sys::x264_nal_t = ptr::null_mut();
        let mut n: c_int = 0;
        // SAFETY: the handle is open; x264 sets `nals` to an array of `n`
        // entries it owns, valid until the next call on this encoder.
        let rc = unsafe { sys::x264_encoder_headers(self.handle.as_ptr(), &mut nals, &mut n) };
        if rc < 0 || nals.is_null() {
            return Err(OpenError::Headers.into());
        }
        // SAFETY: as above; the slice is read before any other x264 call.
        let nals = unsafe { std::slice::from_raw_parts(nals, n.max(0) as usize) };
        let mut sps = None;
        let mut pps = None;
        for nal in nals {
            // SAFETY: each NAL's payload is `i_payload` bytes owned by x264.
            let bytes =
                unsafe { std::slice::from_raw_parts(nal.p_payload, nal.i_payload.max(0) as usize) };
            let body = strip_start_code(bytes);
            match body.first().map(|&h| nal_unit_type(h)) {
                Some(nal_type::SPS) => sps = Some(body.to_vec()),
                Some(nal_type::PPS) => pps = Some(body.to_vec()),
                _ => {}
            }
        }
        match (sps, pps) {
            (Some(sps), Some(pps)) => {
                ParameterSets::new(sps, pps).map_err(|e| OpenError::ParameterSets(e).into())
            }
            _ => Err(OpenError::NoParameterSets.into()),
        }
    }

    /// The SPS and PPS every IDR repeats.
    pub fn parameter_sets(&self) -> &ParameterSets {
        &self.params
    }

    /// Encodes one picture captured at `pts`. `force_idr` makes it an IDR.
    /// Returns `None` if x264 buffered it (not with zerolatency).
    pub fn encode(
        &mut self,
        img: &Planar<'_>,
        pts: Duration,
        force_idr: bool,
    ) -> Result<Option<EncodedFrame>, EncodeError> {
        self.check_input(img)?;
        // SAFETY: x264_picture_t is plain data; x264_picture_init fills it.
        let mut pic = unsafe {
            let mut pic = std::mem::MaybeUninit::<sys::x264_picture_t>::zeroed();
            sys::x264_picture_init(pic.as_mut_ptr());
            pic.assume_init()
        };
        let planes = if img.format == PixelFormat::I420 {
            3
        } else {
            2
        };
        pic.img.i_csp = self.csp();
        pic.img.i_plane = planes;
        for i in 0..planes as usize {
            // x264 only reads input planes (it copies them into its own frame).
            pic.img.plane[i] = img.planes[i].as_ptr() as *mut u8;
            pic.img.i_stride[i] = img.strides[i] as c_int;
        }
        pic.i_type = if force_idr {
            sys::X264_TYPE_IDR
        } else {
            sys::X264_TYPE_AUTO
        } as c_int;
        pic.i_pts = self.next_pts;
        if self.pending.is_full() {
            self.pending.pop_front();
        }
        let _ = self.pending.push_back((self.next_pts, pts));
        self.next_pts += 1;
        // SAFETY: the planes were checked to hold `height` rows of their
        // strides (check_input) and outlive this call; x264 does not keep
        // pointers to them after it returns.
        unsafe { self.encode_raw(&mut pic) }
    }

    /// Drains frames x264 still holds (none with zerolatency; unit tests).
    #[cfg(test)]
    pub(crate) fn flush(&mut self) -> Result<Vec<EncodedFrame>, EncodeError> {
        let mut out = Vec::new();
        // SAFETY: the handle is open.
        while unsafe { sys::x264_encoder_delayed_frames(self.handle.as_ptr()) } > 0 {
            // SAFETY: a null input picture asks x264 to flush.
            match unsafe { self.encode_raw(ptr::null_mut()) }? {
                Some(f) => out.push(f),
                None => break,
            }
        }
        Ok(out)
    }

    /// # Safety
    /// `pic` is null or a picture whose planes are valid for reading.
    unsafe fn encode_raw(
        &mut self,
        pic: *mut sys::x264_picture_t,
    ) -> Result<Option<EncodedFrame>, EncodeError> {
        let mut nals: *mut sys::x264_nal_t = ptr::null_mut();
        let mut n: c_int = 0;
        // SAFETY: all-zero is a valid x264_picture_t (plain data and nulls).
        let mut out =
            unsafe { std::mem::MaybeUninit::<sys::x264_picture_t>::zeroed().assume_init() };
        // SAFETY: the handle is open, `pic` is valid or null per the
        // contract, and the out-pointers are valid for writing.
        let size = unsafe {
            sys::x264_encoder_encode(self.handle.as_ptr(), &mut nals, &mut n, pic, &mut out)
        };
        if size < 0 {
            return Err(EncodeError::Encode(size));
        }
        if size == 0 || n <= 0 || nals.is_null() {
            return Ok(None);
        }
        // SAFETY: x264 documents that the payloads of all output NALs are
        // sequential in memory, `size` bytes from the first; they stay valid
        // until the next encoder call, and are copied here once.
        let data = unsafe { std::slice::from_raw_parts((*nals).p_payload, size as usize) }.to_vec();
        let pts = self.capture_time(out.i_pts);
        let seq = self.seq;
        self.seq += 1;
        EncodedFrame::from_annex_b(data, pts, seq)
            .map(Some)
            .map_err(EncodeError::Output)
    }

    fn capture_time(&mut self, x264_pts: i64) -> Duration {
        while let Some(&(p, t)) = self.pending.front() {
            self.pending.pop_front();
            if p == x264_pts {
                return t;
            }
        }
        Duration::ZERO
    }

    fn csp(&self) -> c_int {
        (if self.settings.input == PixelFormat::I420 {
            sys::X264_CSP_I420
        } else {
            sys::X264_CSP_NV12
        }) as c_int
    }

    fn check_input(&self, img: &Planar<'_>) -> Result<(), EncodeError> {
        let s = &self.settings;
        if img.format != s.input || img.width != s.width || img.height != s.height {
            return Err(EncodeError::Input(InputError::Mismatch {
                got: (img.format, img.width, img.height),
                takes: (s.input, s.width, s.height),
            }));
        }
        let h = img.height as usize;
        let ch = h.div_ceil(2);
        let (w, cw) = (img.width as usize, img.width.div_ceil(2) as usize);
        // Arrays, not Vecs: this runs for every frame.
        let (need, planes) = match img.format {
            PixelFormat::I420 => ([(w, h), (cw, ch), (cw, ch)], 3),
            _ => ([(w, h), (2 * cw, ch), (0, 0)], 2),
        };
        for (i, &(row, rows)) in need[..planes].iter().enumerate() {
            let stride = img.strides[i];
            if stride < row || img.planes[i].len() < stride * (rows - 1) + row {
                return Err(EncodeError::Input(InputError::ShortPlane {
                    plane: i,
                    len: img.planes[i].len(),
                    stride,
                    rows,
                    row,
                }));
            }
        }
        Ok(())
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: the handle came from x264_encoder_open and is closed once.
        unsafe { sys::x264_encoder_close(self.handle.as_ptr()) };
    }
}

fn strip_start_code(b: &[u8]) -> &[u8] {
    if b.starts_with(&[0, 0, 0, 1]) {
        &b[4..]
    } else if b.starts_with(&[0, 0, 1]) {
        &b[3..]
    } else {
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(input: PixelFormat) -> EncoderSettings {
        EncoderSettings {
            width: 64,
            height: 48,
            fps: Fraction::new(30, 1),
            bitrate_kbps: 300,
            keyint: 10,
            threads: 1,
            input,
        }
    }

    fn picture(buf: &[u8], format: PixelFormat) -> Planar<'_> {
        Planar::from_contiguous(format, 64, 48, 64, buf).unwrap()
    }

    #[test]
    fn encodes_gop_with_headers_and_forced_idr() {
        let mut enc = Encoder::open(settings(PixelFormat::I420)).unwrap();
        assert_eq!(enc.parameter_sets().profile.profile_idc, 66, "baseline");
        let mut buf = vec![128u8; 64 * 48 * 3 / 2];
        let mut keyframes = Vec::new();
        for i in 0..25u64 {
            buf[(i as usize * 7) % 3072] = (i * 13) as u8;
            let pts = Duration::from_millis(1000 + i * 33);
            let f = enc
                .encode(&picture(&buf, PixelFormat::I420), pts, i == 15)
                .unwrap()
                .unwrap();
            assert_eq!(f.pts, pts, "capture time carried through");
            assert_eq!(f.seq, i);
            if f.keyframe {
                keyframes.push(i);
                let ps = f
                    .parameter_sets()
                    .expect("SPS/PPS repeated before every IDR");
                assert_eq!(&ps, enc.parameter_sets());
            }
        }
        assert_eq!(
            keyframes,
            vec![0, 10, 15, 25]
                .into_iter()
                .filter(|&k| k < 25)
                .collect::<Vec<_>>()
        );
        assert!(
            enc.flush().unwrap().is_empty(),
            "zerolatency holds no frames"
        );
    }

    #[test]
    fn nv12_input_and_mismatches() {
        let mut enc = Encoder::open(settings(PixelFormat::Nv12)).unwrap();
        let buf = vec![100u8; 64 * 48 * 3 / 2];
        assert!(
            enc.encode(&picture(&buf, PixelFormat::Nv12), Duration::ZERO, false)
                .unwrap()
                .unwrap()
                .keyframe
        );
        let err = enc
            .encode(&picture(&buf, PixelFormat::I420), Duration::ZERO, false)
            .unwrap_err();
        assert!(matches!(err, EncodeError::Input(_)), "{err}");
        let mut short = picture(&buf, PixelFormat::Nv12);
        short.planes[1] = &buf[..10];
        assert!(matches!(
            enc.encode(&short, Duration::ZERO, false),
            Err(EncodeError::Input(_))
        ));
        assert!(matches!(
            Encoder::open(EncoderSettings {
                width: 63,
                ..settings(PixelFormat::I420)
            }),
            Err(EncodeError::Open(_))
        ));
        assert!(matches!(
            Encoder::open(settings(PixelFormat::Yuyv)),
            Err(EncodeError::Open(_))
        ));
    }

    #[test]
    fn bitrate_setting_changes_output_size() {
        // The x264 crate's `bitrate()` left CRF on and changed nothing; here
        // ABR must follow the target. Noise content so rate control matters.
        let size_at = |kbps| {
            let mut enc = Encoder::open(EncoderSettings {
                width: 160,
                height: 120,
                bitrate_kbps: kbps,
                keyint: 30,
                ..settings(PixelFormat::I420)
            })
            .unwrap();
            let mut rng = fastrand::Rng::with_seed(7);
            let mut buf = vec![0u8; 160 * 120 * 3 / 2];
            let mut total = 0;
            for i in 0..60u64 {
                rng.fill(&mut buf);
                let img = Planar::from_contiguous(PixelFormat::I420, 160, 120, 160, &buf).unwrap();
                total += enc
                    .encode(&img, Duration::from_millis(i * 33), false)
                    .unwrap()
                    .unwrap()
                    .annex_b()
                    .len();
            }
            total
        };
        let low = size_at(100);
        let high = size_at(2000);
        assert!(
            high > 3 * low,
            "100 kbit/s gave {low} bytes, 2000 kbit/s gave {high}"
        );
    }
}
