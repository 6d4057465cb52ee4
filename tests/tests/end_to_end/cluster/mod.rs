//! A three-node KRaft cluster (`testkit::Cluster`: replication 3,
//! `min.insync.replicas` 2, unclean leader election off): the partition
//! leader killed (SIGKILL) under the relay and under a consumer, and a node
//! cut off the network and healed. Nothing acknowledged is lost, per-key
//! order holds, and relay and consumer go on with the new leader.

mod leader_kill;
mod partition;
mod support;
