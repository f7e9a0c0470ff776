//! Typed request failure kinds. Failures are counted per kind (never as strings) so reports and
//! thresholds can filter on them (`http_req_failed{error:timeout}`).
use std::fmt;

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The target refused the TCP connection.
    ConnectRefused,
    /// Any other failure to establish the TCP connection (unreachable, DNS, ...).
    Connect,
    /// No complete response within the request timeout.
    Timeout,
    /// The peer reset or closed the connection mid-request.
    Reset,
    /// The peer closed the connection inside a response body, before the end its
    /// `Content-Length` or chunked framing declared (a body shorter than announced).
    Truncated,
    /// TLS handshake or record failure.
    Tls,
    /// The response was not valid HTTP.
    Protocol,
    /// Any other I/O error.
    Io,
    /// The response had a 4xx status.
    Status4xx,
    /// The response had a 5xx status.
    Status5xx,
    /// A probe's response failed one of its checks (probes only: a scenario's failed checks
    /// feed the `checks` metric instead).
    CheckFailed,
    /// A probe chain's condition did not hold within its deadline (probes only).
    Deadline,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::ConnectRefused,
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Reset,
        ErrorKind::Truncated,
        ErrorKind::Tls,
        ErrorKind::Protocol,
        ErrorKind::Io,
        ErrorKind::Status4xx,
        ErrorKind::Status5xx,
        ErrorKind::CheckFailed,
        ErrorKind::Deadline,
    ];

    /// Stable snake_case name used in reports and tag filters.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Truncated => "truncated",
            ErrorKind::Tls => "tls",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Io => "io",
            ErrorKind::Status4xx => "status_4xx",
            ErrorKind::Status5xx => "status_5xx",
            ErrorKind::CheckFailed => "check_failed",
            ErrorKind::Deadline => "deadline",
        }
    }

    /// What the kind means, for a first-error message.
    pub fn describe(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connection refused",
            ErrorKind::Connect => "could not connect (unreachable, DNS, no address)",
            ErrorKind::Timeout => "no complete response within the request timeout",
            ErrorKind::Reset => "the peer reset or closed the connection mid-request",
            ErrorKind::Truncated => "the connection closed inside the response body",
            ErrorKind::Tls => "TLS handshake or record failure",
            ErrorKind::Protocol => "the response was not valid HTTP",
            ErrorKind::Io => "I/O error",
            ErrorKind::Status4xx => "a 4xx status",
            ErrorKind::Status5xx => "a 5xx status",
            ErrorKind::CheckFailed => "a check failed",
            ErrorKind::Deadline => "the deadline passed",
        }
    }

    /// Index into [`ErrorKind::ALL`].
    pub fn index(self) -> usize {
        ErrorKind::ALL
            .iter()
            .position(|k| *k == self)
            .unwrap_or_default()
    }

    /// Parse the name written by [`ErrorKind::as_str`].
    pub fn parse(s: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The kind for an HTTP status, if that status counts as failed (>= 400).
    pub fn from_status(status: u16) -> Option<ErrorKind> {
        match status {
            400..=499 => Some(ErrorKind::Status4xx),
            500..=599 => Some(ErrorKind::Status5xx),
            _ => None,
        }
    }

    /// Classify an I/O error from connect/read/write.
    pub fn from_io(err: &std::io::Error) -> ErrorKind {
        use std::io::ErrorKind as K;
        match err.kind() {
            K::ConnectionRefused => ErrorKind::ConnectRefused,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                ErrorKind::Reset
            }
            K::TimedOut => ErrorKind::Timeout,
            K::InvalidData => ErrorKind::Protocol,
            K::AddrNotAvailable | K::NotConnected | K::HostUnreachable | K::NetworkUnreachable => {
                ErrorKind::Connect
            }
            _ => ErrorKind::Io,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
