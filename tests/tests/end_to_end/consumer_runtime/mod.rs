//! The consumer runtime (`consumers`): inbox dedupe, offsets after the
//! database commit, retries, dead letters, groups, crashes, inbox cleanup.

pub(crate) mod support;

mod concurrency;
mod crash;
mod db_outage;
mod dedupe;
mod group;
mod halt;
mod inbox_cleanup;
mod poison;
mod schema_evolution;
mod shutdown;
