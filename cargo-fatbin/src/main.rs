//! `cargo fatbin`: build and install fat programs (work in progress).

fn main() {
    eprintln!("cargo-fatbin: not yet implemented");
    std::process::exit(2);
}
