//! `cat` for the fatbin demo: concatenates files (or stdin) to stdout. With `--build` it says
//! which processor build of it is running, so the demo can show the launcher's choice.

use std::io::{self, Read, Write};
use std::process::ExitCode;

/// What this build was compiled for: its architecture and, on x86_64, its CPU level.
fn build_description() -> String {
    let level = if cfg!(target_feature = "avx512f") {
        " (x86-64-v4)"
    } else if cfg!(target_feature = "avx2") {
        " (x86-64-v3)"
    } else if cfg!(target_feature = "sse4.2") {
        " (x86-64-v2)"
    } else {
        ""
    };
    format!("{}{level}", std::env::consts::ARCH)
}

fn copy(mut from: impl Read, to: &mut impl Write) -> io::Result<()> {
    io::copy(&mut from, to).map(drop)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--build") {
        println!("cat: this is the {} build", build_description());
        return ExitCode::SUCCESS;
    }
    let mut out = io::stdout().lock();
    let mut status = ExitCode::SUCCESS;
    let files = if args.is_empty() { vec!["-".to_owned()] } else { args };
    for name in files {
        let result = if name == "-" {
            copy(io::stdin().lock(), &mut out)
        } else {
            std::fs::File::open(&name).and_then(|f| copy(f, &mut out))
        };
        match result {
            Ok(()) => {}
            // A closed pipe (`cat big | head`) is not an error worth a message.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cat: {name}: {e}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}
