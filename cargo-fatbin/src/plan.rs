//! The plan of a build as plain data: what was decided before cargo starts (the project, each
//! target with its slot and linker) and what cargo then built. `prepare` makes a [`Prepared`],
//! `compile` turns it into [`BuiltBinary`]s, `assemble` installs those, and `plan_cache`
//! saves both; none of them needs another's code, only these types.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cargo_config::UserFlags;
use crate::settings::FatbinMetadata;
use crate::target::{SlotPlan, TargetSpec};
use crate::toolchain::LinkerCheck;

/// What the build needs to know about the project from `cargo metadata`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProjectInfo {
    pub(crate) target_dir: PathBuf,
    /// Name and version of every package with binaries, by cargo's package id.
    pub(crate) packages: BTreeMap<String, (String, String)>,
}

impl ProjectInfo {
    /// The name and version of the package `id`.
    pub(crate) fn package(&self, id: &str) -> (String, String) {
        self.packages.get(id).cloned().unwrap_or_default()
    }
}

/// One target to build and everything decided about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PlannedTarget {
    pub(crate) spec: TargetSpec,
    pub(crate) plan: SlotPlan,
    pub(crate) linker: LinkerCheck,
    pub(crate) user_flags: UserFlags,
}

/// A project ready to build.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Prepared {
    pub(crate) project: ProjectInfo,
    pub(crate) fatbin: FatbinMetadata,
    pub(crate) targets: Vec<PlannedTarget>,
}

/// One binary cargo built for one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BuiltBinary {
    pub(crate) spec: TargetSpec,
    pub(crate) plan: SlotPlan,
    pub(crate) program: String,
    pub(crate) krate: String,
    pub(crate) version: String,
    pub(crate) path: PathBuf,
    /// cargo found it up to date.
    pub(crate) fresh: bool,
}
