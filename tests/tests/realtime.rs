//! The agent runs SCHED_RR with its memory locked by default; its checks, notify scripts and
//! threads do not inherit the real-time policy; `--realtime-priority 0` turns it all off.

use std::{os::unix::fs::PermissionsExt as _, process::Command, time::Duration};

use ha_tests::{Daemon, Topology, VrrpConf, daemons::agent_binary, wait_until};

/// `chrt -p`'s two lines for `pid`, joined.
fn policy(pid: &str) -> String {
    let out = Command::new("chrt").args(["-p", pid]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).replace('\n', " ")
}

fn locked_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn threads(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn the_agent_is_real_time_and_its_scripts_and_threads_are_not() {
    let t = Topology::new(&["a"]);
    std::fs::set_permissions(t.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let seen = t.dir().join("script-policy");
    let script = t.dir().join("policy.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nchrt -p $$ | tr '\\n' ' ' > {}\n",
            seen.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut conf = VrrpConf::v3("MASTER", 150, "0.1");
    conf.extra = vec![format!("notify_master \"{}\"", script.display())];
    let conf = conf.render();

    for (args, realtime) in [(&[][..], true), (&["--realtime-priority", "0"][..], false)] {
        let _ = std::fs::remove_file(&seen);
        let agent = Daemon::agent_args(t.host("a"), t.dir(), &conf, &agent_binary(), args);
        let pid = agent.process.pid();
        wait_until("notify_master ran", Duration::from_secs(5), || {
            std::fs::read_to_string(&seen)
                .ok()
                .filter(|s| !s.is_empty())
        });
        // A reload reads the file on a blocking thread: it must not be real-time either.
        agent.process.signal(nix::sys::signal::Signal::SIGHUP);
        wait_until("the reload", Duration::from_secs(5), || {
            agent.log_text().contains("SIGHUP: reloading").then_some(())
        });
        std::thread::sleep(Duration::from_millis(200));
        let main = policy(&pid.to_string());
        let script_policy = std::fs::read_to_string(&seen).unwrap();
        eprintln!(
            "agent: {main}; script: {script_policy}; locked {} kB",
            locked_kib(pid)
        );
        assert!(script_policy.contains("SCHED_OTHER"), "{script_policy}");
        let others: Vec<String> = threads(pid)
            .into_iter()
            .filter(|tid| *tid != pid.to_string())
            .map(|tid| policy(&tid))
            .collect();
        assert!(!others.is_empty(), "the reload thread is there");
        assert!(
            others.iter().all(|p| p.contains("SCHED_OTHER")),
            "{others:?}"
        );
        if realtime {
            assert!(main.contains("SCHED_RR|SCHED_RESET_ON_FORK"), "{main}");
            assert!(main.contains("priority: 10"), "{main}");
            assert!(locked_kib(pid) > 0);
            assert!(agent.log_text().contains("SCHED_RR priority 10"));
        } else {
            assert!(main.contains("SCHED_OTHER"), "{main}");
            assert_eq!(locked_kib(pid), 0);
        }
    }
}
