//! Configuration from three places, in this order of precedence: the command line, the
//! environment (`FATBIN_TARGETS`, `FATBIN_ROOT`, `FATBIN_LAUNCHER`, `FATBIN_TOOLCHAIN`), then
//! `[package.metadata.fatbin]` over `[workspace.metadata.fatbin]` in Cargo.toml.

use std::path::{Path, PathBuf};

use cargo_metadata::{Metadata, Package};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::options::CargoOptions;
use crate::status::Shell;
use crate::toolchain::Backend;

/// `[package.metadata.fatbin]` / `[workspace.metadata.fatbin]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FatbinMetadata {
    pub(crate) targets: Option<Vec<String>>,
    pub(crate) root: Option<PathBuf>,
    pub(crate) launcher: Option<PathBuf>,
    /// Where linkers and C compilers come from: `auto`, `system` or `zig`.
    pub(crate) toolchain: Option<Backend>,
}

impl FatbinMetadata {
    fn from_value(value: &serde_json::Value, origin: &Path) -> Result<FatbinMetadata> {
        let Some(fatbin) = value.get("fatbin") else {
            return Ok(FatbinMetadata::default());
        };
        let mut meta: FatbinMetadata = serde_json::from_value(fatbin.clone()).map_err(|e| {
            Error::usage(format!(
                "{}: invalid [metadata.fatbin]: {e} (keys: targets, root, launcher, toolchain)",
                origin.display()
            ))
        })?;
        // Paths in Cargo.toml are relative to the file that says them.
        let base = origin.parent().unwrap_or(Path::new("."));
        for path in [&mut meta.root, &mut meta.launcher].into_iter().flatten() {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        Ok(meta)
    }

    /// The package's table over the workspace's, key by key.
    fn over(self, lower: FatbinMetadata) -> FatbinMetadata {
        FatbinMetadata {
            targets: self.targets.or(lower.targets),
            root: self.root.or(lower.root),
            launcher: self.launcher.or(lower.launcher),
            toolchain: self.toolchain.or(lower.toolchain),
        }
    }
}

/// The packages a cargo command line selects, as cargo would.
pub(crate) fn selected_packages<'m>(meta: &'m Metadata, opts: &CargoOptions) -> Vec<&'m Package> {
    let members = meta.workspace_packages();
    if !opts.packages.is_empty() {
        let names: Vec<&str> = opts
            .packages
            .iter()
            .map(|spec| spec.split(['@', ':']).next().unwrap_or(spec))
            .collect();
        return meta
            .packages
            .iter()
            .filter(|p| names.contains(&p.name.as_str()))
            .collect();
    }
    if opts.workspace {
        return members
            .into_iter()
            .filter(|p| !opts.exclude.iter().any(|e| e == p.name.as_str()))
            .collect();
    }
    if let Some(root) = meta.root_package() {
        return vec![root];
    }
    meta.workspace_default_packages()
}

/// The fatbin table that applies to the selected packages.
pub(crate) fn project_metadata(meta: &Metadata, selected: &[&Package]) -> Result<FatbinMetadata> {
    let workspace_toml = meta.workspace_root.join("Cargo.toml");
    let workspace =
        FatbinMetadata::from_value(&meta.workspace_metadata, workspace_toml.as_std_path())?;
    let mut package: Option<FatbinMetadata> = None;
    for p in selected {
        let this = FatbinMetadata::from_value(&p.metadata, p.manifest_path.as_std_path())?;
        if this == FatbinMetadata::default() {
            continue;
        }
        match &package {
            Some(other) if *other != this => {
                return Err(Error::usage(format!(
                    "the selected packages have different [package.metadata.fatbin] tables; build them one at a time (-p {})",
                    p.name
                )))
            }
            _ => package = Some(this),
        }
    }
    Ok(package.unwrap_or_default().over(workspace))
}

/// Targets: `--target` over `FATBIN_TARGETS` over Cargo.toml.
pub(crate) fn resolve_targets(cli: &[String], project: &FatbinMetadata) -> Result<Vec<String>> {
    if !cli.is_empty() {
        return Ok(cli.to_vec());
    }
    if let Ok(env) = std::env::var("FATBIN_TARGETS") {
        let list: Vec<String> = env
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if !list.is_empty() {
            return Ok(list);
        }
    }
    match &project.targets {
        Some(list) if !list.is_empty() => Ok(list.clone()),
        _ => Err(Error::usage(
            "no targets to build: pass --target TRIPLE[@CPU] (repeatable), set FATBIN_TARGETS, or add targets = [...] to [package.metadata.fatbin] in Cargo.toml",
        )),
    }
}

/// The toolchain backend: `--toolchain` over `FATBIN_TOOLCHAIN` over Cargo.toml, else `auto`.
pub(crate) fn resolve_backend(cli: Option<Backend>, project: &FatbinMetadata) -> Result<Backend> {
    if let Some(backend) = cli {
        return Ok(backend);
    }
    match std::env::var("FATBIN_TOOLCHAIN") {
        Ok(env) if !env.is_empty() => env.parse().map_err(|_| {
            Error::usage(format!(
                "FATBIN_TOOLCHAIN={env}: expected auto, system or zig"
            ))
        }),
        _ => Ok(project.toolchain.unwrap_or_default()),
    }
}

/// The documented per-user default root when neither `--root`, `FATBIN_ROOT` nor Cargo.toml
/// names one: `$XDG_DATA_HOME/fatbin`, else `~/.local/share/fatbin`.
pub(crate) fn default_root() -> Result<PathBuf> {
    fatbin_layout::default_root()
        .ok_or_else(|| Error::usage("HOME is not set: pass --root DIR or set FATBIN_ROOT"))
}

/// Root: `--root` over `FATBIN_ROOT` over Cargo.toml over the per-user default.
pub(crate) fn resolve_root(
    cli: Option<&Path>,
    project: Option<&FatbinMetadata>,
) -> Result<PathBuf> {
    if let Some(root) = cli {
        return Ok(root.to_owned());
    }
    if let Some(env) = std::env::var_os("FATBIN_ROOT").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(env));
    }
    if let Some(root) = project.and_then(|p| p.root.clone()) {
        return Ok(root);
    }
    default_root()
}

/// The node-local launcher `ROOT/shims/fatbin` points to: `--launcher` over `FATBIN_LAUNCHER`
/// over Cargo.toml over the `fatbin` next to this executable, then `fatbin` on PATH.
///
/// A found launcher outside any cargo target directory is preferred; when every one found
/// (not configured) is inside one, as in a checkout where `cargo-fatbin` runs from
/// `target/release`, the first is copied with its `fatbin-full` to a stable place first ([`stable_launcher_dir`]): shims into a target directory break on
/// `cargo clean`. A configured path is the user's choice and is kept as given.
pub(crate) fn resolve_launcher(
    cli: Option<&Path>,
    project: Option<&FatbinMetadata>,
    shell: &Shell,
) -> Result<Option<PathBuf>> {
    let configured = cli
        .map(Path::to_owned)
        .or_else(|| std::env::var_os("FATBIN_LAUNCHER").map(PathBuf::from))
        .or_else(|| project.and_then(|p| p.launcher.clone()));
    if let Some(path) = configured {
        return Ok(Some(std::path::absolute(&path).unwrap_or(path)));
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("fatbin")))
        .filter(|p| p.is_file());
    let found: Vec<PathBuf> = beside
        .into_iter()
        .chain(which::which("fatbin").ok())
        .collect();
    let real = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
    if let Some(stable) = found.iter().find(|p| !in_cargo_target_dir(&real(p))) {
        return Ok(Some(stable.clone()));
    }
    let Some(real) = found.first().map(real) else {
        return Ok(None);
    };
    let dir = stable_launcher_dir().ok_or_else(|| {
        Error::Other(format!(
            "the only `fatbin` launcher found, {}, is in a cargo target directory, where \
             shims would break on `cargo clean`, and there is no HOME to copy it to; install \
             it (`cargo install --path launcher`) or pass --launcher PATH",
            real.display()
        ))
    })?;
    let copied = copy_launcher_pair(&real, &dir)?;
    shell.note(
        "Launcher",
        format!(
            "{} is in a cargo target directory; shims use a copy in {} (survives `cargo \
             clean`; pass --launcher PATH to choose another)",
            real.display(),
            dir.display()
        ),
    );
    Ok(Some(copied))
}

/// Whether `path` lies in a cargo target directory: an ancestor holds the `CACHEDIR.TAG`
/// cargo writes there, naming cargo.
fn in_cargo_target_dir(path: &Path) -> bool {
    path.ancestors().skip(1).any(|dir| {
        std::fs::read_to_string(dir.join("CACHEDIR.TAG")).is_ok_and(|tag| tag.contains("cargo"))
    })
}

/// Where a launcher found in a cargo target directory is copied: `$XDG_DATA_HOME/fatbin/
/// launcher`, by default `~/.local/share/fatbin/launcher` (beside the user's other installed
/// programs' data, on the node's own disk unless HOME is shared).
pub(crate) fn stable_launcher_dir() -> Option<PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|home| home.join(".local/share"))
        })?;
    Some(data.join("fatbin/launcher"))
}

/// Copies `fatbin` and the `fatbin-full` beside it into `dir`, each by a rename so a shim
/// call meanwhile runs the old or the new file, never a torn one. Returns `dir/fatbin`.
fn copy_launcher_pair(fast: &Path, dir: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    for name in ["fatbin-full", "fatbin"] {
        let from = fast.with_file_name(name);
        let to = dir.join(name);
        let staged = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .tempfile_in(dir)
            .map_err(Error::io(dir))?;
        std::fs::copy(&from, staged.path()).map_err(Error::io(&from))?;
        std::fs::set_permissions(staged.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(Error::io(staged.path()))?;
        staged.persist(&to).map_err(|e| Error::io(&to)(e.error))?;
    }
    Ok(dir.join("fatbin"))
}
