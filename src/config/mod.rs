//! One configuration, from a TOML file and command-line flags with the same
//! names (`--rtsp-path` and `rtsp-path = ...`); flags win. Every key has a
//! default. Validation names the flag or key at fault, what it got, and what
//! it takes.
//!
//! Each key is declared once, in [`keys`]: the flag and its `--help`, the
//! file key, the field of [`Config`] and its default, the reader, the
//! `--print-config` line, how reload applies it and its README row all come
//! from that entry ([`table`] holds the machinery).

mod error;
mod keys;
mod read;
mod suggest;
mod table;
mod users;
mod values;

#[cfg(test)]
mod tests;

use std::path::Path;

/// `--version`: the version and the optional features built in (tests/arm.rs
/// reads it to pick the binary's size budget).
#[cfg(all(feature = "webrtc", feature = "mjpeg"))]
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (features: mjpeg, webrtc)");
#[cfg(all(feature = "webrtc", not(feature = "mjpeg")))]
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (features: webrtc)");
#[cfg(all(not(feature = "webrtc"), feature = "mjpeg"))]
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (features: mjpeg)");
#[cfg(all(not(feature = "webrtc"), not(feature = "mjpeg")))]
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (features: none)");

pub use error::{ConfigError, UsersFileError};
use keys::FileConfig;
pub use keys::{Cli, Config, KEYS};
pub use suggest::did_you_mean;
pub use table::{Apply, Key, Origin};
pub use users::load_users_file;
pub use values::{
    GpioLine, Size, SourceSpec, UsersFile, parse_gpio_line, parse_listen, parse_size, parse_source,
    split_words,
};

use crate::rtsp::auth::User;

/// Connections one address may open beyond `max-viewers` by default.
pub const PER_IP_SPARE: usize = 8;

/// What `--print-config` prints instead of a password.
const HIDDEN: &str = ":<hidden>";

impl Default for Config {
    fn default() -> Self {
        let mut c = Self::table_defaults();
        c.follow_defaults(&[]);
        c
    }
}

impl Config {
    /// Builds the configuration from parsed flags (reading `--config`).
    pub fn load(cli: &Cli) -> Result<Self, ConfigError> {
        let (file, path) = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                (Self::parse_file(&text, path)?, Some(path.as_path()))
            }
            None => (FileConfig::default(), None),
        };
        Self::merge(cli, file, path)
    }

    fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|source: toml::de::Error| ConfigError::Syntax {
            path: path.into(),
            hint: suggest::suggest_key(&source.to_string()),
            source: Box::new(source),
        })
    }

    /// Loads a config file alone (no flags), e.g. a board profile.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        Self::load(&Cli {
            config: Some(path.into()),
            ..Cli::default()
        })
    }

    fn merge(cli: &Cli, file: FileConfig, path: Option<&Path>) -> Result<Self, ConfigError> {
        let (mut c, given) = Self::read_keys(cli, file, path)?;
        let keys: Vec<&str> = given.iter().map(|o| o.key).collect();
        c.follow_defaults(&keys);
        c.check_together(&given)?;
        Ok(c)
    }

    /// The defaults that follow other keys, for the keys not `given`.
    fn follow_defaults(&mut self, given: &[&str]) {
        if !given.contains(&"max-connections-per-ip") {
            // Never below what one legitimate client may use: every viewer
            // slot, plus spare connections for DESCRIBE probes and retries.
            self.max_connections_per_ip = self.max_viewers + PER_IP_SPARE;
        }
    }

    /// The checks that involve more than one key.
    /// `given`: where each given key came from.
    fn check_together(&self, given: &[Origin]) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = self
            .rtsp_users()
            .iter()
            .find(|u| !seen.insert(u.name.clone()))
        {
            return Err(ConfigError::Conflict(format!(
                "RTSP user {:?} is defined twice (rtsp-user and rtsp-users-file); keep one",
                dup.name
            )));
        }
        let commandish = matches!(self.source, SourceSpec::Command(_) | SourceSpec::Stdin);
        if !commandish && (self.source_format.is_some() || self.source_stride.is_some()) {
            return Err(ConfigError::Conflict(
                "source-format and source-stride apply to exec: and - (stdin) sources only; remove them or set source = \"exec:...\"".into(),
            ));
        }
        if let (Some(led), Some(button)) = (&self.led, &self.button) {
            if (&led.chip, led.line) == (&button.chip, button.line) {
                let at = given.iter().find(|o| o.key == "button").cloned();
                return Err(ConfigError::Invalid {
                    at: at.unwrap_or(Origin::new("button", None)),
                    fix: format!(
                        "{:?} is the LED's line too; give the button a line of its own",
                        button.to_string()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Every RTSP user: from `rtsp-user` (in order), then `rtsp-users-file`.
    pub fn rtsp_users(&self) -> Vec<User> {
        let from_file = self.rtsp_users_file.iter().flat_map(|f| &f.users);
        self.rtsp_user.iter().chain(from_file).cloned().collect()
    }
}
