//! Host checks against real files.

use super::*;

#[test]
fn unreadable_password_files_are_errors_on_this_host() {
    let dir = std::env::temp_dir().join(format!("ha-agent-pass-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("db.pass");
    std::fs::write(&good, "secret\n").unwrap();
    let text = format!(
        "
mysql_replication DB1 {{
    local_address 10.0.0.1
    peer_address 10.0.0.2
    user ha_agent
    password_file {}
    repl_user repl
    repl_password_file {}
}}
",
        good.display(),
        dir.join("missing").display()
    );
    let mut loaded = config::parse_str(&text, "t.conf");
    host::check(&loaded.config, &mut loaded.diagnostics);
    let errors: Vec<String> = loaded.diagnostics.errors().map(|d| d.to_string()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("t.conf:2: error: mysql_replication DB1: password file"));
    assert!(errors[0].ends_with("No such file or directory (os error 2)"));
    assert_eq!(config::read_secret(&good).unwrap(), "secret");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_scripts_and_users_are_errors() {
    let dir = std::env::temp_dir().join(format!("ha-agent-scripts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_executable = dir.join("plain.sh");
    std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
    let conf = dir.join("k.conf");
    std::fs::write(
        &conf,
        format!(
            "global_defs {{\n script_user no_such_user_ha\n}}\n\
             vrrp_script chk {{\n script \"/no/such/check.sh arg\"\n}}\n\
             vrrp_instance V {{\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {{\n 10.0.0.1\n }}\n\
             track_script {{\n chk\n }}\n notify_master {}\n notify_backup /bin/true root\n}}\n",
            not_executable.display()
        ),
    )
    .unwrap();
    let loaded = load(&conf, false).unwrap();
    let errors: Vec<String> = loaded
        .diagnostics
        .errors()
        .map(|d| d.to_string().replace(&*conf.to_string_lossy(), "F"))
        .collect();
    assert_eq!(
        errors,
        [
            "F:2: error: script user `no_such_user_ha` does not exist on this host".to_owned(),
            "F:5: error: script `/no/such/check.sh`: No such file or directory (os error 2)"
                .to_owned(),
            format!(
                "F:16: error: script `{}` is not an executable file",
                not_executable.display()
            ),
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn script_security_refuses_root_scripts_others_can_change() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("ha-agent-sec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = dir.join("check.sh");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let conf = dir.join("k.conf");
    let text = |user: &str| {
        format!(
            "global_defs {{\n enable_script_security\n{user}}}\nvrrp_script chk {{\n script {}\n}}\n",
            script.display()
        )
    };
    let errors_for = |text: String| {
        std::fs::write(&conf, text).unwrap();
        load(&conf, false)
            .unwrap()
            .diagnostics
            .errors()
            .map(|d| d.message.clone())
            .collect::<Vec<_>>()
    };
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(errors_for(text("")), Vec::<String>::new());
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o757)).unwrap();
    assert_eq!(
        errors_for(text("")),
        [format!(
            "enable_script_security: `{0}` would run as root but {0} can be changed by a user other than root (set a script user, or fix ownership and mode)",
            script.display()
        )]
    );
    // Run as another user, the same script is allowed.
    assert_eq!(
        errors_for(text(" script_user nobody\n")),
        Vec::<String>::new()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
