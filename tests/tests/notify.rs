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

/// A at priority 150 alone, tracking a weight-0 check on `app` every 50 ms, with notify
/// scripts that log their start and end (the FAULT one runs `fault_body`).
fn toggled(
    t: &Topology,
    fault_body: &str,
    globals: &str,
) -> (Daemon, std::path::PathBuf, std::path::PathBuf) {
    let log = t.dir().join("log");
    let app = t.dir().join("app");
    std::fs::write(&app, "").unwrap();
    let mut extra = vec!["track_script {\n        chk\n    }".to_owned()];
    for (keyword, state, body) in [
        ("notify_master", "MASTER", "sleep 0.1"),
        ("notify_backup", "BACKUP", "sleep 0.1"),
        ("notify_fault", "FAULT", fault_body),
    ] {
        let path = t.dir().join(format!("{state}.sh"));
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho start {state} >> {0}\n{body}\necho end {state} >> {0}\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        extra.push(format!("{keyword} {}", path.display()));
    }
    let mut c = VrrpConf::v3("MASTER", 150, "0.1");
    c.extra = extra;
    let conf = format!(
        "{}vrrp_script chk {{\n    script \"/usr/bin/test -e {}\"\n    interval 0.05\n}}\n",
        config(&[c]).replace(
            "router_id ha_test",
            &format!("router_id ha_test\n{globals}")
        ),
        app.display()
    );
    (Daemon::agent(t.host("a"), t.dir(), &conf), log, app)
}

/// The states the agent's log says it entered, in order.
fn transitions(agent: &Daemon) -> Vec<String> {
    agent
        .log_text()
        .lines()
        .filter_map(|l| {
            l.split(" -> ")
                .nth(1)?
                .split_whitespace()
                .next()
                .map(str::to_owned)
        })
        .collect()
}

#[test]
fn a_burst_of_transitions_is_notified_in_order_one_script_at_a_time() {
    let t = Topology::new(&["a"]);
    let (a, log, app) = toggled(&t, "sleep 0.1", "");
    wait_until("A master notified", Duration::from_secs(5), || {
        lines(&log).contains(&"end MASTER".to_owned()).then_some(())
    });
    for _ in 0..3 {
        std::fs::remove_file(&app).unwrap();
        std::thread::sleep(Duration::from_millis(150));
        std::fs::write(&app, "").unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    wait_until("A master again", Duration::from_secs(5), || {
        (a.instance_field("state") == "MASTER").then_some(())
    });
    let states = transitions(&a);
    assert!(states.len() >= 8, "{states:?}");
    wait_until("every notification", Duration::from_secs(10), || {
        (lines(&log).len() == 2 * states.len()).then_some(())
    });
    let log = lines(&log);
    // start X, end X, start Y, end Y, ...: never two at once, in the transitions' order.
    let expected: Vec<String> = states
        .iter()
        .flat_map(|s| [format!("start {s}"), format!("end {s}")])
        .collect();
    assert_eq!(log, expected);
}

#[test]
fn a_hanging_notify_script_is_killed_and_does_not_block_the_next() {
    let t = Topology::new(&["a"]);
    let (a, log, app) = toggled(&t, "sleep 60", "    notify_timeout 0.5\n");
    wait_until("A master notified", Duration::from_secs(5), || {
        lines(&log).contains(&"end MASTER".to_owned()).then_some(())
    });
    std::fs::remove_file(&app).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(&app, "").unwrap();
    // FAULT's script hangs; BACKUP's and MASTER's follow once it is killed.
    let (_, took) = wait_until("the next notifications", Duration::from_secs(5), || {
        lines(&log)
            .ends_with(&["start MASTER".to_owned(), "end MASTER".to_owned()])
            .then_some(())
    });
    let log = lines(&log);
    assert!(!log.contains(&"end FAULT".to_owned()), "{log:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let runs = a.instance_field("notify_runs");
    let fault = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["state"] == "FAULT")
        .unwrap()
        .clone();
    assert_eq!(fault["result"], "timed out");
    assert_eq!(runs.as_array().unwrap().last().unwrap()["result"], "exit 0");
}

/// `notify_fifo` and its script, beside keepalived 2.2.7 configured the same way: the agent
/// creates the FIFO, starts the reader with the FIFO's path as its last argument, and writes
/// keepalived's lines (`INSTANCE "VI_1" MASTER 150`); the FIFO it created is gone after it
/// exits.
#[test]
fn notify_fifo_lines_are_keepalived_lines() {
    let t = Topology::new(&["a", "b"]);
    let conf = |host: &str, state: &'static str, priority: u8| {
        let fifo = t.dir().join(format!("fifo-{host}"));
        let reader = t.dir().join(format!("reader-{host}.sh"));
        let log = t.dir().join(format!("fifo-{host}.log"));
        std::fs::write(
            &reader,
            format!(
                "#!/bin/sh\nwhile read -r line; do echo \"$line\" >> {}; done < \"$1\"\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&reader, std::fs::Permissions::from_mode(0o755)).unwrap();
        let text = VrrpConf::v3(state, priority, "0.1").render().replacen(
            "global_defs {\n",
            &format!(
                "global_defs {{\n    notify_fifo {}\n    notify_fifo_script {}\n",
                fifo.display(),
                reader.display()
            ),
            1,
        );
        (text, fifo, log)
    };
    let (conf_a, fifo_a, log_a) = conf("a", "MASTER", 150);
    let (conf_b, _, log_b) = conf("b", "BACKUP", 120);
    let mut a = Daemon::agent(t.host("a"), t.dir(), &conf_a);
    wait_until("the agent's FIFO lines", Duration::from_secs(5), || {
        (lines(&log_a)
            == [
                "INSTANCE \"VI_1\" BACKUP 150",
                "INSTANCE \"VI_1\" MASTER 150",
            ])
        .then_some(())
    });
    let _b = Daemon::keepalived(t.host("b"), t.dir(), &conf_b);
    wait_until("keepalived's FIFO line", Duration::from_secs(5), || {
        (lines(&log_b) == ["INSTANCE \"VI_1\" BACKUP 120"]).then_some(())
    });
    assert!(fifo_a.exists());
    a.process.signal(nix::sys::signal::Signal::SIGTERM);
    a.process.wait_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        !fifo_a.exists(),
        "the FIFO the agent created is removed at exit"
    );
}

/// `startup_script` runs before any instance starts (so before the VIP is added) and
/// `shutdown_script` after every instance stopped (so after the VIP is gone); each script
/// records whether the VIP was there.
#[test]
fn startup_and_shutdown_scripts_run_before_and_after_the_instances() {
    let t = Topology::new(&["a"]);
    let log = t.dir().join("scripts.log");
    let script = |name: &str| {
        let path = t.dir().join(format!("{name}.sh"));
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nif ip -4 addr show dev eth0 | grep -q 192.168.2.200; then v=with; else v=without; fi\necho \"{name} $v the VIP\" >> {}\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    let (start, stop) = (script("startup"), script("shutdown"));
    let conf = VrrpConf::v3("MASTER", 150, "0.1").render().replacen(
        "global_defs {\n",
        &format!(
            "global_defs {{\n    startup_script {}\n    shutdown_script {}\n    shutdown_script_timeout 5\n",
            start.display(),
            stop.display()
        ),
        1,
    );
    let mut a = Daemon::agent(t.host("a"), t.dir(), &conf);
    wait_until("A master", Duration::from_secs(5), || {
        t.host("a")
            .has_address(
                "eth0",
                "192.168.2.200".parse::<std::net::Ipv4Addr>().unwrap(),
            )
            .then_some(())
    });
    a.process.signal(nix::sys::signal::Signal::SIGTERM);
    a.process.wait_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        lines(&log),
        ["startup without the VIP", "shutdown without the VIP"]
    );
}

/// After a partition both nodes were masters; once they hear each other again, the better
/// master runs `notify_master_rx_lower_pri` (to take back what the other took, e.g. a cloud
/// address) and its FIFO gets `MASTER_RX_LOWER_PRI`; with `notify_priority_changes` the FIFO
/// also gets each priority change.
#[test]
fn master_rx_lower_pri_and_priority_changes() {
    let t = Topology::new(&["a", "b"]);
    let fifo = t.dir().join("fifo-a");
    let fifo_log = t.dir().join("fifo-a.log");
    let reader = t.dir().join("reader.sh");
    std::fs::write(
        &reader,
        format!(
            "#!/bin/sh\nwhile read -r line; do echo \"$line\" >> {}; done < \"$1\"\n",
            fifo_log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&reader, std::fs::Permissions::from_mode(0o755)).unwrap();
    let rx_log = t.dir().join("rx.log");
    let rx_script = t.dir().join("rx.sh");
    script(&rx_script, &rx_log);
    let value = t.dir().join("weight.value");
    // A advertises once a second, B ten times: once they hear each other again, B's lower
    // advert reaches A before A's makes B yield.
    let mut a_conf = VrrpConf::v3("MASTER", 150, "1");
    a_conf.extra = vec![
        format!("notify_master_rx_lower_pri {}", rx_script.display()),
        "notify_priority_changes".into(),
        "track_file {\n        w weight -10\n    }".into(),
    ];
    let conf = format!(
        "{}track_file w {{\n    file {}\n    init_file 0 overwrite\n}}\n",
        config(&[a_conf]),
        value.display()
    )
    .replacen(
        "global_defs {\n",
        &format!(
            "global_defs {{\n    notify_fifo {}\n    notify_fifo_script {}\n",
            fifo.display(),
            reader.display()
        ),
        1,
    );
    t.set_isolated("a", true);
    t.set_isolated("b", true);
    let _a = Daemon::agent(t.host("a"), t.dir(), &conf);
    let _b = Daemon::agent(
        t.host("b"),
        t.dir(),
        &VrrpConf::v3("BACKUP", 120, "0.1").render(),
    );
    wait_until("both masters", Duration::from_secs(8), || {
        (t.host("a").has_address(
            "eth0",
            "192.168.2.200".parse::<std::net::Ipv4Addr>().unwrap(),
        ) && t.host("b").has_address(
            "eth0",
            "192.168.2.200".parse::<std::net::Ipv4Addr>().unwrap(),
        ))
        .then_some(())
    });
    t.set_isolated("a", false);
    t.set_isolated("b", false);
    wait_until("A's rx script", Duration::from_secs(5), || {
        (!lines(&rx_log).is_empty()).then_some(())
    });
    assert!(
        lines(&rx_log)[0].starts_with("rx.sh  uid=0"),
        "{:?}",
        lines(&rx_log)
    );
    std::fs::write(&value, "2").unwrap();
    wait_until("the FIFO lines", Duration::from_secs(5), || {
        let got = lines(&fifo_log);
        (got.contains(&"INSTANCE \"VI_1\" MASTER_RX_LOWER_PRI 150".to_owned())
            && got.contains(&"INSTANCE \"VI_1\" MASTER_PRIORITY 130".to_owned()))
        .then_some(())
    });
}

/// An instance a reload removes is announced as keepalived announces it: FAULT (its
/// notify_fault and `notify ... FAULT`), or DELETED and the `notify_deleted` script with
/// `notify_deleted`; the instance that stays is not announced again.
#[test]
fn a_removed_instance_is_announced_fault_or_deleted() {
    let t = Topology::new(&["a"]);
    let log = t.dir().join("log");
    let notify = t.dir().join("notify.sh");
    script(&notify, &log);
    let instance = |name: &str, vrid: u8, vip: &str, deleted: bool| {
        let mut c = VrrpConf::v3("MASTER", 150, "0.1");
        c.name = name.into();
        c.vrid = vrid;
        c.vips = vec![vip.into()];
        c.extra = vec![format!("notify {}", notify.display())];
        if deleted {
            c.extra
                .push(format!("notify_deleted \"{} deleted\"", notify.display()));
        }
        c
    };
    for deleted in [false, true] {
        let _ = std::fs::remove_file(&log);
        let both = config(&[
            instance("VI_1", 107, "192.168.2.200", deleted),
            instance("VI_2", 108, "192.168.2.201", deleted),
        ]);
        let a = Daemon::agent(t.host("a"), t.dir(), &both);
        wait_until("both masters", Duration::from_secs(5), || {
            (lines(&log)
                .iter()
                .filter(|l| l.contains(" MASTER "))
                .count()
                == 2)
                .then_some(())
        });
        let one = config(&[instance("VI_1", 107, "192.168.2.200", deleted)]);
        std::fs::write(t.dir().join("ha-agent-a.conf"), one).unwrap();
        a.process.signal(nix::sys::signal::Signal::SIGHUP);
        let want = if deleted {
            vec![
                "notify.sh deleted uid=0".to_owned(),
                "notify.sh INSTANCE VI_2 DELETED 150 uid=0".to_owned(),
            ]
        } else {
            vec!["notify.sh INSTANCE VI_2 FAULT 150 uid=0".to_owned()]
        };
        wait_until("VI_2's announcement", Duration::from_secs(5), || {
            let got: Vec<String> = lines(&log)
                .into_iter()
                .filter(|l| !l.contains(" MASTER ") && !l.contains(" BACKUP "))
                .collect();
            (got == want).then_some(())
        });
        drop(a);
    }
}
