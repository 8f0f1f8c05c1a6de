//! The operations guide's commands are ones that work: every command line in its `sh` blocks
//! names a binary or script of this repository (or kubectl with a path that exists), and every
//! subcommand and flag it uses is one the binary's `--help` lists.

use crate::deploy::repo;
use ledgerline_testkit::workspace_binary;
use std::process::Command;

const BINARIES: [&str; 7] = [
    "ledgerline",
    "normalizer",
    "reconciler",
    "webhook-ingest",
    "xero-writer",
    "dead-letter",
    "xero-sandbox",
];

fn help(bin: &str, sub: Option<&str>) -> String {
    let mut cmd = Command::new(workspace_binary(bin));
    if let Some(s) = sub {
        cmd.arg(s);
    }
    let out = cmd.arg("--help").output().unwrap();
    assert!(out.status.success(), "{bin} {sub:?} --help");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_command_in_the_operations_guide_is_one_that_works() {
    let text = std::fs::read_to_string(repo("docs/operations.md")).unwrap();
    let mut in_block = false;
    let mut checked = 0;
    for line in text.lines() {
        if line.starts_with("```") {
            in_block = line == "```sh";
            continue;
        }
        if !in_block || line.trim().is_empty() {
            continue;
        }
        let command = line.split('#').next().unwrap().split('>').next().unwrap();
        let words: Vec<&str> = command.split_whitespace().collect();
        let bin = words[0];
        if bin == "kubectl" {
            let path = words.iter().find(|w| w.starts_with("deploy/")).unwrap();
            assert!(repo(path).exists(), "{line}: {path} exists");
            checked += 1;
            continue;
        }
        assert!(BINARIES.contains(&bin), "{line}: {bin} is not one of ours");
        let top = help(bin, None);
        let sub = words.get(1).filter(|w| !w.starts_with('-')).copied();
        if let Some(s) = sub {
            assert!(
                top.contains(&format!("\n  {s} ")),
                "{line}: {bin} has no subcommand {s}"
            );
        }
        let h = help(bin, sub);
        for flag in words.iter().filter(|w| w.starts_with("--")) {
            // The whole flag: `--out` is not `--output`.
            let listed = h
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .any(|w| w == *flag);
            assert!(
                listed,
                "{line}: `{bin} {}` has no {flag}",
                sub.unwrap_or("")
            );
        }
        checked += 1;
    }
    assert!(checked >= 10, "{checked} commands checked");
}
