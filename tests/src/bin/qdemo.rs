//! qdemo: the README's first command. Builds a damaged practice queue in a
//! temporary directory and runs the tools on it, showing each command and
//! what it printed: the state of a queue after a bad day, the check, the
//! repair, the check again, the counts, the bounce clean-up.

use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use qtests::practice::{check_removal, contents, null_sender_contents, salvaged_contents};
use qtests::{apply_damage, build_queue, BuildSpec, Damage};

/// Build a damaged practice queue and run qstat, qfixq and qkillns on it.
#[derive(Debug, Parser)]
struct Args {
    /// Messages in the practice queue.
    #[arg(long, default_value_t = 300)]
    messages: usize,
    /// Keep the practice queue (its path is printed) instead of removing it.
    #[arg(long)]
    keep: bool,
    /// Lines of each tool's output to show.
    #[arg(long, default_value_t = 25)]
    lines: usize,
}

fn tool(name: &str) -> PathBuf {
    let me = std::env::current_exe().expect("own path");
    me.parent().expect("directory of the binary").join(name)
}

/// What a step printed.
struct Shown {
    code: i32,
    out: String,
}

fn show(title: &str, bin: &str, args: &[&str], lines: usize) -> anyhow::Result<Shown> {
    println!("\n== {title}\n$ {bin} {}", args.join(" "));
    let out = Command::new(tool(bin)).args(args).output().map_err(|e| {
        anyhow::anyhow!(
            "cannot run {}: {e} (build the workspace first: cargo build --release --workspace)",
            tool(bin).display()
        )
    })?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let all: Vec<&str> = text.lines().collect();
    for l in all.iter().take(lines) {
        println!("{l}");
    }
    if all.len() > lines {
        println!("... ({} more lines)", all.len() - lines);
        if let Some(last) = all.last() {
            println!("{last}");
        }
    }
    let err = String::from_utf8_lossy(&out.stderr);
    for l in err.lines().take(lines) {
        println!("(stderr) {l}");
    }
    let code = out.status.code().unwrap_or(-1);
    println!("[exit status {code}]");
    Ok(Shown { code, out: text })
}

/// The steps that did not give what they must.
#[derive(Default)]
struct Verdict {
    failed: Vec<String>,
}

impl Verdict {
    fn exit(&mut self, step: &str, shown: &Shown, want: i32) {
        if shown.code != want {
            self.fail(step, format!("exit status {}, expected {want}", shown.code));
        }
    }

    fn line(&mut self, step: &str, shown: &Shown, want: &str) {
        if !shown.out.lines().any(|l| l == want) {
            self.fail(step, format!("no line {want:?} in its output"));
        }
    }

    fn starts(&mut self, step: &str, shown: &Shown, want: &str) {
        if !shown.out.lines().any(|l| l.starts_with(want)) {
            self.fail(step, format!("no line starting {want:?} in its output"));
        }
    }

    fn fail(&mut self, step: &str, what: String) {
        println!("[STEP FAILED: {step}: {what}]");
        self.failed.push(format!("{step}: {what}"));
    }
}

fn main() -> std::process::ExitCode {
    match demo() {
        Ok(v) if v.failed.is_empty() => std::process::ExitCode::SUCCESS,
        Ok(v) => {
            eprintln!("qdemo: {} step(s) did not give what they must:", v.failed.len());
            for f in &v.failed {
                eprintln!("qdemo: {f}");
            }
            std::process::ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("qdemo: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

fn demo() -> anyhow::Result<Verdict> {
    let a = Args::parse();
    let dir = tempfile::Builder::new().prefix("qdemo-").tempdir()?;
    let base = dir.path().to_path_buf();
    let queue = base.join("queue");
    let ids = format!("{0}:{0}:{0}:{1}", nix::unistd::geteuid(), nix::unistd::getegid());
    println!("Building a practice queue of {} messages in {}", a.messages, queue.display());
    let spec = BuildSpec { messages: a.messages, null_sender: 0.2, keep_manifest: true, ..Default::default() };
    let built = build_queue(&queue, &spec)?;
    let bounces = null_sender_contents(&queue)?;
    let outside = base.join("outside");
    std::fs::create_dir_all(&outside)?;
    let damages = [
        Damage::CopiedToOtherFs,
        Damage::GarbledInfo,
        Damage::TruncatedRemote,
        Damage::StrayNames,
        Damage::PidLeftovers,
        Damage::MissingLockFiles,
        Damage::S2Leftover,
        Damage::SymlinkTrap,
    ];
    for (i, d) in damages.iter().enumerate() {
        apply_damage(&built, *d, 7 + i as u64, &outside)?;
        println!("damaged it: {}", d.description());
    }
    let q = queue.to_str().expect("temporary paths are UTF-8");
    // The practice queue's own layout for every tool: nothing is learnt
    // from a qmail installed on this host.
    let split = spec.split.to_string();
    let common = ["--queue", q, "--split", &split, "--ids", &ids];
    let with = |extra: &[&str]| -> Vec<String> {
        common.iter().map(|s| s.to_string()).chain(extra.iter().map(|s| s.to_string())).collect()
    };
    let run = |title: &str, bin: &str, args: Vec<String>| -> anyhow::Result<Shown> {
        let v: Vec<&str> = args.iter().map(String::as_str).collect();
        show(title, bin, &v, a.lines)
    };
    let mut v = Verdict::default();
    let s = run("How many messages? (qmail-qstat's two lines)", "qstat", with(&[]))?;
    v.exit("qstat", &s, 0);
    let s = run("Check the queue (read only: prints the repair plan, grouped by kind)", "qfixq", with(&[]))?;
    v.exit("qfixq (check)", &s, 4);
    let s = run("Repair it (qmail-send must be stopped; qfixq holds its lock)", "qfixq", with(&["live", "-q"]))?;
    v.exit("qfixq live", &s, 1);
    let s = run("Check again: it must find nothing", "qfixq", with(&["-q"]))?;
    v.exit("qfixq (check again)", &s, 0);
    v.line("qfixq (check again)", &s, "summary: no problems found");

    let repaired = contents(&queue)?;
    let salvaged = salvaged_contents(&queue, spec.split)?;
    let in_queue = |k: &u64| repaired.contains_key(k);
    let want_bounces: usize =
        repaired.iter().filter(|(k, _)| bounces.contains(k) && !salvaged.contains(k)).map(|(_, n)| n).sum();
    let want_salvaged = salvaged.iter().filter(|k| in_queue(k)).count();

    let s = run("What is in the queue now", "qstat", with(&["--detail"]))?;
    v.exit("qstat --detail", &s, 0);
    v.line(
        "qstat --detail",
        &s,
        &format!("salvaged messages (sender lost; qfixq wrote the null sender, not bounces): {want_salvaged}"),
    );
    let s = run("Which null-sender messages would go (dry run)", "qkillns", with(&["-n"]))?;
    v.exit("qkillns -n", &s, 0);
    let total: usize = repaired.values().sum();
    v.starts("qkillns -n", &s, &format!("would remove {want_bounces} message(s), "));
    if want_salvaged > 0 {
        v.starts("qkillns -n", &s, &format!("kept {want_salvaged} salvaged message(s): "));
    }
    let s = run("Remove them", "qkillns", with(&["-q"]))?;
    v.exit("qkillns", &s, 0);
    let after = contents(&queue)?;
    match check_removal(&bounces, &salvaged, &repaired, &after) {
        Ok(r) => println!(
            "\nChecked by content: the {} real bounces are gone; the {} salvaged messages (sender lost in the damage) \
             and every other message are still queued ({} messages).",
            r.bounces_removed, r.salvaged_kept, r.left
        ),
        Err(e) => v.fail("qkillns", format!("did not remove exactly the real bounces:\n{e}")),
    }
    let s = run("Counts after the clean-up", "qstat", with(&[]))?;
    v.exit("qstat (after)", &s, 0);
    v.line("qstat (after)", &s, &format!("messages in queue: {}", total - want_bounces));
    let lf = queue.join("lost+found");
    println!(
        "\nqfixq set aside what could not be saved in {} (a reason file beside each); qkillns deleted {want_bounces} \
         bounces and kept {want_salvaged} salvaged messages (recorded in lost+found/salvaged).",
        lf.display()
    );
    if a.keep {
        let kept = dir.keep();
        println!("Practice queue kept in {}", kept.join("queue").display());
    } else {
        println!("Practice queue removed (use --keep to keep it).");
    }
    if v.failed.is_empty() {
        println!("Every step gave what it must.");
    }
    Ok(v)
}
