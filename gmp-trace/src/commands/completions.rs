//! The whole command line as one clap tree, for what is generated from it: shell completions
//! (`gmp-trace completions SHELL`) and the man pages (the hidden `gmp-trace man DIR`, run by
//! `cargo xtask dist`). main.rs dispatches subcommands by their first word and parses each
//! with its own Args; [`SUBCOMMANDS`] lists them once more for the tree, so a new command is
//! one line there.
use std::path::PathBuf;

use clap::{CommandFactory, Parser};
use clap_complete::Shell;

/// A subcommand's first word and its parser's clap command.
type Subcommand = (&'static str, fn() -> clap::Command);

/// Every subcommand main.rs dispatches; `trace` is the top level (cli::Args).
pub const SUBCOMMANDS: &[Subcommand] = &[
    ("replay", crate::cli::ReplayArgs::command),
    ("compare", crate::compare::CompareArgs::command),
    ("dump", super::dump::DumpArgs::command),
    ("profile", super::profile::ProfileArgs::command),
    ("top", super::top::TopArgs::command),
    ("serve", super::serve::ServeArgs::command),
    ("doctor", super::doctor::DoctorArgs::command),
    ("completions", CompletionsArgs::command),
];

/// The top-level command (the tracer's options) with every subcommand under its word.
pub fn command_tree() -> clap::Command {
    SUBCOMMANDS
        .iter()
        .fold(crate::cli::Args::command(), |root, (word, cmd)| {
            // The subcommands name themselves `gmp-trace WORD` for their own --help.
            root.subcommand(cmd().name(*word).bin_name(format!("gmp-trace {word}")))
        })
        // `gmp-trace help` is not dispatched: no `help` subcommand to complete or document.
        .disable_help_subcommand(true)
}

/// Print a shell completion script for gmp-trace and its subcommands.
#[derive(Parser, Debug)]
#[command(name = "gmp-trace completions")]
#[command(
    after_help = "Install:\n  bash: gmp-trace completions bash > /usr/share/bash-completion/completions/gmp-trace\n  zsh:  gmp-trace completions zsh > /usr/share/zsh/vendor-completions/_gmp-trace\n  fish: gmp-trace completions fish > ~/.config/fish/completions/gmp-trace.fish"
)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: CompletionsArgs) -> anyhow::Result<i32> {
    let mut tree = command_tree();
    clap_complete::generate(args.shell, &mut tree, "gmp-trace", &mut std::io::stdout());
    Ok(0)
}

/// Write the man pages (one per command: gmp-trace.1, gmp-trace-WORD.1) into a folder.
#[derive(Parser, Debug)]
#[command(name = "gmp-trace man", hide = true)]
pub struct ManArgs {
    /// The folder to write them into (created).
    pub dir: PathBuf,
}

/// The pages `man` writes: (file name, roff), the top level first.
pub fn man_pages() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut tree = command_tree();
    tree.build();
    let date = env!("GMP_TRACE_BUILD_DATE");
    let source = format!("gmp-trace {}", env!("CARGO_PKG_VERSION"));
    let page = |cmd: clap::Command| -> anyhow::Result<(String, Vec<u8>)> {
        let man = clap_mangen::Man::new(cmd)
            .date(date)
            .source(source.clone())
            .manual("gmp-trace manual");
        let mut roff = Vec::new();
        man.render(&mut roff)?;
        Ok((man.get_filename(), roff))
    };
    let mut pages = vec![page(tree.clone())?];
    for sub in tree.get_subcommands() {
        pages.push(page(sub.clone())?);
    }
    Ok(pages)
}

pub fn man(args: ManArgs) -> anyhow::Result<i32> {
    std::fs::create_dir_all(&args.dir)?;
    for (name, roff) in man_pages()? {
        let path = args.dir.join(&name);
        std::fs::write(&path, roff)?;
        println!("{}", path.display());
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_has_every_dispatched_subcommand() {
        let tree = command_tree();
        tree.clone().debug_assert();
        let mut words: Vec<&str> = tree.get_subcommands().map(|c| c.get_name()).collect();
        // Every first word main.rs dispatches (`"word" =>`), but the hidden `man` and the
        // `--version` report, which are not commands to complete or document.
        let mut dispatched: Vec<&str> = include_str!("../main.rs")
            .lines()
            .filter_map(|l| l.trim().strip_prefix('"')?.split_once("\" =>"))
            .map(|(w, _)| w)
            .filter(|w| !["man", "--version"].contains(w))
            .collect();
        words.sort_unstable();
        dispatched.sort_unstable();
        assert!(dispatched.len() >= 8, "{dispatched:?}");
        assert_eq!(words, dispatched);
        assert!(tree.get_arguments().any(|a| a.get_id() == "pid"));
    }

    #[test]
    fn one_man_page_per_command() {
        let pages = man_pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[0], "gmp-trace.1");
        for (word, _) in SUBCOMMANDS {
            assert!(
                names.contains(&format!("gmp-trace-{word}.1").as_str()),
                "{names:?}"
            );
        }
        let top = String::from_utf8_lossy(&pages[0].1);
        assert!(
            top.contains("\\-\\-pid"),
            "the trace options are documented"
        );
        assert!(top.contains(env!("GMP_TRACE_BUILD_DATE")));
        let dump = &pages
            .iter()
            .find(|(n, _)| n == "gmp-trace-dump.1")
            .unwrap()
            .1;
        assert!(String::from_utf8_lossy(dump).contains(".TH gmp-trace-dump 1"));
    }

    #[test]
    fn completions_name_the_subcommands() {
        let mut out = Vec::new();
        clap_complete::generate(Shell::Bash, &mut command_tree(), "gmp-trace", &mut out);
        let bash = String::from_utf8(out).unwrap();
        assert!(
            bash.contains("complete -F _gmp__trace"),
            "registers the function"
        );
        for word in ["replay", "doctor", "--pid", "--uprobe-links"] {
            assert!(bash.contains(word), "{word}");
        }
    }
}
