//! Keeps this node's views of a layout (`fatbin view`) current after an install or removal.
//!
//! A view (`fatbin view sync DIR`) resolves every program of ROOT for one node; when ROOT
//! changes, its entries may name a slot that is gone or miss a better one. The launcher keeps
//! the list of views it made on this node (`$XDG_CACHE_HOME/fatbin/views-NODENAME`) and
//! `fatbin view refresh` re-syncs those of one ROOT; this runs it with the node's own
//! launcher (`ROOT/shims/fatbin`) after `cargo fatbin install`, `add` and `remove`, only when
//! a view list exists, so a node without views pays nothing.

use std::path::Path;
use std::process::Command;

use fatbin_layout::Layout;

use crate::status::Shell;

/// Whether any view list exists in the cache directory (of any node name).
fn views_known() -> bool {
    let Some(dir) = fatbin_layout::xdg_dir("XDG_CACHE_HOME", ".cache").map(|d| d.join("fatbin"))
    else {
        return false;
    };
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("views-"))
    })
}

/// Re-syncs the views of `layout` known on this node; a failure is a warning (the views then
/// stay as they were: never wrong in a way that runs a slot this node cannot, see the
/// launcher's docs, only stale until `fatbin view sync`).
pub(crate) fn refresh(layout: &Layout, shell: &Shell) {
    let launcher = layout.shim_path("fatbin");
    if !views_known() || launcher.symlink_metadata().is_err() {
        return;
    }
    let root = std::path::absolute(layout.root()).unwrap_or_else(|_| layout.root().to_owned());
    let out = Command::new(&launcher)
        .args(["view", "refresh", "--root"])
        .arg(&root)
        .env_remove("FATBIN_ARCH")
        .output();
    match out {
        Ok(out) if out.status.success() => {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                shell.status("Synced", line.strip_prefix("view ").unwrap_or(line));
            }
        }
        Ok(out) => shell.warn(format!(
            "could not refresh the views of {} ({}): {}",
            root.display(),
            shown(&launcher),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => shell.warn(format!(
            "could not refresh the views of {} ({}: {e})",
            root.display(),
            shown(&launcher)
        )),
    }
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}
