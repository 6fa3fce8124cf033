//! qfixq: check, repair or empty a qmail queue. All the work is in the library.

fn main() -> std::process::ExitCode {
    // A panic in any thread ends the process at once (exit 8, operational).
    qcommon::cli::exit_on_panic("qfixq", 8);
    qcommon::descriptors::raise_limit();
    qfixq::main_with(std::env::args_os()).into()
}
