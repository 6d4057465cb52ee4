//! End-to-end tests against a real Kafka-protocol broker and real PostgreSQL,
//! both started in containers by `testkit`.
//!
//! One test binary with a module per capability: every test links the same
//! heavy dependencies (rdkafka, sqlx, testcontainers), so one binary builds
//! and links once instead of once per file. Run a module alone with
//! `cargo nextest run -p e2e outbox_relay::` (or `cargo test -p e2e saga::`).

mod avro_reader;
mod cluster;
mod consumer_runtime;
mod outbox_relay;
mod saga;
mod saga_faults;
mod secure;
mod smoke;
mod system;
