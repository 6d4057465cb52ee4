//! [`Record`]: a borrowed Kafka record, so publishing never copies payloads.

/// One record to publish. Everything is borrowed from the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Destination topic.
    pub topic: &'a str,
    /// Record key; records with one key go to one partition, in order.
    pub key: Option<&'a [u8]>,
    /// Record value.
    pub payload: Option<&'a [u8]>,
    /// Record headers, in order.
    pub headers: Vec<(&'a str, &'a [u8])>,
}

impl<'a> Record<'a> {
    /// The record for an outgoing message: its topic, its key (the aggregate
    /// id), its payload, and `headers` — normally
    /// `message.envelope.to_headers()`, kept by the caller so that the record
    /// can borrow them.
    pub fn from_outgoing(m: &'a events::OutgoingMessage, headers: &'a [(&'static str, String)]) -> Self {
        Record {
            topic: &m.topic,
            key: Some(m.key.as_bytes()),
            payload: Some(&m.payload),
            headers: headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect(),
        }
    }

    /// Total size of key, payload and headers in bytes (what counts against
    /// `message.max.bytes`, give or take the record overhead).
    pub fn size(&self) -> usize {
        self.key.map_or(0, <[u8]>::len)
            + self.payload.map_or(0, <[u8]>::len)
            + self.headers.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
    }
}
