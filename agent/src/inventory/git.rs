//! The inventory's view of the passbolt work tree, read with git: HEAD, its release tag,
//! dirtiness and the newest release tag present.

use std::path::Path;

use boltfleet_common::proto::GitState;
use boltfleet_common::version::release_tag;
use semver::Version;

use crate::exec::{RunError, Runner};
use crate::passbolt::git::newest_release;
use crate::passbolt::worktree::local_changes;
use crate::text::excerpt;

/// A git command that could not be run or failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("git {args} failed ({exit}): {stderr}")]
    Failed {
        args: String,
        exit: String,
        stderr: String,
    },
    #[error("git rev-parse HEAD printed {0:?}, not a commit id")]
    BadHead(String),
}

/// What the work tree looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoState {
    /// Full commit id of HEAD.
    pub head: String,
    /// The newest release (`vX.Y.Z`) tag pointing at HEAD.
    pub head_release: Option<Version>,
    /// `git status --porcelain` printed a local modification: a change to a tracked file or an
    /// untracked file outside the runtime directories ([`crate::passbolt::worktree`]).
    pub dirty: bool,
    /// The newest release tag in the repository.
    pub newest_release: Option<Version>,
}

impl RepoState {
    /// The wire form (the newest tag travels separately, in `Inventory.newest_tag`).
    pub fn to_proto(&self) -> GitState {
        GitState {
            head: self.head.clone(),
            tag: self
                .head_release
                .as_ref()
                .map(release_tag)
                .unwrap_or_default(),
            dirty: self.dirty,
        }
    }
}

/// Reads HEAD, its release tag, dirtiness and the newest release tag of the tree at `root`.
pub async fn repo_state(runner: &Runner, root: &Path) -> Result<RepoState, GitError> {
    let head = git(runner, root, &["rev-parse", "--verify", "HEAD"]).await?;
    let head = head.trim().to_string();
    if head.len() < 40 || !head.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(GitError::BadHead(head));
    }
    let on_head = git(runner, root, &["tag", "--points-at", "HEAD"]).await?;
    let status = git(runner, root, &["status", "--porcelain"]).await?;
    let all = git(runner, root, &["tag", "--list"]).await?;
    Ok(RepoState {
        head,
        head_release: newest_release(&on_head),
        dirty: !local_changes(root, &lines(&status)).0.is_empty(),
        newest_release: newest_release(&all),
    })
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

/// Runs `git <args>` in `root` and returns its stdout. `--no-optional-locks` keeps a status
/// refresh from taking the index lock while a job may be using the tree.
async fn git(runner: &Runner, root: &Path, args: &[&str]) -> Result<String, GitError> {
    let mut argv = vec!["--no-optional-locks"];
    argv.extend_from_slice(args);
    let out = runner.run("git", &argv, root).await?;
    if !out.success() {
        return Err(GitError::Failed {
            args: args.join(" "),
            exit: out.exit_text(),
            stderr: excerpt(out.stderr.trim(), 300),
        });
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn sh_git(dir: &Path, args: &[&str]) {
        let status = std::process::Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.com",
                "-c",
                "commit.gpgsign=false",
                "-c",
                "tag.gpgsign=false",
            ])
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }

    #[tokio::test]
    async fn reads_a_real_repository() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        sh_git(root, &["init", "-q"]);
        std::fs::write(root.join("a.txt"), "one").unwrap();
        sh_git(root, &["add", "a.txt"]);
        sh_git(root, &["commit", "-q", "-m", "one"]);
        sh_git(root, &["tag", "v1.2.3"]);
        sh_git(root, &["tag", "v1.2.4-rc.1"]);
        sh_git(root, &["tag", "test-test"]);
        let runner = Runner::new(None, Duration::from_secs(30)).unwrap();

        let state = repo_state(&runner, root).await.unwrap();
        assert_eq!(state.head.len(), 40);
        assert_eq!(state.head_release, Some(Version::new(1, 2, 3)));
        assert!(!state.dirty);
        assert_eq!(state.newest_release, Some(Version::new(1, 2, 3)));
        assert_eq!(state.to_proto().tag, "v1.2.3");

        std::fs::write(root.join("a.txt"), "two").unwrap();
        sh_git(root, &["commit", "-q", "-am", "two"]);
        sh_git(root, &["tag", "v1.10.0"]);
        sh_git(root, &["checkout", "-q", "v1.2.3"]);
        std::fs::write(root.join("untracked.php"), "x").unwrap();
        let state = repo_state(&runner, root).await.unwrap();
        assert!(state.dirty);
        assert_eq!(state.head_release, Some(Version::new(1, 2, 3)));
        assert_eq!(state.newest_release, Some(Version::new(1, 10, 0)));

        sh_git(root, &["checkout", "-q", "-"]);
        sh_git(root, &["tag", "-d", "v1.10.0"]);
        let state = repo_state(&runner, root).await.unwrap();
        assert_eq!(state.head_release, None);
        assert_eq!(state.to_proto().tag, "");
        assert_eq!(state.newest_release, Some(Version::new(1, 2, 3)));
    }

    #[tokio::test]
    async fn runtime_state_does_not_make_the_tree_dirty() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        sh_git(root, &["init", "-q"]);
        for file in ["app/Config/version.php", "app/tmp/cache/models/empty"] {
            std::fs::create_dir_all(root.join(file).parent().unwrap()).unwrap();
            std::fs::write(root.join(file), "").unwrap();
        }
        sh_git(root, &["add", "."]);
        sh_git(root, &["commit", "-q", "-m", "one"]);
        let runner = Runner::new(None, Duration::from_secs(30)).unwrap();
        // What the v1.3.0 migration and the cache leave behind: the install's own state.
        std::fs::create_dir_all(root.join("app/tmp/config")).unwrap();
        std::fs::write(root.join("app/tmp/config/stats"), "n").unwrap();
        std::fs::write(root.join("app/tmp/cache/models/x"), "1").unwrap();
        assert!(!repo_state(&runner, root).await.unwrap().dirty);
        // A tracked placeholder gone is a change like any other.
        std::fs::remove_file(root.join("app/tmp/cache/models/empty")).unwrap();
        assert!(repo_state(&runner, root).await.unwrap().dirty);
    }

    #[tokio::test]
    async fn not_a_repository_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Runner::new(None, Duration::from_secs(30)).unwrap();
        let err = repo_state(&runner, dir.path()).await.unwrap_err();
        assert!(matches!(err, GitError::Failed { .. }), "{err}");
        assert!(err.to_string().contains("rev-parse"), "{err}");
    }
}
