//! Managing a layout by hand: `add` a prebuilt binary as a slot (like `lipo -create`),
//! `remove` a slot or a program, `list` what is installed, `verify` all of it.

use std::io::Write;
use std::path::{Path, PathBuf};

use fatbin_layout::shims::{
    orphan_listing, orphan_shim, orphan_shims, remove_program_or_shim, Removed,
};
use fatbin_layout::verify::verify as verify_layout;
use fatbin_layout::{identify_path, remove_slot, Identity, Layout, NewSlot, SlotName};
use serde_json::json;

use crate::assemble::write_shims;
use crate::error::{Error, Result};
use crate::options::{AddOptions, ListOptions, RemoveOptions, VerifyOptions};
use crate::settings::{resolve_launcher, resolve_root};
use crate::status::Shell;

pub(crate) fn verify(args: &VerifyOptions, shell: Shell) -> Result<()> {
    let root = resolve_root(args.root.as_deref(), None)?;
    if !root.is_dir() {
        return Err(Error::usage(format!(
            "{}: no such layout root",
            root.display()
        )));
    }
    let layout = Layout::new(&root);
    let problems = verify_layout(&layout, args.program.as_deref())?;
    for p in &problems {
        shell.error(p);
    }
    if problems.is_empty() {
        let count = match &args.program {
            Some(_) => 1,
            None => layout.programs()?.len(),
        };
        shell.status(
            "Verified",
            format!("{count} program(s) in {}", root.display()),
        );
        Ok(())
    } else {
        Err(Error::Verify {
            root,
            count: problems.len(),
        })
    }
}

/// The slot a binary belongs in, read from its ELF header: its architecture, and the x86-64
/// level the linker recorded it needs (GNU_PROPERTY_X86_ISA_1_NEEDED), if any.
fn infer_slot(path: &std::path::Path) -> Result<SlotName> {
    match identify_path(path)? {
        Identity::Elf(info) => {
            let arch = info.arch.ok_or_else(|| {
                Error::usage(format!(
                    "{}: {info}: its processor has no slot in the layout",
                    path.display(),
                ))
            })?;
            let level = info.x86_isa_needed.filter(|l| *l > 1);
            Ok(SlotName { arch, level })
        }
        other => Err(Error::usage(format!(
            "{}: {other}, not an ELF binary; pass --slot if it really is one",
            path.display()
        ))),
    }
}

pub(crate) fn add(args: &AddOptions, shell: Shell) -> Result<()> {
    let slot: SlotName = match &args.slot {
        Some(s) => s
            .parse()
            .map_err(|e: fatbin_layout::slot::InvalidSlotName| Error::usage(e.to_string()))?,
        None => infer_slot(&args.file)?,
    };
    let root = resolve_root(args.root.as_deref(), None)?;
    fatbin_layout::fsutil::create_dirs(&root)?;
    let layout = Layout::new(&root);
    let mut new = NewSlot::from_file(slot, &args.file);
    if let Some(triple) = &args.triple {
        new.target = triple.clone();
    }
    let report = fatbin_layout::install(&layout, &args.program, &[new])?;
    let launcher = resolve_launcher(args.launcher.as_deref(), None, &shell)?;
    write_shims(
        &layout,
        std::slice::from_ref(&args.program),
        launcher.as_deref(),
        args.script_shims,
        &shell,
    )?;
    if report.changed {
        crate::views::refresh(&layout, &shell);
    }
    let verb = if report.changed { "Added" } else { "Fresh" };
    shell.status(
        verb,
        format!(
            "{} slot {slot} ({})",
            args.program,
            layout.slot_path(&args.program, slot).display()
        ),
    );
    Ok(())
}

pub(crate) fn remove(args: &RemoveOptions, shell: Shell) -> Result<()> {
    let root = resolve_root(args.root.as_deref(), None)?;
    let layout = Layout::new(&root);
    match &args.slot {
        Some(s) => {
            let slot: SlotName = s
                .parse()
                .map_err(|e: fatbin_layout::slot::InvalidSlotName| Error::usage(e.to_string()))?;
            match remove_slot(&layout, &args.program, slot) {
                Err(e @ fatbin_layout::Error::NoSuchProgram { .. }) => {
                    // Only its shim is left: say what removes that, rather than just "not
                    // installed" while `list` shows the name.
                    return Err(match orphan_shim(&layout, &args.program) {
                        Some(orphan) => Error::Other(format!(
                            "{e}; only its shim {} is left: `cargo fatbin remove {}` removes it",
                            orphan.path.display(),
                            args.program
                        )),
                        None => e.into(),
                    });
                }
                other => other?,
            }
            shell.status("Removed", format!("{} slot {slot}", args.program));
        }
        None => match remove_program_or_shim(&layout, &args.program)? {
            Removed::Program => shell.status("Removed", format!("{} and its shim", args.program)),
            Removed::OrphanShim(shim) => shell.status(
                "Removed",
                format!("{}, a shim whose program was already gone", shim.display()),
            ),
        },
    }
    crate::views::refresh(&layout, &shell);
    Ok(())
}

pub(crate) fn list(args: &ListOptions) -> Result<()> {
    let root = resolve_root(args.root.as_deref(), None)?;
    let layout = Layout::new(&root);
    let mut programs = Vec::new();
    for program in layout.programs()? {
        // One program whose manifest cannot be read (another account's 0600 file, a corrupt
        // one) is shown as broken, as `fatbin list` shows it; it must not hide the others.
        let manifest = match layout.read_manifest(&program) {
            Ok(manifest) => manifest,
            Err(e) => {
                programs.push(json!({ "program": program, "broken": e.to_string() }));
                continue;
            }
        };
        let slots: Vec<String> = manifest.slots.keys().map(|s| s.to_string()).collect();
        let version = manifest.slots.values().find_map(|i| i.version.clone());
        programs.push(json!({ "program": program, "version": version, "slots": slots }));
    }
    // A shim whose program is gone is shown with what removes it: it is on PATH and fails.
    for orphan in orphan_shims(&layout)? {
        programs.push(json!({ "program": orphan.program, "shim_without_program": orphan.path }));
    }
    programs.sort_by(|a, b| a["program"].as_str().cmp(&b["program"].as_str()));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let text = if args.json {
        format!("{}\n", json!({ "root": root, "programs": programs }))
    } else {
        programs
            .iter()
            .map(|p| {
                let program = p["program"].as_str().unwrap_or("");
                if let Some(broken) = p["broken"].as_str() {
                    return format!("{program} (broken: {broken})\n");
                }
                if let Some(shim) = p["shim_without_program"].as_str() {
                    return format!("{program} {}\n", orphan_listing(program, Path::new(shim)));
                }
                let slots: Vec<&str> = p["slots"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str())
                    .collect();
                format!(
                    "{program} {}: {}\n",
                    p["version"]
                        .as_str()
                        .map(|v| format!("v{v}"))
                        .unwrap_or_default(),
                    slots.join(", ")
                )
            })
            .collect()
    };
    out.write_all(text.as_bytes())
        .map_err(Error::io(PathBuf::from("<stdout>")))
}
