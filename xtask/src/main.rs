//! Project tasks that generate files from vansite's clap definitions:
//!
//! ```text
//! cargo run -p xtask -- man [DIR]            man pages (default: man/, checked in)
//! cargo run -p xtask -- completions DIR      bash, zsh and fish completion scripts
//! ```
//!
//! The man pages cover vansite and every subcommand, so a new command is documented by
//! regenerating; a test fails while man/ differs from what the code generates.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;
use vansite::cli::args::write_completion;
use vansite::cli::Cli;
use vansite::error::exit_codes;

/// The command that rewrites man/, for messages.
pub const REGENERATE: &str = "cargo run -p xtask -- man";

/// The shells packages ship completions for, with the file name each shell looks for.
const COMPLETIONS: [(Shell, &str); 3] = [
    (Shell::Bash, "vansite"),
    (Shell::Zsh, "_vansite"),
    (Shell::Fish, "vansite.fish"),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["man"] => write_man_pages(&repo_root().join("man")),
        ["man", dir] => write_man_pages(Path::new(dir)),
        ["completions", dir] => write_completions(Path::new(dir)),
        _ => Err(format!(
            "usage: {REGENERATE} [DIR] | cargo run -p xtask -- completions DIR"
        )),
    };
    match result {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ is inside the repository")
        .to_path_buf()
}

/// Every man page, as (file name, roff text): `vansite.1`, then `vansite-<sub>.1` for each
/// subcommand at every depth (`vansite-link-create.1`), hidden ones left out.
pub fn man_pages() -> Vec<(String, String)> {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let mut pages = Vec::new();
    collect_pages(&command, &mut pages);
    pages
}

fn collect_pages(command: &clap::Command, pages: &mut Vec<(String, String)>) {
    let version = Cli::command().get_version().unwrap_or_default().to_string();
    let man = clap_mangen::Man::new(command.clone()).source(format!("vansite {version}"));
    let mut roff = Vec::new();
    render_page(&man, command, &mut roff).expect("rendering into memory");
    pages.push((
        man.get_filename(),
        String::from_utf8(roff).expect("roff is UTF-8"),
    ));
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect_pages(sub, pages);
    }
}

/// clap_mangen's sections, with EXIT STATUS from vansite's one list of exit codes (the top
/// command's after-help says the same in one line, so it is not repeated as EXTRA).
fn render_page(
    man: &clap_mangen::Man,
    command: &clap::Command,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    if command.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(out)?;
    }
    if command.has_subcommands() {
        man.render_subcommands_section(out)?;
    }
    let after_help = command.get_after_help().map(|h| h.to_string());
    if after_help.is_some_and(|text| text != vansite::error::exit_status_text()) {
        man.render_extra_section(out)?;
    }
    out.extend_from_slice(b".SH \"EXIT STATUS\"\n");
    for (code, meaning) in exit_codes() {
        out.extend_from_slice(format!(".TP\n{code}\n{}\n", roff_text(meaning)).as_bytes());
    }
    if command.get_version().is_some() {
        man.render_version_section(out)?;
    }
    Ok(())
}

/// Text safe on a roff line: no leading control character, backslashes escaped.
fn roff_text(text: &str) -> String {
    let text = text.replace('\\', "\\e");
    if text.starts_with(['.', '\'']) {
        format!("\\&{text}")
    } else {
        text
    }
}

fn write_man_pages(dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // Pages of commands that no longer exist go too (only vansite's pages are touched).
    let stale = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .flatten()
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            (name == "vansite.1" || name.starts_with("vansite-")) && name.ends_with(".1")
        })
        .map(|entry| entry.path());
    for path in stale {
        std::fs::remove_file(&path)
            .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
    }
    man_pages()
        .into_iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            std::fs::write(&path, text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(path)
        })
        .collect()
}

fn write_completions(dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    COMPLETIONS
        .iter()
        .map(|(shell, name)| {
            let path = dir.join(name);
            let mut script = Vec::new();
            write_completion(*shell, &mut script);
            std::fs::write(&path, script)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// man/ is what the code generates: regenerate into a temporary directory and compare.
    #[test]
    fn man_pages_are_in_sync() {
        let dir = std::env::temp_dir().join(format!("vansite-man-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write_man_pages(&dir).unwrap();
        let listing = |dir: &Path| -> Vec<(String, String)> {
            let mut pages: Vec<(String, String)> = std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .map(|e| {
                            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                            (e.file_name().to_string_lossy().into_owned(), text)
                        })
                        .collect()
                })
                .unwrap_or_default();
            pages.sort();
            pages
        };
        let generated = listing(&dir);
        let checked_in = listing(&repo_root().join("man"));
        std::fs::remove_dir_all(&dir).unwrap();
        let names = |pages: &[(String, String)]| -> Vec<String> {
            pages.iter().map(|(name, _)| name.clone()).collect()
        };
        assert_eq!(
            names(&checked_in),
            names(&generated),
            "man/ has other pages than the commands: run {REGENERATE}"
        );
        for ((name, expected), (_, actual)) in checked_in.iter().zip(&generated) {
            assert!(
                expected == actual,
                "man/{name} differs from the clap definitions: run {REGENERATE}"
            );
        }
    }

    #[test]
    fn every_command_has_a_page_with_exit_status() {
        let pages = man_pages();
        let names: Vec<&str> = pages.iter().map(|(name, _)| name.as_str()).collect();
        for expected in ["vansite.1", "vansite-init.1", "vansite-doctor.1"] {
            assert!(names.contains(&expected), "{names:?}");
        }
        for (name, text) in &pages {
            assert!(text.contains(".SH \"EXIT STATUS\""), "{name}");
            assert!(text.contains("bad usage"), "{name}");
        }
    }

    #[test]
    fn completions_for_three_shells() {
        let dir = std::env::temp_dir().join(format!("vansite-completions-{}", std::process::id()));
        let written = write_completions(&dir).unwrap();
        assert_eq!(written.len(), 3);
        let bash = std::fs::read_to_string(dir.join("vansite")).unwrap();
        assert!(bash.contains("doctor"), "{bash}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
