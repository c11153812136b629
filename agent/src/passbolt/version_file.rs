//! Finds and reads the installed passbolt version from its `version.php`, as text (never run).

use std::path::{Path, PathBuf};

use semver::Version;

/// Which generation of passbolt source tree a root holds; decides file and command names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// passbolt v1 (CakePHP 2): `app/Config/version.php`, `./app/Console/cake`.
    V1,
    /// passbolt v2 and later (CakePHP 3+): `config/version.php`, `./bin/cake`.
    Modern,
}

impl Layout {
    /// The version file, relative to the passbolt root.
    pub fn version_file(self) -> &'static str {
        match self {
            Layout::V1 => "app/Config/version.php",
            Layout::Modern => "config/version.php",
        }
    }

    /// The key path of the version number inside the file's array.
    fn version_key(self) -> [&'static str; 2] {
        match self {
            Layout::V1 => ["App.version", "number"],
            Layout::Modern => ["passbolt", "version"],
        }
    }
}

/// A version file that is missing, unreadable or holds no usable version.
#[derive(Debug, thiserror::Error)]
pub enum VersionFileError {
    #[error("no passbolt version file under {}: neither app/Config/version.php nor config/version.php exists", root.display())]
    NotFound { root: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: no version number found (expected {key})", path.display())]
    NoVersion { path: PathBuf, key: String },
    #[error("{}: invalid version {value:?}", path.display())]
    Invalid { path: PathBuf, value: String },
}

/// The installed version and where it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledVersion {
    pub layout: Layout,
    pub path: PathBuf,
    pub version: Version,
}

/// The layout of the tree at `root`: v1 when `app/Config/version.php` exists, else v2+ when
/// `config/version.php` does; `None` when neither exists.
pub fn detect_layout(root: &Path) -> Option<Layout> {
    [Layout::V1, Layout::Modern]
        .into_iter()
        .find(|layout| root.join(layout.version_file()).exists())
}

/// Finds the version file under `root` and reads the version from it.
pub fn read_installed_version(root: &Path) -> Result<InstalledVersion, VersionFileError> {
    let layout = detect_layout(root).ok_or_else(|| VersionFileError::NotFound {
        root: root.to_path_buf(),
    })?;
    let path = root.join(layout.version_file());
    let text = std::fs::read_to_string(&path).map_err(|source| VersionFileError::Read {
        path: path.clone(),
        source,
    })?;
    let version = parse_version_file(&path, layout, &text)?;
    Ok(InstalledVersion {
        layout,
        path,
        version,
    })
}

/// Reads the version out of the text of a `version.php` of the given layout; `path` only names
/// the file in errors.
pub fn parse_version_file(
    path: &Path,
    layout: Layout,
    text: &str,
) -> Result<Version, VersionFileError> {
    let key = layout.version_key();
    let value = find_string_value(text, &key).ok_or_else(|| VersionFileError::NoVersion {
        path: path.to_path_buf(),
        key: key.join("."),
    })?;
    let trimmed = value.trim();
    Version::parse(trimmed.strip_prefix('v').unwrap_or(trimmed)).map_err(|_| {
        VersionFileError::Invalid {
            path: path.to_path_buf(),
            value: value.clone(),
        }
    })
}

/// The tokens of a PHP array literal that matter here.
#[derive(Debug, PartialEq)]
enum Token {
    Str(String),
    Arrow,
    Open,
    Close,
    Other,
}

/// Finds the string stored under `key` (outermost first) in the PHP array literals of `text`.
fn find_string_value(text: &str, key: &[&str]) -> Option<String> {
    let tokens = tokenize(text);
    // One entry per open bracket: the key it was opened under, if any.
    let mut stack: Vec<Option<String>> = Vec::new();
    let mut pending_key: Option<String> = None;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Str(s) if tokens.get(i + 1) == Some(&Token::Arrow) => {
                pending_key = Some(s.clone());
                i += 1;
            }
            Token::Str(s) => {
                if let Some(k) = pending_key.take() {
                    let path: Vec<&str> = stack.iter().flatten().map(String::as_str).collect();
                    if path.len() + 1 == key.len()
                        && path[..] == key[..path.len()]
                        && k == key[path.len()]
                    {
                        return Some(s.clone());
                    }
                }
            }
            Token::Open => stack.push(pending_key.take()),
            Token::Close => {
                stack.pop();
                pending_key = None;
            }
            Token::Arrow | Token::Other => pending_key = None,
        }
        i += 1;
    }
    None
}

/// Splits PHP source into strings, `=>`, brackets (`[`, `array(`, `(` and their closers) and
/// anything else; comments and whitespace are dropped.
fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            _ if c.is_whitespace() => i += 1,
            '#' => i = skip_line(&chars, i),
            '/' if next == Some('/') => i = skip_line(&chars, i),
            '/' if next == Some('*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 2;
            }
            '\'' | '"' => {
                let (s, end) = read_string(&chars, i);
                tokens.push(Token::Str(s));
                i = end;
            }
            '=' if next == Some('>') => {
                tokens.push(Token::Arrow);
                i += 2;
            }
            '[' | '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ']' | ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            // `array(` is just another opening bracket; the `(` is taken on the next turn.
            _ if c.is_alphanumeric() || c == '_' || c == '$' => {
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
                {
                    i += 1;
                }
            }
            _ => {
                tokens.push(Token::Other);
                i += 1;
            }
        }
    }
    tokens
}

fn skip_line(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i] != '\n' {
        i += 1;
    }
    i
}

/// Reads a quoted string starting at `start`; returns its value and the index after it.
fn read_string(chars: &[char], start: usize) -> (String, usize) {
    let quote = chars[start];
    let mut value = String::new();
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && i + 1 < chars.len() {
            let escaped = chars[i + 1];
            // In single quotes only \' and \\ are escapes; other backslashes stay.
            if quote == '"' || escaped == quote || escaped == '\\' {
                value.push(escaped);
            } else {
                value.push('\\');
                value.push(escaped);
            }
            i += 2;
        } else {
            value.push(chars[i]);
            i += 1;
        }
    }
    (value, i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(layout: Layout, text: &str) -> Result<Version, VersionFileError> {
        parse_version_file(Path::new("version.php"), layout, text)
    }

    #[test]
    fn reads_v1_samples() {
        let v = parse(Layout::V1, include_str!("testdata/v1_version.php")).unwrap();
        assert_eq!(v, Version::new(1, 6, 10));
        let v = parse(Layout::V1, include_str!("testdata/v1_version_1.3.0.php")).unwrap();
        assert_eq!(v, Version::new(1, 3, 0));
    }

    #[test]
    fn reads_v2_plus_samples() {
        let v = parse(
            Layout::Modern,
            include_str!("testdata/v4_version_2.0.0.php"),
        )
        .unwrap();
        assert_eq!(v, Version::new(2, 0, 0));
        // The `php` block's minVersion keys must not be mistaken for the version.
        let v = parse(Layout::Modern, include_str!("testdata/v4_version.php")).unwrap();
        assert_eq!(v, Version::new(4, 12, 1));
        let v = parse(Layout::Modern, include_str!("testdata/v5_version.php")).unwrap();
        assert_eq!(v, Version::new(5, 12, 0));
    }

    #[test]
    fn tolerates_array_syntax_double_quotes_and_comments() {
        let text = "<?php\n// version\n$config = array(\n  \"App.version\" => array( /* x */\n    \"number\" => \"1.0.12\", # trailing\n    'name' => 'It\\'s'\n  )\n);\n";
        assert_eq!(parse(Layout::V1, text).unwrap(), Version::new(1, 0, 12));
        let text = "<?php return array('php' => array('version' => '7.0'), 'passbolt' => array('name' => 'x', 'version' => '2.1.0'));";
        assert_eq!(parse(Layout::Modern, text).unwrap(), Version::new(2, 1, 0));
    }

    #[test]
    fn keeps_prerelease_versions() {
        let text = "<?php return ['passbolt' => ['version' => '2.0.0-rc1']];";
        assert_eq!(
            parse(Layout::Modern, text).unwrap().to_string(),
            "2.0.0-rc1"
        );
    }

    #[test]
    fn missing_or_garbage_versions_are_errors_naming_the_file() {
        for (layout, text) in [
            (Layout::V1, ""),
            (
                Layout::V1,
                "<?php $config = ['App.version' => ['name' => 'Get Up']];",
            ),
            // A v2 file read as v1 (and the other way round) has no version where expected.
            (Layout::V1, include_str!("testdata/v4_version.php")),
            (Layout::Modern, include_str!("testdata/v1_version.php")),
            (Layout::Modern, "garbage \u{0} ]]]) (( '"),
        ] {
            let err = parse(layout, text).unwrap_err();
            assert!(matches!(err, VersionFileError::NoVersion { .. }), "{err}");
            assert!(err.to_string().contains("version.php"), "{err}");
        }
        let err = parse(
            Layout::Modern,
            "<?php return ['passbolt' => ['version' => 'four']];",
        )
        .unwrap_err();
        assert!(matches!(err, VersionFileError::Invalid { ref value, .. } if value == "four"));
    }

    #[test]
    fn finds_the_file_by_layout() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_installed_version(dir.path()).unwrap_err();
        assert!(matches!(err, VersionFileError::NotFound { .. }));
        assert_eq!(detect_layout(dir.path()), None);

        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::write(
            dir.path().join("config/version.php"),
            include_str!("testdata/v4_version.php"),
        )
        .unwrap();
        let found = read_installed_version(dir.path()).unwrap();
        assert_eq!(found.layout, Layout::Modern);
        assert_eq!(found.path, dir.path().join("config/version.php"));
        assert_eq!(found.version, Version::new(4, 12, 1));

        std::fs::create_dir_all(dir.path().join("app/Config")).unwrap();
        std::fs::write(dir.path().join("app/Config/version.php"), "<?php\n").unwrap();
        let err = read_installed_version(dir.path()).unwrap_err();
        assert!(err.to_string().contains("app/Config/version.php"), "{err}");
    }
}
