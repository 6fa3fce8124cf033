//! Usage errors and help, through the real binary.

use qtests::prelude::qkillns::*;

#[test]
fn bad_regex_or_duration_is_a_usage_error_naming_the_option() {
    let q = Queue::new();
    q.preprocessed(b"", &[], &[(b"a@b.example", false)], "x", now(), false);
    let before = snapshot(&q.root);
    for (args, name) in [
        (&["--sender", "a("][..], "--sender"),
        (&["--recipient", "[z-a]"][..], "--recipient"),
        (&["--header", "Subject: ("][..], "--header"),
        (&["--header", "no colon here"][..], "--header"),
        (&["--older-than", "7"][..], "--older-than"),
        (&["--younger-than", "2x"][..], "--younger-than"),
        (&["--double", "--sender", "x"][..], "--sender"),
        (&["--pid", "12"][..], "--pid"),
    ] {
        let out = qkillns(&q).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(16), "{args:?}: {stderr}");
        assert!(stderr.contains(name), "{args:?}: {stderr}");
    }
    assert_same(&before, &snapshot(&q.root));
}

#[test]
fn help_and_version_exit_0() {
    let out = assert_cmd::Command::cargo_bin("qkillns").unwrap().arg("--help").assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    for opt in ["--expire", "--double", "--header", "--older-than", "--dry-run", "--json", "--force", "--pid"] {
        assert!(text.contains(opt), "{opt} missing from --help");
    }
    assert!(text.contains("Exit status"));
    assert_cmd::Command::cargo_bin("qkillns").unwrap().arg("--version").assert().success();
}

#[test]
fn a_directory_that_is_not_a_queue_is_an_operational_error() {
    let t = tempfile::tempdir().unwrap();
    let out =
        assert_cmd::Command::cargo_bin("qkillns").unwrap().arg("--queue").arg(t.path()).arg("-n").assert().code(8);
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("not a qmail queue"));
}
