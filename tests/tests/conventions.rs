//! Conventions an administrator meets first: `--help` shows the defaults,
//! the committed man pages carry no Markdown marks and give qfixq's mode
//! words a section of their own, and the README says how long the two
//! first-step commands take. Through the real binaries and files.

use std::path::Path;

use qtests::prelude::cross::*;

fn repo(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// The help text of `option` in `--help` (its line and the lines under it).
fn option_help(help: &str, option: &str) -> String {
    let lines: Vec<&str> = help.lines().collect();
    let i = lines
        .iter()
        .position(|l| {
            // An option's own line: indented a little (help text is indented more).
            let indent = l.len() - l.trim_start().len();
            (2..8).contains(&indent) && (l.trim_start().starts_with(option) || l.contains(&format!(", {option}")))
        })
        .unwrap_or_else(|| panic!("{option} in:\n{help}"));
    // Up to the next option (clap puts a long help's default after a blank line).
    lines[i + 1..]
        .iter()
        .take_while(|l| {
            let option_line = l.len() - l.trim_start().len() < 8 && l.trim_start().starts_with('-');
            let heading = l.ends_with(':');
            !(option_line || heading)
        })
        .flat_map(|l| l.split_whitespace())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn help_shows_the_defaults() {
    for tool in ["qfixq", "qstat", "qkillns"] {
        let run = cmd(tool).arg("--help").run();
        run.expect(0);
        let help = run.out();
        assert!(option_help(&help, "--qmail-home").contains("[default: /var/qmail]"), "{tool}:\n{help}");
        assert!(option_help(&help, "--threads").contains("[default: "), "{tool}:\n{help}");
        assert!(option_help(&help, "--queue ").contains("default: QMAIL_HOME/queue"), "{tool}:\n{help}");
    }
    let run = cmd("qstat").arg("--help").run();
    assert!(option_help(&run.out(), "--prometheus").contains("[default: standard output]"), "{}", run.out());
    assert!(option_help(&run.out(), "--queue-name").contains("default: the queue's path"), "{}", run.out());
}

#[test]
fn man_pages_are_plain_and_modes_have_their_section() {
    for tool in ["qfixq", "qstat", "qkillns"] {
        let page = repo(&format!("docs/man/{tool}.8"));
        assert!(!page.contains('`'), "{tool}.8 shows Markdown code marks");
        assert!(page.contains("\\fB\\-\\-qmail\\-home\\fR"), "{tool}.8");
    }
    let page = repo("docs/man/qfixq.8");
    let at = |s: &str| page.find(s).unwrap_or_else(|| panic!("{s} in qfixq.8"));
    assert!(at(".SH DESCRIPTION") < at(".SH MODES") && at(".SH MODES") < at(".SH OPTIONS"));
    let options = &page[at(".SH OPTIONS")..at(".SH \"EXIT STATUS\"")];
    assert!(!options.contains("MODE"), "mode words under OPTIONS:\n{options}");
    let modes = &page[at(".SH MODES")..at(".SH OPTIONS")];
    assert!(modes.contains("\\fBlive\\fR") && modes.contains("\\fBlive empty\\fR"), "{modes}");
}

#[test]
fn readme_gives_the_times_of_the_first_steps() {
    let readme = repo("README.md");
    let first = &readme[readme.find("## First steps").expect("First steps")..];
    let first = &first[..first[3..].find("\n## ").map_or(first.len(), |i| i + 3)];
    for command in ["cargo build --release --workspace && target/release/qdemo", "cargo test --workspace"] {
        let at = first.find(command).unwrap_or_else(|| panic!("{command} in First steps"));
        let after = &first[at..];
        let para = &after[..after[command.len()..].find("\n    ").map_or(after.len(), |i| i + command.len())];
        assert!(para.contains(" min "), "no time after {command:?}:\n{para}");
    }
    assert!(first.contains("debug"), "the tests build in debug mode: said");
}
