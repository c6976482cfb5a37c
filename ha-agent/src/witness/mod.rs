//! The etcd witness (`etcd_witness`): a leader key per instance, bound to this node's lease,
//! that an instance must hold to be MASTER. Two nodes that cannot hear each other cannot
//! both hold it, so a partition between them makes one master, not two. In election mode
//! there is no VRRP: the nodes campaign on etcd's election API and its leader is MASTER.

pub mod election;
pub mod lease;
pub mod session;
