//! Transient or permanent: the one decision that drives retries and dead
//! letters.
//!
//! The rule of thumb: a failure is *transient* when the same record could
//! succeed later without anybody changing the record (the database is down or
//! overloaded, a lock or serialization conflict, a timeout); it is *permanent*
//! when only a code fix or a different record would help (constraint
//! violations, invalid values, SQL errors, undecodable bytes). Unknown cases
//! are treated as transient: that only costs the retry budget before the
//! record is dead-lettered anyway.

/// The class of a failure; also the value of the `dlq-error-class` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Retried in place with backoff; dead-lettered once the attempts run out.
    Transient,
    /// Dead-lettered at once.
    Permanent,
}

impl ErrorClass {
    /// Lower-case name, as written in dead-letter headers.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies an error from sqlx.
pub fn sqlx_error(e: &sqlx::Error) -> ErrorClass {
    match e {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => sqlstate(&code),
            None => ErrorClass::Transient,
        },
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => ErrorClass::Transient,
        sqlx::Error::Configuration(_)
        | sqlx::Error::InvalidArgument(_)
        | sqlx::Error::RowNotFound
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Encode(_)
        | sqlx::Error::Decode(_)
        | sqlx::Error::Migrate(_)
        | sqlx::Error::InvalidSavePointStatement => ErrorClass::Permanent,
        _ => ErrorClass::Transient,
    }
}

/// Classifies a PostgreSQL SQLSTATE code (Appendix A of the PostgreSQL docs).
pub fn sqlstate(code: &str) -> ErrorClass {
    const TRANSIENT_CODES: &[&str] = &[
        "40001", // serialization_failure
        "40P01", // deadlock_detected
        "40003", // statement_completion_unknown (connection lost mid-commit)
        "25006", // read_only_sql_transaction (a failover left us on a standby)
        "55P03", // lock_not_available
        "57014", // query_canceled (statement_timeout)
        "57P01", // admin_shutdown
        "57P02", // crash_shutdown
        "57P03", // cannot_connect_now (starting up, recovery)
        "57P05", // idle_session_timeout
        "25P03", // idle_in_transaction_session_timeout
    ];
    const TRANSIENT_CLASSES: &[&str] = &[
        "08", // connection exception
        "53", // insufficient resources (disk full, out of memory, too many connections)
        "58", // system error (I/O error)
    ];
    if TRANSIENT_CODES.contains(&code) || TRANSIENT_CLASSES.iter().any(|c| code.starts_with(c)) {
        ErrorClass::Transient
    } else {
        ErrorClass::Permanent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates() {
        for code in ["40001", "40P01", "55P03", "57014", "57P01", "57P03", "08006", "08001", "53300", "58030"]
        {
            assert_eq!(sqlstate(code), ErrorClass::Transient, "{code}");
        }
        for code in ["23505", "23503", "22P02", "22003", "42P01", "42601", "P0001", "XX000"] {
            assert_eq!(sqlstate(code), ErrorClass::Permanent, "{code}");
        }
    }

    /// What a primary failing over looks like from a client: the server
    /// shutting down, a session landing on a standby that is still read-only
    /// or starting up, a commit whose outcome is unknown. All retried.
    #[test]
    fn failover_errors_are_transient() {
        for (code, what) in [
            ("25006", "read_only_sql_transaction"),
            ("40003", "statement_completion_unknown"),
            ("57P01", "admin_shutdown"),
            ("57P02", "crash_shutdown"),
            ("57P03", "cannot_connect_now"),
            ("08006", "connection_failure"),
            ("08003", "connection_does_not_exist"),
        ] {
            assert_eq!(sqlstate(code), ErrorClass::Transient, "{code} {what}");
        }
        for kind in [
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::ConnectionAborted,
            std::io::ErrorKind::UnexpectedEof,
            std::io::ErrorKind::BrokenPipe,
        ] {
            let e = sqlx::Error::Io(std::io::Error::new(kind, "reset by peer"));
            assert_eq!(sqlx_error(&e), ErrorClass::Transient, "{kind:?}");
        }
    }

    #[test]
    fn sqlx_variants() {
        let io = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "gone"));
        assert_eq!(sqlx_error(&io), ErrorClass::Transient);
        assert_eq!(sqlx_error(&sqlx::Error::PoolTimedOut), ErrorClass::Transient);
        assert_eq!(sqlx_error(&sqlx::Error::PoolClosed), ErrorClass::Transient);
        assert_eq!(sqlx_error(&sqlx::Error::Protocol("unexpected eof".into())), ErrorClass::Transient);
        assert_eq!(sqlx_error(&sqlx::Error::RowNotFound), ErrorClass::Permanent);
        assert_eq!(sqlx_error(&sqlx::Error::ColumnNotFound("x".into())), ErrorClass::Permanent);
        assert_eq!(sqlx_error(&sqlx::Error::InvalidArgument("x".into())), ErrorClass::Permanent);
    }

    #[test]
    fn header_names() {
        assert_eq!(ErrorClass::Transient.to_string(), "transient");
        assert_eq!(ErrorClass::Permanent.as_str(), "permanent");
    }
}
