//! Symbol parsing: `000001`, `sz000001`, `SZ000001`, `000001.SZ`, `600000.SH`, `bj430017`, ...

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The exchange a security is listed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Exchange {
    /// Shanghai Stock Exchange.
    #[serde(rename = "SH")]
    Shanghai,
    /// Shenzhen Stock Exchange.
    #[serde(rename = "SZ")]
    Shenzhen,
    /// Beijing Stock Exchange.
    #[serde(rename = "BJ")]
    Beijing,
}

impl Exchange {
    /// The lowercase prefix the upstreams use: `sh`, `sz`, `bj`.
    pub fn prefix(self) -> &'static str {
        match self {
            Exchange::Shanghai => "sh",
            Exchange::Shenzhen => "sz",
            Exchange::Beijing => "bj",
        }
    }

    /// The uppercase code used in quotes: `SH`, `SZ`, `BJ`.
    pub fn as_str(self) -> &'static str {
        match self {
            Exchange::Shanghai => "SH",
            Exchange::Shenzhen => "SZ",
            Exchange::Beijing => "BJ",
        }
    }

    fn from_tag(tag: &str) -> Option<Exchange> {
        match tag.to_ascii_lowercase().as_str() {
            "sh" | "ss" => Some(Exchange::Shanghai),
            "sz" => Some(Exchange::Shenzhen),
            "bj" => Some(Exchange::Beijing),
            _ => None,
        }
    }

    /// The exchange a bare 6-digit code belongs to, if the code range says so.
    pub fn infer(code: &str) -> Option<Exchange> {
        let &[a, b, c, ..] = code.as_bytes() else {
            return None;
        };
        match (a, b, c) {
            // Beijing first: 920xxx would otherwise look like Shanghai's 9xxxxx B shares.
            (b'4', b'3', _) | (b'8', b'3', _) | (b'8', b'7', _) | (b'9', b'2', b'0') => {
                Some(Exchange::Beijing)
            }
            // A shares 60x/68x, B shares 900xxx, funds and ETFs 5xxxxx.
            (b'6', _, _) | (b'9', b'0', b'0') | (b'5', _, _) => Some(Exchange::Shanghai),
            // Main board 000-003, ChiNext 300/301, B shares 200xxx, funds 15x/16x.
            (b'0', b'0', b'0'..=b'3') | (b'3', b'0', b'0' | b'1') | (b'2', b'0', b'0') => {
                Some(Exchange::Shenzhen)
            }
            (b'1', b'5' | b'6', _) => Some(Exchange::Shenzhen),
            _ => None,
        }
    }
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A security: an exchange and a 6-digit code. `sh000001` (an index) and `sz000001` (a stock)
/// are different symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol {
    exchange: Exchange,
    code: [u8; 6],
}

impl Symbol {
    /// Parses any accepted spelling. Bare codes get their exchange from the code range;
    /// an explicit prefix or suffix always wins.
    pub fn parse(input: &str) -> Result<Symbol, Error> {
        let invalid = |reason: &str| Error::InvalidSymbol {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let text = input.trim();
        if text.is_empty() {
            return Err(invalid("empty symbol"));
        }
        if !text.is_ascii() {
            return Err(invalid(
                "expected a 6-digit code such as 600000, sh600000 or 600000.SH",
            ));
        }
        let (tag, code) = if let Some((code, tag)) = text.split_once('.') {
            if code.len() == 2 && Exchange::from_tag(code).is_some() {
                (Some(code), tag) // "sh.600000"
            } else {
                (Some(tag), code) // "600000.SH"
            }
        } else if text.len() > 2 && text.as_bytes()[0].is_ascii_alphabetic() {
            (Some(&text[..2]), &text[2..])
        } else {
            (None, text)
        };
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(
                "expected a 6-digit code such as 600000, sh600000 or 600000.SH",
            ));
        }
        let exchange = match tag {
            Some(tag) => Exchange::from_tag(tag).ok_or_else(|| {
                invalid(&format!("unknown exchange {tag:?}: use SH, SZ or BJ"))
            })?,
            None => Exchange::infer(code).ok_or_else(|| {
                invalid(&format!(
                    "cannot tell the exchange of code {code}: write it with a prefix such as sh{code}"
                ))
            })?,
        };
        let mut bytes = [0u8; 6];
        bytes.copy_from_slice(code.as_bytes());
        Ok(Symbol {
            exchange,
            code: bytes,
        })
    }

    /// Builds a symbol from parts (`code` must be 6 ASCII digits).
    pub fn new(exchange: Exchange, code: &str) -> Option<Symbol> {
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut bytes = [0u8; 6];
        bytes.copy_from_slice(code.as_bytes());
        Some(Symbol {
            exchange,
            code: bytes,
        })
    }

    /// Parses an upstream key such as `sh600000`.
    pub fn from_key(key: &str) -> Option<Symbol> {
        if key.len() != 8 || !key.is_ascii() {
            return None;
        }
        Symbol::new(Exchange::from_tag(&key[..2])?, &key[2..])
    }

    /// Where it is listed.
    pub fn exchange(&self) -> Exchange {
        self.exchange
    }

    /// The 6-digit code.
    pub fn code(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.code).unwrap_or("000000")
    }

    /// A Shanghai index (`sh000xxx`): Sina gives its volume in lots.
    pub fn is_shanghai_index(&self) -> bool {
        self.exchange == Exchange::Shanghai && self.code.starts_with(b"000")
    }

    /// A STAR board stock (`688xxx`, `689xxx`): Tencent gives its volume in shares.
    pub fn is_star(&self) -> bool {
        self.exchange == Exchange::Shanghai
            && (self.code.starts_with(b"688") || self.code.starts_with(b"689"))
    }

    /// The upstream key, e.g. `sh600000`.
    pub fn key(&self) -> String {
        format!("{}{}", self.exchange.prefix(), self.code())
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.exchange.prefix(), self.code())
    }
}

impl FromStr for Symbol {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Symbol::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> String {
        Symbol::parse(s).unwrap().key()
    }

    #[test]
    fn accepts_every_common_spelling() {
        for s in [
            "000001",
            "sz000001",
            "SZ000001",
            "000001.SZ",
            "000001.sz",
            "sz.000001",
            " 000001 ",
        ] {
            assert_eq!(key(s), "sz000001", "{s}");
        }
        for s in ["600000", "sh600000", "600000.SH", "600000.SS", "SH600000"] {
            assert_eq!(key(s), "sh600000", "{s}");
        }
        assert_eq!(key("bj430017"), "bj430017");
        assert_eq!(key("430017"), "bj430017");
        assert_eq!(key("830799"), "bj830799");
        assert_eq!(key("870001"), "bj870001");
        assert_eq!(key("920001"), "bj920001");
    }

    #[test]
    fn infers_exchange_from_code_ranges() {
        for (code, ex) in [
            ("601318", "SH"),
            ("603000", "SH"),
            ("605001", "SH"),
            ("688001", "SH"),
            ("689009", "SH"),
            ("900901", "SH"),
            ("510300", "SH"),
            ("001979", "SZ"),
            ("002594", "SZ"),
            ("003816", "SZ"),
            ("300750", "SZ"),
            ("301001", "SZ"),
            ("200002", "SZ"),
            ("159915", "SZ"),
        ] {
            assert_eq!(
                Symbol::parse(code).unwrap().exchange().as_str(),
                ex,
                "{code}"
            );
        }
    }

    #[test]
    fn explicit_prefix_wins() {
        let index = Symbol::parse("sh000001").unwrap();
        let stock = Symbol::parse("000001").unwrap();
        assert_eq!(index.exchange(), Exchange::Shanghai);
        assert_eq!(stock.exchange(), Exchange::Shenzhen);
        assert_ne!(index, stock);
        assert_eq!(key("sz399001"), "sz399001");
    }

    #[test]
    fn rejects_bad_input_naming_it() {
        for s in [
            "",
            "   ",
            "12345",
            "1234567",
            "abcdef",
            "sx600000",
            "600000.XX",
            "700000",
            "999999",
            "60000a",
            "平安银行",
            "sh",
            "sh6000000",
            "600000.",
            ".SH",
            "6000 0",
        ] {
            match Symbol::parse(s) {
                Err(Error::InvalidSymbol { input, reason }) => {
                    assert_eq!(input, s);
                    assert!(!reason.is_empty());
                }
                other => panic!("{s:?} gave {other:?}"),
            }
        }
        let err = Symbol::parse("700000").unwrap_err();
        assert!(err.to_string().contains("700000"), "{err}");
        assert_eq!(err.code(), "invalid_symbol");
    }

    #[test]
    fn inference_never_panics_on_short_codes() {
        for code in ["", "6", "60", "-", "é"] {
            assert_eq!(Exchange::infer(code), None, "{code:?}");
        }
        assert_eq!(Exchange::infer("600"), Some(Exchange::Shanghai));
    }

    #[test]
    fn keys_round_trip() {
        let s = Symbol::from_key("bj430017").unwrap();
        assert_eq!(s.code(), "430017");
        assert_eq!(s.to_string(), "bj430017");
        assert!(Symbol::from_key("xx430017").is_none());
        assert!(Symbol::from_key("sh60000").is_none());
        assert!(Symbol::from_key("sh60000é").is_none());
    }
}
