//! The readers and printers the key table ([`super::keys`]) names: a value
//! from a flag or the file in, the checked value (or an error naming the key
//! and the fix) out; and back to a `--print-config` value.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::table::Origin;
use super::values::*;
use super::{ConfigError, HIDDEN};
use crate::media::PixelFormat;
use crate::rtsp::auth::User;
use crate::source::command::StreamFormat;

/// The error for a value that does not parse or fit: `fix` says what was
/// given and what is taken.
pub fn invalid(o: &Origin, fix: String) -> ConfigError {
    ConfigError::Invalid { at: o.clone(), fix }
}

pub fn in_range<T>(v: T, o: &Origin, lo: T, hi: T, unit: &str) -> Result<T, ConfigError>
where
    T: PartialOrd + fmt::Display + Copy,
{
    if v < lo || v > hi {
        return Err(invalid(
            o,
            format!("{v} is out of range; use {lo} to {hi}{unit}"),
        ));
    }
    Ok(v)
}

/// An integer for `--print-config` (saturating at `i64::MAX`).
pub fn int<T: TryInto<i64>>(n: T) -> Option<toml::Value> {
    Some(toml::Value::Integer(n.try_into().unwrap_or(i64::MAX)))
}

/// A string for `--print-config`.
pub fn text(s: impl ToString) -> Option<toml::Value> {
    Some(toml::Value::String(s.to_string()))
}

pub fn read_source(v: SourceValue, o: &Origin) -> Result<SourceSpec, ConfigError> {
    match v {
        SourceValue::One(v) => parse_source(&v).ok_or_else(|| {
            invalid(o, format!(
                "{v:?} is not a source; use testsrc, a V4L2 device such as /dev/video0, a .y4m file, exec:COMMAND ARGS... or - (stdin)"
            ))
        }),
        SourceValue::Words(w) => command_words(w).ok_or_else(|| {
            invalid(o, "an empty command; write the command and its arguments, e.g. [\"rpicam-vid\", \"-t\", \"0\", \"-o\", \"-\"]".into())
        }),
    }
}

/// A command with words that need quoting prints as a list of words.
pub fn print_source(s: &SourceSpec) -> toml::Value {
    match s {
        SourceSpec::Command(w)
            if w.iter()
                .any(|w| w.contains(|c: char| c.is_whitespace() || "'\"\\".contains(c))) =>
        {
            toml::Value::Array(w.iter().map(|w| w.clone().into()).collect())
        }
        s => s.to_string().into(),
    }
}

pub fn read_stream_format(v: String, o: &Origin) -> Result<Option<StreamFormat>, ConfigError> {
    if v.trim().eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    StreamFormat::parse(&v).map(Some).ok_or_else(|| {
        invalid(
            o,
            format!(
                "{v:?} is not a stream format; use auto or {}",
                StreamFormat::NAMES
            ),
        )
    })
}

pub fn read_size(v: String, o: &Origin) -> Result<Size, ConfigError> {
    let (width, height) = parse_size(&v)
        .ok_or_else(|| invalid(o, format!("{v:?} is not a size; write WxH, e.g. 640x480")))?;
    let fits = |n: u32| (16..=4096).contains(&n) && n % 2 == 0;
    if !fits(width) || !fits(height) {
        return Err(invalid(
            o,
            format!(
                "{width}x{height} is not usable; width and height must be even, from 16 to 4096"
            ),
        ));
    }
    Ok(Size { width, height })
}

pub fn read_keyint(v: f64, o: &Origin) -> Result<Duration, ConfigError> {
    if !v.is_finite() {
        return Err(invalid(o, format!("{v} is not a number of seconds")));
    }
    in_range(v, o, 0.1, 60.0, " seconds").map(Duration::from_secs_f64)
}

/// `port` is the example port of the message.
pub fn read_listen(v: String, o: &Origin, port: u16) -> Result<Option<SocketAddr>, ConfigError> {
    parse_listen(&v).ok_or_else(|| {
        invalid(o, format!(
            "{v:?} is not an address; use ADDR:PORT (0.0.0.0:{port}, 127.0.0.1:{port}, [::]:{port}) or off"
        ))
    })
}

/// `webrtc-additional-hosts`: IP addresses, each checked.
pub fn read_ip_list(v: StringList, o: &Origin) -> Result<Vec<std::net::IpAddr>, ConfigError> {
    v.0.iter()
        .map(|h| {
            h.trim().parse().map_err(|_| {
                invalid(o, format!(
                    "{h:?} is not an IP address; give the address peers reach the device at (203.0.113.7, 2001:db8::7)"
                ))
            })
        })
        .collect()
}

pub fn print_listen(a: &Option<SocketAddr>) -> Option<toml::Value> {
    text(a.map_or_else(|| "off".to_string(), |a| a.to_string()))
}

pub fn read_stream_path(v: String, o: &Origin) -> Result<String, ConfigError> {
    let trimmed = v.trim_end_matches('/');
    let ok = v.starts_with('/')
        && trimmed.len() > 1
        && trimmed.len() <= 256
        && trimmed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b));
    if !ok {
        return Err(invalid(
            o,
            format!(
                "{v:?} is not a stream path; use / followed by letters, digits, -_.~ and /, e.g. /live"
            ),
        ));
    }
    Ok(trimmed.into())
}

/// Checks each push URL fully (the same parser the push targets use).
pub fn read_push(v: PushList, o: &Origin) -> Result<Vec<String>, ConfigError> {
    for url in &v.0 {
        crate::push::PushTarget::parse(url).map_err(|source| ConfigError::Push {
            at: o.clone(),
            source,
        })?;
    }
    Ok(v.0)
}

pub fn read_tls_ca(v: PathBuf, o: &Origin) -> Result<Option<PathBuf>, ConfigError> {
    match std::fs::metadata(&v) {
        Ok(_) => Ok(Some(v)),
        Err(source) => Err(ConfigError::TlsCa {
            at: o.clone(),
            path: v,
            source,
        }),
    }
}

pub fn read_log_level(v: String, o: &Origin) -> Result<log::LevelFilter, ConfigError> {
    parse_log_level(&v).ok_or_else(|| {
        invalid(
            o,
            format!("{v:?} is not a log level; use error, warn, info, debug or trace"),
        )
    })
}

pub fn read_users(v: StringList, o: &Origin) -> Result<Vec<User>, ConfigError> {
    v.0.iter()
        .map(|e| {
            if e.ends_with(HIDDEN) {
                return Err(invalid(
                    o,
                    format!(
                        "the password in {e:?} was hidden by --print-config; write the real one"
                    ),
                ));
            }
            User::parse(e).map_err(|source| ConfigError::User {
                at: o.clone(),
                source,
            })
        })
        .collect()
}

/// A relative path in the file is the file's neighbour (e.g. `rtsp-users-file
/// = "users"` beside /etc/edgestream/edgestream.toml); on the command line it
/// is relative to the working directory.
pub fn read_users_file(v: PathBuf, o: &Origin) -> Result<Option<UsersFile>, ConfigError> {
    let path = match o.file.as_deref().and_then(Path::parent) {
        Some(dir) if v.is_relative() => dir.join(v),
        _ => v,
    };
    let users = super::users::load_users_file(&path).map_err(|source| ConfigError::UsersFile {
        at: o.clone(),
        source,
    })?;
    Ok(Some(UsersFile { path, users }))
}

pub fn read_port_range(v: String, o: &Origin) -> Result<Option<(u16, u16)>, ConfigError> {
    parse_port_range(&v).ok_or_else(|| {
        invalid(
            o,
            format!(
                "{v:?} is not a port range; write FIRST-LAST with room for an even \
                 port and the next one, e.g. 50000-50001, or auto"
            ),
        )
    })
}

pub fn read_gpio(v: String, o: &Origin) -> Result<Option<GpioLine>, ConfigError> {
    parse_gpio_line(&v).ok_or_else(|| {
        invalid(
            o,
            format!(
                "{v:?} is not a GPIO line; use CHIP:LINE with an optional :active-low, \
                 e.g. gpiochip0:17 or /dev/gpiochip0:17:active-low, or off"
            ),
        )
    })
}

pub fn print_gpio(g: &Option<GpioLine>) -> Option<toml::Value> {
    text(g.as_ref().map_or("off".into(), |g| g.to_string()))
}

pub fn read_camera_format(v: String, o: &Origin) -> Result<Option<PixelFormat>, ConfigError> {
    if v.trim().eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    let usable = crate::source::v4l2::negotiate::preference();
    let want = v.trim().to_ascii_uppercase();
    usable
        .iter()
        .copied()
        .find(|p| p.fourcc() == want || (want == "I420" && p.fourcc() == "YU12"))
        .map(Some)
        .ok_or_else(|| {
            let names: Vec<&str> = usable.iter().map(|p| p.fourcc()).collect();
            invalid(
                o,
                format!(
                    "{v:?} is not a camera format edgestream takes; use auto or one of {}",
                    names.join(", ")
                ),
            )
        })
}
