//! The value types of config keys and their parsers (strings in, values
//! out); [`super::read`] turns a parser's `None` into a message naming the
//! key and the fix.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::rtsp::auth::User;

/// A picture size (`size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

/// The users of `rtsp-users-file`: the file (relative paths in a config
/// file resolved beside it) and the users read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersFile {
    pub path: PathBuf,
    pub users: Vec<User>,
}

/// `FIRST-LAST` (inclusive, holding an even port and the next) or `auto`
/// (`Some(None)`); `None` is malformed.
pub fn parse_port_range(s: &str) -> Option<Option<(u16, u16)>> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("auto") {
        return Some(None);
    }
    let (a, b) = s.split_once('-')?;
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    let first_even = a.checked_add(a % 2)?;
    (a > 0 && first_even < b).then_some(Some((a, b)))
}

/// A key that takes one string or a list of strings (`rtsp-user`).
#[derive(Debug, Default, Clone)]
pub struct StringList(pub Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = StringList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StringList, E> {
                Ok(StringList(vec![v.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<StringList, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    v.push(s);
                }
                Ok(StringList(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// The file's `push` key: a URL, a list of URLs, or `[[push]]` tables with
/// a `url` key (the two list forms may be mixed).
#[derive(Debug, Default)]
pub struct PushList(pub Vec<String>);

impl<'de> Deserialize<'de> for PushList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entry(String);
        struct EntryVisitor;
        impl<'de> serde::de::Visitor<'de> for EntryVisitor {
            type Value = Entry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a push URL string, or a [[push]] table with url = \"rtmp://host/app/stream\"",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Entry, E> {
                Ok(Entry(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Entry, A::Error> {
                use serde::de::Error;
                let mut url = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "url" if url.is_none() => url = Some(map.next_value::<String>()?),
                        "url" => {
                            return Err(A::Error::custom(
                                "`url` is given twice in one [[push]] table",
                            ));
                        }
                        other => {
                            return Err(A::Error::custom(format!(
                                "unknown key `{other}` in a [[push]] table; the only key is `url`"
                            )));
                        }
                    }
                }
                url.map(Entry).ok_or_else(|| {
                    A::Error::custom(
                        "a [[push]] table needs url = \"rtmp://host/app/stream\" or \"tcp://host:port/name\"",
                    )
                })
            }
        }
        impl<'de> Deserialize<'de> for Entry {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(EntryVisitor)
            }
        }
        struct ListVisitor;
        impl<'de> serde::de::Visitor<'de> for ListVisitor {
            type Value = PushList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("push URLs: push = [\"rtmp://host/app/stream\"] or [[push]] tables with url = \"...\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PushList, E> {
                Ok(PushList(vec![v.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<PushList, A::Error> {
                let mut urls = Vec::new();
                while let Some(Entry(url)) = seq.next_element::<Entry>()? {
                    urls.push(url);
                }
                Ok(PushList(urls))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<PushList, A::Error> {
                let Entry(url) = EntryVisitor.visit_map(map)?;
                Ok(PushList(vec![url]))
            }
        }
        d.deserialize_any(ListVisitor)
    }
}

/// The file's `source` key: a string, or a command as a list of words
/// (`source = ["rpicam-vid", "-t", "0", "-o", "-"]`).
#[derive(Deserialize, Debug, Clone)]
#[serde(
    untagged,
    expecting = "a string such as \"/dev/video0\" or \"exec:rpicam-vid ...\", or a list of words of a command"
)]
pub enum SourceValue {
    One(String),
    Words(Vec<String>),
}

/// Where frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    TestPattern,
    Device(PathBuf),
    Y4m(PathBuf),
    /// A child's stdout: the command and its arguments (never empty).
    Command(Vec<String>),
    /// Our stdin (`-`).
    Stdin,
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TestPattern => f.write_str("testsrc"),
            Self::Device(p) | Self::Y4m(p) => write!(f, "{}", p.display()),
            Self::Command(words) => write!(f, "exec:{}", words.join(" ")),
            Self::Stdin => f.write_str("-"),
        }
    }
}

/// Splits a command line into words at blanks; `'...'` and `"..."` keep
/// blanks inside a word, `\\` escapes the next character (outside single
/// quotes). No other shell syntax: no variables, globs or pipes. `None`: an
/// unterminated quote.
pub fn split_words(s: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => word.push(chars.next()?),
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(chars.next()?);
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// A command from a list of words; a leading `exec:` on the first is allowed.
pub fn command_words(words: Vec<String>) -> Option<SourceSpec> {
    let mut words: Vec<String> = words.into_iter().filter(|w| !w.is_empty()).collect();
    if let Some(rest) = words.first().and_then(|w| w.strip_prefix("exec:")) {
        let rest = rest.trim().to_string();
        if rest.is_empty() {
            words.remove(0);
        } else {
            words[0] = rest;
        }
    }
    (!words.is_empty()).then_some(SourceSpec::Command(words))
}

/// A GPIO line on a Linux GPIO character device (`/dev/gpiochipN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpioLine {
    pub chip: PathBuf,
    pub line: u32,
    /// The active state is a low level: an LED wired from 3.3 V to the pin,
    /// or a button that pulls the pin to ground.
    pub active_low: bool,
}

impl fmt::Display for GpioLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.chip.display(), self.line)?;
        if self.active_low {
            f.write_str(":active-low")?;
        }
        Ok(())
    }
}

/// Parses `CHIP:LINE[:active-low]` (CHIP: `gpiochipN` or a `/dev/...` path)
/// or `off`; `Some(None)` is off, `None` is malformed.
pub fn parse_gpio_line(s: &str) -> Option<Option<GpioLine>> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") {
        return Some(None);
    }
    let mut parts = s.split(':');
    let chip = parts.next()?;
    let line = parts.next()?.trim().parse::<u32>().ok()?;
    let active_low = match parts.next() {
        None => false,
        Some(flag) if flag.eq_ignore_ascii_case("active-low") => true,
        Some(_) => return None,
    };
    if parts.next().is_some() {
        return None;
    }
    let chip = if chip.starts_with("/dev/") && chip.len() > 5 {
        PathBuf::from(chip)
    } else if chip.starts_with("gpiochip") && chip[8..].parse::<u32>().is_ok() {
        Path::new("/dev").join(chip)
    } else {
        return None;
    };
    Some(Some(GpioLine {
        chip,
        line,
        active_low,
    }))
}

pub fn parse_size(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.trim().split_once(['x', 'X'])?;
    Some((w.parse().ok()?, h.parse().ok()?))
}

pub fn parse_source(s: &str) -> Option<SourceSpec> {
    let s = s.trim();
    if s == "testsrc" {
        Some(SourceSpec::TestPattern)
    } else if s == "-" {
        Some(SourceSpec::Stdin)
    } else if let Some(cmd) = s.strip_prefix("exec:") {
        command_words(split_words(cmd)?)
    } else if s.starts_with("/dev/") {
        Some(SourceSpec::Device(s.into()))
    } else if s.to_ascii_lowercase().ends_with(".y4m") {
        Some(SourceSpec::Y4m(s.into()))
    } else {
        None
    }
}

pub fn parse_listen(s: &str) -> Option<Option<SocketAddr>> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") {
        return Some(None);
    }
    if let Some(port) = s.strip_prefix("localhost:") {
        return port
            .parse::<u16>()
            .ok()
            .map(|p| Some(SocketAddr::from(([127, 0, 0, 1], p))));
    }
    s.parse::<SocketAddr>().ok().map(Some)
}

pub fn parse_log_level(s: &str) -> Option<log::LevelFilter> {
    match s.trim().to_ascii_lowercase().as_str() {
        "error" => Some(log::LevelFilter::Error),
        "warn" | "warning" => Some(log::LevelFilter::Warn),
        "info" => Some(log::LevelFilter::Info),
        "debug" => Some(log::LevelFilter::Debug),
        "trace" => Some(log::LevelFilter::Trace),
        "off" => Some(log::LevelFilter::Off),
        _ => None,
    }
}

impl From<String> for SourceValue {
    fn from(s: String) -> Self {
        Self::One(s)
    }
}

impl From<Vec<String>> for PushList {
    fn from(v: Vec<String>) -> Self {
        Self(v)
    }
}

impl From<Vec<String>> for StringList {
    fn from(v: Vec<String>) -> Self {
        Self(v)
    }
}
