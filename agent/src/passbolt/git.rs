//! What git's output says about passbolt's releases: only `vX.Y.Z` tags are releases (the
//! repository also holds junk tags and `-rc.N`).

use boltfleet_common::version::parse_release_tag;
use semver::Version;

/// The release tags among tag names, one a line; junk, `-rc.N` and `-1` tags do not count.
pub fn release_tags(tags: &str) -> Vec<Version> {
    tags.lines()
        .filter_map(|t| parse_release_tag(t.trim()))
        .collect()
}

/// The newest of [`release_tags`].
pub fn newest_release(tags: &str) -> Option<Version> {
    release_tags(tags).into_iter().max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_release_ignores_junk_tags() {
        let tags = include_str!("testdata/git_all_tags_in_snapshot.txt");
        let newest = newest_release(tags).unwrap();
        // Compare with a plain scan of the sample for the strict pattern.
        let strict = tags
            .lines()
            .filter_map(|t| t.strip_prefix('v'))
            .filter(|t| {
                t.split('.').count() == 3
                    && t.split('.')
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            })
            .filter_map(|t| Version::parse(t).ok())
            .max()
            .unwrap();
        assert_eq!(newest, strict);
        assert_eq!(
            newest_release("3.7.0\nv4.0.0-rc.5\nv2.4\ntest\nv1.2.3\n"),
            Some(Version::new(1, 2, 3))
        );
        assert_eq!(newest_release("list\nv9.9.9-1\n"), None);
        assert_eq!(newest_release(""), None);
        assert_eq!(
            release_tags("v1.2.3\nv1.3.0-rc.1\n v1.10.0 \n"),
            [Version::new(1, 2, 3), Version::new(1, 10, 0)]
        );
    }
}
