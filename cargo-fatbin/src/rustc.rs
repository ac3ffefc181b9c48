//! Asking rustc about the toolchain: sysroot, host, and what a target (and a target CPU)
//! enables, from `rustc --print cfg`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use cargo_metadata::cargo_platform::Cfg;

use crate::error::{Error, Result};

/// The rustc cargo will use: `$RUSTC`, else `rustc` on PATH (a rustup proxy picks the
/// toolchain the same way for both).
#[derive(Debug, Clone)]
pub(crate) struct Rustc {
    program: OsString,
}

/// What `rustc --print cfg --target T [-C target-cpu=CPU]` says.
#[derive(Debug, Clone, Default)]
pub(crate) struct TargetCfg {
    pub(crate) cfgs: Vec<Cfg>,
    pub(crate) features: BTreeSet<String>,
}

impl Rustc {
    pub(crate) fn from_env() -> Rustc {
        Rustc {
            program: std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()),
        }
    }

    fn run(&self, args: &[&str]) -> Result<std::process::Output> {
        Command::new(&self.program)
            .args(args)
            .output()
            .map_err(|source| Error::Spawn {
                program: self.program.to_string_lossy().into_owned(),
                source,
            })
    }

    fn stdout_of(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args)?;
        if !out.status.success() {
            return Err(Error::Other(format!(
                "`rustc {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub(crate) fn sysroot(&self) -> Result<PathBuf> {
        Ok(PathBuf::from(
            self.stdout_of(&["--print", "sysroot"])?.trim(),
        ))
    }

    /// The host triple (`host:` line of `rustc -vV`).
    pub(crate) fn host(&self) -> Result<String> {
        let text = self.stdout_of(&["-vV"])?;
        text.lines()
            .find_map(|l| l.strip_prefix("host: "))
            .map(|h| h.trim().to_owned())
            .ok_or_else(|| Error::Other("`rustc -vV` printed no host line".into()))
    }

    /// The cfg of `triple`, tuned for `cpu` when given. An unknown CPU is an error (rustc only
    /// warns and ignores it, which would build a baseline binary under a tuned name).
    pub(crate) fn target_cfg(&self, triple: &str, cpu: Option<&str>) -> Result<TargetCfg> {
        let cpu_flag = cpu.map(|c| format!("target-cpu={c}"));
        let mut args = vec!["--print", "cfg", "--target", triple];
        if let Some(flag) = &cpu_flag {
            args.extend(["-C", flag]);
        }
        let out = self.run(&args)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(Error::Usage(format!(
                "rustc does not know target `{triple}`: {}",
                stderr.lines().next().unwrap_or("").trim()
            )));
        }
        if stderr.contains("is not a recognized processor") {
            return Err(Error::Usage(format!(
                "`{}` is not a CPU rustc knows for {triple} (list them with `rustc --print target-cpus --target {triple}`)",
                cpu.unwrap_or_default()
            )));
        }
        let mut cfg = TargetCfg::default();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(f) = line
                .strip_prefix("target_feature=\"")
                .and_then(|r| r.strip_suffix('"'))
            {
                cfg.features.insert(f.to_owned());
            }
            if let Ok(c) = line.parse::<Cfg>() {
                cfg.cfgs.push(c);
            }
        }
        Ok(cfg)
    }
}
