//! The work tree side of jobs, as the web user: HEAD's release, fetching tags, the review of
//! config templates, and checkouts that keep `app/Config/email.php` and clear caches.

use std::collections::HashSet;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use boltfleet_common::files::write_private;
use boltfleet_common::version::{release_tag, Version};

use super::{run_logged, OpError, RepoFacts, Tags, FETCH_TIMEOUT, GIT_TIMEOUT};
use crate::config::AgentConfig;
use crate::exec::{Output, Runner};
use crate::jobs::model::gist;
use crate::jobs::validate::EMAIL_CONFIG;
use crate::passbolt::git::{newest_release, release_tags};
use crate::passbolt::version_file::{detect_layout, Layout};
use crate::passbolt::worktree::local_changes;

/// Runs `git <args>` in `root`, appending the transcript to `log`; an error only when git
/// cannot run at all.
async fn git_raw(
    runner: &Runner,
    root: &Path,
    args: &[&str],
    timeout: Duration,
    log: &mut String,
) -> Result<Output, OpError> {
    run_logged(&runner.with_timeout(timeout), "git", args, root, log).await
}

/// Like [`git_raw`], failing when git exits non-zero.
async fn git(
    runner: &Runner,
    root: &Path,
    args: &[&str],
    timeout: Duration,
    log: &mut String,
) -> Result<String, OpError> {
    let out = git_raw(runner, root, args, timeout, log).await?;
    if !out.success() {
        return Err(OpError::new(format!(
            "git {} failed ({}): {}",
            args.join(" "),
            out.exit_text(),
            gist(&out.stderr, 300)
        ))
        .with_log(log));
    }
    Ok(out.stdout)
}

/// HEAD's newest release tag and `git status --porcelain`, split into local changes and the
/// install's runtime state ([`local_changes`]).
pub async fn repo_facts(runner: &Runner, root: &Path) -> Result<RepoFacts, OpError> {
    let mut log = String::new();
    let tags = git(
        runner,
        root,
        &["--no-optional-locks", "tag", "--points-at", "HEAD"],
        GIT_TIMEOUT,
        &mut log,
    )
    .await?;
    let status = git(
        runner,
        root,
        &["--no-optional-locks", "status", "--porcelain"],
        GIT_TIMEOUT,
        &mut log,
    )
    .await?;
    let lines: Vec<String> = status.lines().map(str::to_string).collect();
    let (porcelain, runtime) = local_changes(root, &lines);
    Ok(RepoFacts {
        current: newest_release(&tags),
        porcelain,
        runtime,
    })
}

/// `git fetch --tags <remote>`, then the release tags present. Without any remote the local
/// tags are used; a failed fetch is noted in the log and the local tags are used too (the
/// target must still exist).
pub async fn fetch_tags(runner: &Runner, root: &Path, remote: &str) -> Result<Tags, OpError> {
    let mut log = String::new();
    let remotes = git(runner, root, &["remote"], GIT_TIMEOUT, &mut log).await?;
    let remotes: Vec<&str> = remotes
        .lines()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    let mut fetch_error = None;
    if remotes.is_empty() {
        log.push_str("no git remote: using the local tags\n");
    } else if !remotes.contains(&remote) {
        return Err(OpError::new(format!(
            "git remote {remote:?} does not exist (remotes: {})",
            remotes.join(", ")
        ))
        .with_log(&log));
    } else {
        let out = git_raw(
            runner,
            root,
            &["fetch", "--tags", "--quiet", remote],
            FETCH_TIMEOUT,
            &mut log,
        )
        .await?;
        if !out.success() {
            let why = format!(
                "git fetch --tags {remote} failed ({}): {}",
                out.exit_text(),
                gist(&out.stderr, 200)
            );
            log.push_str(&format!("{why}; using the local tags\n"));
            fetch_error = Some(why);
        }
    }
    let mut quiet = String::new();
    let all = git(runner, root, &["tag", "--list"], GIT_TIMEOUT, &mut quiet)
        .await
        .map_err(|e| e.with_log(&log))?;
    Ok(Tags {
        releases: release_tags(&all),
        log,
        fetch_error,
    })
}

/// How `app/Config/email.php` stands before a checkout to some release.
struct EmailPlan {
    exists: bool,
    tracked_at_head: bool,
    tracked_at_target: bool,
    modified: bool,
}

impl EmailPlan {
    /// A copy is kept when the checkout would lose or reject the file: local changes, a
    /// local (untracked) file, or a target release that no longer ships it.
    fn needs_saving(&self) -> bool {
        self.exists && (self.modified || !self.tracked_at_head || !self.tracked_at_target)
    }
}

async fn email_plan(
    runner: &Runner,
    root: &Path,
    target: &Version,
    log: &mut String,
) -> Result<EmailPlan, OpError> {
    let exists = root.join(EMAIL_CONFIG).is_file();
    let tracked = |rev: String| async move {
        let spec = format!("{rev}:{EMAIL_CONFIG}");
        let mut quiet = String::new();
        git_raw(
            runner,
            root,
            &["cat-file", "-e", &spec],
            GIT_TIMEOUT,
            &mut quiet,
        )
        .await
        .map(|o| o.success())
    };
    let tracked_at_head = tracked("HEAD".into()).await?;
    let tracked_at_target = tracked(format!("refs/tags/{}", release_tag(target))).await?;
    let modified = tracked_at_head
        && !git(
            runner,
            root,
            &[
                "--no-optional-locks",
                "status",
                "--porcelain",
                "--",
                EMAIL_CONFIG,
            ],
            GIT_TIMEOUT,
            log,
        )
        .await?
        .trim()
        .is_empty();
    Ok(EmailPlan {
        exists,
        tracked_at_head,
        tracked_at_target,
        modified,
    })
}

/// `git diff --name-status <to> <from> -- '*.php.default'` (backwards: a template the new
/// release adds shows as `D`) in words, plus what happens to `email.php`.
pub async fn config_review(
    runner: &Runner,
    root: &Path,
    from: &Version,
    to: &Version,
) -> Result<Vec<String>, OpError> {
    let mut log = String::new();
    let (new, old) = (release_tag(to), release_tag(from));
    let diff = git(
        runner,
        root,
        &["diff", "--name-status", &new, &old, "--", "*.php.default"],
        GIT_TIMEOUT,
        &mut log,
    )
    .await?;
    let mut lines: Vec<String> = diff.lines().filter_map(review_line).collect();
    let email = email_plan(runner, root, to, &mut log).await?;
    if email.needs_saving() {
        let mut why = Vec::new();
        if email.modified {
            why.push("it has local changes".to_string());
        }
        if !email.tracked_at_head {
            why.push("it is a local file".to_string());
        } else if !email.tracked_at_target {
            why.push(format!("{new} no longer ships it"));
        }
        let why = why.join(" and ");
        lines.push(format!(
            "{EMAIL_CONFIG} is saved before the checkout and put back after it ({why})"
        ));
    } else if !email.exists
        && !email.tracked_at_target
        && root.join("app/Config/email.php.default").exists()
    {
        lines.push(format!("{EMAIL_CONFIG} does not exist: create it from app/Config/email.php.default to send emails"));
    }
    Ok(lines)
}

/// One line of the backwards name-status diff in words.
pub fn review_line(line: &str) -> Option<String> {
    let mut fields = line.split('\t');
    let status = fields.next()?.trim();
    let path = fields.next()?.trim();
    let text = match status.chars().next()? {
        'D' => format!("added {path}"),
        'A' => format!("removed {path}"),
        'M' => format!("changed {path}"),
        'R' => format!("renamed {} to {path}", fields.next().unwrap_or(path).trim()),
        _ => format!("{status} {path}"),
    };
    Some(text)
}

/// Checks out `tag`, keeping `email.php` through `email_copy`, then refreshes dependencies
/// and caches. With `force` (rollbacks) local changes and files in the way are overwritten.
pub async fn checkout(
    runner: &Runner,
    config: &AgentConfig,
    tag: &Version,
    email_copy: &Path,
    force: bool,
) -> Result<String, OpError> {
    let root = config.passbolt.root.as_path();
    let email = root.join(EMAIL_CONFIG);
    let mut log = String::new();
    let plan = email_plan(runner, root, tag, &mut log).await?;
    if plan.needs_saving() && !email_copy.exists() {
        let bytes = std::fs::read(&email)
            .map_err(|e| OpError::new(format!("cannot read {}: {e}", email.display())))?;
        write_private(email_copy, &bytes)
            .map_err(|e| OpError::new(format!("cannot save {}: {e}", email_copy.display())))?;
        log.push_str(&format!(
            "saved {EMAIL_CONFIG} to {}\n",
            email_copy.display()
        ));
    }
    if plan.modified && !force {
        git(
            runner,
            root,
            &["checkout", "-q", "--", EMAIL_CONFIG],
            GIT_TIMEOUT,
            &mut log,
        )
        .await?;
    }
    let spec = format!("tags/{}", release_tag(tag));
    let mut args = vec!["-c", "advice.detachedHead=false", "checkout", "-q"];
    if force {
        args.push("-f");
    }
    args.push(&spec);
    git(runner, root, &args, config.jobs.step_timeout, &mut log).await?;
    if email_copy.exists() {
        put_back(email_copy, &email).map_err(|e| e.with_log(&log))?;
        log.push_str(&format!("put {EMAIL_CONFIG} back\n"));
    }
    refresh(runner, config, &mut log).await?;
    Ok(log)
}

/// Writes the saved copy over `email`: into the existing file (keeping its owner and mode), or
/// a new 0640 file owned like its directory.
fn put_back(copy: &Path, email: &Path) -> Result<(), OpError> {
    let fail =
        |e: std::io::Error| OpError::new(format!("cannot put back {}: {e}", email.display()));
    let bytes = std::fs::read(copy).map_err(fail)?;
    if email.exists() {
        return std::fs::write(email, bytes).map_err(fail);
    }
    let dir = email.parent().unwrap_or(Path::new("."));
    let owner = std::fs::metadata(dir).map_err(fail)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(email)
        .map_err(fail)?;
    std::io::Write::write_all(&mut file, &bytes).map_err(fail)?;
    std::os::unix::fs::chown(email, Some(owner.uid()), Some(owner.gid())).map_err(fail)
}

/// After a checkout: v1 clears `app/tmp/cache`; v2+ runs composer and `cake cache clear_all`.
async fn refresh(runner: &Runner, config: &AgentConfig, log: &mut String) -> Result<(), OpError> {
    let root = config.passbolt.root.as_path();
    match detect_layout(root) {
        Some(Layout::V1) => {
            let cache = root.join(V1_CACHE);
            let tracked = git(
                runner,
                root,
                &["ls-files", "-z", "--", V1_CACHE],
                GIT_TIMEOUT,
                &mut String::new(),
            )
            .await
            .map_err(|e| e.with_log(log))?;
            let keep: HashSet<PathBuf> = tracked
                .split('\0')
                .filter(|p| !p.is_empty())
                .map(|p| root.join(p))
                .collect();
            let removed = clear_files(&cache, &keep).map_err(|e| {
                OpError::new(format!("clearing {}: {e}", cache.display())).with_log(log)
            })?;
            log.push_str(&format!(
                "cleared {} ({removed} files; kept {} tracked)\n",
                cache.display(),
                keep.len()
            ));
        }
        Some(Layout::Modern) => {
            let composer = config.jobs.composer.as_str();
            for (program, args) in [
                (composer, &["install", "--no-dev", "-n", "-o"][..]),
                ("./bin/cake", &["cache", "clear_all"][..]),
            ] {
                let line = format!("{program} {}", args.join(" "));
                let out = run_logged(runner, program, args, root, log).await?;
                if !out.success() {
                    return Err(
                        OpError::new(format!("{line} failed ({})", out.exit_text())).with_log(log)
                    );
                }
            }
        }
        None => {
            return Err(OpError::new(format!(
                "no passbolt version file under {} after the checkout",
                root.display()
            ))
            .with_log(log))
        }
    }
    Ok(())
}

/// The v1 cache directory, relative to the root.
const V1_CACHE: &str = "app/tmp/cache";

/// Removes the files under `dir` but those in `keep` (the placeholders git tracks there, so
/// the tree stays as clean as git left it), keeping the directories CakePHP expects; a
/// missing `dir` has nothing to clear.
fn clear_files(dir: &Path, keep: &HashSet<PathBuf>) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            removed += clear_files(&entry.path(), keep)?;
        } else if !keep.contains(&entry.path()) {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_lines_read_the_diff_backwards() {
        let lines: Vec<String> = "M\tapp/Config/app.php.default\nD\tapp/Config/passbolt.php.default\nA\tapp/Config/old.php.default\nR100\tconfig/a.php.default\tconfig/b.php.default\n"
            .lines()
            .filter_map(review_line)
            .collect();
        assert_eq!(
            lines,
            [
                "changed app/Config/app.php.default",
                "added app/Config/passbolt.php.default",
                "removed app/Config/old.php.default",
                "renamed config/b.php.default to config/a.php.default",
            ]
        );
    }

    #[test]
    fn cache_clear_keeps_directories_and_tracked_placeholders() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        std::fs::create_dir_all(cache.join("models")).unwrap();
        std::fs::write(cache.join("models/x"), "1").unwrap();
        std::fs::write(cache.join("models/empty"), "").unwrap();
        std::fs::write(cache.join("y"), "1").unwrap();
        let keep = HashSet::from([cache.join("models/empty")]);
        assert_eq!(clear_files(&cache, &keep).unwrap(), 2);
        assert!(cache.join("models").is_dir());
        assert!(cache.join("models/empty").is_file());
        assert!(!cache.join("models/x").exists() && !cache.join("y").exists());
        assert_eq!(clear_files(&dir.path().join("missing"), &keep).unwrap(), 0);
    }
}
