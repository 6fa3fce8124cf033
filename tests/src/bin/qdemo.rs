//! qdemo: the README's first command. Builds a damaged practice queue in a
//! temporary directory and runs the tools on it, showing each command and
//! what it printed: the state of a queue after a bad day, the check, the
//! repair, the check again, the counts, the bounce clean-up.

use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
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

fn show(title: &str, bin: &str, args: &[&str], lines: usize) -> anyhow::Result<i32> {
    println!("\n== {title}\n$ {bin} {}", args.join(" "));
    let out = Command::new(tool(bin)).args(args).output().map_err(|e| {
        anyhow::anyhow!(
            "cannot run {}: {e} (build the workspace first: cargo build --release --workspace)",
            tool(bin).display()
        )
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
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
    Ok(code)
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let dir = tempfile::Builder::new().prefix("qdemo-").tempdir()?;
    let base = dir.path().to_path_buf();
    let queue = base.join("queue");
    let ids = format!("{0}:{0}:{0}:{1}", nix::unistd::geteuid(), nix::unistd::getegid());
    println!("Building a practice queue of {} messages in {}", a.messages, queue.display());
    let spec = BuildSpec { messages: a.messages, null_sender: 0.2, keep_manifest: true, ..Default::default() };
    let built = build_queue(&queue, &spec)?;
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
    let common = ["--queue", q, "--ids", &ids];
    let with = |extra: &[&'static str]| -> Vec<String> {
        common.iter().map(|s| s.to_string()).chain(extra.iter().map(|s| s.to_string())).collect()
    };
    let run = |title: &str, bin: &str, args: Vec<String>| -> anyhow::Result<i32> {
        let v: Vec<&str> = args.iter().map(String::as_str).collect();
        show(title, bin, &v, a.lines)
    };
    run("How many messages? (qmail-qstat's two lines)", "qstat", vec!["--queue".into(), q.into()])?;
    run("Check the queue (read only: prints the exact repair plan)", "qfixq", with(&[]))?;
    run("Repair it (qmail-send must be stopped; qfixq holds its lock)", "qfixq", with(&["live", "-q"]))?;
    run("Check again: it must find nothing", "qfixq", with(&[]))?;
    run("What is in the queue now", "qstat", vec!["--queue".into(), q.into(), "--detail".into()])?;
    run("Which null-sender messages would go (dry run)", "qkillns", vec!["--queue".into(), q.into(), "-n".into()])?;
    run("Remove them", "qkillns", vec!["--queue".into(), q.into(), "-q".into()])?;
    run("Counts after the clean-up", "qstat", vec!["--queue".into(), q.into()])?;
    let lf = queue.join("lost+found");
    println!(
        "\nWhat could not be saved is in {} (qfixq moves mail, it never deletes it; only qkillns deleted the bounces).",
        lf.display()
    );
    if a.keep {
        let kept = dir.keep();
        println!("Practice queue kept in {}", kept.join("queue").display());
    } else {
        println!("Practice queue removed (use --keep to keep it).");
    }
    Ok(())
}
