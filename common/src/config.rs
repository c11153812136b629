//! Loading TOML config files: one clear line per error, durations as human text.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// Exit status for a bad config or bad command-line input (`EX_USAGE`... `EX_DATAERR` family).
pub const EXIT_CONFIG: i32 = 64;

/// A config file that could not be used; the message names the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl ConfigError {
    /// An error about one field of a config file that parsed but does not make sense.
    pub fn invalid(path: &Path, message: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// Reads and parses a TOML file; unknown keys are errors when `T` denies them.
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_toml(path, &text)
}

/// Parses TOML text that came from `path`, folding toml's multi-line message into one line that
/// names the key (`section.key`) and the line whenever the error points at one.
pub fn parse_toml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|err: toml::de::Error| {
        let message = err.message().trim().replace('\n', " ");
        let located = err
            .span()
            .map(|span| locate(text, span.start.min(text.len())));
        let message = match located {
            Some((line, Some(key))) if !message.contains(&key) => {
                format!("{key}: {message} (line {line})")
            }
            Some((line, _)) => format!("{message} (line {line})"),
            None => message,
        };
        ConfigError::invalid(path, message)
    })
}

/// The 1-based line of `offset`, and the dotted key assigned on that line, if any.
fn locate(text: &str, offset: usize) -> (usize, Option<String>) {
    let before = &text[..offset];
    let line_no = before.matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    let section = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    let key = match (section, key) {
        (Some(section), Some(key)) => Some(format!("{section}.{key}")),
        (None, key) => key,
        (Some(_), None) => None,
    };
    (line_no, key)
}

/// Deserializes a duration written as human text (`30s`, `5m`, `1h 30m`).
pub fn human_duration<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(de)?;
    humantime::parse_duration(&text)
        .map_err(|err| serde::de::Error::custom(format!("invalid duration {text:?}: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[allow(dead_code)]
        name: String,
        #[serde(deserialize_with = "human_duration")]
        every: Duration,
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err =
            parse_toml::<Sample>(Path::new("a.toml"), "name = 'x'\nevery = '1s'\nbogus = 1\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("bogus"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn durations_are_human_text() {
        let s: Sample = parse_toml(Path::new("a.toml"), "name = 'x'\nevery = '1m 30s'\n").unwrap();
        assert_eq!(s.every, Duration::from_secs(90));
        let err = parse_toml::<Sample>(Path::new("a.toml"), "name = 'x'\nevery = 'soon'\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("soon"), "{err}");
    }

    #[test]
    fn a_bad_value_names_its_key_and_section() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Outer {
            inner: Inner,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Inner {
            port: u16,
        }
        let err = parse_toml::<Outer>(Path::new("a.toml"), "[inner]\nport = 'x'\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("inner.port: "), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn missing_field_is_named() {
        let err = parse_toml::<Sample>(Path::new("a.toml"), "name = 'x'\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("every"), "{err}");
    }
}
