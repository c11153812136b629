//! `cargo run -p xtask -- dist DIR`: the man pages of the three binaries and the shell
//! completions of `boltfleet`, rendered from the same clap definitions the binaries parse.
//!
//! Generated here rather than by a hidden subcommand so that no shipped binary links
//! clap_mangen; the agent in particular stays as small as it is.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [task, dir] if task == "dist" => dist(Path::new(dir)),
        _ => bail!("usage: cargo run -p xtask -- dist DIR"),
    }
}

/// Writes `DIR/man/agent/*.1`, `DIR/man/controller/*.1` (the pages of each package, gzipped
/// by `scripts/package.sh`) and `DIR/completions/{boltfleet.bash,_boltfleet,boltfleet.fish}`.
fn dist(dir: &Path) -> Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    for d in [&man.join("agent"), &man.join("controller"), &completions] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let commands = [
        ("controller", boltfleet_controller::cli::Cli::command()),
        ("controller", boltfleet_controller::command::Cli::command()),
        ("agent", boltfleet_agent::cli::Cli::command()),
    ];
    for (package, command) in commands {
        let man = man.join(package);
        // One page per binary and one per subcommand (`man boltfleet-rollout-start`).
        let name = command.get_name().to_string();
        clap_mangen::generate_to(command, &man).with_context(|| {
            format!("cannot write the man pages of {name} to {}", man.display())
        })?;
    }
    for (shell, name) in [
        (Shell::Bash, "boltfleet.bash"),
        (Shell::Zsh, "_boltfleet"),
        (Shell::Fish, "boltfleet.fish"),
    ] {
        let script = boltfleet_controller::cli::completions(shell);
        write(&completions.join(name), script.as_bytes())?;
    }
    Ok(())
}

fn write(path: &PathBuf, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}
