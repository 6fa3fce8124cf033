//! The `qstat` command: see the library for everything.

fn main() -> std::process::ExitCode {
    qstat::run(std::env::args_os()).into()
}
