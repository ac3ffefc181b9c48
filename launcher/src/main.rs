//! `fatbin`: the launcher (work in progress).

fn main() {
    eprintln!("fatbin: not yet implemented");
    std::process::exit(2);
}
