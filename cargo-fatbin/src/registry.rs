//! `cargo fatbin install CRATE[@VERSION]`: getting a published crate's source the way cargo
//! itself does (its registry, mirrors and source replacement from the user's configuration),
//! then building it like a local project.
//!
//! cargo has no stable "download this crate" command, so a throw-away project depends on the
//! crate and `cargo metadata` resolves and downloads it; the unpacked source is copied to
//! `~/.cache/fatbin/registry/src/NAME-VERSION` (cargo's own copy must stay untouched) and built
//! there with a shared target directory, so installing the same version again is a no-op.

use std::path::{Path, PathBuf};

use cargo_metadata::MetadataCommand;

use crate::error::{Error, Result};
use crate::options::CargoOptions;
use crate::status::Shell;

/// A published crate's source, ready to build.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) manifest_path: PathBuf,
    pub(crate) target_dir: PathBuf,
}

fn cache_dir() -> Result<PathBuf> {
    let cache = fatbin_layout::xdg_dir("XDG_CACHE_HOME", ".cache")
        .ok_or_else(|| Error::usage("HOME is not set: set XDG_CACHE_HOME"))?;
    Ok(cache.join("fatbin"))
}

/// Splits `NAME[@VERSION]`; `@VERSION` means exactly that version, like `cargo install`.
fn requirement(spec: &str, version: Option<&str>) -> Result<(String, String)> {
    let (name, at) = match spec.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (spec, None),
    };
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_name {
        return Err(Error::usage(format!("`{spec}` is not a crate name")));
    }
    let req = match (at, version) {
        (Some(_), Some(_)) => {
            return Err(Error::usage(
                "give the version either as CRATE@VERSION or with --version, not both",
            ))
        }
        (Some(v), None) if v.chars().next().is_some_and(|c| c.is_ascii_digit()) => format!("={v}"),
        (Some(v), None) | (None, Some(v)) => v.to_owned(),
        (None, None) => "*".to_owned(),
    };
    Ok((name.to_owned(), req))
}

pub(crate) fn fetch(
    spec: &str,
    version: Option<&str>,
    opts: &CargoOptions,
    shell: &Shell,
) -> Result<Fetched> {
    let (name, req) = requirement(spec, version)?;
    let cache = cache_dir()?.join("registry");
    std::fs::create_dir_all(&cache).map_err(Error::io(&cache))?;
    let scratch = tempfile::Builder::new()
        .prefix("resolve-")
        .tempdir_in(&cache)
        .map_err(Error::io(&cache))?;
    let manifest = scratch.path().join("Cargo.toml");
    let text = format!(
        "[package]\nname = \"fatbin-fetch\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\n{name} = {}\n\n[workspace]\n",
        serde_json::to_string(&req).expect("a string serialises")
    );
    std::fs::write(&manifest, text).map_err(Error::io(&manifest))?;
    let src = scratch.path().join("src");
    std::fs::create_dir_all(&src).map_err(Error::io(&src))?;
    std::fs::write(src.join("lib.rs"), "").map_err(Error::io(&src))?;

    shell.status("Fetching", format!("{name} {req} from the registry"));
    let mut cmd = MetadataCommand::new();
    if let Some(cargo) = std::env::var_os("CARGO") {
        cmd.cargo_path(cargo);
    }
    let mut other: Vec<String> = Vec::new();
    for (on, flag) in [(opts.offline, "--offline"), (opts.frozen, "--offline")] {
        if on {
            other.push(flag.into());
        }
    }
    for c in &opts.config {
        other.extend(["--config".to_owned(), c.clone()]);
    }
    cmd.manifest_path(&manifest).other_options(other);
    let metadata = cmd.exec().map_err(|e| match e {
        cargo_metadata::Error::CargoMetadata { stderr } => Error::Cargo(format!(
            "could not fetch `{name}` ({req}) from the registry: {}",
            stderr.trim().trim_start_matches("error: ")
        )),
        other => Error::Cargo(format!("could not fetch `{name}`: {other}")),
    })?;
    let (version, source) = match metadata.packages.iter().find(|p| p.name.as_str() == name) {
        Some(package) => {
            if !package.targets.iter().any(|t| t.is_bin()) {
                return Err(Error::usage(format!(
                    "`{name}` v{} has no binaries to install",
                    package.version
                )));
            }
            let dir = package
                .manifest_path
                .parent()
                .expect("a manifest is in a directory");
            (package.version.to_string(), dir.as_std_path().to_owned())
        }
        // A crate with only binaries is resolved and downloaded, but cargo leaves it out of
        // the metadata ("ignoring invalid dependency ... missing a lib target"): take its
        // version from the lock file and its source from cargo's unpacked registry cache.
        None => {
            let version =
                locked_version(&scratch.path().join("Cargo.lock"), &name).ok_or_else(|| {
                    Error::Cargo(format!("the registry has no crate `{name}` ({req})"))
                })?;
            let dir = unpacked_source(&name, &version).ok_or_else(|| {
                Error::Cargo(format!(
                    "`{name}` v{version} was resolved but its source is not in cargo's registry cache; download it yourself and use `cargo fatbin install --path DIR`"
                ))
            })?;
            (version, dir)
        }
    };
    let source = source.as_path();
    let dest = cache.join("src").join(format!("{name}-{version}"));
    if !dest.join("Cargo.toml").is_file() {
        let staging = cache.join("src").join(format!(".{name}-{version}.tmp"));
        let _ = std::fs::remove_dir_all(&staging);
        copy_tree(source, &staging)?;
        // Its own workspace, whatever directory the cache is under.
        let toml = staging.join("Cargo.toml");
        let mut text = std::fs::read_to_string(&toml).map_err(Error::io(&toml))?;
        if !text.lines().any(|l| l.trim() == "[workspace]") {
            text.push_str("\n[workspace]\n");
            std::fs::write(&toml, text).map_err(Error::io(&toml))?;
        }
        std::fs::rename(&staging, &dest).map_err(Error::io(&dest))?;
    }
    shell.status("Fetched", format!("{name} v{version} ({})", dest.display()));
    Ok(Fetched {
        manifest_path: dest.join("Cargo.toml"),
        target_dir: cache.join("target"),
    })
}

/// The version of `name` a lock file pins.
fn locked_version(lock: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(lock).ok()?;
    let table: toml::Table = text.parse().ok()?;
    table.get("package")?.as_array()?.iter().find_map(|p| {
        (p.get("name")?.as_str()? == name).then(|| p.get("version")?.as_str().map(str::to_owned))?
    })
}

/// `$CARGO_HOME/registry/src/<index>/NAME-VERSION`, where cargo unpacks downloaded crates.
fn unpacked_source(name: &str, version: &str) -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    std::fs::read_dir(home.join("registry/src"))
        .ok()?
        .flatten()
        .map(|index| index.path().join(format!("{name}-{version}")))
        .find(|dir| dir.join("Cargo.toml").is_file())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(Error::io(to))?;
    for entry in std::fs::read_dir(from).map_err(Error::io(from))? {
        let entry = entry.map_err(Error::io(from))?;
        let kind = entry.file_type().map_err(Error::io(entry.path()))?;
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &dest).map_err(Error::io(&dest))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::requirement;

    #[test]
    fn versions_are_exact_like_cargo_install() {
        assert_eq!(requirement("rg", None).unwrap().1, "*");
        assert_eq!(requirement("rg@14.1.0", None).unwrap().1, "=14.1.0");
        assert_eq!(requirement("rg", Some("^14")).unwrap().1, "^14");
        assert!(requirement("rg@1", Some("1")).is_err());
        assert!(requirement("a/b", None).is_err());
    }
}
