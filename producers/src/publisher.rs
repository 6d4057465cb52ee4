//! The [`Publisher`] trait: publish one record, learn where it landed.

use crate::error::PublishError;
use crate::record::Record;

/// Where the broker stored a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Partition the record was written to.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
}

/// Something that publishes records and reports their delivery.
///
/// Implementations must hand the record over when `publish` is *called*, so
/// that consecutive calls keep their order even when the futures are awaited
/// later (the outbox relay sends a whole batch, then awaits the reports).
/// The future resolves once the broker acknowledged the record (or it failed).
pub trait Publisher: Send + Sync {
    /// Publishes `record`; resolves with its [`Delivery`] or the reason it failed.
    fn publish<'a>(
        &'a self,
        record: Record<'a>,
    ) -> impl std::future::Future<Output = Result<Delivery, PublishError>> + Send + 'a;
}

impl<P: Publisher> Publisher for std::sync::Arc<P> {
    fn publish<'a>(
        &'a self,
        record: Record<'a>,
    ) -> impl std::future::Future<Output = Result<Delivery, PublishError>> + Send + 'a {
        (**self).publish(record)
    }
}
