//! The qkillns binary: everything is in the library.

fn main() -> std::process::ExitCode {
    // A panic in any thread ends the process at once (exit 8, operational).
    qcommon::cli::exit_on_panic("qkillns", 8);
    qcommon::descriptors::raise_limit();
    qkillns::main_with_args(std::env::args_os()).into()
}
