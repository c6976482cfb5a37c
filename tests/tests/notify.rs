//! Notify scripts with real processes: keepalived's arguments, the script user, the order of
//! deliveries, and notify_stop before the agent exits.

use std::{os::unix::fs::PermissionsExt as _, path::Path, time::Duration};

use ha_tests::{Daemon, Topology, VrrpConf, daemons::config, wait_until};

fn script(path: &Path, log: &Path) {
    std::fs::write(
        path,
        format!(
            "#!/bin/sh\necho \"$(basename \"$0\") $* uid=$(id -u)\" >> {}\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn notify_scripts_run_in_order_as_the_script_user_with_keepalived_arguments() {
    let t = Topology::new(&["a", "b"]);
    let shared = t.dir().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(t.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = |host: &str, state: &'static str, priority: u8| {
        let log = shared.join(format!("log-{host}"));
        let mut extra = Vec::new();
        for (keyword, name) in [
            ("notify_master", "to_master.sh"),
            ("notify_backup", "to_backup.sh"),
            ("notify_stop", "to_stop.sh"),
            ("notify", "notify.sh"),
        ] {
            let path = t.dir().join(format!("{host}-{name}"));
            script(&path, &log);
            // As in the seed: the quoted command carries an argument.
            let arg = if keyword == "notify" { "" } else { " ha" };
            extra.push(format!("{keyword} \"{}{arg}\"", path.display()));
        }
        let mut c = VrrpConf::v3(state, priority, "0.1");
        c.extra = extra;
        (
            config(&[c]).replace(
                "router_id ha_test",
                "router_id ha_test\n    script_user nobody",
            ),
            log,
        )
    };
    let (conf_a, log_a) = conf("a", "MASTER", 150);
    let (conf_b, log_b) = conf("b", "BACKUP", 120);
    let mut a = Daemon::agent(t.host("a"), t.dir(), &conf_a);
    let b = Daemon::agent(t.host("b"), t.dir(), &conf_b);
    wait_until("A's master notifications", Duration::from_secs(5), || {
        (lines(&log_a).len() >= 4).then_some(())
    });
    assert_eq!(
        lines(&log_a),
        [
            "a-to_backup.sh ha uid=65534",
            "a-notify.sh INSTANCE VI_1 BACKUP 150 uid=65534",
            "a-to_master.sh ha uid=65534",
            "a-notify.sh INSTANCE VI_1 MASTER 150 uid=65534",
        ]
    );
    // SIGTERM: notify_stop has run when the agent has exited.
    a.stop();
    assert_eq!(
        lines(&log_a)[4..],
        [
            "a-to_stop.sh ha uid=65534",
            "a-notify.sh INSTANCE VI_1 STOP 150 uid=65534",
        ]
    );
    wait_until("B's master notification", Duration::from_secs(5), || {
        (lines(&log_b).len() >= 4).then_some(())
    });
    assert_eq!(
        lines(&log_b),
        [
            "b-to_backup.sh ha uid=65534",
            "b-notify.sh INSTANCE VI_1 BACKUP 120 uid=65534",
            "b-to_master.sh ha uid=65534",
            "b-notify.sh INSTANCE VI_1 MASTER 120 uid=65534",
        ]
    );
    drop(b);
}
