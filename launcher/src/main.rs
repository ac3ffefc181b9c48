//! `fatbin`: the launcher. The work is in the library (`fatbin::main`).

fn main() {
    std::process::exit(fatbin::main(std::env::args_os().collect()));
}
