//! This node's C library, as far as slot choice needs it: a glibc slot runs only where its
//! program interpreter exists and the glibc it belongs to is at least as new as the slot needs.
//!
//! The interpreter is the one the slot file itself names (`PT_INTERP`), read from its program
//! headers; the glibc version is the one in that interpreter's banner (`fatbin_core::clib`).
//! Reading a 200 KiB loader on every decision would cost more than the rest of the decision,
//! so the answer is kept in node-local state, `$XDG_CACHE_HOME/fatbin/clib-NODENAME` (else
//! `~/.cache/fatbin/...`), one line per interpreter, keyed by the identity of the file that
//! was read: device, inode, size, modification and change times, taken from the open file
//! the banner came from. A lookup `stat`s the interpreter and uses the remembered version only
//! when every one of those matches, so an upgraded glibc (a new file renamed into place: a new
//! inode, a new change time) is read afresh at once and a slot is never chosen on a stale
//! answer. The node name in the file name keeps nodes that share a home directory apart (their
//! loaders could in principle have equal numbers). Without a cache directory, or when it
//! cannot be written, the version is read from the file every time: slower, never wrong.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use fatbin_core::clib::{self as rules, InterpProblem};
use fatbin_layout::identify::GlibcVersion;
use fatbin_layout::Arch;

/// The most bytes of a loader read looking for its banner (glibc's `ld.so` is about 200 KiB;
/// the banner sits in its read-only data).
const MAX_LOADER_BYTES: u64 = 8 << 20;

/// The program interpreter the ELF file at `path` names: `Ok(None)` for a static binary.
/// The outer error is the file's (it cannot be opened or read); the inner one says why its
/// headers name no interpreter that can be trusted.
pub fn slot_interpreter(path: &Path) -> std::io::Result<Result<Option<PathBuf>, String>> {
    let file = File::open(path)?;
    let mut header = [0u8; rules::ELF_HEADER_LEN];
    let n = read_at_most(&file, 0, &mut header)?;
    let problem = |p: InterpProblem| {
        Ok(Err(match p {
            InterpProblem::NotElf => "it is not an ELF file".to_owned(),
            InterpProblem::BadProgramHeaders => "its ELF program headers are malformed".into(),
            InterpProblem::BadInterpreter => "its ELF interpreter entry is malformed".into(),
        }))
    };
    let headers = match rules::program_headers(&header[..n]) {
        Ok(h) => h,
        Err(p) => return problem(p),
    };
    let mut table = vec![0u8; headers.len() as usize];
    if read_at_most(&file, headers.offset, &mut table)? != table.len() {
        return problem(InterpProblem::BadProgramHeaders);
    }
    let (at, len) = match rules::interpreter_at(&headers, &table) {
        Ok(Some(range)) => range,
        Ok(None) => return Ok(Ok(None)),
        Err(p) => return problem(p),
    };
    let mut bytes = vec![0u8; len as usize];
    let n = read_at_most(&file, at, &mut bytes)?;
    match rules::interpreter_path(&bytes[..n]) {
        Ok(path) => {
            use std::os::unix::ffi::OsStrExt;
            Ok(Ok(Some(PathBuf::from(std::ffi::OsStr::from_bytes(path)))))
        }
        Err(p) => problem(p),
    }
}

/// Reads into `buf` from `offset` until it is full or the file ends; returns the bytes read.
fn read_at_most(file: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// What a file is, as far as telling it from any other file (or its own earlier contents)
/// goes: the key of the remembered answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    fn of(m: &std::fs::Metadata) -> FileId {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    fn to_text(self) -> String {
        format!(
            "{} {} {} {}.{} {}.{}",
            self.dev, self.ino, self.size, self.mtime.0, self.mtime.1, self.ctime.0, self.ctime.1
        )
    }

    fn parse(text: &str) -> Option<FileId> {
        let mut words = text.split(' ');
        let mut int = || words.next()?.parse::<u64>().ok();
        let (dev, ino, size) = (int()?, int()?, int()?);
        let mut time = || -> Option<(i64, i64)> {
            let (s, ns) = words.next()?.split_once('.')?;
            Some((s.parse().ok()?, ns.parse().ok()?))
        };
        let (mtime, ctime) = (time()?, time()?);
        words.next().is_none().then_some(FileId {
            dev,
            ino,
            size,
            mtime,
            ctime,
        })
    }
}

/// The glibc a program interpreter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    /// glibc of this version.
    Glibc(GlibcVersion),
    /// A file without glibc's banner (musl's loader, or anything else).
    NotGlibc,
}

/// The node-local state file: `None` when there is no cache directory.
fn state_file() -> Option<PathBuf> {
    let base = fatbin_layout::xdg_dir("XDG_CACHE_HOME", ".cache")?;
    Some(base.join("fatbin").join(format!("clib-{}", node_name()?)))
}

/// This node's name (`uname -n`), when it is usable in a file name.
pub(crate) fn node_name() -> Option<String> {
    // SAFETY: utsname is plain data; uname fills it.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return None;
    }
    let bytes: Vec<u8> = uts
        .nodename
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    let name = String::from_utf8(bytes).ok()?;
    let usable = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    usable.then_some(name)
}

/// The glibc of the program interpreter at `interp`, from the node-local state when it names
/// this very file, else read from the file (and remembered). `Err` when the file cannot be
/// read (a missing interpreter is `NotFound`).
pub fn loader(interp: &Path) -> std::io::Result<Loader> {
    loader_with(state_file().as_deref(), interp)
}

/// [`loader`] with the state kept in `state` (`None`: not kept).
fn loader_with(state: Option<&Path>, interp: &Path) -> std::io::Result<Loader> {
    let key = interp.to_str().filter(|k| !k.contains(['\t', '\n']));
    let remembered = state
        .zip(key)
        .and_then(|(state, key)| Some((std::fs::read_to_string(state).ok()?, key)));
    if let Some((text, key)) = &remembered {
        if let Some((id, answer)) = find(text, key) {
            // stat follows the symlink (/lib64/ld-linux-x86-64.so.2 usually is one) to the
            // file an exec would load now.
            if FileId::of(&std::fs::metadata(interp)?) == id {
                return Ok(answer);
            }
        }
    }
    let mut file = File::open(interp)?;
    // The identity of the file actually read, not of whatever the path names later.
    let id = FileId::of(&file.metadata()?);
    let mut data = Vec::new();
    (&mut file).take(MAX_LOADER_BYTES).read_to_end(&mut data)?;
    let answer = match rules::glibc_banner_version(&data) {
        Some((major, minor)) => Loader::Glibc(GlibcVersion { major, minor }),
        None => Loader::NotGlibc,
    };
    if let (Some(state), Some(key)) = (state, key) {
        let old = remembered.map(|(text, _)| text).unwrap_or_default();
        // Best effort: without the state the next decision reads the file again.
        let _ = remember(state, &old, key, id, answer);
    }
    Ok(answer)
}

/// The remembered identity and answer for interpreter `key` in the state `text`.
fn find(text: &str, key: &str) -> Option<(FileId, Loader)> {
    text.lines().find_map(|line| {
        let mut fields = line.split('\t');
        if fields.next()? != key {
            return None;
        }
        let id = FileId::parse(fields.next()?)?;
        let answer = match fields.next()? {
            "-" => Loader::NotGlibc,
            v => Loader::Glibc(v.parse().ok()?),
        };
        fields.next().is_none().then_some((id, answer))
    })
}

/// Writes the state with `key`'s line replaced by one for `id` and `answer`.
fn remember(
    state: &Path,
    old: &str,
    key: &str,
    id: FileId,
    answer: Loader,
) -> fatbin_layout::Result<()> {
    let mut text = String::from(
        "# fatbin: glibc versions of this node's program interpreters, keyed by file identity\n",
    );
    for line in old.lines() {
        let kept = !line.starts_with('#') && line.split('\t').next() != Some(key);
        if kept {
            text.push_str(line);
            text.push('\n');
        }
    }
    let version = match answer {
        Loader::Glibc(v) => v.to_string(),
        Loader::NotGlibc => "-".into(),
    };
    text.push_str(&format!("{key}\t{}\t{version}\n", id.to_text()));
    if let Some(dir) = state.parent() {
        fatbin_layout::fsutil::create_dirs(dir)?;
    }
    fatbin_layout::fsutil::write_atomic(state, text.as_bytes(), 0o644)
}

/// Why a glibc slot whose interpreter is `interp` and which needs glibc `need` cannot run on
/// this node, or `None` when it can.
pub fn glibc_problem(interp: &Path, need: Option<GlibcVersion>) -> Option<String> {
    let shown = interp.display();
    match loader(interp) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Some(format!("no {shown} on this node"))
        }
        Err(e) => Some(format!(
            "its program interpreter {shown} cannot be read: {e}"
        )),
        Ok(Loader::Glibc(have)) => match need {
            Some(need) if have < need => Some(format!("needs glibc {need}, this node has {have}")),
            _ => None,
        },
        Ok(Loader::NotGlibc) => {
            need.map(|need| format!("needs glibc {need}, and {shown} is not glibc's"))
        }
    }
}

/// The glibc program interpreter of `arch`'s usual ABI, for `fatbin host` (for a slot, the
/// interpreter its own file names decides).
pub fn usual_interpreter(arch: Arch) -> Option<&'static str> {
    Some(match arch {
        Arch::X86_64 => "/lib64/ld-linux-x86-64.so.2",
        Arch::I686 => "/lib/ld-linux.so.2",
        Arch::Aarch64 => "/lib/ld-linux-aarch64.so.1",
        Arch::Riscv64 => "/lib/ld-linux-riscv64-lp64d.so.1",
        Arch::Armv7 => "/lib/ld-linux-armhf.so.3",
        Arch::Ppc64le => "/lib64/ld64.so.2",
        Arch::S390x => "/lib/ld64.so.1",
        _ => return None,
    })
}

/// `fatbin host`'s C library line: `glibc 2.36 (/lib64/ld-linux-x86-64.so.2)`, or that there
/// is none.
pub fn describe(arch: Option<Arch>) -> String {
    let Some(interp) = arch.and_then(usual_interpreter) else {
        return "unknown (no glibc interpreter known for this processor)".into();
    };
    match loader(Path::new(interp)) {
        Ok(Loader::Glibc(v)) => format!("glibc {v} ({interp})"),
        Ok(Loader::NotGlibc) => format!("not glibc ({interp} has no glibc version)"),
        Err(_) => format!("no glibc (no {interp}): static and musl slots only"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loader_file(dir: &Path, name: &str, version: &str) -> PathBuf {
        let path = dir.join(name);
        let banner = format!("\0\0ld.so (GNU libc) stable release version {version}.\n\0");
        std::fs::write(&path, banner).unwrap();
        path
    }

    #[test]
    fn a_missing_interpreter_is_named() {
        assert_eq!(
            glibc_problem(Path::new("/nonexistent/ld-linux.so.2"), None),
            Some("no /nonexistent/ld-linux.so.2 on this node".into())
        );
    }

    #[test]
    fn the_version_is_remembered_for_the_same_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("cache/clib-node");
        let ld = loader_file(dir.path(), "ld.so", "2.30");
        let v = |major, minor| Loader::Glibc(GlibcVersion { major, minor });
        assert_eq!(loader_with(Some(&state), &ld).unwrap(), v(2, 30));
        let text = std::fs::read_to_string(&state).unwrap();
        assert!(text.contains("\t2.30\n"), "{text}");

        // Remembered: a forged answer for the same identity is believed ...
        let forged = text.replace("\t2.30\n", "\t2.31\n");
        std::fs::write(&state, &forged).unwrap();
        assert_eq!(loader_with(Some(&state), &ld).unwrap(), v(2, 31));

        // ... but an upgrade (a new file renamed into place, as package managers do) is
        // seen at once, and remembered in place of the old answer.
        let new = loader_file(dir.path(), "ld.so.new", "2.40");
        std::fs::rename(&new, &ld).unwrap();
        assert_eq!(loader_with(Some(&state), &ld).unwrap(), v(2, 40));
        let text = std::fs::read_to_string(&state).unwrap();
        assert_eq!(text.matches("ld.so\t").count(), 1, "{text}");

        // So is a file rewritten in place (its change time moves).
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&ld, b"release version 2.41.").unwrap();
        assert_eq!(loader_with(Some(&state), &ld).unwrap(), v(2, 41));

        // Not glibc's, remembered as such; and no state at all still answers.
        let musl = dir.path().join("ld-musl");
        std::fs::write(&musl, b"musl libc").unwrap();
        assert_eq!(loader_with(Some(&state), &musl).unwrap(), Loader::NotGlibc);
        assert_eq!(loader_with(Some(&state), &musl).unwrap(), Loader::NotGlibc);
        // One line per interpreter, under one heading.
        let text = std::fs::read_to_string(&state).unwrap();
        assert_eq!(
            text.lines().filter(|l| l.starts_with('#')).count(),
            1,
            "{text}"
        );
        assert_eq!(
            text.lines().filter(|l| !l.starts_with('#')).count(),
            2,
            "{text}"
        );
        assert!(
            text.contains("/ld.so\t") && text.contains("/ld-musl\t"),
            "{text}"
        );
        assert_eq!(loader_with(None, &ld).unwrap(), v(2, 41));
        // A corrupt state is ignored and rewritten.
        std::fs::write(&state, "garbage\n\t\t\n").unwrap();
        assert_eq!(loader_with(Some(&state), &ld).unwrap(), v(2, 41));
    }

    #[test]
    fn identities_round_trip_as_text() {
        let m = std::fs::metadata("/proc/self/exe").unwrap();
        let id = FileId::of(&m);
        assert_eq!(FileId::parse(&id.to_text()), Some(id));
        assert_eq!(FileId::parse("1 2 3 4.5"), None);
        assert_eq!(FileId::parse("1 2 3 4.5 6.7 8"), None);
    }

    #[test]
    fn a_slot_names_its_interpreter() {
        // This test binary: dynamic (host default) or static; either way an answer.
        let me = slot_interpreter(Path::new("/proc/self/exe"))
            .unwrap()
            .unwrap();
        if let Some(interp) = me {
            assert!(interp.exists(), "{}", interp.display());
        }
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        assert_eq!(
            slot_interpreter(&script).unwrap(),
            Err("it is not an ELF file".into())
        );
    }

    /// The system's own `/bin/true`: its processor and the interpreter its headers name, as
    /// the layout's identifier (a different reader of the same headers) reads them.
    fn system_binary() -> (Arch, PathBuf) {
        match fatbin_layout::identify::identify_path(Path::new("/bin/true")).unwrap() {
            fatbin_layout::identify::Identity::Elf(info) => (
                info.arch.expect("a known processor"),
                PathBuf::from(info.interpreter.expect("a dynamic /bin/true")),
            ),
            other => panic!("/bin/true is {other}"),
        }
    }

    #[test]
    fn the_interpreter_read_is_the_one_the_headers_name() {
        let (arch, interp) = system_binary();
        assert_eq!(
            slot_interpreter(Path::new("/bin/true")).unwrap(),
            Ok(Some(interp.clone()))
        );
        // The usual glibc interpreter of this processor is the one its system binaries use.
        assert_eq!(usual_interpreter(arch), interp.to_str());

        let dir = tempfile::tempdir().unwrap();
        let elf = std::fs::read("/bin/true").unwrap();
        // Cut inside the ELF header, and after the header but before the program headers.
        for (len, why) in [
            (40, "it is not an ELF file"),
            (64, "its ELF program headers are malformed"),
        ] {
            let cut = dir.path().join(format!("cut{len}"));
            std::fs::write(&cut, &elf[..len]).unwrap();
            assert_eq!(slot_interpreter(&cut).unwrap(), Err(why.into()), "{len}");
        }
        // A file that cannot be read is the outer error, at once.
        let e = slot_interpreter(Path::new("/")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EISDIR), "{e}");
    }

    /// `path` under a name with a tab in it, which is never remembered: these tests read
    /// afresh every time and leave the node-local state as they found it.
    fn unremembered(dir: &Path, path: &Path) -> PathBuf {
        let link = dir.join(format!(
            "never\tremembered-{}",
            path.file_name()
                .unwrap_or("root".as_ref())
                .to_string_lossy()
        ));
        std::os::unix::fs::symlink(path, &link).unwrap();
        link
    }

    #[test]
    fn glibc_problems_compare_the_nodes_glibc_with_the_slots() {
        // The real interpreter of this machine.
        let dir = tempfile::tempdir().unwrap();
        let interp = unremembered(dir.path(), &system_binary().1);
        let Ok(Loader::Glibc(have)) = loader(&interp) else {
            panic!("{} is not glibc's", interp.display());
        };
        assert_eq!(glibc_problem(&interp, None), None);
        assert_eq!(glibc_problem(&interp, Some(have)), None);
        let older = GlibcVersion { major: 2, minor: 0 };
        assert_eq!(glibc_problem(&interp, Some(older)), None);
        let newer = GlibcVersion {
            major: have.major,
            minor: have.minor + 1,
        };
        assert_eq!(
            glibc_problem(&interp, Some(newer)),
            Some(format!("needs glibc {newer}, this node has {have}"))
        );
        // A file that cannot be read is not a missing one.
        let unreadable = unremembered(dir.path(), Path::new("/"));
        let e = glibc_problem(&unreadable, None).unwrap();
        let expected = format!(
            "its program interpreter {} cannot be read: ",
            unreadable.display()
        );
        assert!(e.starts_with(&expected), "{e}");
        assert!(describe(None).starts_with("unknown"));
    }

    #[test]
    fn a_loader_without_glibcs_banner_serves_no_glibc_slot() {
        // `/etc/os-release` is no loader: no glibc there.
        let dir = tempfile::tempdir().unwrap();
        let text = unremembered(dir.path(), Path::new("/etc/os-release"));
        assert_eq!(loader(&text).unwrap(), Loader::NotGlibc);
        assert_eq!(glibc_problem(&text, None), None);
        let need = GlibcVersion {
            major: 2,
            minor: 17,
        };
        assert_eq!(
            glibc_problem(&text, Some(need)),
            Some(format!(
                "needs glibc 2.17, and {} is not glibc's",
                text.display()
            ))
        );
    }

    #[test]
    fn each_processor_with_a_glibc_port_has_its_usual_interpreter() {
        for (arch, interp) in [
            (Arch::X86_64, "/lib64/ld-linux-x86-64.so.2"),
            (Arch::I686, "/lib/ld-linux.so.2"),
            (Arch::Aarch64, "/lib/ld-linux-aarch64.so.1"),
            (Arch::Riscv64, "/lib/ld-linux-riscv64-lp64d.so.1"),
            (Arch::Armv7, "/lib/ld-linux-armhf.so.3"),
            (Arch::Ppc64le, "/lib64/ld64.so.2"),
            (Arch::S390x, "/lib/ld64.so.1"),
        ] {
            assert_eq!(usual_interpreter(arch), Some(interp), "{arch}");
        }
    }

    #[test]
    fn the_state_is_kept_per_node_in_the_cache_directory() {
        let node = node_name().expect("a usable node name");
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(node, kernel.trim_end());
        if let Some(cache) = fatbin_layout::xdg_dir("XDG_CACHE_HOME", ".cache") {
            assert_eq!(
                state_file(),
                Some(cache.join("fatbin").join(format!("clib-{node}")))
            );
        }
    }
}
