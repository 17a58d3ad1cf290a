//! Typed errors. Every error has a stable machine-readable [`Error::code`].

use serde::{Deserialize, Serialize};

/// Everything that can go wrong for one symbol or one call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The text is not a symbol quantdb understands.
    #[error("invalid symbol {input:?}: {reason}")]
    InvalidSymbol {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Every configured upstream answered, and none knows this symbol.
    #[error("symbol {symbol} is not known to any upstream ({providers})")]
    NotFound {
        /// The symbol, as its upstream key.
        symbol: String,
        /// The providers asked, comma-separated.
        providers: String,
    },
    /// An upstream request did not answer in time.
    #[error("{provider} ({host}) did not answer within {timeout_ms} ms")]
    Timeout {
        /// The provider asked.
        provider: String,
        /// The host (and port) asked.
        host: String,
        /// The timeout that passed.
        timeout_ms: u64,
    },
    /// An upstream answered with an error status or could not be reached.
    #[error("{provider} request failed: {message}")]
    Upstream {
        /// The provider asked.
        provider: String,
        /// The host and what failed: connect, status, answer size.
        message: String,
    },
    /// An upstream answered something that could not be parsed.
    #[error("{provider} answered an unreadable body: {message}")]
    Parse {
        /// The provider asked.
        provider: String,
        /// What could not be read.
        message: String,
    },
    /// Several upstreams were tried and every one failed.
    #[error("no upstream answered: {}", attempts.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Unavailable {
        /// Each provider's failure, in the order they were asked.
        attempts: Vec<Error>,
    },
    /// An error a relay reported for a symbol, with the relay's code.
    #[error("{message}")]
    Relayed {
        /// The relay's code (one of [`Error::CODES`]).
        code: &'static str,
        /// The relay's message.
        message: String,
    },
    /// A history request that cannot be answered as asked (dates, adjust, period, size).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The configuration given to the builder is not usable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The persistent tier failed (the client keeps working from memory).
    #[error("cache storage error: {0}")]
    Storage(String),
}

impl Error {
    /// A stable code for programs: `invalid_symbol`, `not_found`, `timeout`, `upstream_error`,
    /// `parse_error`, `upstream_unavailable`, `invalid_request`, `config_error`, `storage_error`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidSymbol { .. } => "invalid_symbol",
            Error::NotFound { .. } => "not_found",
            Error::Timeout { .. } => "timeout",
            Error::Upstream { .. } => "upstream_error",
            Error::Parse { .. } => "parse_error",
            Error::Unavailable { .. } => "upstream_unavailable",
            Error::Relayed { code, .. } => code,
            Error::InvalidRequest(_) => "invalid_request",
            Error::Config(_) => "config_error",
            Error::Storage(_) => "storage_error",
        }
    }
}

impl Error {
    /// An upstream failed (time-out, error status, unreadable answer, every provider down):
    /// the symbol may well exist, so an expired quote may stand in for it.
    pub fn is_upstream_failure(&self) -> bool {
        matches!(
            self.code(),
            "timeout" | "upstream_error" | "parse_error" | "upstream_unavailable"
        )
    }

    /// The HTTP status a relay answers with for this error about one symbol.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::InvalidSymbol { .. } | Error::InvalidRequest(_) => 400,
            Error::NotFound { .. } => 404,
            Error::Timeout { .. } => 504,
            Error::Upstream { .. } | Error::Parse { .. } | Error::Unavailable { .. } => 502,
            Error::Config(_) | Error::Storage(_) => 500,
            Error::Relayed { code, .. } => match *code {
                "invalid_symbol" | "invalid_request" => 400,
                "not_found" => 404,
                "timeout" => 504,
                "config_error" | "storage_error" => 500,
                _ => 502,
            },
        }
    }

    /// Every code [`Error::code`] can return.
    pub const CODES: [&'static str; 9] = [
        "invalid_symbol",
        "not_found",
        "timeout",
        "upstream_error",
        "parse_error",
        "upstream_unavailable",
        "invalid_request",
        "config_error",
        "storage_error",
    ];

    /// A relay's error, keeping its code when it is one of ours (else `upstream_error`).
    pub(crate) fn relayed(code: &str, message: String) -> Error {
        let code = Self::CODES
            .iter()
            .find(|c| **c == code)
            .copied()
            .unwrap_or("upstream_error");
        Error::Relayed { code, message }
    }
}

/// A per-symbol failure inside a batch, serialised as `{ "symbol", "input", "error", "code" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolError {
    /// The canonical symbol (`sz000001`) when the input parsed, else the input as written:
    /// answers pair with requests however the caller spelled them.
    pub symbol: String,
    /// The symbol exactly as the caller wrote it.
    #[serde(default)]
    pub input: String,
    /// A human-readable message.
    pub error: String,
    /// The stable code from [`Error::code`].
    pub code: String,
}

impl SymbolError {
    /// The error for `input`, as the caller wrote it.
    pub fn new(input: impl Into<String>, err: &Error) -> Self {
        let input = input.into();
        SymbolError {
            symbol: crate::Symbol::parse(&input).map_or_else(|_| input.clone(), |s| s.key()),
            input,
            error: err.to_string(),
            code: err.code().to_string(),
        }
    }
}

/// A result with quantdb's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_and_relayed_codes_survive() {
        let s = || String::from("x");
        let all = [
            Error::InvalidSymbol {
                input: s(),
                reason: s(),
            },
            Error::NotFound {
                symbol: s(),
                providers: s(),
            },
            Error::Timeout {
                provider: s(),
                host: s(),
                timeout_ms: 1,
            },
            Error::Upstream {
                provider: s(),
                message: s(),
            },
            Error::Parse {
                provider: s(),
                message: s(),
            },
            Error::Unavailable { attempts: vec![] },
            Error::InvalidRequest(s()),
            Error::Config(s()),
            Error::Storage(s()),
        ];
        // One example of every variant: adding a variant fails to compile here until it has
        // an index, and then this test until it has an example whose code is listed.
        let index = |e: &Error| match e {
            Error::InvalidSymbol { .. } => 0,
            Error::NotFound { .. } => 1,
            Error::Timeout { .. } => 2,
            Error::Upstream { .. } => 3,
            Error::Parse { .. } => 4,
            Error::Unavailable { .. } => 5,
            Error::InvalidRequest(_) => 6,
            Error::Config(_) => 7,
            Error::Storage(_) => 8,
            Error::Relayed { .. } => 9,
        };
        let mut covered: Vec<usize> = all.iter().map(index).collect();
        covered.push(index(&Error::relayed("timeout", s())));
        assert_eq!(covered, (0..=9).collect::<Vec<_>>());
        let codes: Vec<&str> = all.iter().map(Error::code).collect();
        assert_eq!(codes, Error::CODES);
        for e in &all {
            // A relayed error keeps the status of the error it relays.
            assert_eq!(
                Error::relayed(e.code(), s()).http_status(),
                e.http_status(),
                "{e}"
            );
        }
        for code in Error::CODES {
            assert_eq!(Error::relayed(code, s()).code(), code);
        }
        assert_eq!(Error::relayed("bogus", s()).code(), "upstream_error");
    }
}
