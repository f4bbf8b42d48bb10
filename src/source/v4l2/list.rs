//! What `--list-devices` and `--list-formats` print: the V4L2 nodes, their
//! stable names, and each capture device's formats.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::sys::Device;
use super::{CameraError, enumerate, negotiate, query};

/// The V4L2 device nodes present, sorted by number.
pub fn device_nodes() -> Vec<PathBuf> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix("video")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, p)| p).collect()
}

/// The stable names (`/dev/v4l/by-id/...`, `by-path/...`) pointing at `node`.
fn stable_names(node: &Path) -> Vec<PathBuf> {
    let target = std::fs::canonicalize(node).unwrap_or_else(|_| node.to_path_buf());
    let mut names = Vec::new();
    for dir in ["/dev/v4l/by-id", "/dev/v4l/by-path"] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if std::fs::canonicalize(e.path()).ok().as_deref() == Some(target.as_path()) {
                names.push(e.path());
            }
        }
    }
    names.sort();
    names
}

/// The text of `--list-devices`.
pub fn list_devices() -> String {
    let nodes = device_nodes();
    if nodes.is_empty() {
        return "no V4L2 devices (/dev/video*) found\n".into();
    }
    let mut out = String::new();
    let mut found = Vec::new();
    for node in nodes {
        let line = match Device::open(&node).and_then(|d| query(&d, &node)) {
            Ok(i) => {
                found.push(i.clone());
                let what = if i.capture {
                    "video capture"
                } else if i.mplane {
                    "multi-planar capture (not supported)"
                } else {
                    "no video capture (metadata or output node)"
                };
                format!(
                    "{}: {} (driver {}, {}): {what}",
                    node.display(),
                    i.card,
                    i.driver,
                    i.bus_info
                )
            }
            Err(e) => format!("{}: cannot open: {e}", node.display()),
        };
        out.push_str(&line);
        out.push('\n');
        for name in stable_names(&node) {
            out.push_str(&format!("    also {}\n", name.display()));
        }
    }
    if let Some(hint) = super::csi::csi_hint(&found) {
        out.push_str(&format!("note: {hint}\n"));
    }
    out
}

/// Why `--list-formats` could not list a device.
#[derive(Debug)]
pub enum ListError {
    /// The node would not open; the message says what to do about it.
    Open(CameraError),
    /// The node is not a V4L2 device (VIDIOC_QUERYCAP refused).
    NotV4l2 { path: PathBuf, source: io::Error },
    /// Querying or enumerating the device failed.
    Query { path: PathBuf, source: io::Error },
    /// No capture device at all.
    NoDevices,
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open(e) => e.fmt(f),
            Self::NotV4l2 { path, .. } => write!(f, "{} is not a V4L2 device", path.display()),
            Self::Query { path, source } => write!(f, "{}: {source}", path.display()),
            Self::NoDevices => f.write_str("no V4L2 capture devices found (see --list-devices)"),
        }
    }
}

impl std::error::Error for ListError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Open(e) => Some(e),
            Self::NotV4l2 { source, .. } | Self::Query { source, .. } => Some(source),
            Self::NoDevices => None,
        }
    }
}

/// The text of `--list-formats` for one device.
pub fn list_formats(path: &Path) -> Result<String, ListError> {
    let dev = Device::open(path).map_err(|e| ListError::Open(CameraError::open(path, e)))?;
    let path_buf = path.to_path_buf();
    let info = query(&dev, path).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOTTY) | Some(libc::EINVAL) => ListError::NotV4l2 {
            path: path_buf.clone(),
            source: e,
        },
        _ => ListError::Query {
            path: path_buf.clone(),
            source: e,
        },
    })?;
    let formats = enumerate(&dev, None).map_err(|source| ListError::Query {
        path: path_buf,
        source,
    })?;
    Ok(format!(
        "{}: {} (driver {}, {})\n{}",
        path.display(),
        info.card,
        info.driver,
        info.bus_info,
        negotiate::describe(&formats)
    ))
}

/// The text of `--list-formats`: the `source` camera, or every capture
/// device if the source is not a camera.
pub fn list_formats_for(source: &crate::config::SourceSpec) -> Result<String, ListError> {
    if let crate::config::SourceSpec::Device(path) = source {
        return list_formats(path);
    }
    let mut out = String::new();
    for node in device_nodes() {
        let capture = Device::open(&node)
            .and_then(|d| query(&d, &node))
            .is_ok_and(|i| i.capture);
        if capture {
            match list_formats(&node) {
                Ok(text) => out.push_str(&text),
                Err(e) => out.push_str(&format!("{e}\n")),
            }
        }
    }
    if out.is_empty() {
        return Err(ListError::NoDevices);
    }
    Ok(out)
}
