//! keepalived.conf grammar and checks.

use std::{net::Ipv4Addr, time::Duration};

use super::*;
use crate::vrrp::Version;

/// The seed configuration, verbatim (stray `}` included).
const SEED: &str = include_str!("../../../docs/seed-keepalived.conf");

fn messages(loaded: &Loaded) -> Vec<String> {
    loaded.diagnostics.iter().map(|d| d.to_string()).collect()
}

fn errors(text: &str) -> Vec<String> {
    let loaded = parse_str(text, "t.conf");
    loaded.diagnostics.errors().map(|d| d.to_string()).collect()
}

#[test]
fn seed_is_accepted_with_a_warning_for_the_stray_brace() {
    let loaded = parse_str(SEED, "seed.conf");
    assert_eq!(
        messages(&loaded),
        vec!["seed.conf:22: warning: extra '}' ignored"]
    );
    let c = &loaded.config;
    assert_eq!(c.global.router_id.as_deref(), Some("ha_test"));
    assert!(c.global.skip_check_adv_addr);
    assert_eq!(c.global.garp_interval, Duration::ZERO);
    let i = &c.instances[0];
    assert_eq!(i.name, "VI_1");
    assert_eq!(i.initial, InitialState::Master);
    assert_eq!(i.interface, "enp1s0");
    assert_eq!((i.vrid, i.priority, i.advert_int_cs), (107, 150, 100));
    assert_eq!(i.version, Version::V2);
    assert_eq!(i.auth_pass, Some(*b"1111\0\0\0\0"));
    assert_eq!(
        i.vips,
        vec![Vip {
            addr: Ipv4Addr::new(192, 168, 2, 200).into(),
            prefix: 32,
            dev: None,
            label: None,
            excluded: false
        }]
    );
    assert!(i.preempt);
    assert_eq!(i.loc.line, 8);
}

#[test]
fn blocks_on_one_line_quotes_and_comments() {
    let loaded = parse_str(
        "global_defs { router_id \"my router\" # comment\n}\n\
         vrrp_instance V { interface eth0 ! another comment\n virtual_router_id 1\n\
         virtual_ipaddress { 10.0.0.1/24 dev eth1 label eth1:vip }\n\
         notify_master \"/bin/echo master now\" nobody\n\
         notify_backup /bin/true\n}\n",
        "t.conf",
    );
    assert_eq!(messages(&loaded), Vec::<String>::new());
    assert_eq!(loaded.config.global.router_id.as_deref(), Some("my router"));
    let i = &loaded.config.instances[0];
    assert_eq!(
        i.vips,
        vec![Vip {
            addr: Ipv4Addr::new(10, 0, 0, 1).into(),
            prefix: 24,
            dev: Some("eth1".into()),
            label: Some("eth1:vip".into()),
            excluded: false
        }]
    );
    let master = i.notify.master.as_ref().unwrap();
    assert_eq!(master.argv, ["/bin/echo", "master", "now"]);
    assert_eq!(master.user.as_deref(), Some("nobody"));
    assert_eq!(i.notify.backup.as_ref().unwrap().argv, ["/bin/true"]);
}

#[test]
fn brace_on_the_next_line() {
    let loaded = parse_str(
        "vrrp_instance V\n{\n interface eth0\n virtual_router_id 1\n virtual_ipaddress\n {\n 10.0.0.1\n }\n}\n",
        "t.conf",
    );
    assert_eq!(messages(&loaded), Vec::<String>::new());
    assert_eq!(loaded.config.instances[0].vips.len(), 1);
}

#[test]
fn include_is_relative_to_the_including_file() {
    let dir = std::env::temp_dir().join(format!("ha-agent-include-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::write(
        dir.join("main.conf"),
        "global_defs {\n router_id r\n}\ninclude conf.d/*.conf\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("conf.d/a.conf"),
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n bogus_keyword 1\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("conf.d/b.conf"),
        "vrrp_instance B {\n interface eth0\n virtual_router_id 2\n virtual_ipaddress {\n 10.0.0.2\n }\n}\n",
    )
    .unwrap();
    let loaded = load_from(&FileSystem, &dir.join("main.conf")).unwrap();
    let names: Vec<&str> = loaded
        .config
        .instances
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(names, ["A", "B"]);
    let expected = format!(
        "{}:4: warning: unknown keyword `bogus_keyword` in vrrp_instance; ignored",
        dir.join("conf.d/a.conf").display()
    );
    assert_eq!(messages(&loaded), vec![expected]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unreadable_file_is_an_error() {
    assert!(
        load_from(
            &FileSystem,
            std::path::Path::new("/nonexistent/keepalived.conf")
        )
        .is_err()
    );
}

#[test]
fn out_of_range_values_are_errors_with_their_line() {
    let text = "vrrp_instance V {\n interface eth0\n virtual_router_id 256\n priority 0\n advert_int 300\n}\n";
    assert_eq!(
        errors(text),
        [
            "t.conf:3: error: `virtual_router_id` 256 is out of range 1..255",
            "t.conf:4: error: `priority` 0 is out of range 1..255",
            "t.conf:5: error: `advert_int` 300 is out of range 0.01..255 s",
            "t.conf:1: error: instance V: `virtual_router_id` missing",
        ]
    );
}

#[test]
fn missing_interface_or_vrid() {
    assert_eq!(
        errors("vrrp_instance V {\n priority 100\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n"),
        [
            "t.conf:1: error: instance V: `interface` missing",
            "t.conf:1: error: instance V: `virtual_router_id` missing",
        ]
    );
}

#[test]
fn duplicate_vrid_on_one_interface() {
    let text = "vrrp_instance A {\n interface eth0\n virtual_router_id 7\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n\
                vrrp_instance B {\n interface eth0\n virtual_router_id 7\n virtual_ipaddress {\n 10.0.0.2\n }\n}\n\
                vrrp_instance C {\n interface eth1\n virtual_router_id 7\n virtual_ipaddress {\n 10.0.0.3\n }\n}\n";
    assert_eq!(
        errors(text),
        ["t.conf:8: error: virtual_router_id 7 on eth0 is already used by IPv4 instance A"]
    );
    // Each family has its own VRID space (RFC 5798).
    let v6 = text.replace("10.0.0.2", "2001:db8::2");
    assert!(errors(&v6).is_empty(), "{:?}", errors(&v6));
}

#[test]
fn nopreempt_with_state_master() {
    let text = "vrrp_instance V {\n state MASTER\n nopreempt\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n";
    assert_eq!(
        errors(text),
        ["t.conf:2: error: `nopreempt` needs `state BACKUP` (a MASTER start would preempt anyway)"]
    );
}

#[test]
fn unclosed_block_is_an_error() {
    assert_eq!(
        errors("vrrp_instance V {\n interface eth0\n virtual_router_id 1\n"),
        ["t.conf:1: error: block is not closed: '}' missing"]
    );
}

#[test]
fn version_3_interval_and_v2_rounding() {
    let loaded = parse_str(
        "global_defs {\n vrrp_version 3\n}\n\
         vrrp_instance A {\n interface eth0\n virtual_router_id 1\n advert_int 0.01\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n\
         vrrp_instance B {\n version 2\n interface eth0\n virtual_router_id 2\n advert_int 1.4\n virtual_ipaddress {\n 10.0.0.2\n }\n}\n",
        "t.conf",
    );
    let [a, b] = &loaded.config.instances[..] else {
        panic!()
    };
    assert_eq!((a.version, a.advert_int_cs), (Version::V3, 1));
    assert_eq!((b.version, b.advert_int_cs), (Version::V2, 100));
    assert_eq!(
        messages(&loaded),
        ["t.conf:16: warning: VRRPv2 advert_int must be whole seconds; using 1 s"]
    );
}

#[test]
fn auth_is_checked() {
    assert_eq!(
        errors(
            "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n authentication {\n auth_type AH\n auth_pass x\n }\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n"
        ),
        ["t.conf:5: error: auth_type AH is not supported (use PASS or none)"]
    );
    let loaded = parse_str(
        "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n authentication {\n auth_type PASS\n auth_pass 123456789\n }\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n",
        "t.conf",
    );
    assert_eq!(loaded.config.instances[0].auth_pass, Some(*b"12345678"));
    assert_eq!(
        messages(&loaded),
        ["t.conf:6: warning: auth_pass is longer than 8 characters; truncated to 8"]
    );
}

#[test]
fn unknown_keywords_are_warnings() {
    let loaded = parse_str(
        "foo bar\n\
         vrrp_instance V {\n interface eth0\n virtual_router_id 1\n enable_dbus\n virtual_ipaddress {\n 10.0.0.1 brd 10.0.0.255\n }\n}\n",
        "t.conf",
    );
    assert!(!loaded.diagnostics.has_errors());
    assert_eq!(
        messages(&loaded),
        [
            "t.conf:1: warning: unknown keyword `foo` in top level; ignored",
            "t.conf:5: warning: unknown keyword `enable_dbus` in vrrp_instance; ignored",
            "t.conf:7: warning: VIP option `brd` is not supported; ignored",
        ]
    );
}

#[test]
fn track_script_must_name_a_vrrp_script() {
    let text = "vrrp_script chk {\n script \"/bin/true\"\n interval 2\n weight -50\n fall 3\n}\n\
                vrrp_instance V {\n interface eth0\n virtual_router_id 1\n track_script {\n chk\n nope weight 10\n }\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n";
    assert_eq!(
        errors(text),
        ["t.conf:12: error: track_script nope: no vrrp_script of that name"]
    );
    let loaded = parse_str(text, "t.conf");
    let s = &loaded.config.scripts[0];
    assert_eq!(
        (s.interval, s.weight, s.fall, s.rise),
        (Duration::from_secs(2), -50, 3, 1)
    );
    assert_eq!(loaded.config.instances[0].track_scripts[1].weight, Some(10));
}

#[test]
fn an_ipv6_instance_speaks_vrrpv3_to_ff02_12() {
    let text = "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n fe80::1:1\n 2001:db8::1/64\n }\n}\n";
    let loaded = parse_str(text, "t.conf");
    assert!(errors(text).is_empty(), "{:?}", errors(text));
    let i = &loaded.config.instances[0];
    assert_eq!(
        (i.family, i.version),
        (crate::vrrp::Family::V6, Version::V3)
    );
    assert_eq!(
        i.mcast_dst_ip,
        "ff02::12".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(
        i.vips.iter().map(|v| v.prefix).collect::<Vec<_>>(),
        [128, 64]
    );
    let group = "global_defs {\n vrrp_mcast_group6 ff02::77\n}\n".to_owned() + text;
    let loaded = parse_str(&group, "t.conf");
    assert_eq!(
        loaded.config.instances[0].mcast_dst_ip,
        "ff02::77".parse::<std::net::IpAddr>().unwrap()
    );
}

/// keepalived's rule: the first address sets the instance's family.
#[test]
fn an_instance_is_ipv4_or_ipv6() {
    let mixed = "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.1\n 2001:db8::1\n }\n}\n";
    assert_eq!(
        errors(mixed),
        [
            "t.conf:6: error: VIP 2001:db8::1 is not IPv4, as the instance's first address (t.conf:5) is: \
             an instance is IPv4 or IPv6 (use another instance, or virtual_ipaddress_excluded)"
        ]
    );
    let excluded = "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.1\n }\n virtual_ipaddress_excluded {\n 2001:db8::1\n }\n}\n";
    assert!(errors(excluded).is_empty());
    let v2 = "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n version 2\n virtual_ipaddress {\n 2001:db8::1\n }\n}\n";
    assert_eq!(
        errors(v2),
        ["t.conf:4: error: VRRPv2 is IPv4 only: an IPv6 instance speaks VRRPv3"]
    );
    let peer = "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n unicast_peer {\n 2001:db8::2\n }\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n";
    assert_eq!(
        errors(peer),
        [
            "t.conf:8: error: VIP 10.0.0.1 is not IPv6, as the instance's first address (t.conf:5) is: \
             an instance is IPv4 or IPv6 (use another instance, or virtual_ipaddress_excluded)"
        ]
    );
    assert_eq!(
        errors(
            "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 2001:db8::1/129\n }\n}\n"
        ),
        ["t.conf:5: error: bad prefix length in `2001:db8::1/129`"]
    );
}

#[test]
fn a_value_keyword_with_a_block_is_an_error() {
    assert_eq!(
        errors("global_defs {\n router_id r {\n x\n }\n}\n"),
        ["t.conf:2: error: `router_id` takes a value, not a block"]
    );
}

/// Loads `main` from files held in memory.
fn load_memory(files: &[(&str, Vec<u8>)]) -> Loaded {
    let source = Memory(
        files
            .iter()
            .map(|(p, b)| (std::path::PathBuf::from(p), b.clone()))
            .collect(),
    );
    load_from(&source, std::path::Path::new(files[0].0)).unwrap()
}

fn all_errors(loaded: &Loaded) -> Vec<String> {
    loaded.diagnostics.errors().map(|d| d.to_string()).collect()
}

const INSTANCE: &str = "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n";

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let text = format!(
        "vrrp_instance A\n{}{}",
        "{\n".repeat(30_000),
        "}\n".repeat(30_000)
    );
    let loaded = parse_str(&text, "deep.conf");
    assert_eq!(
        all_errors(&loaded).first().map(String::as_str),
        Some("deep.conf:34: error: blocks nested deeper than 32; this block is skipped")
    );
    // Unclosed as well: one error for the skipped block, none for each level.
    let loaded = parse_str(&"x {\n".repeat(100_000), "open.conf");
    assert!(
        loaded.diagnostics.error_count() <= 40,
        "{:?}",
        all_errors(&loaded)
    );
}

#[test]
fn a_file_including_itself_is_a_cycle_reported_at_the_include() {
    let main = format!("{INSTANCE}include main.conf\ninclude main.conf\n");
    let loaded = load_memory(&[("/c/main.conf", main.into_bytes())]);
    assert_eq!(
        all_errors(&loaded),
        [8, 9].map(|line| format!(
            "/c/main.conf:{line}: error: include cycle: /c/main.conf is already being read (include chain: /c/main.conf)"
        ))
    );
    assert_eq!(loaded.config.instances.len(), 1);
}

#[test]
fn an_indirect_cycle_is_reported_where_it_closes() {
    let loaded = load_memory(&[
        ("/c/a.conf", b"include b.conf\n".to_vec()),
        ("/c/b.conf", b"# b\ninclude a.conf\n".to_vec()),
    ]);
    assert_eq!(
        all_errors(&loaded),
        [
            "/c/b.conf:2: error: include cycle: /c/a.conf is already being read (include chain: /c/a.conf -> /c/b.conf)"
        ]
    );
}

#[test]
fn included_files_are_limited_in_number() {
    // Each file includes the next twice: 2^13 inclusions without a cycle.
    let mut files = Vec::new();
    for i in 0..13 {
        let next = format!("include f{}.conf\n", i + 1);
        files.push((format!("/c/f{i}.conf"), next.repeat(2).into_bytes()));
    }
    files.push(("/c/f13.conf".into(), b"# leaf\n".to_vec()));
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    let loaded = load_memory(&files);
    let errors = all_errors(&loaded);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].ends_with("error: more than 1000 files included in all; the rest are skipped"),
        "{errors:?}"
    );
}

#[test]
fn include_depth_is_limited() {
    let files: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| {
            (
                format!("/c/d{i}.conf"),
                format!("include d{}.conf\n", i + 1).into_bytes(),
            )
        })
        .collect();
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    assert_eq!(
        all_errors(&load_memory(&files)),
        ["/c/d16.conf:1: error: includes nested deeper than 16"]
    );
}

#[test]
fn bytes_read_are_limited() {
    let big = vec![b'#'; (MAX_BYTES as usize) / 2 + 1];
    let loaded = load_memory(&[
        (
            "/c/main.conf",
            b"include a.conf\ninclude b.conf\ninclude c.conf\n".to_vec(),
        ),
        ("/c/a.conf", big.clone()),
        ("/c/b.conf", big.clone()),
        ("/c/c.conf", big.clone()),
    ]);
    assert_eq!(
        all_errors(&loaded),
        [
            "/c/main.conf:2: error: including /c/b.conf: the configuration is larger than 1048576 bytes in all; the rest is skipped"
        ]
    );
    let source = Memory([("/c/huge.conf".into(), vec![b' '; MAX_BYTES as usize + 1])].into());
    let err = load_from(&source, std::path::Path::new("/c/huge.conf")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot read /c/huge.conf: the configuration is larger than 1048576 bytes in all"
    );
}

#[test]
fn devices_and_recursive_globs_are_not_included() {
    let dir = std::env::temp_dir().join(format!("ha-agent-dev-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("main.conf"),
        "include /dev/zero\ninclude /**/*.conf\n",
    )
    .unwrap();
    let loaded = load_from(&FileSystem, &dir.join("main.conf")).unwrap();
    let main = dir.join("main.conf").display().to_string();
    assert_eq!(
        all_errors(&loaded),
        [
            format!("{main}:1: error: cannot read included /dev/zero: not a regular file"),
            format!(
                "{main}:2: error: include `/**/*.conf`: `**` is not supported (use `*` per directory level)"
            ),
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bytes_that_are_not_utf8_are_fine_in_comments_and_quotes_only() {
    let mut text = b"# r\xe9seau de Fran\xe7ois\n".to_vec();
    text.extend_from_slice(INSTANCE.as_bytes());
    let loaded = load_memory(&[("/c/latin1.conf", text)]);
    assert_eq!(messages(&loaded), Vec::<String>::new());
    assert_eq!(loaded.config.instances.len(), 1);

    let loaded = load_memory(&[(
        "/c/q.conf",
        b"global_defs {\n router_id \"caf\xe9\"\n}\n".to_vec(),
    )]);
    assert_eq!(
        messages(&loaded),
        [
            "/c/q.conf:2: warning: quoted string `caf\u{fffd}` holds bytes that are not UTF-8; shown as U+FFFD"
        ]
    );

    let loaded = load_memory(&[(
        "/c/bare.conf",
        b"global_defs {\n router_id caf\xe9\n}\n".to_vec(),
    )]);
    assert_eq!(
        all_errors(&loaded),
        [
            "/c/bare.conf:2: error: `caf\u{fffd}` holds bytes that are not UTF-8 (only comments and quoted strings may)"
        ]
    );
}

#[test]
fn diagnostics_are_capped_but_counted() {
    let loaded = parse_str(&"bogus\n".repeat(5000), "many.conf");
    assert_eq!(loaded.diagnostics.iter().count(), MAX_DIAGNOSTICS);
    assert_eq!(loaded.diagnostics.warning_count(), 5000);
    assert_eq!(loaded.diagnostics.suppressed(), 4000);
}

#[test]
fn script_lines_split_like_keepalived_with_users_and_groups() {
    let loaded = parse_str(
        "vrrp_script chk {\n script \"/bin/check 'two words' x\"\n user nobody nogroup\n}\n\
         vrrp_instance V {\n interface eth0\n virtual_router_id 1\n\
         notify_master \"/bin/echo master\" nobody:nogroup\n\
         notify_backup \"/bin/echo backup\" nobody nogroup\n\
         virtual_ipaddress {\n 10.0.0.1\n }\n}\n",
        "t.conf",
    );
    assert_eq!(messages(&loaded), Vec::<String>::new());
    let s = &loaded.config.scripts[0];
    assert_eq!(s.script.argv, ["/bin/check", "two words", "x"]);
    assert_eq!(s.user.as_deref(), Some("nobody:nogroup"));
    let n = &loaded.config.instances[0].notify;
    assert_eq!(
        n.master.as_ref().unwrap().user.as_deref(),
        Some("nobody:nogroup")
    );
    assert_eq!(
        n.backup.as_ref().unwrap().user.as_deref(),
        Some("nobody:nogroup")
    );
}

const REPLICATION: &str = "
mysql_replication DB1 {
    local_address 10.0.0.1
    local_port 3307
    peer_address 10.0.0.2
    user ha_agent
    password_file /etc/ha-agent/db.pass
    repl_user repl
    repl_password_file /etc/ha-agent/repl.pass
    flavor mariadb
    check_interval 0.5
    drain_timeout 20
    on_drain_timeout promote
    min_failover_interval 60
    max_auto_failovers 1
    semi_sync on
    semi_sync_timeout 250
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 7
    virtual_ipaddress { 10.0.0.100 }
    track_replication {
        DB1
    }
}
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 8
    virtual_ipaddress { 10.0.0.101 }
    track_replication {
        DB1 weight -60
    }
}
";

#[test]
fn mysql_replication_and_track_replication() {
    let loaded = parse_str(REPLICATION, "t.conf");
    assert_eq!(messages(&loaded), Vec::<String>::new());
    let r = &loaded.config.replications[0];
    assert_eq!(r.name, "DB1");
    assert_eq!(r.local, Endpoint::Tcp(Ipv4Addr::new(10, 0, 0, 1), 3307));
    assert_eq!(r.peer, (Ipv4Addr::new(10, 0, 0, 2), 3306));
    assert_eq!(
        (r.user.as_str(), r.repl_user.as_str()),
        ("ha_agent", "repl")
    );
    assert_eq!(r.flavor, Flavor::Mariadb);
    assert_eq!(r.check_interval, Duration::from_millis(500));
    assert_eq!(r.drain_timeout, Duration::from_secs(20));
    assert_eq!(r.on_drain_timeout, DrainPolicy::Promote);
    assert_eq!(r.min_failover_interval, Duration::from_secs(60));
    assert_eq!(r.max_auto_failovers, 1);
    assert!(r.semi_sync);
    assert_eq!(r.semi_sync_timeout, Duration::from_millis(250));
    let tracks: Vec<_> = loaded
        .config
        .instances
        .iter()
        .map(|i| {
            (
                i.track_replication[0].name.as_str(),
                i.track_replication[0].weight,
            )
        })
        .collect();
    assert_eq!(tracks, [("DB1", None), ("DB1", Some(-60))]);
    // A socket instead of an address.
    let text = REPLICATION.replace(
        "local_address 10.0.0.1",
        "local_socket /run/mysqld/mysqld.sock",
    );
    let r = &parse_str(&text, "t.conf").config.replications[0];
    assert_eq!(r.local, Endpoint::Socket("/run/mysqld/mysqld.sock".into()));
}

#[test]
fn mysql_replication_errors_carry_their_line() {
    let text = REPLICATION.replace("flavor mariadb", "flavor oracle");
    assert_eq!(
        errors(&text),
        ["t.conf:10: error: unknown flavor `oracle` (auto, mysql or mariadb)"]
    );
    let text = REPLICATION.replace("    peer_address 10.0.0.2\n", "");
    assert_eq!(
        errors(&text),
        [
            "t.conf:2: error: mysql_replication DB1: `peer_address` missing",
            "t.conf:23: error: track_replication DB1: no mysql_replication of that name",
            "t.conf:31: error: track_replication DB1: no mysql_replication of that name",
        ]
    );
    let text = REPLICATION.replace(
        "        DB1 weight -60",
        "        DB1 weight -60\n        DB1",
    );
    assert_eq!(
        errors(&text),
        [
            "t.conf:33: error: track_replication: one database per instance (its promotion gates the takeover)"
        ]
    );
    let text = REPLICATION.replace("on_drain_timeout promote", "on_drain_timeout wait");
    assert_eq!(
        errors(&text),
        ["t.conf:13: error: unknown on_drain_timeout `wait` (refuse or promote)"]
    );
}

const WITNESS: &str = "
etcd_witness W1 {
    endpoints http://10.0.0.5:2379 http://10.0.0.6:2379
    key_prefix /ha-agent/pair1/
    lease_ttl 2
    on_unreachable fault
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 7
    virtual_ipaddress { 10.0.0.100 }
    witness W1
}
";

#[test]
fn etcd_witness_and_its_instances() {
    let loaded = parse_str(WITNESS, "t.conf");
    assert_eq!(messages(&loaded), Vec::<String>::new());
    let w = &loaded.config.witnesses[0];
    assert_eq!(w.endpoints.len(), 2);
    assert_eq!(w.lease_ttl, Duration::from_secs(2));
    assert_eq!(w.on_unreachable, OnUnreachable::Fault);
    assert_eq!(w.key("VI_1"), "/ha-agent/pair1/VI_1");
    assert_eq!(w.tls, None);
    let instance = &loaded.config.instances[0];
    assert_eq!(
        instance.witness.as_ref().map(|r| r.name.as_str()),
        Some("W1")
    );
    // Defaults: the same prefix on every node, hold.
    let text = WITNESS
        .replace("    key_prefix /ha-agent/pair1/\n", "")
        .replace("    on_unreachable fault\n", "");
    let w = &parse_str(&text, "t.conf").config.witnesses[0];
    assert_eq!(w.key("VI_1"), "/ha-agent/VI_1");
    assert_eq!(w.on_unreachable, OnUnreachable::Hold);
    assert!(!instance.witness.as_ref().unwrap().election);
    let text = WITNESS.replace("    witness W1", "    witness W1 election");
    let loaded = parse_str(&text, "t.conf");
    assert_eq!(messages(&loaded), Vec::<String>::new());
    assert!(
        loaded.config.instances[0]
            .witness
            .as_ref()
            .unwrap()
            .election
    );
}

#[test]
fn etcd_witness_errors_carry_their_line() {
    let text = WITNESS.replace("    witness W1", "    witness W2");
    assert_eq!(
        errors(&text),
        ["t.conf:12: error: witness W2: no etcd_witness of that name"]
    );
    let text = WITNESS.replace("    witness W1", "    witness W1 elect");
    assert_eq!(
        errors(&text),
        ["t.conf:12: error: `witness NAME` takes only `election` after the name, not `elect`"]
    );
    let text = WITNESS.replace("http://10.0.0.6:2379", "10.0.0.6:2379");
    assert_eq!(
        errors(&text),
        ["t.conf:3: error: endpoint `10.0.0.6:2379`: http://HOST:PORT or https://"]
    );
    let text = WITNESS.replace("on_unreachable fault", "on_unreachable panic");
    assert_eq!(
        errors(&text),
        ["t.conf:6: error: unknown on_unreachable `panic` (hold or fault)"]
    );
    let text = WITNESS.replace("lease_ttl 2", "lease_ttl 0");
    assert_eq!(errors(&text).len(), 1);
    let text = WITNESS.replace(
        "    lease_ttl 2\n",
        "    lease_ttl 2\n    tls_ca /etc/ca.pem\n",
    );
    assert_eq!(
        errors(&text),
        [
            "t.conf:2: error: etcd_witness W1: https:// endpoints need `tls_ca`, and `tls_ca` needs https://",
            "t.conf:13: error: witness W1: no etcd_witness of that name",
        ]
    );
}

#[test]
fn vrrp_min_garp_sends_one_garp_and_no_second_burst() {
    let garp = |global: &str| {
        let text = format!(
            "global_defs {{\n{global}}}\nvrrp_instance V {{\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {{\n 10.0.0.1\n }}\n}}\n"
        );
        let loaded = parse_str(&text, "t.conf");
        assert!(!loaded.diagnostics.has_errors(), "{:?}", messages(&loaded));
        let g = loaded.config.instances[0].garp;
        (g.repeat, g.delay)
    };
    assert_eq!(garp(""), (5, Duration::from_secs(5)));
    assert_eq!(garp(" vrrp_min_garp\n"), (1, Duration::ZERO));
    assert_eq!(garp(" vrrp_min_garp true\n"), (1, Duration::ZERO));
    assert_eq!(garp(" vrrp_min_garp off\n"), (5, Duration::from_secs(5)));
}

const SYNC_GROUP: &str = "vrrp_script chk {
    script /bin/true
    weight -20
}
vrrp_instance INSIDE {
    interface eth0
    virtual_router_id 1
    virtual_ipaddress { 10.0.0.1 }
    track_script { chk }
}
vrrp_instance OUTSIDE {
    interface eth1
    virtual_router_id 2
    virtual_ipaddress { 10.1.0.1 }
    track_interface { eth2 weight -10 }
}
vrrp_sync_group G {
    group {
        INSIDE
        OUTSIDE
    }
    track_interface { eth0 }
    notify_master /bin/true
    notify \"/bin/echo group\"
}
";

#[test]
fn sync_group_members_share_its_trackers_and_lose_their_weights() {
    let loaded = parse_str(SYNC_GROUP, "t.conf");
    assert!(!loaded.diagnostics.has_errors(), "{:?}", messages(&loaded));
    assert_eq!(
        messages(&loaded),
        [
            "t.conf:9: warning: track_script chk: weight ignored in sync group G (a failure means FAULT; `sync_group_tracking_weight` keeps weights)",
            "t.conf:15: warning: track_interface eth2: weight ignored in sync group G (down means FAULT; `sync_group_tracking_weight` keeps weights)",
        ]
    );
    let c = &loaded.config;
    let g = &c.sync_groups[0];
    assert_eq!(
        g.members
            .iter()
            .map(|(m, _)| m.as_str())
            .collect::<Vec<_>>(),
        ["INSIDE", "OUTSIDE"]
    );
    assert_eq!(g.notify.master.as_ref().unwrap().argv, ["/bin/true"]);
    assert_eq!(
        g.notify.generic.as_ref().unwrap().argv,
        ["/bin/echo", "group"]
    );
    for inst in &c.instances {
        assert_eq!(inst.sync_group.as_deref(), Some("G"));
        assert!(
            inst.track_interfaces
                .iter()
                .any(|t| t.name == "eth0" && t.weight == 0)
        );
        assert!(inst.track_interfaces.iter().all(|t| t.weight == 0));
    }
    assert_eq!(c.instances[0].track_scripts[0].weight, Some(0));

    // With sync_group_tracking_weight the weights stay.
    let kept = parse_str(
        &SYNC_GROUP.replace(
            "    track_interface { eth0 }\n",
            "    sync_group_tracking_weight\n",
        ),
        "t.conf",
    );
    assert_eq!(messages(&kept), Vec::<String>::new());
    assert_eq!(kept.config.instances[0].track_scripts[0].weight, None);
    assert_eq!(kept.config.instances[1].track_interfaces[0].weight, -10);
}

#[test]
fn sync_group_errors_carry_their_line() {
    let text = format!(
        "{SYNC_GROUP}vrrp_sync_group H {{\n group {{\n OUTSIDE\n NOPE\n }}\n}}\nvrrp_sync_group E {{\n}}\n"
    );
    assert_eq!(
        errors(&text),
        [
            "t.conf:32: error: vrrp_sync_group E: `group` has no instance",
            "t.conf:28: error: vrrp_sync_group H: instance OUTSIDE is already in group G",
            "t.conf:29: error: vrrp_sync_group H: no vrrp_instance NOPE",
        ]
    );
}

#[test]
fn track_files_and_their_trackers() {
    let text = "track_file app {\n file /run/app.value\n weight -10 reverse\n init_file 3 overwrite\n}\n\
                vrrp_track_file old {\n file /run/old\n}\n\
                vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.1\n }\n\
                track_file {\n app\n old weight 0 noreverse\n }\n}\n";
    let loaded = parse_str(text, "t.conf");
    assert_eq!(messages(&loaded), Vec::<String>::new());
    let f = &loaded.config.track_files;
    assert_eq!(
        (f[0].path.to_str(), f[0].weight, f[0].reverse, f[0].init),
        (Some("/run/app.value"), -10, true, Some((3, true)))
    );
    assert_eq!(
        (f[1].name.as_str(), f[1].weight, f[1].init),
        ("old", 1, None)
    );
    let refs = &loaded.config.instances[0].track_files;
    assert_eq!((refs[0].weight, refs[0].reverse), (None, None));
    assert_eq!((refs[1].weight, refs[1].reverse), (Some(0), Some(false)));

    assert_eq!(
        errors(
            "track_file x {\n file rel/path\n}\ntrack_file y {\n}\nvrrp_instance V {\n interface eth0\n virtual_router_id 1\n track_file {\n nope\n }\n}\n"
        ),
        [
            "t.conf:1: error: track_file x: `rel/path` needs an absolute path",
            "t.conf:4: error: track_file y: `file` missing",
            "t.conf:10: error: track_file nope: no track_file block of that name",
        ]
    );
}

#[test]
fn notify_fifos_and_their_scripts() {
    let loaded = parse_str(
        "global_defs {\n notify_fifo_script \"/bin/reader -v\" nobody\n notify_fifo /run/ka.fifo root\n vrrp_notify_fifo /run/vrrp.fifo\n fifo_write_vrrp_states_on_reload\n}\n",
        "t.conf",
    );
    assert_eq!(messages(&loaded), Vec::<String>::new());
    let g = &loaded.config.global;
    let f = g.notify_fifo.as_ref().unwrap();
    assert_eq!(f.path.to_str(), Some("/run/ka.fifo"));
    assert_eq!(f.owner.as_deref(), Some("root"));
    let script = f.script.as_ref().unwrap();
    assert_eq!(
        (script.argv.as_slice(), script.user.as_deref()),
        (
            &["/bin/reader".to_owned(), "-v".to_owned()][..],
            Some("nobody")
        )
    );
    assert_eq!(g.vrrp_notify_fifo.as_ref().unwrap().script, None);
    assert!(g.fifo_states_on_reload);
    assert_eq!(
        errors("global_defs {\n vrrp_notify_fifo_script /bin/reader\n notify_fifo relative\n}\n"),
        [
            "t.conf:3: error: `notify_fifo` relative needs an absolute path",
            "t.conf:2: error: a notify FIFO script without its `notify_fifo`",
        ]
    );
}

#[test]
fn receive_checks_per_instance_or_from_global_defs() {
    let text = "global_defs {\n vrrp_strict\n}\n\
                vrrp_instance A {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n\
                vrrp_instance B {\n interface eth0\n virtual_router_id 2\n strict_mode off\n skip_check_adv_addr\n\
                virtual_ipaddress {\n 10.0.0.2\n }\n virtual_ipaddress_excluded {\n 10.0.0.3\n }\n mcast_src_ip 10.0.0.9\n}\n";
    let loaded = parse_str(text, "t.conf");
    assert_eq!(messages(&loaded), Vec::<String>::new());
    let (a, b) = (&loaded.config.instances[0], &loaded.config.instances[1]);
    assert_eq!((a.strict, a.skip_check_adv_addr), (true, false));
    assert_eq!((b.strict, b.skip_check_adv_addr), (false, true));
    assert_eq!(
        b.vips
            .iter()
            .map(|v| (v.addr.to_string(), v.excluded))
            .collect::<Vec<_>>(),
        [
            ("10.0.0.2".to_owned(), false),
            ("10.0.0.3".to_owned(), true)
        ]
    );
    assert_eq!(b.mcast_src_ip, Some(Ipv4Addr::new(10, 0, 0, 9).into()));
}

#[test]
fn virtual_routes_and_rules() {
    let text = "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.1\n }\n\
                virtual_routes {\n src 10.0.0.1 to 10.9.0.0/16 via 10.0.0.254 dev eth0 metric 5\n 10.8.0.0/16 dev eth1 table 100 scope link\n blackhole 10.7.0.0/16\n default via 10.0.0.254 table main\n }\n\
                virtual_rules {\n from 10.0.0.1 table 100 priority 50\n to 10.6.0.0/16 lookup 101\n }\n}\n";
    let loaded = parse_str(text, "t.conf");
    assert_eq!(messages(&loaded), Vec::<String>::new());
    let inst = &loaded.config.instances[0];
    let r = &inst.routes;
    assert_eq!(r.len(), 4);
    assert_eq!(
        (
            r[0].src,
            r[0].dest,
            r[0].via,
            r[0].dev.as_deref(),
            r[0].metric
        ),
        (
            Some(Ipv4Addr::new(10, 0, 0, 1)),
            (Ipv4Addr::new(10, 9, 0, 0), 16),
            Some(Ipv4Addr::new(10, 0, 0, 254)),
            Some("eth0"),
            Some(5)
        )
    );
    assert_eq!((r[1].table, r[1].scope), (Some(100), Some(253)));
    assert_eq!((r[2].kind, r[2].dest.1), (RouteKind::Blackhole, 16));
    assert_eq!(
        (r[3].dest, r[3].table),
        ((Ipv4Addr::UNSPECIFIED, 0), Some(254))
    );
    let rules = &inst.rules;
    assert_eq!(
        (rules[0].from, rules[0].table, rules[0].priority),
        (Some((Ipv4Addr::new(10, 0, 0, 1), 32)), 100, Some(50))
    );
    assert_eq!(
        (rules[1].to, rules[1].table),
        (Some((Ipv4Addr::new(10, 6, 0, 0), 16)), 101)
    );

    assert_eq!(
        errors(
            "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_routes {\n 10.9.0.0/16 via 10.0.0.254 onlink\n via 10.0.0.1\n }\n virtual_rules {\n from 10.0.0.1\n from 10.0.0.2 fwmark 3 table 5\n }\n}\n"
        ),
        [
            "t.conf:5: error: virtual_routes: `onlink` is not supported here",
            "t.conf:6: error: virtual_routes: a route needs a destination",
            "t.conf:9: error: virtual_rules: a rule needs `table N`",
            "t.conf:10: error: virtual_rules: `fwmark` is not supported here",
        ]
    );
}

#[test]
fn lower_and_higher_priority_answers_follow_strict_mode() {
    let text = "global_defs {\n vrrp_down_timer_adverts 4\n vrrp_garp_lower_prio_repeat 2\n vrrp_higher_prio_send_advert\n}\n\
                vrrp_instance A {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n\
                vrrp_instance B {\n interface eth0\n virtual_router_id 2\n strict_mode\n down_timer_adverts 6\n\
                virtual_ipaddress {\n 10.0.0.2\n }\n}\n\
                vrrp_instance C {\n interface eth0\n virtual_router_id 3\n lower_prio_no_advert\n garp_lower_prio_delay 0\n\
                virtual_ipaddress {\n 10.0.0.3\n }\n}\n";
    let loaded = parse_str(text, "t.conf");
    assert_eq!(messages(&loaded), Vec::<String>::new());
    let i = &loaded.config.instances;
    let summary = |n: usize| {
        (
            i[n].down_timer_adverts,
            i[n].lower_prio_no_advert,
            i[n].higher_prio_send_advert,
            i[n].garp.lower_prio_repeat,
            i[n].garp.lower_prio_delay,
        )
    };
    assert_eq!(summary(0), (4, false, true, Some(2), None));
    // Strict mode: no answer to a lower priority, nothing before yielding, no GARP.
    assert_eq!(summary(1), (6, true, false, Some(0), None));
    assert_eq!(summary(2), (4, true, true, Some(2), Some(Duration::ZERO)));
}

#[test]
fn startup_shutdown_scripts_and_unicast_options() {
    let text = "global_defs {\n startup_script \"/bin/start a\" nobody\n startup_script_timeout 3\n shutdown_script /bin/stop\n}\n\
                vrrp_instance A {\n interface eth0\n virtual_router_id 1\n unicast_peer {\n 10.0.0.2\n }\n unicast_ttl 64\n unicast_fault_no_peer\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n";
    let loaded = parse_str(text, "t.conf");
    assert_eq!(messages(&loaded), Vec::<String>::new());
    let g = &loaded.config.global;
    let (start, t) = g.startup_script.as_ref().unwrap();
    assert_eq!(
        (start.argv.as_slice(), start.user.as_deref(), *t),
        (
            &["/bin/start".to_owned(), "a".to_owned()][..],
            Some("nobody"),
            Duration::from_secs(3)
        )
    );
    assert_eq!(
        g.shutdown_script.as_ref().unwrap().1,
        Duration::from_secs(10)
    );
    let i = &loaded.config.instances[0];
    assert_eq!((i.unicast_ttl, i.unicast_fault_no_peer), (64, true));
    let two = format!(
        "{text}vrrp_instance B {{\n interface eth0\n virtual_router_id 2\n unicast_peer {{\n 10.0.0.3 min_ttl 2\n }}\n virtual_ipaddress {{\n 10.0.0.9\n }}\n}}\n"
    );
    assert_eq!(
        errors(&two),
        [
            "t.conf:22: error: unicast peer option `min_ttl` is not supported by ha-agent: this peer's adverts are accepted at any TTL",
            "t.conf:18: error: unicast_ttl 255 differs from instance A's 64: instances with unicast peers on one interface and source share one socket",
        ]
    );
    assert_eq!(
        errors("global_defs {\n shutdown_script_timeout 3\n}\n"),
        ["t.conf:2: error: `shutdown_script_timeout` before its script (or without one)"]
    );
}

#[test]
fn interface_up_down_delays() {
    let loaded = parse_str(
        "interface_up_down_delays {\n eth0 0.5\n eth1 2 0.25\n}\n",
        "t.conf",
    );
    assert_eq!(messages(&loaded), Vec::<String>::new());
    assert_eq!(
        loaded.config.link_delays,
        [
            (
                "eth0".to_owned(),
                Duration::from_millis(500),
                Duration::from_millis(500)
            ),
            (
                "eth1".to_owned(),
                Duration::from_secs(2),
                Duration::from_millis(250)
            ),
        ]
    );
    assert_eq!(
        errors("interface_up_down_delays {\n eth0 300\n eth1\n}\n"),
        [
            "t.conf:2: error: interface_up_down_delays: `300` is not 0..255 s",
            "t.conf:2: error: interface_up_down_delays: `IF DOWN [UP]` (seconds)",
            "t.conf:3: error: interface_up_down_delays: `IF DOWN [UP]` (seconds)",
        ]
    );
}

#[test]
fn multicast_groups() {
    let text = "global_defs {\n vrrp_mcast_group4 224.0.0.77\n}\n\
                vrrp_instance A {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n\
                vrrp_instance B {\n interface eth0\n virtual_router_id 2\n mcast_dst_ip 239.1.1.1\n virtual_ipaddress {\n 10.0.0.2\n }\n}\n";
    let loaded = parse_str(text, "t.conf");
    assert_eq!(messages(&loaded), Vec::<String>::new());
    let i = &loaded.config.instances;
    assert_eq!(i[0].mcast_dst_ip, Ipv4Addr::new(224, 0, 0, 77));
    assert_eq!(i[1].mcast_dst_ip, Ipv4Addr::new(239, 1, 1, 1));
    assert_eq!(
        errors("global_defs {\n vrrp_mcast_group4 10.0.0.1\n}\n"),
        ["t.conf:2: error: `vrrp_mcast_group4` 10.0.0.1 is not a multicast address"]
    );
}

#[test]
fn garp_groups() {
    let text = "global_defs {\n vrrp_garp_interval 0.01\n}\n\
                garp_group {\n garp_interval 0.1\n interfaces {\n eth0\n eth1\n }\n}\n\
                garp_group {\n gna_interval 0.2\n interface eth2\n}\n";
    let loaded = parse_str(text, "t.conf");
    assert!(errors(text).is_empty(), "{:?}", errors(text));
    let groups = &loaded.config.garp_groups;
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].interfaces, ["eth0", "eth1"]);
    assert_eq!(groups[0].garp_interval, Some(Duration::from_millis(100)));
    assert_eq!(groups[0].gna_interval, None);
    assert_eq!(groups[1].gna_interval, Some(Duration::from_millis(200)));
    assert_eq!(
        loaded.config.global.garp_interval,
        Duration::from_millis(10)
    );
    assert_eq!(
        errors("garp_group {\n garp_interval 1\n}\n"),
        ["t.conf:1: error: `garp_group` needs `interface IF` or `interfaces { IF ... }`"]
    );
    assert_eq!(
        errors("garp_group {\n interface eth0\n interfaces {\n eth1\n }\n}\n"),
        ["t.conf:1: error: `garp_group`: use `interface` or `interfaces`, not both"]
    );
    assert_eq!(
        errors("garp_group {\n interface eth0\n}\ngarp_group {\n interface eth0\n}\n"),
        ["t.conf:4: error: interface eth0 is already in the garp_group at t.conf:1"]
    );
}

/// A sync group's `track_file` and `track_process` reach its members (weights dropped: a
/// failure is FAULT for the whole group). The group's `track_file` used to be read and
/// then left out.
#[test]
fn a_sync_groups_file_and_process_trackers_reach_its_members() {
    let text = "track_file f {\n file /tmp/f\n}\n\
                vrrp_track_process p {\n process nginx\n weight 5\n}\n\
                vrrp_instance A {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n\
                vrrp_sync_group G {\n group {\n A\n }\n track_file {\n f\n }\n track_process {\n p\n }\n}\n";
    let loaded = parse_str(text, "t.conf");
    assert!(errors(text).is_empty(), "{:?}", errors(text));
    let a = &loaded.config.instances[0];
    assert_eq!(a.track_files.len(), 1);
    assert_eq!(a.track_files[0].weight, Some(0));
    assert_eq!(a.track_processes.len(), 1);
    assert_eq!(a.track_processes[0].weight, Some(0));
    let p = &loaded.config.track_processes[0];
    assert_eq!((p.process.as_str(), p.weight, p.quorum), ("nginx", 5, 1));
    assert_eq!(
        errors(&text.replace("track_process {\n p\n", "track_process {\n q\n")),
        ["t.conf:23: error: track_process q: no vrrp_track_process of that name"]
    );
}

#[test]
fn accept_mode_follows_keepalived_defaults() {
    let instance = |name: &str, vrid: u8, lines: &str| {
        format!(
            "vrrp_instance {name} {{\n interface eth0\n virtual_router_id {vrid}\n version 3\n{lines}\
             virtual_ipaddress {{\n 10.0.0.{vrid}\n }}\n}}\n"
        )
    };
    let text = [
        instance("PLAIN", 1, ""),
        instance("NO_ACCEPT", 2, " no_accept\n"),
        instance("STRICT", 3, " strict_mode\n"),
        instance("STRICT_ACCEPT", 4, " strict_mode\n accept\n"),
        instance("OWNER", 5, " strict_mode\n priority 255\n no_accept\n"),
        instance("V2", 6, " version 2\n strict_mode\n accept\n"),
    ]
    .concat();
    let loaded = parse_str(&text, "t.conf");
    assert_eq!(
        messages(&loaded),
        vec![
            "t.conf:54: warning: instance V2: VRRPv2 under strict mode has no `accept` \
             (RFC 3768); traffic to its VIPs is dropped"
        ]
    );
    let accept: Vec<(&str, bool)> = loaded
        .config
        .instances
        .iter()
        .map(|i| (i.name.as_str(), i.accept))
        .collect();
    assert_eq!(
        accept,
        [
            ("PLAIN", true),
            ("NO_ACCEPT", false),
            ("STRICT", false),
            ("STRICT_ACCEPT", true),
            ("OWNER", true),
            ("V2", false),
        ]
    );
}

#[test]
fn bfd_instances_take_keepalived_defaults_and_ranges() {
    let text = "bfd_instance A {\n neighbor_ip 10.0.0.2\n}\n\
                bfd_instance B {\n neighbour_ip 10.0.0.3\n source_ip 10.0.0.1\n min_rx 1.5\n min_tx 3\n idle_tx 2000\n\
                multiplier 3\n passive\n ttl 254\n max_hops -1\n weight -20 reverse\n vrrp\n}\n\
                vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.100\n }\n\
                track_bfd {\n A\n B weight 10\n }\n}\n";
    let loaded = parse_str(text, "t.conf");
    assert_eq!(messages(&loaded), Vec::<String>::new());
    let [a, b] = &loaded.config.bfd_instances[..] else {
        panic!("two sessions")
    };
    assert_eq!(
        (
            a.min_rx,
            a.min_tx,
            a.idle_tx,
            a.multiplier,
            a.passive,
            a.ttl,
            a.max_hops,
            a.weight
        ),
        (
            Duration::from_millis(10),
            Duration::from_millis(10),
            Duration::from_secs(1),
            5,
            false,
            255,
            0,
            0
        )
    );
    assert_eq!(a.source, None);
    assert_eq!(
        (
            b.min_rx,
            b.min_tx,
            b.idle_tx,
            b.multiplier,
            b.passive,
            b.ttl,
            b.max_hops
        ),
        (
            Duration::from_micros(1500),
            Duration::from_millis(3),
            Duration::from_secs(2),
            3,
            true,
            254,
            255
        )
    );
    assert_eq!((b.weight, b.reverse), (-20, true));
    let tracks: Vec<(&str, Option<i32>)> = loaded.config.instances[0]
        .track_bfds
        .iter()
        .map(|t| (t.name.as_str(), t.weight))
        .collect();
    assert_eq!(tracks, [("A", None), ("B", Some(10))]);
}

#[test]
fn bfd_mistakes_are_errors_at_their_line() {
    let text = "bfd_instance A {\n min_rx 0.5\n multiplier 0\n}\n\
                bfd_instance B {\n neighbor_ip 10.0.0.2\n source_ip fe80::1\n}\n\
                bfd_instance C {\n neighbor_ip 10.0.0.2\n idle_tx 999\n}\n\
                bfd_instance D {\n neighbor_ip 10.0.0.2\n}\n\
                vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.100\n }\n\
                track_bfd {\n NONE\n }\n}\n";
    assert_eq!(
        errors(text),
        vec![
            "t.conf:2: error: `min_rx` must be a number of milliseconds from 1 to 4294967, not `0.5`",
            "t.conf:3: error: `multiplier` 0 is out of range 1..255",
            "t.conf:1: error: bfd_instance A: `neighbor_ip` missing",
            "t.conf:5: error: bfd_instance B: source_ip fe80::1 and neighbor_ip 10.0.0.2 are of different families",
            "t.conf:11: error: `idle_tx` must be a number of milliseconds from 1000 to 4294967, not `999`",
            "t.conf:13: error: bfd_instance D: bfd_instance C already runs a session to 10.0.0.2",
            "t.conf:23: error: track_bfd NONE: no bfd_instance of that name",
        ]
    );
}

#[test]
fn a_sync_groups_notify_priority_changes_is_its_members_default() {
    let instance = |name: &str, vrid: u8, own: &str| {
        format!(
            "vrrp_instance {name} {{\n interface eth0\n virtual_router_id {vrid}\n{own}\
             virtual_ipaddress {{\n 10.0.0.{vrid}\n }}\n}}\n"
        )
    };
    let text = [
        instance("A", 1, ""),
        instance("B", 2, " notify_priority_changes false\n"),
        instance("C", 3, ""),
        "vrrp_sync_group G {\n group {\n A\n B\n }\n notify_priority_changes\n notify_deleted\n}\n"
            .to_owned(),
    ]
    .concat();
    let loaded = parse_str(&text, "t.conf");
    assert_eq!(
        messages(&loaded),
        vec![
            "t.conf:29: warning: `notify_deleted` is ignored: keepalived 2.2.7's own parser does \
             not take it in a sync group (its manual lists it there): set `notify_deleted` in \
             each instance"
        ]
    );
    let changes: Vec<bool> = loaded
        .config
        .instances
        .iter()
        .map(|i| i.notify_priority_changes)
        .collect();
    // A follows its group, B says otherwise itself, C is in no group.
    assert_eq!(changes, [true, false, false]);
}
