//! What a configuration needs from the host it runs on: the users scripts run as and the
//! scripts themselves. Without them a health check or notify script would silently never
//! run, so their absence is an error, not a skip.

use std::{os::unix::fs::PermissionsExt as _, path::Path};

use crate::track::runner::Identity;

use super::{Config, Diagnostics, Loc, Script};

pub fn check(config: &Config, diags: &mut Diagnostics) {
    if let Some((user, loc)) = &config.global.script_user {
        check_user(user, loc, diags);
    }
    let mut scripts: Vec<&Script> = config.scripts.iter().map(|s| &s.script).collect();
    for inst in &config.instances {
        let n = &inst.notify;
        scripts.extend(
            [&n.master, &n.backup, &n.fault, &n.stop, &n.generic]
                .into_iter()
                .flatten(),
        );
    }
    for script in scripts {
        check_script(script, diags);
    }
    for s in &config.scripts {
        if let Some(user) = &s.user {
            check_user(user, &s.loc, diags);
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
