//! Release versions of passbolt and how an update from one to another is classified.

use std::fmt;

pub use semver::Version;

/// A version string that is not a plain `X.Y.Z` release.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version {text:?}: expected X.Y.Z with digits only")]
pub struct VersionError {
    pub text: String,
}

/// Parses a plain release version `X.Y.Z` (no `v`, no pre-release, no build metadata).
///
/// Anything else, including shell or git-option text, is refused.
pub fn parse_release(text: &str) -> Result<Version, VersionError> {
    let err = || VersionError {
        text: text.to_string(),
    };
    let parts: Vec<&str> = text.split('.').collect();
    let numeric = |p: &&str| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit());
    if parts.len() != 3 || !parts.iter().all(numeric) {
        return Err(err());
    }
    Version::parse(text).map_err(|_| err())
}

/// The release a git tag names, when it is a release tag (`^v\d+\.\d+\.\d+$`); junk and `-rc.N`
/// tags are not releases.
pub fn parse_release_tag(tag: &str) -> Option<Version> {
    tag.strip_prefix('v')
        .and_then(|rest| parse_release(rest).ok())
}

/// The git tag of a release.
pub fn release_tag(version: &Version) -> String {
    format!("v{version}")
}

/// What moving from one version to another means for this tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UpdateClass {
    /// Already there.
    AtTarget,
    /// Same major and minor, newer patch.
    Patch,
    /// Same major, newer minor.
    Minor,
    /// A new major: a separate manual upgrade, refused by this tool.
    Major,
    /// Older than the current version: refused.
    Downgrade,
}

impl UpdateClass {
    /// Whether this tool may carry out the update.
    pub fn is_allowed(self) -> bool {
        matches!(self, UpdateClass::Patch | UpdateClass::Minor)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UpdateClass::AtTarget => "at_target",
            UpdateClass::Patch => "patch",
            UpdateClass::Minor => "minor",
            UpdateClass::Major => "major",
            UpdateClass::Downgrade => "downgrade",
        }
    }
}

impl fmt::Display for UpdateClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies the update from `current` to `target`.
pub fn classify(current: &Version, target: &Version) -> UpdateClass {
    use std::cmp::Ordering::*;
    match current.cmp(target) {
        Equal => UpdateClass::AtTarget,
        Greater => UpdateClass::Downgrade,
        Less if target.major != current.major => UpdateClass::Major,
        Less if target.minor != current.minor => UpdateClass::Minor,
        Less => UpdateClass::Patch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        parse_release(s).unwrap()
    }

    #[test]
    fn release_versions_are_strict() {
        assert_eq!(v("1.6.10"), Version::new(1, 6, 10));
        for bad in [
            "",
            "1.6",
            "1.6.10.1",
            "v1.6.10",
            "1.6.10-rc.1",
            "1.6.10+b",
            "1.3.2;touch x",
            "--upload-pack=x",
            "1.3.x",
            " 1.3.2",
            "01.3.2",
        ] {
            assert!(parse_release(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn only_plain_v_tags_are_releases() {
        assert_eq!(parse_release_tag("v1.3.2"), Some(Version::new(1, 3, 2)));
        for junk in [
            "1.3.2",
            "v1.3.2-rc.1",
            "latest",
            "vfoo",
            "v1.3",
            "v1.3.2 ",
            "V1.3.2",
        ] {
            assert_eq!(parse_release_tag(junk), None, "{junk:?}");
        }
        assert_eq!(release_tag(&v("2.0.0")), "v2.0.0");
    }

    #[test]
    fn classification() {
        let cases = [
            ("1.3.2", "1.3.2", UpdateClass::AtTarget),
            ("1.3.0", "1.3.2", UpdateClass::Patch),
            ("1.3.2", "1.6.10", UpdateClass::Minor),
            ("1.6.10", "2.0.0", UpdateClass::Major),
            ("1.6.10", "1.3.2", UpdateClass::Downgrade),
            ("2.0.0", "1.6.10", UpdateClass::Downgrade),
        ];
        for (from, to, want) in cases {
            assert_eq!(classify(&v(from), &v(to)), want, "{from} -> {to}");
        }
        assert!(UpdateClass::Patch.is_allowed() && UpdateClass::Minor.is_allowed());
        assert!(!UpdateClass::Major.is_allowed() && !UpdateClass::Downgrade.is_allowed());
    }
}
