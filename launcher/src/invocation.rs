//! How the launcher was started, and which layout ROOT that means.
//!
//! `ROOT/shims/PROG` is a symlink to `fatbin`, itself a symlink to the node-local launcher, so
//! the launcher starts with the path the caller executed. That path says both the program
//! (its file name) and the layout (the shim's directory's parent). The kernel hands the
//! executed path over as `AT_EXECFN` in the auxiliary vector, exactly as the caller passed it
//! to `execve` (the shell's PATH search result, `./shims/cat`, `/abs/ROOT/shims/cat`), so no
//! PATH search is needed; only when it is missing is argv[0] searched in PATH like `execvp`.
//!
//! The shim symlink itself is never resolved (that would lead to the launcher's own
//! directory); its directory is, through `..`, so a PATH entry that is a symlink to
//! `ROOT/shims` still finds ROOT. Nothing stores an absolute ROOT, so a node that mounts ROOT
//! elsewhere works unchanged.

use std::ffi::{CStr, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The launcher's own name: started under it, it is the command line, not a shim.
pub const LAUNCHER_NAME: &str = "fatbin";
/// The full launcher's name (this library); the fast launcher `fatbin` hands over to it.
pub const FULL_LAUNCHER_NAME: &str = "fatbin-full";
/// How the fast launcher tells the full one the path the caller executed: the kernel's
/// `AT_EXECFN` names `fatbin-full` after the hand-over. Removed from the environment at once,
/// so no program ever sees it.
pub use fatbin_core::env::EXECFN_VAR;

/// How the launcher was started.
#[derive(Debug)]
pub enum Mode {
    /// As `fatbin ...`; `shims_dir` is set when it was started from a `ROOT/shims` directory.
    Cli { shims_dir: Option<PathBuf> },
    /// Through the shim of a program.
    Shim(Shim),
}

/// A program's shim, as it was executed.
#[derive(Debug, Clone)]
pub struct Shim {
    /// The program's name: the shim's file name.
    pub program: OsString,
    /// The shim's path as executed (relative paths are relative to the working directory).
    pub path: PathBuf,
}

impl Shim {
    /// The ROOT this shim belongs to: `<shim's directory>/..`, resolved by the kernel.
    pub fn root(&self) -> PathBuf {
        parent_dir(dir_of(&self.path))
    }

    /// When the shim is a symlink to another program's shim (a user's own alias such as
    /// `~/bin/mycat -> ROOT/shims/cat`), that shim. Symlinks to the launcher end the chain.
    pub fn link_target(&self) -> Option<Shim> {
        let target = std::fs::read_link(&self.path).ok()?;
        let name = target.file_name()?.to_owned();
        if name == LAUNCHER_NAME {
            return None;
        }
        let path = if target.is_absolute() {
            target
        } else {
            dir_of(&self.path).join(target)
        };
        Some(Shim {
            program: name,
            path,
        })
    }
}

/// `(PROG, SLOT)` when `path` looks like a slot's file, `.../bin/PROG/SLOT` or its content file
/// `.../bin/PROG/SLOT.<hex>`: the launcher was started as a program's slot, which happens when
/// a slot is a copy of the launcher.
pub fn as_slot_path(path: &Path) -> Option<(String, String)> {
    let file = path.file_name()?.to_str()?;
    let slot = fatbin_core::manifest::slot_part(file);
    slot.parse::<fatbin_layout::SlotName>().ok()?;
    let dir = path.parent()?;
    let program = dir.file_name()?.to_str()?;
    (dir.parent()?.file_name()? == "bin").then(|| (program.to_owned(), slot.to_owned()))
}

/// `dir/..`, the way the kernel resolves it, written without the `..` where that is the same
/// directory: when `dir` is no symlink, its parent as written (`/x/ROOT/shims` gives
/// `/x/ROOT`). Messages then name `/x/ROOT/bin/...` rather than `/x/ROOT/shims/../bin/...`,
/// and a fix hint says `chmod go-w /x/ROOT`. A symlink (a PATH entry linked to
/// `ROOT/shims`) keeps the `..`, which the kernel resolves from where the link leads.
pub fn parent_dir(dir: &Path) -> PathBuf {
    let plain = std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir());
    let last = dir.file_name();
    match dir.parent() {
        Some(parent) if plain && last.is_some() => {
            if parent.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                parent.to_owned()
            }
        }
        _ => dir.join(".."),
    }
}

/// The directory a path is in, `.` for a bare name.
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// The arguments as the shim's caller passed them, when the launcher was started as the
/// interpreter of a `#!` shim (`ROOT/shims/PROG` holding `#!/usr/local/bin/fatbin`, the shim
/// form for network filesystems that do not pass symlinks through): the kernel then passes
/// `[LAUNCHER, SHIM, ARGS...]` and the caller's argv[0] is lost, so the shim's path stands in
/// for it. A `#!` shim is recognised by what the kernel did: the shim's path is both the
/// executed path and argv[1] while argv[0] is the launcher's absolute path. Only when the
/// shim is itself a script's interpreter (`#!/ROOT/shims/python3`, so the executed path is
/// the script's) is the shim read, to see that its `#!` line names exactly this argv[0]:
/// on a network ROOT every open is a round trip to the server, so the common case reads
/// nothing. Other arguments are returned unchanged.
pub fn without_shim_interpreter(mut args: Vec<OsString>) -> Vec<OsString> {
    let is_shim_call = match args.as_slice() {
        [launcher, shim, ..] => {
            let launcher = Path::new(launcher);
            let shim = Path::new(shim);
            launcher.is_absolute()
                && launcher
                    .file_name()
                    .is_some_and(|n| n == LAUNCHER_NAME || n == FULL_LAUNCHER_NAME)
                && shim.as_os_str().as_bytes().contains(&b'/')
                && match executed_path() {
                    Some(executed) if executed == launcher => false,
                    Some(executed) if executed == shim => true,
                    _ => fatbin_layout::script_shim_launcher(shim)
                        .is_some_and(|named| named == launcher),
                }
        }
        _ => false,
    };
    if is_shim_call {
        args.remove(0);
    }
    args
}

/// Works out how the launcher was started from the executed path (or argv[0]).
pub fn detect(args: &[OsString]) -> Mode {
    let argv0 = args.first().map(OsString::as_os_str).unwrap_or_default();
    let path = match executed_path() {
        Some(executed) if started_as_interpreter(&executed, args) => Some(PathBuf::from(argv0)),
        Some(executed) => Some(executed),
        None => search_path(argv0),
    };
    let Some(path) = path else {
        // Nothing to go on (argv[0] is a bare name not in PATH): trust argv[0] for the name.
        return match Path::new(argv0).file_name() {
            Some(name) if !is_launcher_name(Path::new(argv0)) => Mode::Shim(Shim {
                program: name.to_owned(),
                path: PathBuf::from(argv0),
            }),
            _ => Mode::Cli { shims_dir: None },
        };
    };
    if is_launcher_name(&path) {
        let dir = dir_of(&path);
        let shims_dir = (dir.file_name() == Some(OsStr::new("shims"))).then(|| dir.to_owned());
        return Mode::Cli { shims_dir };
    }
    match path.file_name() {
        Some(name) => Mode::Shim(Shim {
            program: name.to_owned(),
            path: path.clone(),
        }),
        None => Mode::Cli { shims_dir: None },
    }
}

/// Whether the shim was started as the `#!` interpreter of a script (`#!/ROOT/shims/python3`):
/// then the kernel's executed path is the script's, argv[0] is the interpreter's path as the
/// `#!` line spells it, and the script's path follows as argv[1] (or argv[2], after the
/// optional interpreter argument).
fn started_as_interpreter(executed: &Path, args: &[OsString]) -> bool {
    let Some(argv0) = args.first() else {
        return false;
    };
    let interpreter = Path::new(argv0);
    argv0.as_bytes().contains(&b'/')
        && interpreter.file_name() != executed.file_name()
        && args[1..].iter().take(2).any(|a| Path::new(a) == executed)
}

/// Whether `path` names the launcher itself: `.../fatbin` or `.../fatbin-full`, or a slot of
/// either installed as a fat program (`ROOT/bin/fatbin-full/x86_64`) executed directly.
fn is_launcher_name(path: &Path) -> bool {
    let name = path.file_name();
    if name == Some(OsStr::new(LAUNCHER_NAME)) || name == Some(OsStr::new(FULL_LAUNCHER_NAME)) {
        return true;
    }
    let in_launcher_dir = path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == LAUNCHER_NAME || d == FULL_LAUNCHER_NAME);
    in_launcher_dir
        && path
            .file_name()
            .and_then(OsStr::to_str)
            .is_some_and(|n| n.parse::<fatbin_layout::SlotName>().is_ok())
}

/// The path the kernel executed (`AT_EXECFN`), as the caller spelled it; when the fast
/// launcher handed over, the path it was executed as (`FATBIN_EXECFN`, taken out of the
/// environment here).
fn executed_path() -> Option<PathBuf> {
    static EXECUTED: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    EXECUTED.get_or_init(read_executed_path).clone()
}

/// [`executed_path`], read once.
fn read_executed_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(EXECFN_VAR) {
        std::env::remove_var(EXECFN_VAR);
        return (!path.is_empty()).then(|| PathBuf::from(path));
    }
    // SAFETY: getauxval has no preconditions; for AT_EXECFN it returns 0 or a pointer to a
    // NUL-terminated string the kernel placed on the initial stack, valid for the process's
    // lifetime.
    let ptr = unsafe { libc::getauxval(libc::AT_EXECFN) } as *const libc::c_char;
    if ptr.is_null() {
        return None;
    }
    // SAFETY: see above: non-null means a valid C string.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    (!bytes.is_empty()).then(|| PathBuf::from(OsStr::from_bytes(bytes)))
}

/// The path `execvp` would have executed for `name`: itself when it has a slash, else the
/// first PATH entry holding an executable of that name.
pub fn search_path(name: &OsStr) -> Option<PathBuf> {
    if name.is_empty() {
        return None;
    }
    if name.as_bytes().contains(&b'/') {
        return Some(PathBuf::from(name));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    for dir in path.as_bytes().split(|&b| b == b':') {
        // An empty PATH entry means the working directory, as in execvp.
        let dir = if dir.is_empty() { &b"."[..] } else { dir };
        let candidate = Path::new(OsStr::from_bytes(dir)).join(name);
        if is_executable(&candidate) {
            return Some(candidate);
        }
    }
    None
}

/// Whether `path` is a file this process may execute.
pub fn is_executable(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: c is a valid C string; access only reads it.
    let executable = unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 };
    executable && std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// Where ROOT came from, for `--explain` and error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootSource {
    Flag,
    Env,
    Shim,
    Default,
}

impl RootSource {
    pub fn describe(self) -> &'static str {
        match self {
            RootSource::Flag => "from --root",
            RootSource::Env => "from FATBIN_ROOT",
            RootSource::Shim => "from the shim's location",
            RootSource::Default => "the default, $XDG_DATA_HOME/fatbin or ~/.local/share/fatbin",
        }
    }
}

/// The layout root and where it came from.
#[derive(Debug, Clone)]
pub struct Root {
    pub path: PathBuf,
    pub source: RootSource,
}

/// ROOT: `--root`, else `FATBIN_ROOT`, else the invoked shim's location, else the per-user
/// default `cargo fatbin install` uses: `$XDG_DATA_HOME/fatbin`, else `~/.local/share/fatbin`.
pub fn resolve_root(flag: Option<PathBuf>, shim_root: Option<PathBuf>) -> Result<Root> {
    if let Some(path) = flag {
        return Ok(Root {
            path,
            source: RootSource::Flag,
        });
    }
    if let Some(path) = std::env::var_os(fatbin_core::env::ROOT_VAR).filter(|v| !v.is_empty()) {
        return Ok(Root {
            path: PathBuf::from(path),
            source: RootSource::Env,
        });
    }
    if let Some(path) = shim_root {
        return Ok(Root {
            path,
            source: RootSource::Shim,
        });
    }
    let path = fatbin_layout::default_root().ok_or_else(|| {
        Error::NotFound(
            "no layout root: HOME is not set; pass --root ROOT or set FATBIN_ROOT".into(),
        )
    })?;
    Ok(Root {
        path,
        source: RootSource::Default,
    })
}
