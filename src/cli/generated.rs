//! Text generated from the command line's own definition, so it cannot fall behind it: shell
//! completion scripts and man pages.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;
use super::output::{self, out};

/// The completion script for `shell`.
pub fn completion_script(shell: Shell) -> Vec<u8> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "keytop", &mut script);
    script
}

/// The command line as the man pages describe it: `keytop help` is left out, `--help` is there.
fn documented_command() -> clap::Command {
    Cli::command().disable_help_subcommand(true)
}

/// The man page of keytop itself (its SUBCOMMANDS section lists every command).
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(documented_command()).render(&mut page)?;
    Ok(page)
}

/// Writes keytop.1 and a page per subcommand at every depth (keytop-keys-create.1, …) into
/// `dir`, and returns the files written.
pub fn write_man_pages(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    // Building fills in each subcommand's display name ("keytop-keys-create"), which names its page.
    let mut root = documented_command();
    root.build();
    let mut written = Vec::new();
    let mut pending = vec![root];
    while let Some(command) = pending.pop() {
        pending.extend(command.get_subcommands().filter(|sub| !sub.is_hide_set()).cloned());
        written.push(clap_mangen::Man::new(command).generate_to(dir)?);
    }
    written.sort();
    Ok(written)
}

pub fn print_completions(shell: Shell) {
    output::write_raw(&completion_script(shell));
}

pub fn print_man(dir: Option<&Path>) -> anyhow::Result<()> {
    match dir {
        None => output::write_raw(&man_page()?),
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let written =
                write_man_pages(dir).with_context(|| format!("cannot write man pages into {}", dir.display()))?;
            out!("wrote {} man pages into {}", written.len(), dir.display());
        }
    }
    Ok(())
}
