//! `cargo fatbin inspect PATH`: a fat program's slots, every program of a layout root, or
//! what a single binary is, as a table (stdout) or JSON (`--json`).

use std::io::Write;
use std::path::{Path, PathBuf};

use fatbin_layout::identify::ElfInfo;
use fatbin_layout::verify::verify;
use fatbin_layout::{identify_path, Identity, Layout, Manifest, MANIFEST_FILE};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::options::InspectOptions;

pub(crate) fn inspect(args: &InspectOptions) -> Result<()> {
    let path = &args.path;
    let value = if path.join(MANIFEST_FILE).is_file() {
        let program = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::usage(format!("{}: not a program directory", path.display())))?;
        let root = path
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| Error::usage(format!("{}: not inside ROOT/bin/", path.display())))?;
        json!({ "programs": [program_json(&Layout::new(root), program)?] })
    } else if path.join("bin").is_dir() {
        let layout = Layout::new(path);
        let programs: Result<Vec<Value>> = layout
            .programs()?
            .iter()
            .map(|p| program_json(&layout, p))
            .collect();
        json!({ "root": path, "programs": programs? })
    } else if path.is_file() {
        json!({ "file": path, "identity": identity_json(&identify_path(path)?) })
    } else {
        return Err(Error::usage(format!(
            "{}: not a binary, a program directory (ROOT/bin/PROG) or a layout root",
            path.display()
        )));
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let text = if args.json {
        format!("{value}\n")
    } else {
        render(&value)
    };
    out.write_all(text.as_bytes())
        .map_err(Error::io(PathBuf::from("<stdout>")))
}

/// A program's manifest with each slot's verification result.
fn program_json(layout: &Layout, program: &str) -> Result<Value> {
    let manifest: Manifest = layout.read_manifest(program)?;
    let problems = verify(layout, Some(program))?;
    let slots: Vec<Value> = manifest
        .slots
        .iter()
        .map(|(slot, info)| {
            // Its name and its content file (what launchers run).
            let path = layout.slot_path(program, *slot);
            let file = layout.slot_file(program, *slot, info);
            let slot_problems: Vec<String> = problems
                .iter()
                .filter(|p| p.path == path || p.path == file)
                .map(|p| p.what.clone())
                .collect();
            json!({
                "slot": slot.to_string(),
                "target": info.target,
                "arch": info.arch.name(),
                "level": slot.level_number(),
                "cpu": info.cpu,
                "features": info.features,
                "libc": info.libc,
                "size": info.size,
                "sha256": info.sha256,
                "file": info.file,
                "crate": info.krate,
                "version": info.version,
                "verified": slot_problems.is_empty(),
                "problems": slot_problems,
            })
        })
        .collect();
    Ok(json!({ "program": program, "dir": layout.program_dir(program), "slots": slots }))
}

fn elf_json(info: &ElfInfo) -> Value {
    json!({
        "format": "elf",
        "arch": info.arch.map(|a| a.name()),
        "machine": info.machine,
        "bits": info.bits,
        "endian": info.endian.name(),
        "libc": info.libc,
        "interpreter": info.interpreter,
        "glibc": info.glibc.map(|v| v.to_string()),
        "x86_isa_needed": info.x86_isa_needed,
        "slot": info.arch.map(|a| match info.x86_isa_needed {
            Some(level) if level > 1 => format!("{a}-v{level}"),
            _ => a.to_string(),
        }),
    })
}

fn identity_json(identity: &Identity) -> Value {
    match identity {
        Identity::Elf(info) => elf_json(info),
        other => json!({ "format": "other", "description": other.to_string() }),
    }
}

/// The first 12 hex digits, like git's short ids.
fn short_sha(sha: &Value) -> &str {
    let sha = sha.as_str().unwrap_or("");
    sha.get(..12).unwrap_or(sha)
}

/// The slot table's columns: title, and whether the column is right-aligned (numbers).
const COLUMNS: [(&str, bool); 7] = [
    ("SLOT", false),
    ("TARGET", false),
    ("CPU", false),
    ("LIBC", false),
    ("SIZE", true),
    ("SHA256", false),
    ("VERIFIED", false),
];

/// Rows padded so every column starts at the same place: each column is as wide as its
/// longest cell (a target triple or a CPU name can be long), two spaces apart, indented by
/// two. The last column is not padded.
fn table(rows: &[[String; 7]]) -> String {
    let mut widths = [0; 7];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::from(" ");
        for (i, cell) in row.iter().enumerate() {
            let pad = widths[i] - cell.chars().count();
            line.push(' ');
            if i == row.len() - 1 {
                line.push_str(cell);
            } else if COLUMNS[i].1 {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
                line.push(' ');
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 1));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn render(value: &Value) -> String {
    let mut out = String::new();
    if let Some(identity) = value.get("identity") {
        let file = value["file"].as_str().unwrap_or_default();
        let slot = identity["slot"].as_str().unwrap_or("none (no slot fits)");
        let what = match identity["format"].as_str() {
            Some("elf") => format!(
                "ELF {}-bit {}, {}{}",
                identity["bits"],
                identity["arch"].as_str().unwrap_or("unknown machine"),
                identity["libc"].as_str().unwrap_or(""),
                identity["interpreter"]
                    .as_str()
                    .map(|i| format!(" ({i})"))
                    .unwrap_or_default()
            ),
            _ => identity["description"].as_str().unwrap_or("").to_owned(),
        };
        out.push_str(&format!("{file}: {what}\nslot: {slot}\n"));
        return out;
    }
    for program in value["programs"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{} ({})\n",
            program["program"].as_str().unwrap_or(""),
            program["dir"].as_str().unwrap_or("")
        ));
        let mut rows = vec![COLUMNS.map(|(title, _)| title.to_owned())];
        for slot in program["slots"].as_array().into_iter().flatten() {
            let verified = if slot["verified"].as_bool() == Some(true) {
                "yes".to_owned()
            } else {
                format!("NO: {}", slot["problems"])
            };
            rows.push([
                slot["slot"].as_str().unwrap_or("").to_owned(),
                slot["target"]
                    .as_str()
                    .filter(|t| !t.is_empty())
                    .unwrap_or("-")
                    .to_owned(),
                slot["cpu"].as_str().unwrap_or("-").to_owned(),
                slot["libc"].as_str().unwrap_or("").to_owned(),
                slot["size"].to_string(),
                short_sha(&slot["sha256"]).to_owned(),
                verified,
            ]);
        }
        out.push_str(&table(&rows));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_are_as_wide_as_their_longest_cell() {
        let row = |cells: [&str; 7]| cells.map(str::to_owned);
        let text = table(&[
            COLUMNS.map(|(title, _)| title.to_owned()),
            row([
                "x86_64",
                "x86_64-unknown-linux-musl",
                "-",
                "musl",
                "12",
                "ab",
                "yes",
            ]),
            row([
                "armv7",
                "thumbv7neon-unknown-linux-gnueabihf",
                "cortex-a53-long",
                "glibc",
                "123456789",
                "cd",
                "yes",
            ]),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        let verified = lines[0].find("VERIFIED").unwrap();
        assert!(
            lines.iter().all(|l| l.find(['y', 'V']) == Some(verified)),
            "{text}"
        );
        let size_end = lines[0].find("SIZE").unwrap() + 4;
        assert_eq!(&lines[1][size_end - 2..size_end], "12", "{text}");
        assert!(lines[0].starts_with("  SLOT    TARGET"), "{text}");
    }
}
