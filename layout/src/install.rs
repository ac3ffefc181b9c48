//! Installing, replacing and removing slots and programs, atomically.
//!
//! Every new binary is checked against its slot name before anything on disk changes. Each
//! slot's bytes then go to a *content file*, `ROOT/bin/PROG/SLOT.<first 16 hex of sha256>`, a
//! name that never holds other bytes: staged (written and fsynced under a temporary name),
//! renamed to that new name (nothing is replaced), and only then is the manifest, which names
//! each slot's content file, renamed into place: **the manifest is the one commit point**.
//! Launchers run the file the manifest names, so a reader sees the old manifest and its files
//! or the new one and its files, and no path it runs ever changes content (which is what a
//! network filesystem client that caches by path, such as sshfs, needs).
//!
//! After the manifest, `SLOT` itself (a hard link to the content file, for people, direct
//! exec and launchers older than content files) is renamed over, and content files named by
//! neither the new manifest nor the one it replaced are removed: one generation of grace,
//! so a client still holding the previous manifest finds its file.
//!
//! A failure while staging (a full disk, a wrong binary) removes the temporary files and
//! leaves the previous install exactly as it was. A crash (`kill -9`) at any step leaves a
//! manifest whose files exist and match it; `SLOT` may lag the manifest, and the next install
//! holding the lock repairs it (`verify` reports it until then). [`KILL_AT_VAR`] lets the
//! tests kill an install at each step.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::arch::Arch;
use crate::error::{Error, Result};
use crate::fsutil::{
    create_dirs, replace_with, same_inode, sha256_file, sync_dir, temp_path_for, write_atomic,
    LayoutLock, Staging,
};
use crate::identify::{identify_path, ElfKind, Identity};
use crate::layout::{validate_program_name, Layout};
use crate::manifest::{content_name, Manifest, SlotInfo};
use crate::slot::SlotName;

/// Mode of installed slots: executable by all, writable by the owner only.
const SLOT_MODE: u32 = 0o755;
const MANIFEST_MODE: u32 = 0o644;

/// Test hook: an install whose environment has `FATBIN_TEST_KILL_AT=STEP` kills itself with
/// SIGKILL when it reaches `STEP` (one of [`INSTALL_STEPS`]), as `kill -9` would: nothing is
/// cleaned up. The tests use it to check what each step leaves behind.
pub const KILL_AT_VAR: &str = "FATBIN_TEST_KILL_AT";

/// The steps of an install where [`KILL_AT_VAR`] can stop it, in order: new content files
/// staged under temporary names; renamed to their content names; the manifest renamed into
/// place (the commit point); `SLOT` links staged; `SLOT` links renamed over the old names
/// (then old content files are removed).
pub const INSTALL_STEPS: [&str; 5] = [
    "staged",
    "content-renamed",
    "manifest-renamed",
    "names-staged",
    "names-renamed",
];

/// Kills this process with SIGKILL when [`KILL_AT_VAR`] names `step`.
fn kill_point(step: &str) {
    if std::env::var_os(KILL_AT_VAR).is_some_and(|v| v == step) {
        // SAFETY: raise only sends a signal to this process.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
}

/// One binary to install into a slot, with what is known about how it was built.
#[derive(Debug, Clone)]
pub struct NewSlot {
    pub slot: SlotName,
    pub source: PathBuf,
    /// The Rust target triple, empty when unknown.
    pub target: String,
    /// The `-C target-cpu` it was built with.
    pub cpu: Option<String>,
    /// Target features it needs beyond the architecture's baseline. The features the slot's
    /// level implies are added to these.
    pub features: Vec<String>,
    pub krate: Option<String>,
    pub version: Option<String>,
}

impl NewSlot {
    /// A slot from a plain file, with nothing known but its slot.
    pub fn from_file(slot: SlotName, source: impl Into<PathBuf>) -> NewSlot {
        NewSlot {
            slot,
            source: source.into(),
            target: String::new(),
            cpu: None,
            features: Vec::new(),
            krate: None,
            version: None,
        }
    }
}

/// What happened to one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotOutcome {
    /// A new copy was written.
    Installed,
    /// An identical binary already in the layout was hard-linked.
    Linked { to: PathBuf },
    /// The same binary was already there; nothing was written.
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallReport {
    pub program: String,
    pub slots: Vec<(SlotName, SlotOutcome)>,
    /// Whether anything on disk changed.
    pub changed: bool,
}

/// Checks `new` against its slot name and returns the manifest entry it would get.
pub fn check_slot(new: &NewSlot) -> Result<SlotInfo> {
    let mismatch = |why: String| Error::SlotMismatch {
        path: new.source.clone(),
        slot: new.slot,
        why,
    };
    if !new.target.is_empty() && Arch::from_triple(&new.target) != Some(new.slot.arch) {
        return Err(mismatch(format!(
            "it was built for target `{}`, which is not a {} target",
            new.target, new.slot.arch
        )));
    }
    let info = match identify_path(&new.source)? {
        Identity::Elf(info) => info,
        other => return Err(mismatch(format!("it is {other}, not an ELF executable"))),
    };
    match info.kind {
        ElfKind::Executable | ElfKind::SharedObject => {}
        kind => {
            return Err(mismatch(format!(
                "it is an ELF {kind:?} file, not an executable"
            )))
        }
    }
    // 0 = System V (what Linux toolchains write), 3 = GNU/Linux.
    if info.os_abi != 0 && info.os_abi != 3 {
        return Err(mismatch(format!(
            "its OS ABI is {}, not Linux",
            info.os_abi
        )));
    }
    if info.arch != Some(new.slot.arch) {
        return Err(mismatch(format!(
            "its ELF header says {info}, slot `{}` needs {} {}-bit {:?}-endian",
            new.slot,
            new.slot.arch,
            new.slot.arch.bits(),
            new.slot.arch.endian()
        )));
    }
    if let Some(needed) = info.x86_isa_needed {
        if needed > new.slot.level_number() {
            return Err(mismatch(format!(
                "it needs x86-64-v{needed}; install it into slot `x86_64-v{needed}`"
            )));
        }
    }
    let (sha256, size) = sha256_file(&new.source)?;
    let mut features: Vec<String> = new
        .slot
        .level_features()
        .into_iter()
        .map(str::to_owned)
        .chain(new.features.iter().cloned())
        .collect();
    features.sort();
    features.dedup();
    Ok(SlotInfo {
        target: new.target.clone(),
        arch: new.slot.arch,
        bits: info.bits,
        endian: info.endian,
        libc: info.libc,
        glibc: info.glibc,
        cpu: new.cpu.clone(),
        features,
        size,
        file: Some(content_name(new.slot, &sha256)),
        sha256,
        krate: new.krate.clone(),
        version: new.version.clone(),
    })
}

/// Installs `slots` into `program`, keeping its other slots.
///
/// Every binary is checked first; then the layout is locked, new files are staged and renamed
/// into place, the manifest last. On any error nothing visible changes: the old slots and
/// manifest stay as they were and the temporary files are removed.
pub fn install(layout: &Layout, program: &str, slots: &[NewSlot]) -> Result<InstallReport> {
    validate_program_name(program)?;
    if slots.is_empty() {
        // Nothing to do, and no empty program directory to leave behind.
        return Ok(InstallReport {
            program: program.to_owned(),
            slots: Vec::new(),
            changed: false,
        });
    }
    let mut checked = BTreeMap::new();
    for new in slots {
        let info = check_slot(new)?;
        if checked.insert(new.slot, (new, info)).is_some() {
            return Err(Error::SlotMismatch {
                path: new.source.clone(),
                slot: new.slot,
                why: "the slot is given twice in one install".into(),
            });
        }
    }

    let _lock = LayoutLock::acquire(&layout.bin_dir())?;
    let dir = layout.program_dir(program);
    let created = !dir.exists();
    create_dirs(&dir)?;
    // Holding the lock: what an install killed mid-way left behind is garbage now.
    crate::fsutil::remove_dead_temps(&dir);
    let result = install_checked(layout, program, &checked);
    if result.is_err() && created {
        // A first install that failed leaves no empty program directory behind (remove_dir
        // only removes an empty one, so nothing anyone else wrote is lost).
        let _ = std::fs::remove_dir(&dir);
    }
    result
}

fn install_checked(
    layout: &Layout,
    program: &str,
    checked: &BTreeMap<SlotName, (&NewSlot, SlotInfo)>,
) -> Result<InstallReport> {
    let old = match layout.read_manifest(program) {
        Ok(m) => m,
        Err(Error::NoSuchProgram { .. }) => Manifest::new(program),
        Err(e) => return Err(e),
    };
    let dir = layout.program_dir(program);
    let mut manifest = old.clone();
    let mut staging = Staging::default();
    let mut known = ContentIndex::new(layout);
    let mut outcomes = Vec::new();

    for (slot, (new, info)) in checked {
        // check_slot named the content file.
        let dest = layout.slot_file(program, *slot, info);
        let outcome = if file_has(&dest, info) {
            known.here(info, &dest);
            SlotOutcome::Unchanged
        } else if let Some((_, to)) = known
            .find(info)
            // A file system without hard links (or across mounts, EXDEV) gets a copy instead.
            .filter(|(source, _)| staging.stage_link(source, &dest).is_ok())
        {
            known.here(info, staging.staged_for(&dest).unwrap_or(&dest));
            SlotOutcome::Linked { to }
        } else {
            staging.stage_copy_checked(&new.source, &dest, SLOT_MODE, &info.sha256)?;
            known.here(info, staging.staged_for(&dest).unwrap_or(&dest));
            SlotOutcome::Installed
        };
        known.final_paths.insert(info.sha256.clone(), dest);
        manifest.slots.insert(*slot, info.clone());
        outcomes.push((*slot, outcome));
    }
    // Slots kept from a manifest written before content files get theirs too (a hard link to
    // `SLOT`, when it holds what the manifest says), so after one install every slot of the
    // program is run by a name that never changes content.
    for (slot, info) in manifest.slots.iter_mut() {
        if info.file.is_some() || !file_has(&layout.slot_path(program, *slot), info) {
            continue;
        }
        let name = content_name(*slot, &info.sha256);
        let dest = dir.join(&name);
        if file_has(&dest, info)
            || staging
                .stage_link(&layout.slot_path(program, *slot), &dest)
                .is_ok()
        {
            info.file = Some(name);
        }
    }

    let manifest_changed = manifest != old;
    let wrote_content = !staging.is_empty();
    let new_files = staging.destinations();
    kill_point("staged");
    // New names only (or a content file whose bytes were not its name's): nothing anyone
    // runs is replaced.
    staging.commit()?;
    kill_point("content-renamed");
    if manifest_changed {
        // The commit point: from here on launchers run the new content files.
        let path = layout.manifest_path(program);
        if let Err(e) = write_atomic(&path, manifest.to_toml().as_bytes(), MANIFEST_MODE) {
            for file in &new_files {
                let _ = std::fs::remove_file(file);
            }
            return Err(e);
        }
    }
    kill_point("manifest-renamed");
    let names_changed = refresh_slot_names(layout, program, &manifest)?;
    kill_point("names-renamed");
    // An install that changed nothing must not cut the grace short: the content files of the
    // install before last are still some client's, so only those of dead installs since the
    // manifest was written go (newer than it).
    let spare_up_to = if manifest_changed {
        None
    } else {
        std::fs::metadata(layout.manifest_path(program))
            .and_then(|m| m.modified())
            .ok()
    };
    let collected = collect_garbage(&dir, &[&manifest, &old], spare_up_to);
    Ok(InstallReport {
        program: program.to_owned(),
        slots: outcomes,
        changed: manifest_changed || wrote_content || names_changed || collected,
    })
}

/// Makes each slot's `SLOT` name a hard link to the content file the manifest names (renamed
/// over the old name, so a direct exec of `SLOT` sees the old binary or the new one). Repairs
/// a name an install killed after its manifest left behind. Returns whether any changed.
fn refresh_slot_names(layout: &Layout, program: &str, manifest: &Manifest) -> Result<bool> {
    let mut staging = Staging::default();
    for (slot, info) in &manifest.slots {
        if info.file.is_none() {
            continue;
        }
        let content = layout.slot_file(program, *slot, info);
        let name = layout.slot_path(program, *slot);
        // A copy where hard links fail is right too (hashed only then).
        let current = same_inode(&name, &content) || file_has(&name, info);
        if !current && staging.stage_link(&content, &name).is_err() {
            // A file system without hard links: a copy, as for identical binaries.
            staging.stage_copy(&content, &name, SLOT_MODE)?;
        }
    }
    if staging.is_empty() {
        return Ok(false);
    }
    kill_point("names-staged");
    staging.commit()?;
    Ok(true)
}

/// Removes the content files in `dir` (`SLOT.<hex>`) that none of `keep` names: those of the
/// install before the one just replaced, and those an interrupted install renamed into place
/// but never committed; with `spare_up_to`, only those modified after it. Only called holding
/// the layout lock. Returns whether any went.
fn collect_garbage(
    dir: &Path,
    keep: &[&Manifest],
    spare_up_to: Option<std::time::SystemTime>,
) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let named = |name: &str| {
        keep.iter().any(|m| {
            m.slots
                .values()
                .any(|info| info.file.as_deref() == Some(name))
        })
    };
    let mut removed = false;
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let is_content = fatbin_core::manifest::split_content_name(&name)
            .is_some_and(|(slot, _)| slot.parse::<SlotName>().is_ok());
        let spared = || {
            spare_up_to.is_some_and(|limit| {
                entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .map_or(true, |modified| modified <= limit)
            })
        };
        if is_content && !named(&name) && entry.file_type().is_ok_and(|t| t.is_file()) && !spared()
        {
            removed |= std::fs::remove_file(entry.path()).is_ok();
        }
    }
    if removed {
        let _ = sync_dir(dir);
    }
    removed
}

/// True when `path` is a regular file (not a symlink) with the slot mode that holds exactly
/// the binary `info` describes: it can stay as it is, or be hard-linked to.
fn file_has(path: &Path, info: &SlotInfo) -> bool {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta)
            if meta.file_type().is_file()
                && meta.len() == info.size
                && meta.permissions().mode() & 0o7777 == SLOT_MODE =>
        {
            matches!(sha256_file(path), Ok((sha, _)) if sha == info.sha256)
        }
        _ => false,
    }
}

/// Where binaries with a given content already are in the layout, for hard-linking.
struct ContentIndex<'a> {
    layout: &'a Layout,
    /// Built on first use from every manifest in the layout.
    installed: Option<HashMap<String, Vec<PathBuf>>>,
    /// Content this install has put in place or staged: sha256 -> a path to link from now
    /// (the temporary name of a staged file).
    here: HashMap<String, PathBuf>,
    /// sha256 -> the final path of that content, for reports.
    final_paths: HashMap<String, PathBuf>,
}

impl<'a> ContentIndex<'a> {
    fn new(layout: &'a Layout) -> Self {
        ContentIndex {
            layout,
            installed: None,
            here: HashMap::new(),
            final_paths: HashMap::new(),
        }
    }

    fn here(&mut self, info: &SlotInfo, path: &Path) {
        self.here
            .entry(info.sha256.clone())
            .or_insert_with(|| path.to_owned());
    }

    /// A path holding the same content as `info` to link from, and the final path it has:
    /// a file this install staged or kept, or an installed slot whose bytes really match
    /// (manifests are not trusted for that).
    fn find(&mut self, info: &SlotInfo) -> Option<(PathBuf, PathBuf)> {
        if let Some(path) = self.here.get(&info.sha256) {
            let to = self.final_paths.get(&info.sha256).unwrap_or(path);
            return Some((path.clone(), to.clone()));
        }
        let layout = self.layout;
        let installed = self.installed.get_or_insert_with(|| index_layout(layout));
        let path = installed
            .get(&info.sha256)?
            .iter()
            .find(|path| file_has(path, info))?;
        Some((path.clone(), path.clone()))
    }
}

fn index_layout(layout: &Layout) -> HashMap<String, Vec<PathBuf>> {
    let mut index: HashMap<String, Vec<PathBuf>> = HashMap::new();
    for program in layout.programs().unwrap_or_default() {
        let Ok(manifest) = layout.read_manifest(&program) else {
            continue;
        };
        for (slot, info) in manifest.slots {
            let path = layout.slot_file(&program, slot, &info);
            index.entry(info.sha256).or_default().push(path);
        }
    }
    index
}

/// Removes one slot: the manifest stops naming it first, then the file goes.
/// Removing the last slot removes the program.
pub fn remove_slot(layout: &Layout, program: &str, slot: SlotName) -> Result<()> {
    validate_program_name(program)?;
    let lock = lock_existing(layout, program)?;
    // Through an alias, the slot and manifest are another program's: removing there would
    // leave this alias naming a slot the other program no longer has, or keep one it removed.
    let dir = layout.program_dir(program);
    if let Ok(target) = std::fs::read_link(&dir) {
        return Err(Error::LinkedProgram {
            program: program.to_owned(),
            target,
        });
    }
    let mut manifest = layout.read_manifest(program)?;
    let Some(removed) = manifest.slots.remove(&slot) else {
        return Err(Error::NoSuchSlot {
            program: program.to_owned(),
            slot,
            present: manifest.slot_list(),
        });
    };
    if manifest.slots.is_empty() {
        drop(lock);
        return remove_program(layout, program);
    }
    let mut staging = Staging::default();
    let manifest_path = layout.manifest_path(program);
    staging.stage_bytes(manifest.to_toml().as_bytes(), &manifest_path, MANIFEST_MODE)?;
    staging.commit()?;
    // Its name, then its content file (other slots' content files have their own names).
    let content = layout.slot_file(program, slot, &removed);
    for path in [layout.slot_path(program, slot), content] {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::Io { path, source: e })
            }
            _ => {}
        }
    }
    sync_dir(&layout.program_dir(program))
}

/// Removes a program and its shim. The directory is first renamed away in one step, so a
/// concurrent run sees the whole program or none of it.
pub fn remove_program(layout: &Layout, program: &str) -> Result<()> {
    validate_program_name(program)?;
    let _lock = lock_existing(layout, program)?;
    let dir = layout.program_dir(program);
    let shim = layout.shim_path(program);
    if shim.symlink_metadata().is_ok() {
        std::fs::remove_file(&shim).map_err(Error::io(&shim))?;
    }
    let doomed = temp_path_for(&dir);
    std::fs::rename(&dir, &doomed).map_err(Error::io(&dir))?;
    std::fs::remove_dir_all(&doomed).map_err(Error::io(&doomed))?;
    sync_dir(&layout.bin_dir())
}

/// Locks the layout, if `program` is installed in it (removing never creates a layout). A
/// program directory that is a symlink to another one (an alias) is installed as far as
/// `list` is concerned, so it is here too.
fn lock_existing(layout: &Layout, program: &str) -> Result<LayoutLock> {
    let dir = layout.program_dir(program);
    if !std::fs::metadata(&dir).is_ok_and(|m| m.is_dir()) {
        return Err(Error::NoSuchProgram {
            program: program.to_owned(),
            root: layout.root().to_owned(),
        });
    }
    LayoutLock::acquire(&layout.bin_dir())
}

/// How a shim reaches the node-local launcher.
///
/// A [`ShimForm::Link`] is a symlink (`shims/PROG -> fatbin -> /usr/local/bin/fatbin`): the
/// launcher starts with argv[0] exactly as typed and takes its fast path. Some network
/// filesystems do not pass symlinks through a default mount (sshfs answers `readlink` with
/// EPERM), so a ROOT shared that way uses [`ShimForm::Script`]: a regular file whose `#!` line
/// names the node-local launcher. The kernel then starts the launcher with the shim's path
/// as its first argument and the typed argv[0] is lost: the program's argv[0] is the shim's
/// path as executed (what a script sees as `$0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShimForm {
    Link,
    Script,
}

/// What a `#!` shim starts with.
const SCRIPT_SHIM_MAGIC: &[u8] = b"#!";
/// The longest `#!` line Linux reads (BINPRM_BUF_SIZE), newline included.
const MAX_SHEBANG_LINE: usize = 256;

/// The text of a `#!` shim starting `launcher`.
pub fn script_shim_text(launcher: &Path) -> Result<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = launcher.as_os_str().as_bytes();
    let bad = |why: &str| Error::Io {
        path: launcher.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("cannot be named on a shim's `#!` line: {why}"),
        ),
    };
    if !launcher.is_absolute() {
        // The kernel resolves a relative interpreter against the caller's working directory.
        return Err(bad("the path is not absolute"));
    }
    if bytes.iter().any(|b| b.is_ascii_whitespace()) {
        // The kernel splits the line at the first blank into interpreter and one argument.
        return Err(bad("the path contains a blank"));
    }
    if bytes.len() + 3 > MAX_SHEBANG_LINE {
        return Err(bad("the path is longer than Linux reads of a `#!` line"));
    }
    let mut text = SCRIPT_SHIM_MAGIC.to_vec();
    text.extend_from_slice(bytes);
    text.push(b'\n');
    Ok(text)
}

/// The form of the shim at `path` and the launcher it names: the symlink's target, or the
/// `#!` line's interpreter. `None` when there is no shim or it is neither.
pub fn read_shim(path: &Path) -> Option<(ShimForm, PathBuf)> {
    if let Ok(target) = std::fs::read_link(path) {
        return Some((ShimForm::Link, target));
    }
    script_shim_launcher(path).map(|launcher| (ShimForm::Script, launcher))
}

/// The launcher a `#!` shim names, reading `path` through any symlinks (a user's alias of a
/// shim); `None` when it does not start with `#!`.
pub fn script_shim_launcher(path: &Path) -> Option<PathBuf> {
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;
    let mut head = Vec::with_capacity(MAX_SHEBANG_LINE);
    std::fs::File::open(path)
        .ok()?
        .take(MAX_SHEBANG_LINE as u64)
        .read_to_end(&mut head)
        .ok()?;
    let line = head.strip_prefix(SCRIPT_SHIM_MAGIC)?;
    let end = line.iter().position(|&b| b == b'\n')?;
    let interpreter = std::ffi::OsStr::from_bytes(line[..end].trim_ascii());
    Some(PathBuf::from(interpreter))
}

/// Makes `ROOT/shims/PROG` a `#!` shim starting `launcher` (absolute), replacing any old shim
/// atomically. See [`ShimForm`].
pub fn write_script_shim(layout: &Layout, program: &str, launcher: &Path) -> Result<()> {
    validate_program_name(program)?;
    let text = script_shim_text(launcher)?;
    let shims = layout.shims_dir();
    create_dirs(&shims)?;
    let shim = layout.shim_path(program);
    if std::fs::symlink_metadata(&shim).is_ok_and(|m| m.is_file())
        && std::fs::read(&shim).is_ok_and(|old| old == text)
    {
        return Ok(());
    }
    let mut staging = Staging::default();
    staging.stage_bytes(&text, &shim, SLOT_MODE)?;
    staging.commit()
}

/// Points `ROOT/shims/PROG` at `target` (a symlink), replacing any old shim atomically.
pub fn write_shim(layout: &Layout, program: &str, target: &Path) -> Result<()> {
    validate_program_name(program)?;
    let shims = layout.shims_dir();
    create_dirs(&shims)?;
    let shim = layout.shim_path(program);
    if std::fs::read_link(&shim).is_ok_and(|old| old == target) {
        return Ok(());
    }
    replace_with(&shim, |tmp| std::os::unix::fs::symlink(target, tmp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_shim_text_names_an_absolute_launcher_the_kernel_can_read() {
        let text = script_shim_text(Path::new("/usr/local/bin/fatbin")).unwrap();
        assert_eq!(text, b"#!/usr/local/bin/fatbin\n");
        for bad in ["fatbin", "bin/fatbin", "/opt/my tools/fatbin"] {
            assert!(script_shim_text(Path::new(bad)).is_err(), "{bad}");
        }
        let long = format!("/{}/fatbin", "d".repeat(250));
        assert!(script_shim_text(Path::new(&long)).is_err());
    }

    #[test]
    fn read_shim_tells_the_form_and_the_launcher() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        write_shim(&layout, "fatbin", Path::new("/usr/local/bin/fatbin")).unwrap();
        assert_eq!(
            read_shim(&layout.shim_path("fatbin")),
            Some((ShimForm::Link, PathBuf::from("/usr/local/bin/fatbin")))
        );
        write_script_shim(&layout, "cat", Path::new("/usr/local/bin/fatbin")).unwrap();
        let shim = layout.shim_path("cat");
        assert!(std::fs::symlink_metadata(&shim).unwrap().is_file());
        assert_eq!(
            read_shim(&shim),
            Some((ShimForm::Script, PathBuf::from("/usr/local/bin/fatbin")))
        );
        // A user's alias of a `#!` shim is read through.
        let alias = dir.path().join("mycat");
        std::os::unix::fs::symlink(&shim, &alias).unwrap();
        assert_eq!(
            script_shim_launcher(&alias),
            Some(PathBuf::from("/usr/local/bin/fatbin"))
        );
        std::fs::write(dir.path().join("plain"), "not a shim\n").unwrap();
        assert_eq!(read_shim(&dir.path().join("plain")), None);
        assert_eq!(read_shim(&dir.path().join("absent")), None);
    }

    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn slot(name: &str) -> SlotName {
        name.parse().unwrap()
    }

    /// A real x86-64 executable to install: a copy of the system's `true` or `false`, with
    /// `extra` bytes appended (still the same program, another sha256).
    fn binary(dir: &Path, name: &str, from: &str, extra: &[u8]) -> PathBuf {
        let mut bytes = std::fs::read(from).unwrap();
        bytes.extend_from_slice(extra);
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// A copy of `/bin/true` with the ELF header's byte at `at` changed to `value` (the file
    /// is otherwise unchanged, so only that field is wrong).
    fn patched(dir: &Path, name: &str, at: usize, value: &[u8]) -> PathBuf {
        let path = binary(dir, name, "/bin/true", b"");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[at..at + value.len()].copy_from_slice(value);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// A copy of `/bin/true` whose `GNU_PROPERTY_X86_ISA_1_NEEDED` note says it needs
    /// x86-64-v`level` (the note Debian's binutils writes, baseline in the original).
    fn needing_level(dir: &Path, name: &str, level: u8) -> PathBuf {
        let path = binary(dir, name, "/bin/true", b"");
        let mut bytes = std::fs::read(&path).unwrap();
        // pr_type 0xc0008002, pr_datasz 4, then the bits (bit 0 = baseline ... bit 3 = v4).
        let property = [0x02, 0x80, 0x00, 0xc0, 4, 0, 0, 0];
        let at = bytes
            .windows(property.len())
            .position(|w| w == property)
            .expect("/bin/true has an x86 ISA needed note")
            + property.len();
        bytes[at..at + 4].copy_from_slice(&(1u32 << (level - 1)).to_le_bytes());
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn content_files(dir: &Path) -> Vec<String> {
        names(dir)
            .into_iter()
            .filter(|n| fatbin_core::manifest::split_content_name(n).is_some())
            .collect()
    }

    fn why(result: Result<SlotInfo>) -> String {
        match result {
            Err(Error::SlotMismatch { why, .. }) => why,
            other => panic!("not a slot mismatch: {other:?}"),
        }
    }

    #[test]
    fn check_slot_refuses_a_binary_its_slot_cannot_run() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let x86 = binary(d, "true", "/bin/true", b"");
        let info = check_slot(&NewSlot::from_file(slot("x86_64"), &x86)).unwrap();
        let (sha256, size) = sha256_file(&x86).unwrap();
        assert_eq!((info.arch, info.bits, info.size), (Arch::X86_64, 64, size));
        assert_eq!(info.file, Some(content_name(slot("x86_64"), &sha256)));
        assert_eq!(info.sha256, sha256);

        // The target it was built for must be the slot's.
        let mut new = NewSlot::from_file(slot("x86_64"), &x86);
        new.target = "x86_64-unknown-linux-musl".into();
        assert_eq!(check_slot(&new).unwrap().target, new.target);
        new.target = "aarch64-unknown-linux-musl".into();
        let e = why(check_slot(&new));
        assert!(
            e.contains("built for target `aarch64-unknown-linux-musl`"),
            "{e}"
        );

        // What the ELF header says: its machine, its OS ABI, its type.
        let arm = patched(d, "arm", 18, &183u16.to_le_bytes());
        let e = why(check_slot(&NewSlot::from_file(slot("x86_64"), &arm)));
        assert!(e.contains("slot `x86_64` needs x86_64 64-bit"), "{e}");
        assert_eq!(
            check_slot(&NewSlot::from_file(slot("aarch64"), &arm))
                .unwrap()
                .arch,
            Arch::Aarch64
        );
        let gnu = patched(d, "gnu", 7, &[3]);
        check_slot(&NewSlot::from_file(slot("x86_64"), &gnu)).unwrap();
        let freebsd = patched(d, "freebsd", 7, &[9]);
        let e = why(check_slot(&NewSlot::from_file(slot("x86_64"), &freebsd)));
        assert!(e.contains("OS ABI is 9, not Linux"), "{e}");
        let object = patched(d, "object", 16, &1u16.to_le_bytes());
        let e = why(check_slot(&NewSlot::from_file(slot("x86_64"), &object)));
        assert!(e.contains("ELF Relocatable file"), "{e}");
        let script = d.join("script");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let e = why(check_slot(&NewSlot::from_file(slot("x86_64"), &script)));
        assert!(e.contains("not an ELF executable"), "{e}");
    }

    #[test]
    fn check_slot_holds_a_binary_to_the_level_it_needs() {
        let dir = tempfile::tempdir().unwrap();
        let v3 = needing_level(dir.path(), "v3", 3);
        let e = why(check_slot(&NewSlot::from_file(slot("x86_64-v2"), &v3)));
        assert!(
            e.contains("it needs x86-64-v3; install it into slot `x86_64-v3`"),
            "{e}"
        );
        for ok in ["x86_64-v3", "x86_64-v4"] {
            check_slot(&NewSlot::from_file(slot(ok), &v3)).unwrap();
        }
        // A baseline binary into the baseline slot.
        let v1 = needing_level(dir.path(), "v1", 1);
        check_slot(&NewSlot::from_file(slot("x86_64"), &v1)).unwrap();

        // The slot's level features join the build's own, sorted, once each.
        let mut new = NewSlot::from_file(slot("x86_64-v3"), &v3);
        new.features = vec!["zzz".into(), "avx2".into()];
        let features = check_slot(&new).unwrap().features;
        let mut expected: Vec<String> = slot("x86_64-v3")
            .level_features()
            .into_iter()
            .map(str::to_owned)
            .chain(["zzz".to_owned()])
            .collect();
        expected.sort();
        expected.dedup();
        assert!(expected.contains(&"avx2".to_owned()));
        assert_eq!(features, expected);
    }

    /// A layout in a fresh directory, and a directory for the binaries to install.
    fn setup() -> (tempfile::TempDir, Layout, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("root"));
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        (dir, layout, src)
    }

    fn install_one(
        layout: &Layout,
        program: &str,
        slot_name: &str,
        source: &Path,
    ) -> InstallReport {
        install(
            layout,
            program,
            &[NewSlot::from_file(slot(slot_name), source)],
        )
        .unwrap()
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn an_install_writes_a_content_file_and_links_the_slot_name_to_it() {
        let (_dir, layout, src) = setup();
        let x86 = slot("x86_64");
        let t = binary(&src, "true", "/bin/true", b"");
        let report = install_one(&layout, "prog", "x86_64", &t);
        assert_eq!(report.slots, [(x86, SlotOutcome::Installed)]);
        assert!(report.changed);
        let manifest = layout.read_manifest("prog").unwrap();
        let info = &manifest.slots[&x86];
        let content = layout.slot_file("prog", x86, info);
        assert_eq!(
            names(&layout.program_dir("prog")),
            ["fatbin.toml", "x86_64", info.file.as_deref().unwrap()]
        );
        assert_eq!(std::fs::read(&content).unwrap(), std::fs::read(&t).unwrap());
        assert_eq!(mode(&content), SLOT_MODE);
        assert!(same_inode(&layout.slot_path("prog", x86), &content));

        // The same binary again: nothing on disk changes.
        let again = install_one(&layout, "prog", "x86_64", &t);
        assert_eq!(again.slots, [(x86, SlotOutcome::Unchanged)]);
        assert!(!again.changed);
        // New facts about the same binary: only the manifest changes.
        let mut new = NewSlot::from_file(x86, &t);
        new.version = Some("2.0".into());
        let report = install(&layout, "prog", &[new]).unwrap();
        assert_eq!(report.slots, [(x86, SlotOutcome::Unchanged)]);
        assert!(report.changed);
        assert_eq!(
            layout.read_manifest("prog").unwrap().slots[&x86]
                .version
                .as_deref(),
            Some("2.0")
        );
    }

    #[test]
    fn a_slot_name_is_repaired_and_a_copy_of_the_right_bytes_kept() {
        let (_dir, layout, src) = setup();
        let x86 = slot("x86_64");
        let t = binary(&src, "true", "/bin/true", b"");
        install_one(&layout, "prog", "x86_64", &t);
        let info = layout.read_manifest("prog").unwrap().slots[&x86].clone();
        let content = layout.slot_file("prog", x86, &info);
        let name = layout.slot_path("prog", x86);

        // An install killed after its manifest left no `SLOT`: the next one links it.
        std::fs::remove_file(&name).unwrap();
        let report = install_one(&layout, "prog", "x86_64", &t);
        assert_eq!(report.slots, [(x86, SlotOutcome::Unchanged)]);
        assert!(report.changed);
        assert!(same_inode(&name, &content));

        // Other bytes under `SLOT`: replaced by the content file's.
        std::fs::remove_file(&name).unwrap();
        std::fs::copy("/bin/false", &name).unwrap();
        assert!(install_one(&layout, "prog", "x86_64", &t).changed);
        assert!(same_inode(&name, &content));

        // A copy with the right bytes (where hard links failed) is left as it is.
        std::fs::remove_file(&name).unwrap();
        std::fs::copy(&content, &name).unwrap();
        std::fs::set_permissions(&name, std::fs::Permissions::from_mode(SLOT_MODE)).unwrap();
        assert!(!install_one(&layout, "prog", "x86_64", &t).changed);
        assert!(!same_inode(&name, &content));
    }

    #[test]
    fn a_content_file_is_kept_only_when_it_holds_the_slot_exactly() {
        let (_dir, layout, src) = setup();
        let x86 = slot("x86_64");
        let t = binary(&src, "true", "/bin/true", b"");
        install_one(&layout, "prog", "x86_64", &t);
        let info = layout.read_manifest("prog").unwrap().slots[&x86].clone();
        let content = layout.slot_file("prog", x86, &info);

        // A content file whose mode was changed gets a fresh copy with the slot mode.
        std::fs::set_permissions(&content, std::fs::Permissions::from_mode(0o700)).unwrap();
        let report = install_one(&layout, "prog", "x86_64", &t);
        assert_eq!(report.slots, [(x86, SlotOutcome::Installed)]);
        assert_eq!(mode(&content), SLOT_MODE);

        // So does one that is a symlink to the right bytes.
        std::fs::remove_file(&content).unwrap();
        std::os::unix::fs::symlink(&t, &content).unwrap();
        let report = install_one(&layout, "prog", "x86_64", &t);
        assert_eq!(report.slots, [(x86, SlotOutcome::Installed)]);
        assert!(std::fs::symlink_metadata(&content).unwrap().is_file());

        // And one with other bytes of the same size.
        let mut bytes = std::fs::read(&content).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::remove_file(&content).unwrap();
        std::fs::write(&content, &bytes).unwrap();
        std::fs::set_permissions(&content, std::fs::Permissions::from_mode(SLOT_MODE)).unwrap();
        let report = install_one(&layout, "prog", "x86_64", &t);
        assert_eq!(report.slots, [(x86, SlotOutcome::Installed)]);
        assert_eq!(sha256_file(&content).unwrap().0, info.sha256);
    }

    #[test]
    fn identical_binaries_share_one_inode() {
        let (_dir, layout, src) = setup();
        let t = binary(&src, "true", "/bin/true", b"");
        // Two slots of one install: the second links the first's staged copy.
        let report = install(
            &layout,
            "prog",
            &[
                NewSlot::from_file(slot("x86_64"), &t),
                NewSlot::from_file(slot("x86_64-v2"), &t),
            ],
        )
        .unwrap();
        let manifest = layout.read_manifest("prog").unwrap();
        let file = |m: &Manifest, program: &str, s: &str| layout.file_of(m, program, slot(s));
        let first = file(&manifest, "prog", "x86_64");
        assert_eq!(
            report.slots,
            [
                (slot("x86_64"), SlotOutcome::Installed),
                (slot("x86_64-v2"), SlotOutcome::Linked { to: first.clone() })
            ]
        );
        assert!(same_inode(&first, &file(&manifest, "prog", "x86_64-v2")));

        // Another program: linked to what the layout has installed.
        let report = install_one(&layout, "other", "x86_64", &t);
        assert!(
            matches!(&report.slots[0].1, SlotOutcome::Linked { to } if same_inode(to, &first)),
            "{report:?}"
        );
        let other = layout.read_manifest("other").unwrap();
        assert!(same_inode(&file(&other, "other", "x86_64"), &first));
    }

    #[test]
    fn content_files_of_the_install_before_last_and_of_dead_installs_go() {
        let (_dir, layout, src) = setup();
        let dir = layout.program_dir("prog");
        let builds: Vec<PathBuf> = (0..3u8)
            .map(|i| binary(&src, &format!("b{i}"), "/bin/true", &[i]))
            .collect();
        let file = |l: &Layout| {
            let m = l.read_manifest("prog").unwrap();
            m.slots[&slot("x86_64")].file.clone().unwrap()
        };
        install_one(&layout, "prog", "x86_64", &builds[0]);
        let first = file(&layout);
        install_one(&layout, "prog", "x86_64", &builds[1]);
        let second = file(&layout);
        // One generation of grace: a client holding the old manifest finds its file.
        assert_eq!(content_files(&dir), sorted([&first, &second]));

        // What is not a slot's content file stays, whatever its name.
        std::fs::create_dir(dir.join("x86_64.0123456789abcdef")).unwrap();
        std::fs::write(dir.join("notaslot.0123456789abcdef"), b"x").unwrap();
        std::fs::write(dir.join("README"), b"x").unwrap();
        install_one(&layout, "prog", "x86_64", &builds[2]);
        let third = file(&layout);
        let mut expected = sorted([&second, &third]);
        expected.push("x86_64.0123456789abcdef".into());
        expected.sort();
        assert_eq!(
            content_files(&dir)
                .into_iter()
                .filter(|n| n != "notaslot.0123456789abcdef")
                .collect::<Vec<_>>(),
            expected
        );
        assert!(dir.join("notaslot.0123456789abcdef").exists());
        assert!(dir.join("README").exists() && dir.join("fatbin.toml").exists());

        // One an install renamed into place and never committed is removed by the next one,
        // and that is a change.
        let orphan = dir.join("x86_64.fedcba9876543210");
        std::fs::copy(&builds[0], &orphan).unwrap();
        // Written after the manifest (set so: a clock tick may hold both writes).
        let manifest_time = std::fs::metadata(layout.manifest_path("prog"))
            .and_then(|m| m.modified())
            .unwrap();
        std::fs::File::options()
            .write(true)
            .open(&orphan)
            .and_then(|f| f.set_modified(manifest_time + std::time::Duration::from_secs(1)))
            .unwrap();
        let report = install_one(&layout, "prog", "x86_64", &builds[2]);
        assert_eq!(report.slots, [(slot("x86_64"), SlotOutcome::Unchanged)]);
        assert!(report.changed);
        assert!(!orphan.exists());
        assert!(dir.join(&third).exists());
        // That install changed nothing: the grace is not cut short, the file of the install
        // before last is still there for a client holding its manifest.
        assert!(dir.join(&second).exists());
        let report = install_one(&layout, "prog", "x86_64", &builds[2]);
        assert!(!report.changed, "{report:?}");
        assert!(dir.join(&second).exists());
        // The next install that changes the manifest ends it.
        install_one(&layout, "prog", "x86_64", &builds[0]);
        assert!(!dir.join(&second).exists());
    }

    fn sorted<const N: usize>(names: [&String; N]) -> Vec<String> {
        let mut v: Vec<String> = names.into_iter().cloned().collect();
        v.sort();
        v
    }

    #[test]
    fn a_manifest_from_before_content_files_gets_them_where_slot_holds_its_bytes() {
        let (_dir, layout, src) = setup();
        let t = binary(&src, "true", "/bin/true", b"");
        let f = binary(&src, "false", "/bin/false", b"");
        install(
            &layout,
            "prog",
            &[
                NewSlot::from_file(slot("x86_64"), &t),
                NewSlot::from_file(slot("x86_64-v2"), &f),
            ],
        )
        .unwrap();
        // Made old: no content files, the bytes under `SLOT` alone; x86_64-v2's `SLOT` then
        // changed behind the manifest's back.
        let mut manifest = layout.read_manifest("prog").unwrap();
        for (s, info) in manifest.slots.iter_mut() {
            std::fs::remove_file(layout.slot_file("prog", *s, info)).unwrap();
            info.file = None;
        }
        std::fs::write(layout.manifest_path("prog"), manifest.to_toml()).unwrap();
        let v2 = layout.slot_path("prog", slot("x86_64-v2"));
        std::fs::remove_file(&v2).unwrap();
        std::fs::copy(&t, &v2).unwrap();
        std::fs::set_permissions(&v2, std::fs::Permissions::from_mode(SLOT_MODE)).unwrap();

        let arm = patched(&src, "arm", 18, &183u16.to_le_bytes());
        install_one(&layout, "prog", "aarch64", &arm);
        let manifest = layout.read_manifest("prog").unwrap();
        let x86 = &manifest.slots[&slot("x86_64")];
        assert_eq!(
            x86.file.as_deref(),
            Some(content_name(slot("x86_64"), &x86.sha256).as_str())
        );
        assert!(same_inode(
            &layout.slot_file("prog", slot("x86_64"), x86),
            &layout.slot_path("prog", slot("x86_64"))
        ));
        // Not for the slot whose `SLOT` no longer holds what the manifest says.
        assert_eq!(manifest.slots[&slot("x86_64-v2")].file, None);
        assert_eq!(
            content_files(&layout.program_dir("prog")).len(),
            2,
            "{:?}",
            names(&layout.program_dir("prog"))
        );
    }

    #[test]
    fn removing_a_slot_removes_its_name_and_content_file_and_the_last_the_program() {
        let (dir, layout, src) = setup();
        let t = binary(&src, "true", "/bin/true", b"");
        let arm = patched(&src, "arm", 18, &183u16.to_le_bytes());
        install(
            &layout,
            "prog",
            &[
                NewSlot::from_file(slot("x86_64"), &t),
                NewSlot::from_file(slot("aarch64"), &arm),
            ],
        )
        .unwrap();
        write_shim(&layout, "prog", Path::new("/usr/local/bin/fatbin")).unwrap();
        let prog = layout.program_dir("prog");
        let arm_file = layout.read_manifest("prog").unwrap().slots[&slot("aarch64")]
            .file
            .clone()
            .unwrap();

        let e = remove_slot(&layout, "prog", slot("x86_64-v3")).unwrap_err();
        assert!(matches!(e, Error::NoSuchSlot { .. }), "{e}");
        remove_slot(&layout, "prog", slot("x86_64")).unwrap();
        let left: Vec<SlotName> = layout
            .read_manifest("prog")
            .unwrap()
            .slots
            .into_keys()
            .collect();
        assert_eq!(left, [slot("aarch64")]);
        assert_eq!(names(&prog), ["aarch64", &arm_file, "fatbin.toml"]);

        // Through an alias: refused, the program untouched.
        std::os::unix::fs::symlink("prog", layout.program_dir("alias")).unwrap();
        let e = remove_slot(&layout, "alias", slot("aarch64")).unwrap_err();
        assert!(matches!(e, Error::LinkedProgram { .. }), "{e}");
        assert_eq!(names(&prog).len(), 3);
        std::fs::remove_file(layout.program_dir("alias")).unwrap();

        // The last slot takes the program and its shim with it.
        remove_slot(&layout, "prog", slot("aarch64")).unwrap();
        assert!(!prog.exists());
        assert!(std::fs::symlink_metadata(layout.shim_path("prog")).is_err());
        assert_eq!(layout.programs().unwrap(), Vec::<String>::new());
        // Nothing there: nothing to remove, and no layout is made for it.
        let empty = Layout::new(dir.path().join("empty"));
        for e in [
            remove_program(&layout, "prog").unwrap_err(),
            remove_slot(&empty, "prog", slot("x86_64")).unwrap_err(),
        ] {
            assert!(matches!(e, Error::NoSuchProgram { .. }), "{e}");
        }
        assert!(!empty.root().exists());
    }

    #[test]
    fn removing_a_slot_from_a_manifest_before_content_files_and_failing_to() {
        let (_dir, layout, src) = setup();
        let t = binary(&src, "true", "/bin/true", b"");
        let f = binary(&src, "false", "/bin/false", b"");
        let both = [
            NewSlot::from_file(slot("x86_64"), &t),
            NewSlot::from_file(slot("x86_64-v2"), &f),
        ];
        install(&layout, "prog", &both).unwrap();
        // Written before content files: `SLOT` is the slot's only file.
        let mut manifest = layout.read_manifest("prog").unwrap();
        for (s, info) in manifest.slots.iter_mut() {
            std::fs::remove_file(layout.slot_file("prog", *s, info)).unwrap();
            info.file = None;
        }
        std::fs::write(layout.manifest_path("prog"), manifest.to_toml()).unwrap();
        remove_slot(&layout, "prog", slot("x86_64-v2")).unwrap();
        assert_eq!(
            names(&layout.program_dir("prog")),
            ["fatbin.toml", "x86_64"]
        );

        // A file that cannot be removed is reported, not passed over.
        install(&layout, "prog", &both).unwrap();
        let manifest = layout.read_manifest("prog").unwrap();
        let content = layout.file_of(&manifest, "prog", slot("x86_64-v2"));
        std::fs::remove_file(&content).unwrap();
        std::fs::create_dir(&content).unwrap();
        std::fs::write(content.join("keep"), b"x").unwrap();
        let e = remove_slot(&layout, "prog", slot("x86_64-v2")).unwrap_err();
        assert!(
            matches!(&e, Error::Io { path, .. } if *path == content),
            "{e}"
        );
    }

    #[test]
    fn the_longest_launcher_path_a_shim_line_holds() {
        // `#!`, the path and the newline: 256 bytes is what Linux reads.
        let longest = format!("/{}", "d".repeat(252));
        assert_eq!(
            script_shim_text(Path::new(&longest)).unwrap().len(),
            MAX_SHEBANG_LINE
        );
        let too_long = format!("{longest}d");
        assert!(script_shim_text(Path::new(&too_long)).is_err());
    }

    #[test]
    fn rewriting_a_shim_as_it_is_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let launcher = Path::new("/usr/local/bin/fatbin");
        let ino = |p: &Path| std::fs::symlink_metadata(p).unwrap().ino();
        write_shim(&layout, "a", launcher).unwrap();
        let link = ino(&layout.shim_path("a"));
        write_shim(&layout, "a", launcher).unwrap();
        assert_eq!(ino(&layout.shim_path("a")), link);
        write_shim(&layout, "a", Path::new("/opt/fatbin")).unwrap();
        assert_eq!(
            read_shim(&layout.shim_path("a")).unwrap().1,
            Path::new("/opt/fatbin")
        );

        write_script_shim(&layout, "b", launcher).unwrap();
        let script = ino(&layout.shim_path("b"));
        write_script_shim(&layout, "b", launcher).unwrap();
        assert_eq!(ino(&layout.shim_path("b")), script);
        write_script_shim(&layout, "b", Path::new("/opt/fatbin")).unwrap();
        assert_eq!(
            std::fs::read(layout.shim_path("b")).unwrap(),
            b"#!/opt/fatbin\n"
        );
        assert_eq!(mode(&layout.shim_path("b")), SLOT_MODE);
    }
}
