//! CLOCK_REALTIME steps (an NTP step, an operator's `date -s`). The agent's timers run on
//! CLOCK_MONOTONIC, but the kernel stamps each received packet on CLOCK_REALTIME, and a
//! backup judges its master by those stamps. A forward step while adverts wait in the
//! backup's socket made them look as old as the step: the backup took over from a live
//! master. Alone in its test binary, since it steps the machine's clock (and back by as
//! much, whatever happens).

use std::{net::Ipv4Addr, time::Duration};

use ha_tests::{
    Daemon, Topology, VrrpConf,
    daemons::{agent_binary, master_down_interval},
    wait::assert_never,
    wait_until,
};
use nix::sys::signal::Signal;

const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 200);

/// Steps CLOCK_REALTIME by `by` seconds; dropping it steps back by as much.
struct Step(i64);

impl Step {
    fn forward(by: i64) -> Self {
        shift(by);
        Step(by)
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        shift(-self.0);
    }
}

fn shift(by: i64) {
    ha_tests::capture::step_realtime(by).expect("stepping CLOCK_REALTIME (needs CAP_SYS_TIME)");
}

#[test]
fn a_forward_step_of_the_clock_while_adverts_wait_makes_no_takeover() {
    for xdp in ["off", "auto"] {
        let t = Topology::new(&["a", "b"]);
        let (a, b) = (t.host("a"), t.host("b"));
        let conf = |state, priority| VrrpConf::v3(state, priority, "0.1").render();
        let start = |host, state, priority| {
            Daemon::agent_args(
                host,
                t.dir(),
                &conf(state, priority),
                &agent_binary(),
                &["--xdp", xdp],
            )
        };
        let _agent_a = start(a, "MASTER", 150);
        let agent_b = start(b, "BACKUP", 120);
        let mdi = master_down_interval(3, Duration::from_millis(100), 120);
        wait_until("A master, B following it", Duration::from_secs(10), || {
            (a.has_address("eth0", VIP)
                && agent_b.try_status()?["instances"][0]["master"] == a.ip.to_string())
            .then_some(())
        });
        let received = || agent_b.status()["instances"][0]["adverts_received"].as_u64();

        // B stopped for a third of its down timer: A's adverts wait in its socket (or, with
        // XDP, in the kernel's record). The clock jumps ten minutes ahead meanwhile.
        let before = received();
        agent_b.process.signal(Signal::SIGSTOP);
        std::thread::sleep(mdi / 3);
        let step = Step::forward(600);
        agent_b.process.signal(Signal::SIGCONT);
        // Its loop has read what waited once it answers with a larger count.
        wait_until("B reading the adverts that waited", mdi * 3, || {
            (received() > before).then_some(())
        });
        drop(step);
        assert_never("B taking the VIP from a live master", mdi * 3, || {
            b.has_address("eth0", VIP)
        });
        assert_eq!(agent_b.instance_field("state"), "BACKUP", "--xdp {xdp}");
        assert!(
            !agent_b.log_text().contains("-> MASTER"),
            "--xdp {xdp}: {}",
            agent_b.log_text()
        );
    }
}
