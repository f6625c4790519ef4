//! Hearth's configuration: the documented defaults, the TOML file and the
//! `HEARTH_*` environment overrides, layered in that order.
//!
//! The defaults live in one place, [`DEFAULT_FILE`], which is both what
//! `hearth config` prints and what [`Config::default`] parses, so the
//! documentation cannot drift from the behaviour. Environment overrides are
//! typed by the default value found at the same key: this keeps `HEARTH_*`
//! strict (unknown variables are refused, like unknown file keys) without a
//! second schema.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;

mod layout;
pub use layout::DataDir;

/// The documented default configuration file, printed by `hearth config`.
pub const DEFAULT_FILE: &str = include_str!("default.toml");

/// Where the device image keeps the configuration.
pub const DEVICE_CONFIG_PATH: &str = "/etc/hearth/hearth.toml";

/// Environment variable naming the configuration file; never a setting itself.
pub const CONFIG_PATH_VAR: &str = "HEARTH_CONFIG";

/// The user's settings. Every field is documented in [`DEFAULT_FILE`].
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the web server binds.
    pub listen: SocketAddr,
    /// Database and state directory.
    pub data_dir: PathBuf,
    /// FAT boot partition, watched for the `hearth-reset` file at start.
    pub boot_dir: PathBuf,
    /// The Files page's folder: uploads land here.
    pub files_dir: PathBuf,
    /// Seconds a watched folder must be quiet after a change before it is
    /// backed up.
    pub backup_quiet_secs: u64,
    /// The NetworkManager connection id of the hotspot.
    pub hotspot_connection: String,
    /// Seconds to confirm a hotspot change before it is undone.
    pub hotspot_confirm_secs: u64,
    /// Base URL of the local `zerotier-one` service API (loopback only).
    pub zerotier_api: String,
    /// The `zerotier-one` API token file Hearth reads for every call.
    pub zerotier_token_file: PathBuf,
    /// This device's name for peers; empty for the host name.
    pub device_name: String,
    /// The peer port's address.
    pub mirror_listen: SocketAddr,
    /// Announce this Hearth and list others on the LAN (mDNS).
    pub mirror_discovery: bool,
    /// Days a deleted pack is kept for its owner.
    pub mirror_grace_days: u64,
    /// Upload limit to peers, KiB/s; 0 for none.
    pub mirror_bandwidth_kib: u64,
    /// Minutes between mirror runs.
    pub mirror_every_minutes: u64,
    /// Hours between proof-of-storage checks.
    pub mirror_prove_hours: u64,
    /// Seconds between pulls of shared boards from each peer.
    pub board_pull_secs: u64,
    /// MiB of shared posts' photos fetched from each peer per day.
    pub board_photo_budget_mib: u64,
    /// Upload limit to the S3 target, KiB/s; 0 for none.
    pub s3_bandwidth_kib: u64,
    /// Seconds before the first retry of a failed upload to the S3
    /// target; each further failure doubles it, up to an hour.
    pub s3_retry_secs: u64,
    /// Lowest log level written.
    pub log_level: LogLevel,
    /// Whether session cookies carry the `Secure` attribute.
    pub secure_cookies: bool,
    /// A minisign public key trusted for updates besides the release key
    /// compiled in; empty for none.
    pub update_extra_key: String,
}

/// Log verbosity, spelled as in the file.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// Why a configuration could not be loaded. Each renders as one line that
/// names the file or variable at fault, because that is all `hearth` prints.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}, line {line}: {message}")]
    File {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

/// Where the effective configuration came from, for the start-up log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Defaults,
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Defaults => f.write_str("built-in defaults"),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        // DEFAULT_FILE is compiled in and covered by a unit test.
        #[allow(clippy::expect_used)]
        toml::from_str(DEFAULT_FILE).expect("built-in default config parses")
    }
}

impl Config {
    /// The data folder and the names of what lives in it.
    pub fn data(&self) -> DataDir {
        DataDir::new(&self.data_dir)
    }

    /// Loads the layered configuration.
    ///
    /// `explicit` is `--config FILE`: it must exist. Without it,
    /// `HEARTH_CONFIG` is tried, then the device path if present, else the
    /// defaults stand alone. `env` is the process environment, passed in so
    /// tests need not mutate global state.
    pub fn load<I>(explicit: Option<&Path>, env: I) -> Result<(Config, Source), ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("HEARTH_"))
            .collect();
        let from_env = env
            .iter()
            .find(|(k, _)| k == CONFIG_PATH_VAR)
            .map(|(_, v)| PathBuf::from(v));
        let path = match (explicit, from_env) {
            (Some(p), _) => Some(p.to_path_buf()),
            (None, Some(p)) => Some(p),
            (None, None) => {
                let device = Path::new(DEVICE_CONFIG_PATH);
                device.exists().then(|| device.to_path_buf())
            }
        };

        let mut table = default_table();
        let source = match &path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                let file: toml::Table =
                    toml::from_str(&text).map_err(|e| file_error(path, &text, &e))?;
                merge(&mut table, file);
                // Validate now, so an unknown key or a bad value is reported
                // against the file and its line rather than a later layer.
                to_config(&table).map_err(|e| file_error_from_key(path, &text, &e))?;
                Source::File(path.clone())
            }
            None => Source::Defaults,
        };

        for (var, value) in env.iter().filter(|(k, _)| k != CONFIG_PATH_VAR) {
            apply_env(&mut table, var, value)?;
            to_config(&table).map_err(|e| ConfigError::Env {
                var: var.clone(),
                message: e.message().trim().to_string(),
            })?;
        }
        let config = to_config(&table).map_err(|e| ConfigError::Env {
            var: "HEARTH_*".into(),
            message: e.message().trim().to_string(),
        })?;
        Ok((config, source))
    }
}

fn to_config(table: &toml::Table) -> Result<Config, toml::de::Error> {
    toml::Value::Table(table.clone()).try_into()
}

fn default_table() -> toml::Table {
    #[allow(clippy::expect_used)]
    toml::from_str(DEFAULT_FILE).expect("built-in default config parses")
}

/// Overlays `top` onto `base`, descending into tables.
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

/// Applies one `HEARTH_*` variable. `HEARTH_A__B` names key `b` in table `a`.
fn apply_env(table: &mut toml::Table, var: &str, raw: &str) -> Result<(), ConfigError> {
    let err = |message: String| ConfigError::Env {
        var: var.to_string(),
        message,
    };
    let name = var.trim_start_matches("HEARTH_").to_ascii_lowercase();
    let path: Vec<&str> = name.split("__").collect();
    let (last, parents) = path.split_last().ok_or_else(|| err("empty name".into()))?;
    let mut cursor = table;
    for part in parents {
        cursor = match cursor.get_mut(*part) {
            Some(toml::Value::Table(t)) => t,
            _ => return Err(err("is not a Hearth setting".into())),
        };
    }
    let value = match cursor.get(*last) {
        None | Some(toml::Value::Table(_)) => {
            return Err(err("is not a Hearth setting".into()));
        }
        Some(toml::Value::Boolean(_)) => match raw {
            "true" | "1" | "yes" => toml::Value::Boolean(true),
            "false" | "0" | "no" => toml::Value::Boolean(false),
            _ => return Err(err(format!("expected true or false, got {raw:?}"))),
        },
        Some(toml::Value::Integer(_)) => raw
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| err(format!("expected a whole number, got {raw:?}")))?,
        Some(_) => toml::Value::String(raw.to_string()),
    };
    cursor.insert((*last).to_string(), value);
    Ok(())
}

/// A TOML syntax error, on one line with its line number.
fn file_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    ConfigError::File {
        path: path.to_path_buf(),
        line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
        message: e.message().trim().to_string(),
    }
}

/// A schema error found after layering: the span points into the merged
/// table, so find the offending key in the user's text instead.
fn file_error_from_key(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim().to_string();
    let key = message.split('`').nth(1).unwrap_or_default().to_string();
    let line = text
        .lines()
        .position(|l| {
            let l = l.trim_start();
            !key.is_empty() && l.starts_with(&key) && l[key.len()..].trim_start().starts_with('=')
        })
        .map(|i| i + 1)
        .unwrap_or(1);
    ConfigError::File {
        path: path.to_path_buf(),
        line,
        message,
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests;
