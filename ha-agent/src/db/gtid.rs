//! MariaDB GTID positions (`domain-server-seq,...`): one last transaction per replication
//! domain. MariaDB has no server-side set algebra, so comparisons are made here.
//! (MySQL's `uuid:interval` sets are compared by the server: `GTID_SUBTRACT`.)

use std::{collections::BTreeMap, fmt};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

/// A position: the last GTID of each domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pos(BTreeMap<u32, Gtid>);

impl Pos {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut fields = part.split('-');
            let (Some(d), Some(s), Some(q), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(format!(
                    "`{part}` is not a MariaDB GTID (domain-server-seq)"
                ));
            };
            let bad = |_| format!("`{part}` is not a MariaDB GTID (domain-server-seq)");
            let gtid = Gtid {
                domain: d.parse().map_err(bad)?,
                server: s.parse().map_err(bad)?,
                seq: q.parse().map_err(bad)?,
            };
            if map.insert(gtid.domain, gtid).is_some() {
                return Err(format!("domain {} appears twice in `{text}`", gtid.domain));
            }
        }
        Ok(Self(map))
    }

    /// Where `self` has transactions `other` lacks, domain by domain: `Ahead` when only the
    /// sequence number is beyond, `Diverged` when both hold the same number from different
    /// servers (one of them wrote a transaction the other never saw).
    pub fn beyond(&self, other: &Pos) -> Vec<Beyond> {
        self.0
            .values()
            .filter_map(|mine| match other.0.get(&mine.domain) {
                None if mine.seq > 0 => Some(Beyond::Ahead(*mine, None)),
                Some(theirs) if mine.seq > theirs.seq => Some(Beyond::Ahead(*mine, Some(*theirs))),
                Some(theirs) if mine.seq == theirs.seq && mine.server != theirs.server => {
                    Some(Beyond::Diverged(*mine, *theirs))
                }
                _ => None,
            })
            .collect()
    }
}

impl Pos {
    /// The later of the two in each domain (the higher sequence number: strict mode keeps
    /// them increasing within a domain); `self` on a tie.
    pub fn merge(&self, other: &Pos) -> Pos {
        let mut out = self.clone();
        for theirs in other.0.values() {
            let later = out
                .0
                .get(&theirs.domain)
                .is_none_or(|mine| theirs.seq > mine.seq);
            if later {
                out.0.insert(theirs.domain, *theirs);
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.values().map(Gtid::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beyond {
    Ahead(Gtid, Option<Gtid>),
    Diverged(Gtid, Gtid),
}

impl fmt::Display for Beyond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Beyond::Ahead(mine, Some(theirs)) => write!(f, "{mine} beyond {theirs}"),
            Beyond::Ahead(mine, None) => write!(f, "{mine} in a domain the other lacks"),
            Beyond::Diverged(mine, theirs) => write!(f, "{mine} diverged from {theirs}"),
        }
    }
}

/// Transactions a server wrote itself (`server_id` is its own) that `peer` lacks: errant on
/// a node that should only replicate, and lost if the peer were promoted over it.
pub fn errant(local: &Pos, server_id: u32, peer: &Pos) -> Vec<Beyond> {
    local
        .beyond(peer)
        .into_iter()
        .filter(|b| match b {
            Beyond::Ahead(mine, _) => mine.server == server_id,
            Beyond::Diverged(..) => true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(text: &str) -> Pos {
        Pos::parse(text).unwrap()
    }

    #[test]
    fn merge_keeps_the_later_transaction_of_each_domain() {
        assert_eq!(
            pos("0-1-10,1-2-4").merge(&pos("0-2-12,1-2-3,5-1-1")),
            pos("0-2-12,1-2-4,5-1-1")
        );
        assert_eq!(pos("0-1-10").merge(&Pos::default()), pos("0-1-10"));
    }

    #[test]
    fn parses_lists_and_rejects_garbage() {
        assert_eq!(pos("").to_string(), "");
        assert_eq!(pos("0-1-5, 1-2-3").to_string(), "0-1-5,1-2-3");
        for bad in ["0-1", "0-1-x", "a-1-2", "0-1-2-3", "0-1-2,0-2-3"] {
            assert!(Pos::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn beyond_and_errant_as_seen_in_the_lab() {
        // Received 0-2-6, applied 0-2-4: a backlog of two transactions.
        assert_eq!(
            pos("0-2-6").beyond(&pos("0-2-4")),
            [Beyond::Ahead(
                Gtid {
                    domain: 0,
                    server: 2,
                    seq: 6
                },
                Some(Gtid {
                    domain: 0,
                    server: 2,
                    seq: 4
                })
            )]
        );
        assert!(pos("0-2-4").beyond(&pos("0-2-6")).is_empty());
        assert!(pos("0-2-6").beyond(&pos("0-2-6")).is_empty());
        // The old active wrote 0-1-8 that never shipped; the new one wrote 0-2-8.
        assert_eq!(
            pos("0-1-8").beyond(&pos("0-2-8")).len(),
            1,
            "same seq, other server: diverged"
        );
        // A passive (server 2) behind its master is not errant; one that wrote is.
        assert!(errant(&pos("0-1-10"), 2, &pos("0-1-12")).is_empty());
        assert_eq!(errant(&pos("0-2-11"), 2, &pos("0-1-10")).len(), 1);
        // What it replicated from the master and the master has lost is not its own write.
        assert!(errant(&pos("0-1-11"), 2, &pos("0-1-10")).is_empty());
        // A domain the peer never saw.
        assert_eq!(errant(&pos("0-1-3,5-2-1"), 2, &pos("0-1-3")).len(), 1);
    }
}
