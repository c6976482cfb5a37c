//! Event timestamps for tests and benchmarks, all on CLOCK_REALTIME so namespaces compare:
//! frames seen by the observer (kernel timestamps through tcpdump) and VIP changes seen by
//! a netlink address monitor inside a host.

use std::{
    fs::File,
    net::Ipv4Addr,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use crate::{Host, Process};
use anyhow::{Context as _, Result, bail};

/// Nanoseconds since the Unix epoch.
pub type Ns = i128;

pub fn realtime_ns() -> Ns {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME).expect("CLOCK_REALTIME");
    Ns::from(t.tv_sec()) * 1_000_000_000 + Ns::from(t.tv_nsec())
}

/// Nanoseconds on CLOCK_MONOTONIC, which no clock step moves.
pub fn monotonic_ns() -> Ns {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
    Ns::from(t.tv_sec()) * 1_000_000_000 + Ns::from(t.tv_nsec())
}

/// Steps CLOCK_REALTIME, the whole machine's, by `secs` (needs CAP_SYS_TIME): for the
/// tests and fault runs of clock steps, which step back by as much.
pub fn step_realtime(secs: i64) -> nix::Result<()> {
    use nix::time::{ClockId, clock_gettime, clock_settime};
    let now = clock_gettime(ClockId::CLOCK_REALTIME)?;
    clock_settime(
        ClockId::CLOCK_REALTIME,
        nix::sys::time::TimeSpec::new(now.tv_sec() + secs, now.tv_nsec()),
    )
}

/// A frame the observer saw.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    Advert { at: Ns, src: Ipv4Addr, priority: u8 },
    Garp { at: Ns, mac: String, ip: Ipv4Addr },
}

/// The gaps between consecutive adverts from `src`, in ms, and whether any had priority 0.
pub fn advert_gaps(frames: &[Frame], src: Ipv4Addr) -> (Vec<f64>, bool) {
    let mut gaps = Vec::new();
    let mut last = None;
    let mut zero = false;
    for frame in frames {
        if let Frame::Advert {
            at,
            src: s,
            priority,
        } = frame
            && *s == src
        {
            zero |= *priority == 0;
            if let Some(prev) = last {
                gaps.push((at - prev) as f64 / 1e6);
            }
            last = Some(*at);
        }
    }
    (gaps, zero)
}

/// tcpdump on the observer's eth0, writing VRRP and ARP frames with nanosecond kernel
/// timestamps to a file.
pub struct Observer {
    _process: Process,
    path: PathBuf,
}

impl Observer {
    pub fn start(host: &Host, dir: &Path, name: &str) -> Result<Self> {
        Self::start_filtered(host, dir, name, "vrrp or arp")
    }

    /// [`Observer::start`] capturing only what the pcap `filter` selects.
    pub fn start_filtered(host: &Host, dir: &Path, name: &str, filter: &str) -> Result<Self> {
        // Frames (stdout) and tcpdump's own messages (stderr) share the file; only frame
        // lines parse.
        let path = dir.join(format!("observer-{name}.txt"));
        let mut command = host.command("tcpdump");
        command.args([
            "-i",
            "eth0",
            "-n",
            "-e",
            "-l",
            "-tt",
            "--time-stamp-precision=nano",
        ]);
        command.args(["--immediate-mode", filter]);
        let process = host.spawn("tcpdump", command, &path);
        // tcpdump says "listening on" once the capture runs.
        for _ in 0..300 {
            if std::fs::read_to_string(&path).is_ok_and(|l| l.contains("listening on")) {
                return Ok(Self {
                    _process: process,
                    path,
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        bail!("tcpdump did not start in {}", host.name)
    }

    pub fn frames(&self) -> Result<Vec<Frame>> {
        let text = std::fs::read_to_string(&self.path)?;
        Ok(text.lines().filter_map(parse_line).collect())
    }
}

fn parse_ts(word: &str) -> Option<Ns> {
    let (secs, frac) = word.split_once('.')?;
    let nanos: Ns = format!("{frac:0<9}")[..9].parse().ok()?;
    Some(secs.parse::<Ns>().ok()? * 1_000_000_000 + nanos)
}

/// Parses one line of `tcpdump -n -e -tt`.
fn parse_line(line: &str) -> Option<Frame> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = parse_ts(words.first()?)?;
    if line.contains("VRRPv") {
        let gt = words.iter().position(|w| *w == ">")?;
        // "... length 54: 192.168.2.10 > 224.0.0.18: VRRPv2 ..." — the second '>'.
        let gt2 = words.iter().skip(gt + 1).position(|w| *w == ">")? + gt + 1;
        let src = words.get(gt2 - 1)?.parse().ok()?;
        let prio = words.iter().position(|w| *w == "prio")?;
        let priority = words.get(prio + 1)?.trim_end_matches(',').parse().ok()?;
        return Some(Frame::Advert { at, src, priority });
    }
    if line.contains("ethertype ARP") && line.contains("Request who-has") {
        let who = words.iter().position(|w| *w == "who-has")?;
        let tell = words.iter().position(|w| *w == "tell")?;
        let target: Ipv4Addr = words.get(who + 1)?.parse().ok()?;
        let sender: Ipv4Addr = words.get(tell + 1)?.trim_end_matches(',').parse().ok()?;
        if target == sender {
            return Some(Frame::Garp {
                at,
                mac: words.get(1)?.to_string(),
                ip: target,
            });
        }
    }
    None
}

/// An IPv4 address added (`true`) or removed on some interface, and when.
#[derive(Clone, Copy, Debug)]
pub struct AddrEvent {
    /// CLOCK_REALTIME, to compare with an observer's capture.
    pub at: Ns,
    /// CLOCK_MONOTONIC, for runs that step the real-time clock.
    pub mono: Ns,
    pub addr: Ipv4Addr,
    pub added: bool,
}

/// A netlink address monitor running on a thread inside a host's namespace.
pub struct AddrMonitor {
    events: Arc<Mutex<Vec<AddrEvent>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const IFA_LOCAL: u16 = 2;

impl AddrMonitor {
    pub fn start(host: &Host) -> Result<Self> {
        let events = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let netns = format!("/run/netns/{}", host.netns);
        let (ev, st) = (events.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let result = (|| -> Result<OwnedFd> {
                let ns = File::open(&netns)?;
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
                netlink_socket()
            })();
            match result {
                Ok(fd) => {
                    let _ = ready_tx.send(Ok(()));
                    monitor(&fd, &ev, &st);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        });
        ready_rx.recv().context("address monitor thread")??;
        Ok(Self {
            events,
            stop,
            thread: Some(thread),
        })
    }

    pub fn events(&self) -> Vec<AddrEvent> {
        self.events.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.events.lock().unwrap().clear();
    }
}

impl Drop for AddrMonitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn netlink_socket() -> Result<OwnedFd> {
    // SAFETY: plain socket(2); checked below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        bail!("netlink socket: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fd is ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    addr.nl_groups = RTMGRP_IPV4_IFADDR;
    // SAFETY: addr outlives the call.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if rc < 0 {
        bail!("netlink bind: {}", std::io::Error::last_os_error());
    }
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: timeout outlives the call.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
    }
    Ok(fd)
}

fn monitor(fd: &OwnedFd, events: &Mutex<Vec<AddrEvent>>, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let (at, mono) = (realtime_ns(), monotonic_ns());
        if n <= 0 {
            continue;
        }
        let mut msg = &buf[..n as usize];
        while msg.len() >= 16 {
            let len = u32::from_ne_bytes(msg[0..4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes(msg[4..6].try_into().unwrap());
            if len < 16 || len > msg.len() {
                break;
            }
            if kind == RTM_NEWADDR || kind == RTM_DELADDR {
                // nlmsghdr (16) + ifaddrmsg (8), then rtattrs.
                let mut attrs = &msg[24.min(len)..len];
                while attrs.len() >= 4 {
                    let alen = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
                    let akind = u16::from_ne_bytes([attrs[2], attrs[3]]);
                    if alen < 4 || alen > attrs.len() {
                        break;
                    }
                    if akind == IFA_LOCAL && alen >= 8 {
                        let addr = Ipv4Addr::new(attrs[4], attrs[5], attrs[6], attrs[7]);
                        events.lock().unwrap().push(AddrEvent {
                            at,
                            mono,
                            addr,
                            added: kind == RTM_NEWADDR,
                        });
                    }
                    attrs = &attrs[((alen + 3) & !3).min(attrs.len())..];
                }
            }
            msg = &msg[((len + 3) & !3).min(msg.len())..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcpdump_lines() {
        let advert = "1795483732.177287123 02:00:00:00:00:0a > 01:00:5e:00:00:12, ethertype IPv4 (0x0800), length 54: 192.168.2.10 > 224.0.0.18: VRRPv2, Advertisement, vrid 107, prio 150, authtype simple, intvl 1s, length 20";
        assert_eq!(
            parse_line(advert),
            Some(Frame::Advert {
                at: 1_795_483_732_177_287_123,
                src: Ipv4Addr::new(192, 168, 2, 10),
                priority: 150
            })
        );
        let garp = "1795483732.5 02:00:00:00:00:0b > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 192.168.2.200 (ff:ff:ff:ff:ff:ff) tell 192.168.2.200, length 28";
        assert_eq!(
            parse_line(garp),
            Some(Frame::Garp {
                at: 1_795_483_732_500_000_000,
                mac: "02:00:00:00:00:0b".into(),
                ip: Ipv4Addr::new(192, 168, 2, 200)
            })
        );
        let query = "1795483732.5 02:00:00:00:00:0c > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 192.168.2.200 tell 192.168.2.12, length 28";
        assert_eq!(parse_line(query), None);
    }
}
