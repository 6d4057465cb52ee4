//! Free host ports. The broker must advertise the port clients use, so the
//! harness maps a chosen host port P to the same port P inside the container.

use std::net::TcpListener;

/// A port that was free a moment ago on 127.0.0.1.
pub(crate) fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}
