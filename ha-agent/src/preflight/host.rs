//! What a configuration needs from the host it runs on: the users scripts run as and the
//! scripts themselves. Without them a health check or notify script would silently never
//! run, so their absence is an error, not a skip.

use std::{os::unix::fs::PermissionsExt as _, path::Path};

use crate::track::runner::Identity;

use crate::config::{Config, Diagnostics, Loc, Script, read_secret};

pub fn check(config: &Config, diags: &mut Diagnostics) {
    if let Some((user, loc)) = &config.global.script_user {
        check_user(user, loc, diags);
    }
    // Each script with the user it runs as, if any (root otherwise).
    let default_user = config.global.script_user.as_ref().map(|(u, _)| u);
    let mut scripts: Vec<(&Script, Option<&String>)> = config
        .scripts
        .iter()
        .map(|s| {
            (
                &s.script,
                s.user.as_ref().or(s.script.user.as_ref()).or(default_user),
            )
        })
        .collect();
    for inst in &config.instances {
        let n = &inst.notify;
        scripts.extend(
            [
                &n.master,
                &n.backup,
                &n.fault,
                &n.stop,
                &n.generic,
                &n.master_rx_lower_pri,
                &n.deleted,
            ]
            .into_iter()
            .flatten()
            .map(|s| (s, s.user.as_ref().or(default_user))),
        );
    }
    let g = &config.global;
    for (s, _) in [&g.startup_script, &g.shutdown_script]
        .into_iter()
        .flatten()
    {
        scripts.push((s, s.user.as_ref().or(default_user)));
    }
    for fifo in [&g.notify_fifo, &g.vrrp_notify_fifo].into_iter().flatten() {
        if let Some(s) = &fifo.script {
            scripts.push((s, s.user.as_ref().or(default_user)));
        }
    }
    for (script, user) in scripts {
        check_script(script, diags);
        if config.global.enable_script_security && user.is_none() {
            check_root_script(script, diags);
        }
    }
    for s in &config.scripts {
        if let Some(user) = &s.user {
            check_user(user, &s.loc, diags);
        }
    }
    for f in &config.track_files {
        if let Some(dir) = f.path.parent().filter(|d| !d.is_dir()) {
            diags.error(
                &f.loc,
                format!(
                    "track_file {}: directory {} does not exist (it is watched for the file)",
                    f.name,
                    dir.display()
                ),
            );
        }
    }
    for r in &config.replications {
        let files = [Some(&r.password_file), r.repl_password_file.as_ref()];
        for path in files.into_iter().flatten() {
            if let Err(e) = read_secret(path) {
                diags.error(&r.loc, format!("mysql_replication {}: {e}", r.name));
            }
        }
    }
}

fn check_user(spec: &str, loc: &Loc, diags: &mut Diagnostics) {
    if let Err(e) = Identity::lookup(spec) {
        diags.error(loc, format!("{e} on this host"));
    }
}

fn check_script(script: &Script, diags: &mut Diagnostics) {
    if let Some(user) = &script.user {
        check_user(user, &script.loc, diags);
    }
    let Some(program) = script.argv.first().map(Path::new) else {
        return;
    };
    if !program.is_absolute() {
        diags.error(
            &script.loc,
            format!("script `{}` needs an absolute path", program.display()),
        );
        return;
    }
    match std::fs::metadata(program) {
        Err(e) => diags.error(&script.loc, format!("script `{}`: {e}", program.display())),
        Ok(meta) if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 => diags.error(
            &script.loc,
            format!("script `{}` is not an executable file", program.display()),
        ),
        Ok(_) => {}
    }
}

/// `enable_script_security`: a script that runs as root must not be replaceable by anyone
/// else: neither it nor a directory above it may be owned or writable by another user
/// (a sticky directory such as /tmp excepted for writing).
fn check_root_script(script: &Script, diags: &mut Diagnostics) {
    use std::os::unix::fs::MetadataExt as _;
    let Some(program) = script.argv.first().map(Path::new) else {
        return;
    };
    for path in program.ancestors() {
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        let sticky_dir = meta.is_dir() && meta.mode() & 0o1000 != 0;
        if meta.uid() != 0 || (meta.mode() & 0o022 != 0 && !sticky_dir) {
            diags.error(
                &script.loc,
                format!(
                    "enable_script_security: `{}` would run as root but {} can be changed by \
                     a user other than root (set a script user, or fix ownership and mode)",
                    program.display(),
                    path.display()
                ),
            );
            return;
        }
    }
}
