//! Reading the user's own cargo configuration, so `cargo fatbin` adds to it and never
//! overrides it: a linker the user set stays, and their rustflags keep applying when a
//! target needs `-C target-cpu` or the musl stub libraries.
//!
//! cargo takes a target's rustflags from the FIRST of these sources that is set, without
//! merging them (<https://doc.rust-lang.org/cargo/reference/config.html#buildrustflags>):
//! `CARGO_ENCODED_RUSTFLAGS`, `RUSTFLAGS`, `target.<triple>.rustflags` and matching
//! `target.<cfg>.rustflags` (joined), then `build.rustflags`. Arrays set with `--config` ARE
//! merged into the same key of the config files, so a `--config target.<triple>.rustflags=[..]`
//! appends to the user's target rustflags, but replaces `build.rustflags` and is ignored under
//! `RUSTFLAGS`. [`UserConfig::rustflags`] says which case applies so the caller can carry the
//! user's flags over.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use cargo_metadata::cargo_platform::{Cfg, Platform};

/// Where a target's rustflags come from, as cargo would decide.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum UserFlags {
    /// `CARGO_ENCODED_RUSTFLAGS` or `RUSTFLAGS`: one set for every target.
    Env(Vec<String>),
    /// `target.<triple>.rustflags` or a matching `target.<cfg>.rustflags` (or
    /// `CARGO_TARGET_<TRIPLE>_RUSTFLAGS`): a `--config` array for the target merges with them.
    Target,
    /// `build.rustflags` (or `CARGO_BUILD_RUSTFLAGS`), which a target key would replace.
    Build(Vec<String>),
    None,
}

impl UserFlags {
    /// The user's flags the caller must repeat when it sets `target.<triple>.rustflags` itself.
    pub(crate) fn to_carry(&self) -> &[String] {
        match self {
            UserFlags::Env(words) | UserFlags::Build(words) => words,
            UserFlags::Target | UserFlags::None => &[],
        }
    }

    pub(crate) fn is_from_env(&self) -> bool {
        matches!(self, UserFlags::Env(_))
    }
}

/// The user's cargo configuration layers, lowest precedence first.
#[derive(Debug, Default)]
pub(crate) struct UserConfig {
    layers: Vec<toml::Table>,
}

/// `CARGO_TARGET_<TRIPLE>_<KEY>` as cargo spells it.
pub(crate) fn target_env_var(triple: &str, key: &str) -> String {
    format!(
        "CARGO_TARGET_{}_{key}",
        triple.to_uppercase().replace(['-', '.'], "_")
    )
}

fn nonempty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl UserConfig {
    /// Loads the files cargo would read from `cwd` (`.cargo/config.toml` up the tree, then
    /// `$CARGO_HOME/config.toml`) and the `--config` arguments given to us.
    pub(crate) fn load(cwd: &Path, cli_config: &[String]) -> UserConfig {
        let mut files: Vec<PathBuf> = Vec::new();
        for dir in cwd.ancestors() {
            for name in ["config.toml", "config"] {
                let path = dir.join(".cargo").join(name);
                if path.is_file() {
                    files.push(path);
                    break;
                }
            }
        }
        if let Some(home) = cargo_home() {
            for name in ["config.toml", "config"] {
                let path = home.join(name);
                if path.is_file() {
                    if !files.contains(&path) {
                        files.push(path);
                    }
                    break;
                }
            }
        }
        // Deeper directories win over their ancestors: lowest precedence first.
        files.reverse();
        let mut layers: Vec<toml::Table> = files
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .filter_map(|text| text.parse::<toml::Table>().ok())
            .collect();
        for arg in cli_config {
            let table = arg.parse::<toml::Table>().ok().or_else(|| {
                std::fs::read_to_string(arg)
                    .ok()
                    .and_then(|t| t.parse().ok())
            });
            layers.extend(table);
        }
        UserConfig { layers }
    }

    fn target_table<'a>(layer: &'a toml::Table, key: &str) -> Option<&'a toml::Table> {
        layer.get("target")?.as_table()?.get(key)?.as_table()
    }

    /// The linker the user configured for `triple`, if any.
    pub(crate) fn linker(&self, triple: &str) -> Option<String> {
        if let Some(linker) = nonempty_env(&target_env_var(triple, "LINKER")) {
            return Some(linker);
        }
        self.layers.iter().rev().find_map(|layer| {
            Self::target_table(layer, triple)?
                .get("linker")?
                .as_str()
                .map(str::to_owned)
        })
    }

    /// Where cargo would take `triple`'s rustflags from.
    pub(crate) fn rustflags(&self, triple: &str, cfgs: &[Cfg]) -> UserFlags {
        if let Ok(encoded) = std::env::var("CARGO_ENCODED_RUSTFLAGS") {
            let words = encoded
                .split('\x1f')
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect();
            return UserFlags::Env(words);
        }
        if let Ok(flags) = std::env::var("RUSTFLAGS") {
            return UserFlags::Env(flags.split_whitespace().map(str::to_owned).collect());
        }
        if nonempty_env(&target_env_var(triple, "RUSTFLAGS")).is_some() {
            return UserFlags::Target;
        }
        let target_has_flags = self.layers.iter().any(|layer| {
            let Some(targets) = layer.get("target").and_then(|t| t.as_table()) else {
                return false;
            };
            targets.iter().any(|(key, value)| {
                let applies = key == triple
                    || (key.starts_with("cfg(")
                        && Platform::from_str(key).is_ok_and(|p| p.matches(triple, cfgs)));
                applies && value.get("rustflags").is_some()
            })
        });
        if target_has_flags {
            return UserFlags::Target;
        }
        let mut words = Vec::new();
        for layer in &self.layers {
            let flags = layer.get("build").and_then(|b| b.get("rustflags"));
            match flags {
                Some(toml::Value::Array(items)) => {
                    words.extend(items.iter().filter_map(|i| i.as_str()).map(str::to_owned))
                }
                Some(toml::Value::String(s)) => {
                    words = s.split_whitespace().map(str::to_owned).collect()
                }
                _ => {}
            }
        }
        if let Some(env) = nonempty_env("CARGO_BUILD_RUSTFLAGS") {
            words = env.split_whitespace().map(str::to_owned).collect();
        }
        if words.is_empty() {
            UserFlags::None
        } else {
            UserFlags::Build(words)
        }
    }
}

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_names_follow_cargo() {
        assert_eq!(
            target_env_var("aarch64-unknown-linux-musl", "LINKER"),
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER"
        );
    }

    #[test]
    fn cli_config_layers_are_read() {
        let cfg = UserConfig {
            layers: vec![
                "target.x86_64-unknown-linux-musl.linker = \"my-ld\"\nbuild.rustflags = [\"-Cfoo\"]"
                    .parse()
                    .unwrap(),
            ],
        };
        assert_eq!(
            cfg.linker("x86_64-unknown-linux-musl").as_deref(),
            Some("my-ld")
        );
        if std::env::var_os("RUSTFLAGS").is_none()
            && std::env::var_os("CARGO_ENCODED_RUSTFLAGS").is_none()
        {
            assert_eq!(
                cfg.rustflags("x86_64-unknown-linux-musl", &[]),
                UserFlags::Build(vec!["-Cfoo".into()])
            );
        }
    }
}
