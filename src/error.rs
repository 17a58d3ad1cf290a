//! Typed errors. Every error has a stable machine-readable [`Error::code`].

use serde::{Deserialize, Serialize};

/// Everything that can go wrong for one symbol or one call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The text is not a symbol quantdb understands.
    #[error("invalid symbol {input:?}: {reason}")]
    InvalidSymbol { input: String, reason: String },
    /// Every configured upstream answered, and none knows this symbol.
    #[error("symbol {symbol} is not known to any upstream ({providers})")]
    NotFound { symbol: String, providers: String },
    /// An upstream request did not answer in time.
    #[error("{provider} did not answer within {timeout_ms} ms")]
    Timeout { provider: String, timeout_ms: u64 },
    /// An upstream answered with an error status or could not be reached.
    #[error("{provider} request failed: {message}")]
    Upstream { provider: String, message: String },
    /// An upstream answered something that could not be parsed.
    #[error("{provider} answered an unreadable body: {message}")]
    Parse { provider: String, message: String },
    /// Several upstreams were tried and every one failed.
    #[error("no upstream answered: {}", attempts.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Unavailable { attempts: Vec<Error> },
    /// An error a relay reported for a symbol, with the relay's code.
    #[error("{message}")]
    Relayed { code: &'static str, message: String },
    /// The configuration given to the builder is not usable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The persistent tier failed (the client keeps working from memory).
    #[error("cache storage error: {0}")]
    Storage(String),
}

impl Error {
    /// A stable code for programs: `invalid_symbol`, `not_found`, `timeout`, `upstream_error`,
    /// `parse_error`, `upstream_unavailable`, `config_error`, `storage_error`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidSymbol { .. } => "invalid_symbol",
            Error::NotFound { .. } => "not_found",
            Error::Timeout { .. } => "timeout",
            Error::Upstream { .. } => "upstream_error",
            Error::Parse { .. } => "parse_error",
            Error::Unavailable { .. } => "upstream_unavailable",
            Error::Relayed { code, .. } => code,
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

    /// Every code [`Error::code`] can return.
    pub const CODES: [&'static str; 8] = [
        "invalid_symbol",
        "not_found",
        "timeout",
        "upstream_error",
        "parse_error",
        "upstream_unavailable",
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

/// A per-symbol failure inside a batch, serialised as `{ "symbol", "error", "code" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolError {
    /// The symbol exactly as the caller wrote it.
    pub symbol: String,
    /// A human-readable message.
    pub error: String,
    /// The stable code from [`Error::code`].
    pub code: String,
}

impl SymbolError {
    pub fn new(symbol: impl Into<String>, err: &Error) -> Self {
        SymbolError {
            symbol: symbol.into(),
            error: err.to_string(),
            code: err.code().to_string(),
        }
    }
}

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
            Error::Config(s()),
            Error::Storage(s()),
        ];
        let codes: Vec<&str> = all.iter().map(Error::code).collect();
        assert_eq!(codes, Error::CODES);
        for code in Error::CODES {
            assert_eq!(Error::relayed(code, s()).code(), code);
        }
        assert_eq!(Error::relayed("bogus", s()).code(), "upstream_error");
    }
}
