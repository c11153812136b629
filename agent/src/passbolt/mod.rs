//! The passbolt toolkit that both the inventory and the jobs use: where a tree keeps its
//! version ([`version_file`]), what its migration status says ([`migrations`]), its health
//! checks run and read ([`checks`], [`healthcheck`], [`http`]), which tags are releases
//! ([`git`]), and which `git status` lines are the install's own runtime state
//! ([`worktree`]). Pure parsers and rules, plus the two health checks, run through `exec`.

pub mod checks;
pub mod git;
pub mod healthcheck;
pub mod http;
pub mod migrations;
pub mod version_file;
pub mod worktree;
