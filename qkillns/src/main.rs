//! The qkillns binary: everything is in the library.

fn main() -> std::process::ExitCode {
    qkillns::main_with_args(std::env::args_os()).into()
}
