//! Verifying an installed layout: every slot against its manifest entry and its own header.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::fsutil::{same_inode, sha256_file};
use crate::identify::{identify_path, Identity};
use crate::layout::{validate_program_name, Layout};
use crate::perms::{check_layout_metadata, check_layout_root, check_metadata};
use crate::shims::{orphan_shim, orphan_shims, OrphanShim};

/// One thing wrong with a layout.
#[derive(Debug)]
pub struct Problem {
    pub path: PathBuf,
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A permission problem's words already name the path: say it once.
        let path = self.path.display().to_string();
        if self.what.starts_with(&path) {
            f.write_str(&self.what)
        } else {
            write!(f, "{path}: {}", self.what)
        }
    }
}

/// Checks every program of `layout` (or only `only`): manifests parse, every slot's file (its
/// content file, or `SLOT` in a manifest written before them) exists with the recorded size
/// and sha256, its ELF header matches its slot name, it needs no newer glibc than the manifest
/// records, `SLOT` is the content file (an interrupted install can leave it behind), nothing
/// is writable by others, no file is left that the manifest does not name, and no fatbin shim
/// is left whose program is gone ([`crate::shims`]). Content files the manifest does not name
/// are not reported: an install keeps those of the previous generation for clients that read
/// the manifest before it, and removes them at the next.
pub fn verify(layout: &Layout, only: Option<&str>) -> Result<Vec<Problem>, Error> {
    let mut problems = Vec::new();
    let mut report = |path: PathBuf, what: String| problems.push(Problem { path, what });

    // The root's owner is trusted for everything below it (see `perms`).
    let root_owner = match check_layout_root(layout.root()) {
        Ok(owner) => Some(owner),
        Err(e) => {
            report(layout.root().to_owned(), e.to_string());
            None
        }
    };
    let check_path = |path: &Path| -> Result<(), Error> {
        let meta = std::fs::metadata(path).map_err(|e| Error::Io {
            path: path.to_owned(),
            source: e,
        })?;
        match root_owner {
            Some(owner) => check_layout_metadata(path, &meta, owner),
            None => check_metadata(path, &meta),
        }
    };
    if let Err(e) = check_path(&layout.bin_dir()) {
        report(layout.bin_dir(), e.to_string());
    }
    let programs = match only {
        Some(p) => {
            validate_program_name(p)?;
            if !layout.program_dir(p).is_dir() {
                if let Some(orphan) = orphan_shim(layout, p) {
                    report_orphan(&mut report, layout, &orphan);
                    return Ok(problems);
                }
                return Err(Error::NoSuchProgram {
                    program: p.to_owned(),
                    root: layout.root().to_owned(),
                });
            }
            vec![p.to_owned()]
        }
        None => layout.programs()?,
    };
    for program in programs {
        let dir = layout.program_dir(&program);
        if let Err(e) = check_path(&dir) {
            report(dir.clone(), e.to_string());
        }
        let manifest = match layout.read_manifest(&program) {
            Ok(m) => m,
            Err(e) => {
                report(layout.manifest_path(&program), e.to_string());
                continue;
            }
        };
        if manifest.program != program {
            report(
                layout.manifest_path(&program),
                format!("manifest names program `{}`", manifest.program),
            );
        }
        let manifest_path = layout.manifest_path(&program);
        if let Err(e) = check_path(&manifest_path) {
            report(manifest_path, e.to_string());
        }
        for (slot, info) in &manifest.slots {
            let path = layout.slot_file(&program, *slot, info);
            // Installs write regular files; a symlink or a FIFO here was put by someone else
            // (and hashing a FIFO would hang).
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_file() => {}
                Ok(_) => {
                    report(path, "is not a regular file (a symlink?)".into());
                    continue;
                }
                Err(e) => {
                    report(path, e.to_string());
                    continue;
                }
            }
            match sha256_file(&path) {
                Err(e) => {
                    report(path, e.to_string());
                    continue;
                }
                Ok((_, size)) if size != info.size => report(
                    path.clone(),
                    format!("size {size}, manifest says {}", info.size),
                ),
                Ok((sha, _)) if sha != info.sha256 => {
                    report(path.clone(), "sha256 differs from the manifest".into())
                }
                Ok(_) => {}
            }
            match identify_path(&path) {
                // The launcher picks a slot by the glibc its manifest records: a binary that
                // needs more would fail on the very nodes the manifest says it runs on.
                Ok(Identity::Elf(elf)) if elf.glibc > info.glibc => report(
                    path.clone(),
                    format!(
                        "needs glibc {}, manifest says {}",
                        elf.glibc.map_or("?".into(), |v| v.to_string()),
                        info.glibc.map_or("none".into(), |v| v.to_string())
                    ),
                ),
                Ok(Identity::Elf(elf))
                    if elf.arch == Some(slot.arch)
                        && elf.x86_isa_needed.unwrap_or(1) <= slot.level_number() => {}
                Ok(other) => report(
                    path.clone(),
                    format!("is {other}, which slot `{slot}` cannot hold"),
                ),
                Err(e) => report(path.clone(), e.to_string()),
            }
            if let Err(e) = check_path(&path) {
                report(path.clone(), e.to_string());
            }
            // `SLOT` (for people and older launchers) is the content file, unless an install
            // was killed between its manifest and renaming the name.
            if info.file.is_some() {
                let name = layout.slot_path(&program, *slot);
                let content = layout.slot_file(&program, *slot, info);
                // (A copy, where the file system has no hard links, is right too.)
                let current = same_inode(&name, &content)
                    || std::fs::symlink_metadata(&name).is_ok_and(|m| m.is_file())
                        && sha256_file(&name).is_ok_and(|(sha, _)| sha == info.sha256);
                if !current {
                    report(
                        name,
                        format!(
                            "is not {}, the file the manifest says holds slot `{slot}` (an \
                             install interrupted before it renamed this name, or a change by \
                             hand; fix: install `{program}` again, which repairs it)",
                            info.file_name(*slot)
                        ),
                    );
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let known = name == crate::manifest::MANIFEST_FILE
                    || manifest.slots.keys().any(|s| s.to_string() == name)
                    || manifest
                        .slots
                        .values()
                        .any(|info| info.file.as_deref() == Some(&name))
                    // The previous install's (kept one generation) or an interrupted one's:
                    // the next install removes what no manifest names.
                    || fatbin_core::manifest::split_content_name(&name)
                        .is_some_and(|(slot, _)| slot.parse::<crate::SlotName>().is_ok());
                if known {
                    continue;
                }
                let what = if crate::fsutil::temp_name_pid(&name).is_some() {
                    format!(
                        "not named in the manifest: a temporary file of an interrupted install \
                         (fix: install `{program}` again, which removes it once its process \
                         is gone, or delete it)"
                    )
                } else {
                    "not named in the manifest (leftover?)".to_owned()
                };
                report(entry.path(), what);
            }
        }
    }
    if only.is_none() {
        for orphan in orphan_shims(layout)? {
            report_orphan(&mut report, layout, &orphan);
        }
    }
    Ok(problems)
}

/// A shim whose program is gone: typing its name fails with "not installed".
fn report_orphan(report: &mut impl FnMut(PathBuf, String), layout: &Layout, orphan: &OrphanShim) {
    let program = &orphan.program;
    report(
        orphan.path.clone(),
        format!(
            "a shim without a program ({} is gone, so running `{program}` fails); fix: \
             `cargo fatbin remove {program}` removes the shim, or install `{program}` again",
            layout.program_dir(program).display()
        ),
    );
}
