//! `qbuild`: builds a practice qmail queue at `DIR/queue`, optionally
//! damages it, and prints what it made.
//!
//! ```text
//! qbuild --out DIR [--messages N] [--split N] [--big-todo] [--seed S]
//!        [--null-sender F] [--ids Q:S:R:G] [--damage NAME]... [--outside DIR]
//!        [--list-damages] [--force]
//! ```

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use qcommon::queue::{Ids, DEFAULT_SPLIT};
use qtests::{apply_damage, build_queue, BuildSpec, Damage, DamageReport, StateMix};

/// Build a practice qmail queue (healthy, or damaged on purpose).
#[derive(Debug, Parser)]
#[command(name = "qbuild", version)]
struct Args {
    /// Directory to build in; the queue is DIR/queue.
    #[arg(long, value_name = "DIR", required_unless_present = "list_damages")]
    out: Option<PathBuf>,
    /// Number of messages.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    messages: usize,
    /// conf-split: number of buckets.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SPLIT)]
    split: u32,
    /// Split todo/ and intd/ like mess/ (the big-todo patch).
    #[arg(long)]
    big_todo: bool,
    /// Seed: the same seed gives the same contents and states.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// Fraction of null-sender (bounce) messages.
    #[arg(long, value_name = "F", default_value_t = 0.05)]
    null_sender: f64,
    /// Fraction of double bounces (sender #@[]).
    #[arg(long, value_name = "F", default_value_t = 0.01)]
    double_bounce: f64,
    /// Fraction of large (100-300 KB) messages.
    #[arg(long, value_name = "F", default_value_t = 0.001)]
    large: f64,
    /// Fraction of messages not yet preprocessed (todo stage).
    #[arg(long, value_name = "F")]
    todo_stage: Option<f64>,
    /// Reference time for birth times (seconds since the epoch; default now).
    #[arg(long, value_name = "SECONDS")]
    now: Option<i64>,
    /// qmail's ids (uids of qmailq, qmails, qmailr and gid of qmail): chown
    /// everything to them (only when running as root).
    #[arg(long, value_name = "Q:S:R:G", value_parser = parse_ids)]
    ids: Option<Ids>,
    /// Damage to apply after building (repeatable; see --list-damages).
    #[arg(long = "damage", value_name = "NAME", value_parser = parse_damage)]
    damages: Vec<Damage>,
    /// Where trap damages put their canaries (default DIR/outside).
    #[arg(long, value_name = "DIR")]
    outside: Option<PathBuf>,
    /// List the damage names and exit.
    #[arg(long)]
    list_damages: bool,
    /// Remove an existing DIR/queue (and the default DIR/outside) first.
    #[arg(long)]
    force: bool,
}

fn parse_ids(s: &str) -> Result<Ids, String> {
    let v: Vec<u32> =
        s.split(':').map(|x| x.parse::<u32>().map_err(|e| format!("{x:?}: {e}"))).collect::<Result<_, _>>()?;
    match v[..] {
        [qmailq, qmails, qmailr, qmail_gid] => Ok(Ids { qmailq, qmails, qmailr, qmail_gid }),
        _ => Err("expected four numbers Q:S:R:G (qmailq, qmails, qmailr uids, qmail gid)".into()),
    }
}

fn parse_damage(s: &str) -> Result<Damage, String> {
    Damage::from_name(s).ok_or_else(|| format!("unknown damage {s:?} (see --list-damages)"))
}

fn print_report(r: &DamageReport) {
    const SHOW: usize = 20;
    let shown: Vec<String> = r.touched.iter().take(SHOW).map(u64::to_string).collect();
    let more = if r.touched.len() > SHOW { format!(" ... ({} in all)", r.touched.len()) } else { String::new() };
    println!("damage {}: {} messages touched: {}{more}", r.damage.name(), r.touched.len(), shown.join(" "));
    for n in &r.notes {
        println!("  {n}");
    }
    for o in &r.outside {
        println!("  outside canary: {}", o.display());
    }
}

fn run(args: Args) -> Result<()> {
    if args.list_damages {
        for d in Damage::ALL {
            println!("{:34} {}", d.name(), d.description());
        }
        return Ok(());
    }
    let out = args.out.context("--out is required")?;
    let queue = out.join("queue");
    let default_outside = args.outside.is_none();
    let outside = args.outside.unwrap_or_else(|| out.join("outside"));
    if fs::symlink_metadata(&queue).is_ok() {
        if !args.force {
            bail!("{} exists (use --force to remove it first)", queue.display());
        }
        fs::remove_dir_all(&queue).with_context(|| format!("rm -r {}", queue.display()))?;
    }
    if args.force && default_outside && fs::symlink_metadata(&outside).is_ok() {
        fs::remove_dir_all(&outside).with_context(|| format!("rm -r {}", outside.display()))?;
    }
    let mut spec = BuildSpec {
        messages: args.messages,
        split: args.split,
        big_todo: args.big_todo,
        seed: args.seed,
        null_sender: args.null_sender,
        double_bounce: args.double_bounce,
        large: args.large,
        ids: args.ids,
        keep_manifest: false,
        ..BuildSpec::default()
    };
    if let Some(now) = args.now {
        spec.now = now;
    }
    if let Some(t) = args.todo_stage {
        let rest = StateMix { todo_stage: 0.0, ..StateMix::default() };
        let sum = rest.local_only + rest.remote_only + rest.both + rest.partly_delivered + rest.pending_bounce;
        let k = (1.0 - t).max(0.0) / sum;
        spec.mix = StateMix {
            todo_stage: t,
            local_only: rest.local_only * k,
            remote_only: rest.remote_only * k,
            both: rest.both * k,
            partly_delivered: rest.partly_delivered * k,
            pending_bounce: rest.pending_bounce * k,
        };
    }
    let t0 = Instant::now();
    let built = build_queue(&queue, &spec)?;
    let took = t0.elapsed();
    let c = &built.counts;
    println!(
        "built {}: {} messages (split {}, {} todo) in {:.2} s",
        queue.display(),
        c.messages,
        built.spec_split,
        if built.big_todo { "big" } else { "flat" },
        took.as_secs_f64()
    );
    println!(
        "  not preprocessed {}, null sender {}, double bounce {}, bounce files {}, local pending {}, remote pending {}",
        c.todo, c.null_sender, c.double_bounce, c.bounce_files, c.local_pending, c.remote_pending
    );
    match built.ids {
        Some(i) => println!(
            "  owners: qmailq {} qmails {} qmailr {} group qmail {}",
            i.qmailq, i.qmails, i.qmailr, i.qmail_gid
        ),
        None if spec.ids.is_some() => println!("  owners: left as the caller (not root, --ids ignored)"),
        None => println!("  owners: left as the caller"),
    }
    for (i, d) in args.damages.iter().enumerate() {
        let r = apply_damage(&built, *d, args.seed.wrapping_add(i as u64 + 1), &outside)?;
        print_report(&r);
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qbuild: {e:#}");
            ExitCode::FAILURE
        }
    }
}
