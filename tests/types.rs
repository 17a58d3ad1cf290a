//! The npm package's TypeScript declarations (`src/js/types.d.ts`) against the Rust types
//! they describe: the fields of every answer object, the error codes, the market phases. A
//! field added on one side and not the other fails here.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeSet;

use quantdb::{CacheSource, Error, Exchange, MarketPhase, MarketStatus, Provider, QuantDb, Quote};

const TYPES: &str = include_str!("../src/js/types.d.ts");

/// The field names of `export interface <name> { ... }`.
fn interface_fields(name: &str) -> BTreeSet<String> {
    let start = TYPES
        .find(&format!("export interface {name} "))
        .unwrap_or_else(|| panic!("no interface {name}"));
    let body = &TYPES[start..];
    let body = &body[..body.find("\n}").expect("a closed interface")];
    body.lines()
        .skip(1)
        .filter_map(|line| {
            let field = line.strip_prefix("  ")?;
            let end = field.find(['?', ':'])?;
            let name = &field[..end];
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                .then(|| name.to_string())
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// The string members of `export type <name> = | "a" | "b" ...;`.
fn union_members(name: &str) -> BTreeSet<String> {
    let start = TYPES
        .find(&format!("export type {name} ="))
        .unwrap_or_else(|| panic!("no type {name}"));
    let body = &TYPES[start..];
    let body = &body[..body.find(';').expect("a finished type")];
    body.split('"')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

fn json_keys(value: &impl serde::Serialize) -> BTreeSet<String> {
    match serde_json::to_value(value).unwrap() {
        serde_json::Value::Object(map) => map.keys().cloned().collect(),
        other => panic!("not an object: {other}"),
    }
}

fn sample_quote() -> Quote {
    let t = chrono::DateTime::parse_from_rfc3339("2026-11-30T10:00:00+08:00").unwrap();
    Quote {
        symbol: "600000".into(),
        exchange: Exchange::Shanghai,
        name: "浦发银行".into(),
        current_price: 9.05,
        change: -0.06,
        change_percent: -0.66,
        open: Some(9.09),
        high: Some(9.15),
        low: Some(9.03),
        prev_close: 9.11,
        volume: 1,
        amount: 9.05,
        quote_time: Some(t),
        timestamp: t,
        cache_hit: false,
        cache_source: CacheSource::Network,
        stale: false,
        source: Provider::Sina,
        market_status: MarketStatus::Trading,
    }
}

#[tokio::test]
async fn answer_objects_have_the_declared_fields() {
    assert_eq!(json_keys(&sample_quote()), interface_fields("Quote"));
    let err = quantdb::SymbolError::new("000001.SZ", &Error::Config("x".into()));
    assert_eq!(json_keys(&err), interface_fields("SymbolError"));
    let db = QuantDb::builder().persistent(false).build().await.unwrap();
    assert_eq!(json_keys(&db.cache_stats()), interface_fields("CacheStats"));
}

#[test]
fn error_codes_and_phases_are_the_declared_unions() {
    let codes: BTreeSet<String> = Error::CODES.iter().map(|c| c.to_string()).collect();
    assert_eq!(codes, union_members("ErrorCode"));
    let phases: BTreeSet<String> = [
        MarketPhase::PreOpen,
        MarketPhase::OpeningAuction,
        MarketPhase::Trading,
        MarketPhase::LunchBreak,
        MarketPhase::ClosingAuction,
        MarketPhase::AfterClose,
        MarketPhase::Closed,
    ]
    .iter()
    .map(|p| p.as_str().to_string())
    .collect();
    assert_eq!(phases, union_members("MarketPhase"));
    let providers: BTreeSet<String> = (Provider::ALL.iter().chain([&Provider::Relay]))
        .map(|p| p.name().to_string())
        .collect();
    assert_eq!(providers, union_members("Provider"));
}
