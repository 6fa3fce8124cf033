//! qfixq: check, repair or empty a qmail queue. All the work is in the library.

fn main() -> std::process::ExitCode {
    qfixq::main_with(std::env::args_os()).into()
}
