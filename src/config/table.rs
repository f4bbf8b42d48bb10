//! The machinery behind the key table in [`super::keys`]: one `keys!` entry
//! per key expands into the key's command-line flag (with its `--help`
//! text), its config-file field, its field of [`super::Config`] with the
//! default, the reader that validates it, its `--print-config` line, its
//! place in reload's plan and its row of the README's key table.

use std::path::{Path, PathBuf};

/// How a changed key is applied on SIGHUP (see `crate::reload::plan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apply {
    /// At once, nobody dropped.
    Live,
    /// By restarting the capture/encode pipeline.
    Pipeline,
    /// Only after the service is restarted.
    Restart,
}

/// What the table says about one key, for reload and the README.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The flag without its dashes and the config-file key.
    pub name: &'static str,
    pub reload: Apply,
    /// The README table's default column.
    pub readme_default: &'static str,
    /// The README table's meaning column.
    pub readme: &'static str,
}

impl Key {
    /// The key's row of the README's table of flags and keys.
    pub fn readme_row(&self) -> String {
        format!(
            "| `--{0}` / `{0}` | {1} | {2} |",
            self.name, self.readme_default, self.readme
        )
    }
}

/// Which flag or key a value came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub key: &'static str,
    /// The config file, if the value came from it (else from the flag).
    pub file: Option<PathBuf>,
}

impl Origin {
    pub(super) fn new(key: &'static str, file: Option<&Path>) -> Self {
        Self {
            key,
            file: file.map(Path::to_path_buf),
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.file {
            Some(p) => write!(f, "`{}` in {}", self.key, p.display()),
            None => write!(f, "--{}", self.key),
        }
    }
}

/// A flag's parsed value: `Option<T>` is given when `Some`, a repeated flag
/// (`Vec<String>`) when it was given at least once.
pub(super) trait FlagValue {
    type Given;
    fn given(self) -> Option<Self::Given>;
}

impl<T> FlagValue for Option<T> {
    type Given = T;
    fn given(self) -> Option<T> {
        self
    }
}

impl FlagValue for Vec<String> {
    type Given = Vec<String>;
    fn given(self) -> Option<Vec<String>> {
        (!self.is_empty()).then_some(self)
    }
}

/// Expands the key table. Each entry:
///
/// ```text
/// @cfg(feature = "webrtc")            // optional: a key only in some builds
/// /// --help text (clap reads the doc comment)
/// #[arg(value_name = "N")]            // more clap attributes, if any
/// field: "flag-and-key-name", FlagType => FileType => ConfigType = default;
///     reload Live|Pipeline|Restart; readme "default column", "meaning column";
///     read |v: FileType, o: &Origin| -> Result<ConfigType, ConfigError>;
///     print |v: &ConfigType| -> Option<toml::Value>;
/// ```
///
/// A flag's value converts into the file's type with `From` (a flag value
/// and a file value then go through the same reader).
macro_rules! keys {
    ($(
        $(@cfg($cfg:meta))?
        $(#[$attr:meta])*
        $field:ident : $name:literal, $flag:ty => $file:ty => $ty:ty = $default:expr;
            reload $reload:ident; readme $rdefault:literal, $rdoc:literal;
            read $read:expr;
            print $print:expr;
    )*) => {
        /// The command line: one flag per config key, and the actions.
        #[derive(clap::Parser, Debug, Default, Clone)]
        #[command(
            name = "edgestream",
            version = $crate::config::VERSION,
            about = "Live H.264 from a V4L2 camera (or a test pattern) over RTSP, FLV and RTMP, in one static binary.",
            long_about = "Live H.264 from a V4L2 camera (or a test pattern) over RTSP, FLV and RTMP, in one static binary.\n\n\
                With no arguments it streams a moving test pattern at rtsp://<host>:8554/live.\n\
                Every flag can also be set in the --config file under the same name without the dashes \
                (e.g. `rtsp-path = \"/live\"`); flags override the file.\n\n\
                SIGUSR1 toggles the privacy pause (camera closed, viewers stay connected); \
                SIGHUP rereads the --config file.\n\n\
                Exit status: 0 on a clean stop (also SIGINT/SIGTERM, --frames, end of file), \
                1 on a runtime failure, 2 on bad usage or configuration."
        )]
        pub struct Cli {
            /// Read settings from this TOML file; flags given as well override it.
            #[arg(long, value_name = "FILE")]
            pub config: Option<std::path::PathBuf>,
            $(
                $(#[cfg($cfg)])?
                $(#[$attr])*
                #[arg(long = $name)]
                pub $field: $flag,
            )*
            /// Print the effective configuration as TOML and exit.
            #[arg(long)]
            pub print_config: bool,

            /// List the V4L2 devices (/dev/video*) with their names and stable
            /// /dev/v4l/by-id paths, and exit.
            #[arg(long)]
            pub list_devices: bool,

            /// List the formats, sizes and frame rates of the --source camera (of every
            /// camera if --source is not one) and how edgestream would take each, and exit.
            #[arg(long)]
            pub list_formats: bool,
        }

        /// The config file: the same keys as the long flags.
        #[derive(serde::Deserialize, Debug, Default)]
        #[serde(deny_unknown_fields)]
        pub(super) struct FileConfig {
            $(
                $(#[cfg($cfg)])?
                #[serde(rename = $name)]
                $field: Option<$file>,
            )*
        }

        /// The effective, validated configuration: one field per key.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Config {
            $(
                $(#[cfg($cfg)])?
                #[doc = $rdoc]
                pub $field: $ty,
            )*
        }

        /// Every key, in `--help` order.
        pub static KEYS: &[Key] = &[$(
            $(#[cfg($cfg)])?
            Key {
                name: $name,
                reload: Apply::$reload,
                readme_default: $rdefault,
                readme: $rdoc,
            },
        )*];

        /// The name of every key, also those of features this build leaves out.
        #[cfg(test)]
        pub(super) static ALL_NAMES: &[&str] = &[$($name,)*];

        impl Config {
            /// Every key at its default, before the defaults that follow
            /// other keys ([`Config::default`] has those too).
            pub(super) fn table_defaults() -> Self {
                Self { $($(#[cfg($cfg)])? $field: $default,)* }
            }

            /// Reads every key given by a flag or in the file (flags win);
            /// also returns where each given key came from.
            pub(super) fn read_keys(
                cli: &Cli,
                file: FileConfig,
                path: Option<&std::path::Path>,
            ) -> Result<(Self, Vec<Origin>), ConfigError> {
                let mut c = Self::table_defaults();
                let mut given = Vec::new();
                $($(#[cfg($cfg)])? {
                    let picked = match (FlagValue::given(cli.$field.clone()), file.$field) {
                        (Some(v), _) => Some((<$file as From<_>>::from(v), Origin::new($name, None))),
                        (None, Some(v)) => Some((v, Origin::new($name, path))),
                        (None, None) => None,
                    };
                    if let Some((v, o)) = picked {
                        let read: fn($file, &Origin) -> Result<$ty, ConfigError> = $read;
                        c.$field = read(v, &o)?;
                        given.push(o);
                    }
                })*
                Ok((c, given))
            }

            /// The effective configuration as a config file.
            pub fn to_toml(&self) -> String {
                let mut t = toml::Table::new();
                $($(#[cfg($cfg)])? {
                    let print: fn(&$ty) -> Option<toml::Value> = $print;
                    if let Some(v) = print(&self.$field) {
                        t.insert($name.into(), v);
                    }
                })*
                toml::to_string(&t).unwrap_or_default()
            }

            /// The keys whose values differ between `old` and `new`, with how
            /// each is applied on reload, in table order.
            pub fn changed(old: &Self, new: &Self) -> Vec<(&'static str, Apply)> {
                let mut v = Vec::new();
                $($(#[cfg($cfg)])? {
                    if old.$field != new.$field {
                        v.push(($name, Apply::$reload));
                    }
                })*
                v
            }
        }
    };
}

pub(super) use keys;
