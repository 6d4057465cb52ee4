//! The transactional outbox and its relay (`outbox`): rollback, gap-free
//! order under concurrent commits, per-key order, leased lanes shared by
//! several relays, kill -9 at random moments, failing cursor writes.

pub(crate) mod support;

mod basics;
mod cleanup;
mod faults;
mod gap;
mod handback;
mod kill9;
mod lanes;
mod lease;
mod notify;
mod order;
mod parked;
mod rebase;
mod refusals;
mod stall;
mod trickle;
