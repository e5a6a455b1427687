//! The command line itself: help on every command, usage errors, and refusing root.

use std::process::Command;

use clap::CommandFactory;
use vansite::cli::Cli;

const VANSITE: &str = env!("CARGO_BIN_EXE_vansite");

/// Every command path, e.g. ["init"], ["link", "create"].
fn command_paths(command: &clap::Command, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let mut path = prefix.clone();
        path.push(sub.get_name().to_string());
        out.push(path.clone());
        command_paths(sub, path, out);
    }
}

#[test]
fn every_command_has_help() {
    let mut paths = Vec::new();
    command_paths(&Cli::command(), Vec::new(), &mut paths);
    assert!(paths.len() >= 3, "{paths:?}");
    for path in paths {
        let output = Command::new(VANSITE)
            .args(&path)
            .arg("--help")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{path:?} --help: {output:?}");
        assert!(text.contains("Usage: vansite"), "{path:?} --help:\n{text}");
    }
}

#[test]
fn bad_usage_exits_2_and_root_is_refused() {
    let output = Command::new(VANSITE)
        .args(["init", "--router-mode", "spoke"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("interior"));
    if rustix::process::geteuid().is_root() {
        let output = Command::new(VANSITE).arg("status").output().unwrap();
        assert_eq!(output.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("rootless"),
            "{output:?}"
        );
    }
}
