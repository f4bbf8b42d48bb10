//! Why a configuration does not load. Every message names the flag or key
//! (or the file) and what to do about it.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::table::Origin;
use crate::push::TargetError;
use crate::rtsp::auth::UserError;

/// A configuration error (exit status 2 at startup; a refused reload).
#[derive(Debug)]
pub enum ConfigError {
    /// The `--config` file cannot be read.
    Read { path: PathBuf, source: io::Error },
    /// The file is not TOML, has an unknown key or a value of the wrong
    /// type; `hint` is a "did you mean" for an unknown key.
    Syntax {
        path: PathBuf,
        hint: Option<String>,
        source: Box<toml::de::Error>,
    },
    /// A value that does not parse or is out of range; `fix` says what was
    /// given and what is taken.
    Invalid { at: Origin, fix: String },
    /// A bad `push` URL.
    Push { at: Origin, source: TargetError },
    /// A bad `rtsp-user` entry.
    User { at: Origin, source: UserError },
    /// An `rtsp-users-file` that cannot be used.
    UsersFile { at: Origin, source: UsersFileError },
    /// A `push-tls-ca` file that cannot be read.
    TlsCa {
        at: Origin,
        path: PathBuf,
        source: io::Error,
    },
    /// Keys that contradict each other; the message names them.
    Conflict(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => {
                write!(f, "--config {}: cannot read it: {source}", path.display())
            }
            Self::Syntax { path, hint, source } => {
                let mut msg = source.to_string();
                if let Some(hint) = hint {
                    msg = format!("{hint}\n{msg}");
                }
                let msg = msg.trim_end().replace('\n', "\n    ");
                write!(f, "{}: {msg}", path.display())
            }
            Self::Invalid { at, fix } => write!(f, "{at}: {fix}"),
            Self::Push { at, source } => write!(f, "{at}: {source}"),
            Self::User { at, source } => write!(f, "{at}: {source}"),
            Self::UsersFile { at, source } => write!(f, "{at}: {source}"),
            Self::TlsCa { at, path, source } => write!(
                f,
                "{at}: cannot read {}: {source}; give a PEM file with the CA certificate",
                path.display()
            ),
            Self::Conflict(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } | Self::TlsCa { source, .. } => Some(source),
            Self::Syntax { source, .. } => Some(source.as_ref()),
            Self::Push { source, .. } => Some(source),
            Self::User { source, .. } => Some(source),
            Self::UsersFile { source, .. } => Some(source),
            Self::Invalid { .. } | Self::Conflict(_) => None,
        }
    }
}

/// Why an RTSP users file cannot be used.
#[derive(Debug)]
pub enum UsersFileError {
    /// Missing, or its folder is not readable.
    Metadata { path: PathBuf, source: io::Error },
    /// Group or others may read it (`mode` is its permission bits).
    OpenToOthers { path: PathBuf, mode: u32 },
    /// It cannot be read.
    Read { path: PathBuf, source: io::Error },
    /// A line that is not a user (`line` counts from 1).
    Line {
        path: PathBuf,
        line: usize,
        source: UserError,
    },
    /// No users in it.
    Empty { path: PathBuf },
}

impl fmt::Display for UsersFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Metadata { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            Self::OpenToOthers { path, mode } => {
                let shown = path.display();
                write!(
                    f,
                    "{shown} is open to group or others (mode {mode:04o}); run `chmod 600 {shown}`"
                )
            }
            // Under the unit, systemd starts edgestream as its own user: the
            // file must belong to it (board/install.sh sees to that).
            Self::Read { path, source } if source.kind() == io::ErrorKind::PermissionDenied => {
                let shown = path.display();
                write!(
                    f,
                    "cannot read {shown}: {source}; the user edgestream runs as must own it: \
                     `install -m 0600 -o edgestream -g edgestream FILE {shown}`"
                )
            }
            Self::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Self::Line { path, line, source } => {
                write!(f, "{} line {line}: {source}", path.display())
            }
            Self::Empty { path } => write!(f, "{} has no users", path.display()),
        }
    }
}

impl std::error::Error for UsersFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Metadata { source, .. } | Self::Read { source, .. } => Some(source),
            Self::Line { source, .. } => Some(source),
            Self::OpenToOthers { .. } | Self::Empty { .. } => None,
        }
    }
}
