//! Election mode (`witness NAME election`): which node campaigns on etcd's election API,
//! and when its leader yields, sans-IO.
//!
//! etcd's election makes leader the campaigner that queued first, whatever its priority.
//! To make priorities count, each node publishes its candidacy (its priority, bound to its
//! lease) under `<key>/candidates/<node>`, and only the heir campaigns: the best candidate
//! apart from the leader. The heir waits in etcd's queue and leads the moment the leader's
//! key goes (its lease expired or it resigned), without polling. A leader yields when a
//! better candidate waits in the queue and preemption is on (so the handover leaves no gap),
//! or when it stands aside itself.

use std::collections::BTreeMap;

/// What the session last read under `<key>/`: the candidacies and the election's leader.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// Node name → (priority, lease).
    pub candidates: BTreeMap<String, (u8, i64)>,
    /// The leader: its node name and lease.
    pub leader: Option<(String, i64)>,
    /// The nodes waiting in the election's queue behind the leader.
    pub queued: Vec<String>,
}

/// What a session does next for one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Queue for the leadership.
    Campaign,
    /// Leave the queue (the campaign under way is cancelled).
    Withdraw,
    /// The leader yields: a better candidate waits in the queue (why).
    Yield(String),
    Wait,
}

/// The candidacy key of `node` under an instance's key, and the election's name.
pub fn candidate_key(key: &str, node: &str) -> String {
    format!("{key}/candidates/{node}")
}

pub fn election_name(key: &str) -> String {
    format!("{key}/election")
}

/// This node in one election: `mine` is its priority (`None`: it stands aside), `lease`
/// the lease it campaigns under.
pub struct Me<'a> {
    pub node: &'a str,
    pub mine: Option<u8>,
    pub lease: i64,
    pub preempt: bool,
    pub campaigning: bool,
    pub leading: bool,
}

/// The next step, from the last view. Candidates compare by priority, then by name (the
/// greater wins, as VRRP's greater address does), so that every node ranks them alike.
pub fn decide(me: &Me, view: &View) -> Step {
    let rank = |node: &str, priority: u8| (priority, node.to_owned());
    let others = || {
        view.candidates
            .iter()
            .filter(|(node, _)| node.as_str() != me.node)
    };
    // Our own priority as we know it now, not as last published.
    let ranked = others()
        .map(|(node, (p, _))| rank(node, *p))
        .chain(me.mine.map(|p| rank(me.node, p)));
    // Only a better candidate already queued: it leads the moment we resign.
    let better = |mine: u8| {
        others()
            .filter(|(node, _)| view.queued.contains(node))
            .map(|(node, (p, _))| rank(node, *p))
            .filter(|r| *r > rank(me.node, mine))
            .max()
    };
    if me.leading {
        return match me.mine {
            Some(mine) if me.preempt => match better(mine) {
                Some((p, node)) => Step::Yield(format!("{node} waits with priority {p}")),
                None => Step::Wait,
            },
            Some(_) => Step::Wait,
            None => Step::Yield("this node stands aside".into()),
        };
    }
    // Our campaign may have just won: its answer is on its way.
    if view.leader.as_ref().is_some_and(|(_, l)| *l == me.lease) {
        return Step::Wait;
    }
    let leader = view.leader.as_ref().map(|(node, _)| node.as_str());
    let heir = ranked
        .filter(|(_, node)| Some(node.as_str()) != leader)
        .max();
    let want = me.mine.is_some() && heir.is_some_and(|(_, node)| node == me.node);
    match (want, me.campaigning) {
        (true, false) => Step::Campaign,
        (false, true) => Step::Withdraw,
        _ => Step::Wait,
    }
}

/// Reads a view from the keys under `<key>/`: (key, value, lease, create revision).
pub fn view(key: &str, kvs: &[(String, String, i64, i64)]) -> View {
    let candidates = format!("{key}/candidates/");
    let election = format!("{}/", election_name(key));
    let mut view = View::default();
    // The queue in etcd's order: by creation.
    let mut queue: Vec<(i64, String, i64)> = Vec::new();
    for (k, value, lease, created) in kvs {
        if let Some(node) = k.strip_prefix(&candidates) {
            if let Ok(p) = value.parse::<u8>() {
                view.candidates.insert(node.to_owned(), (p, *lease));
            }
        } else if k.starts_with(&election) {
            queue.push((*created, value.clone(), *lease));
        }
    }
    queue.sort();
    let mut queue = queue.into_iter();
    view.leader = queue.next().map(|(_, node, lease)| (node, lease));
    view.queued = queue.map(|(_, node, _)| node).collect();
    view
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view_of(candidates: &[(&str, u8)], leader: Option<&str>) -> View {
        queued_view(candidates, leader, &[])
    }

    fn queued_view(candidates: &[(&str, u8)], leader: Option<&str>, queued: &[&str]) -> View {
        let lease =
            |node: &str| node.len() as i64 * 1000 + node.bytes().map(i64::from).sum::<i64>();
        View {
            candidates: candidates
                .iter()
                .map(|(n, p)| (n.to_string(), (*p, lease(n))))
                .collect(),
            leader: leader.map(|n| (n.to_owned(), lease(n))),
            queued: queued.iter().map(|n| n.to_string()).collect(),
        }
    }

    fn me(node: &str, mine: Option<u8>) -> Me<'_> {
        Me {
            node,
            mine,
            lease: 1,
            preempt: true,
            campaigning: false,
            leading: false,
        }
    }

    #[test]
    fn only_the_heir_campaigns() {
        let v = view_of(&[("a", 150), ("b", 100), ("c", 50)], None);
        assert_eq!(decide(&me("a", Some(150)), &v), Step::Campaign);
        assert_eq!(decide(&me("b", Some(100)), &v), Step::Wait);
        // a leads: b is the heir and queues behind it, so that it leads the moment a goes.
        let v = view_of(&[("a", 150), ("b", 100), ("c", 50)], Some("a"));
        assert_eq!(decide(&me("b", Some(100)), &v), Step::Campaign);
        assert_eq!(decide(&me("c", Some(50)), &v), Step::Wait);
        // b's check fails (priority down): c becomes the heir, b leaves the queue.
        let v = view_of(&[("a", 150), ("b", 40), ("c", 50)], Some("a"));
        assert_eq!(decide(&me("c", Some(50)), &v), Step::Campaign);
        let b = Me {
            campaigning: true,
            ..me("b", Some(40))
        };
        assert_eq!(decide(&b, &v), Step::Withdraw);
        // Our own priority counts as we know it, not as last published.
        let v = view_of(&[("a", 150), ("b", 100)], Some("a"));
        assert_eq!(decide(&me("b", Some(10)), &v), Step::Campaign);
        // Equal priorities: the greater name, on every node alike.
        let v = view_of(&[("a", 100), ("b", 100)], None);
        assert_eq!(decide(&me("b", Some(100)), &v), Step::Campaign);
        assert_eq!(decide(&me("a", Some(100)), &v), Step::Wait);
        // Standing aside: no campaign, and a campaign under way ends.
        let a = Me {
            campaigning: true,
            ..me("a", None)
        };
        assert_eq!(decide(&a, &view_of(&[("a", 150)], None)), Step::Withdraw);
        // Alone with no candidacy published yet: we campaign.
        assert_eq!(decide(&me("a", Some(1)), &View::default()), Step::Campaign);
    }

    #[test]
    fn a_campaign_that_just_won_is_not_withdrawn() {
        let mut v = view_of(&[("a", 100), ("b", 150)], None);
        v.leader = Some(("a".into(), 1));
        let a = Me {
            campaigning: true,
            ..me("a", Some(100))
        };
        assert_eq!(decide(&a, &v), Step::Wait);
    }

    #[test]
    fn a_leader_yields_to_a_better_queued_candidate_only_with_preemption() {
        let a = Me {
            leading: true,
            ..me("a", Some(100))
        };
        // b stands but has not queued yet: yielding now would leave no leader.
        let v = view_of(&[("a", 100), ("b", 150)], Some("a"));
        assert_eq!(decide(&a, &v), Step::Wait);
        let v = queued_view(&[("a", 100), ("b", 150), ("c", 50)], Some("a"), &["c", "b"]);
        assert_eq!(
            decide(&a, &v),
            Step::Yield("b waits with priority 150".into())
        );
        let nopreempt = Me {
            preempt: false,
            ..a
        };
        assert_eq!(decide(&nopreempt, &v), Step::Wait);
        let aside = Me {
            mine: None,
            ..nopreempt
        };
        assert!(matches!(decide(&aside, &v), Step::Yield(_)));
        let best = Me {
            leading: true,
            ..me("b", Some(150))
        };
        assert_eq!(decide(&best, &v), Step::Wait);
    }

    #[test]
    fn the_view_reads_candidacies_and_the_first_campaigner() {
        let kv = |k: &str, v: &str, lease, rev| (k.to_owned(), v.to_owned(), lease, rev);
        let kvs = [
            kv("/ha/VI_1/candidates/a", "150", 10, 3),
            kv("/ha/VI_1/candidates/b", "100", 11, 4),
            kv("/ha/VI_1/candidates/c", "bad", 12, 5),
            kv("/ha/VI_1/election/c", "c", 12, 12),
            kv("/ha/VI_1/election/b", "b", 11, 6),
            kv("/ha/VI_1/election/a", "a", 10, 9),
        ];
        let v = view("/ha/VI_1", &kvs);
        assert_eq!(v.candidates.len(), 2);
        assert_eq!(v.candidates["a"], (150, 10));
        assert_eq!(v.leader, Some(("b".into(), 11)));
        assert_eq!(v.queued, ["a", "c"]);
        assert_eq!(view("/ha/VI_1", &[]), View::default());
    }
}
