//! The build pipeline behind `cargo fatbin build` and `cargo fatbin install`: prepare, compile
//! in as few cargo runs as possible, then assemble the fat programs.

use std::path::PathBuf;
use std::time::Instant;

use fatbin_layout::Layout;

use crate::assemble::{
    install_programs, installed_files, print_json, unchanged_report, write_shims,
};
use crate::compile::build_all;
use crate::error::{Error, Result};
use crate::options::{
    profile_dir, BuildOptions, CargoOptions, InstallOptions, InstallSource, MessageFormat,
};
use crate::plan::{BuiltBinary, PlannedTarget, Prepared};
use crate::plan_cache;
use crate::prepare::prepare;
use crate::registry;
use crate::settings::{resolve_launcher, resolve_root};
use crate::status::Shell;

fn compile(opts: &CargoOptions, prepared: &Prepared, shell: &Shell) -> Result<Vec<BuiltBinary>> {
    let announce = |run: &[PlannedTarget]| {
        for t in run {
            shell.note(
                "Target",
                format!(
                    "{} -> slot {} (linker: {})",
                    t.spec, t.plan.slot, t.linker.describe
                ),
            );
        }
    };
    let built = build_all(
        opts,
        &prepared.project,
        &prepared.targets,
        shell.color().as_str(),
        &announce,
    )?;
    if built.is_empty() {
        return Err(Error::usage(
            "cargo built no binaries: select a package with a [[bin]] target (-p NAME, --bin NAME)",
        ));
    }
    Ok(built)
}

pub(crate) fn build(args: BuildOptions, shell: Shell) -> Result<()> {
    let start = Instant::now();
    let shell = shell.quiet(args.cargo.quiet);
    let key = plan_cache::key("build");
    let prepared = prepare(&args.cargo, &args.targets, args.toolchain, &key)?;
    let built = compile(&args.cargo, &prepared, &shell)?;
    let out = args.out.clone().unwrap_or_else(|| {
        prepared
            .project
            .target_dir
            .join("fatbin")
            .join(profile_dir(args.cargo.profile_name()))
    });
    let layout = Layout::new(&out);
    let report = if plan_cache::outputs_unchanged(&key, &built) {
        unchanged_report(&layout, &built, &shell)
    } else {
        let report = install_programs(&layout, &built, &shell, "Assembled")?;
        plan_cache::save_outputs(&key, &built, installed_files(&layout, &report, false));
        report
    };
    if args.message_format == MessageFormat::Json {
        print_json(&out, &report, "fatbin-program")?;
    }
    shell.status(
        "Finished",
        format!(
            "{} program(s) for {} target(s) in {:.2}s: {}",
            report.len(),
            prepared.targets.len(),
            start.elapsed().as_secs_f64(),
            out.display()
        ),
    );
    Ok(())
}

pub(crate) fn install(mut args: InstallOptions, shell: Shell) -> Result<()> {
    let start = Instant::now();
    let shell = shell.quiet(args.cargo.quiet);
    // The registry crate is fetched into a private project; it then builds like a path.
    let _fetched;
    match &args.source {
        InstallSource::Registry { krate, version_req } => {
            let fetched = registry::fetch(krate, version_req.as_deref(), &args.cargo, &shell)?;
            args.cargo.manifest_path = Some(fetched.manifest_path.clone());
            if args.cargo.target_dir.is_none() {
                args.cargo.target_dir = Some(fetched.target_dir.clone());
            }
            _fetched = fetched;
        }
        InstallSource::Path(path) => {
            args.cargo.manifest_path = Some(path.join("Cargo.toml"));
        }
        InstallSource::CurrentProject => {}
    }
    // Like `cargo install`: release unless --debug or --profile says otherwise.
    if args.debug {
        args.cargo.profile = Some("dev".into());
    } else if args.cargo.profile.is_none() {
        args.cargo.release = true;
    }
    // A registry crate's plan depends on the index, which is not stamped: always plan it.
    let key = match args.source {
        InstallSource::Registry { .. } => String::new(),
        InstallSource::Path(_) | InstallSource::CurrentProject => plan_cache::key("install"),
    };
    let prepared = prepare(&args.cargo, &args.targets, args.toolchain, &key)?;
    let root = resolve_root(args.root.as_deref(), Some(&prepared.fatbin))?;
    let launcher = resolve_launcher(args.launcher.as_deref(), Some(&prepared.fatbin), &shell)?;
    let built = compile(&args.cargo, &prepared, &shell)?;
    fatbin_layout::fsutil::create_dirs(&root)?;
    let layout = Layout::new(&root);
    // Without a linked launcher, look for one again every time.
    let launcher_linked = layout.shim_path("fatbin").symlink_metadata().is_ok();
    let report = if launcher_linked && plan_cache::outputs_unchanged(&key, &built) {
        unchanged_report(&layout, &built, &shell)
    } else {
        let report = install_programs(&layout, &built, &shell, "Installing")?;
        let programs: Vec<String> = report.iter().map(|p| p.program.clone()).collect();
        write_shims(
            &layout,
            &programs,
            launcher.as_deref(),
            args.script_shims,
            &shell,
        )?;
        if !key.is_empty() {
            plan_cache::save_outputs(&key, &built, installed_files(&layout, &report, true));
        }
        crate::views::refresh(&layout, &shell);
        report
    };
    if args.message_format == MessageFormat::Json {
        print_json(&root, &report, "fatbin-installed")?;
    }
    let shims: PathBuf = layout.shims_dir();
    shell.status(
        "Finished",
        format!(
            "{} program(s) in {:.2}s; put {} on PATH",
            report.len(),
            start.elapsed().as_secs_f64(),
            shims.display()
        ),
    );
    Ok(())
}
