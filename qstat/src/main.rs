//! The `qstat` command: see the library for everything.

fn main() -> std::process::ExitCode {
    // A panic in any thread ends the process at once (exit 8, operational).
    qcommon::cli::exit_on_panic("qstat", 8);
    qcommon::descriptors::raise_limit();
    qstat::run(std::env::args_os()).into()
}
