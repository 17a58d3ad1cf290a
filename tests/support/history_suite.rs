//! The behaviour every persistent history store must have, run against each backend (the
//! history files natively, IndexedDB in the browser) so they cannot drift apart.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::NaiveDate;
use quantdb::history::{FactorState, Factors, RawBar, SymbolHistory};
use quantdb::{HistoryStore, HistoryWrite, Symbol};

pub fn d(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

pub fn bar(date: &str, close: f64) -> RawBar {
    RawBar {
        date: d(date),
        open: close,
        high: close + 0.1,
        low: close - 0.1,
        close,
        volume: 1_234_500.0,
        amount: Some(close * 1_234_500.0),
        turnover_rate: Some(0.42),
        prev_close: Some(close - 0.05),
    }
}

/// A history holding `bars`, covering `from..=to`.
pub fn history(bars: &[RawBar], from: &str, to: &str) -> SymbolHistory {
    let mut h = SymbolHistory::default();
    h.merge_bars(bars);
    h.coverage.insert(d(from), d(to));
    h
}

pub fn write(key: &str, history: SymbolHistory, years: &[i32]) -> HistoryWrite {
    HistoryWrite {
        symbol: Symbol::from_key(key).unwrap(),
        history: Arc::new(history),
        years: years.iter().copied().collect::<BTreeSet<i32>>(),
    }
}

/// Round trip, a second writer's years merged with the first's, remove, clear. `a` and `b`
/// are two handles on the same storage (two processes, two tabs).
pub async fn check_history_store(a: &dyn HistoryStore, b: &dyn HistoryStore) {
    let sh = Symbol::from_key("sh600000").unwrap();
    let sz = Symbol::from_key("sz000001").unwrap();
    assert_eq!(a.load(sh).await.unwrap(), None);

    let mut first = history(
        &[bar("2023-12-29", 9.0), bar("2024-01-02", 9.5)],
        "2023-12-01",
        "2024-01-02",
    );
    first.factors = Some(FactorState {
        table: Factors::new(vec![(d("2020-07-01"), 1.25)]),
        checked_on: d("2024-01-02"),
    });
    a.save(&[write("sh600000", first.clone(), &[2023, 2024])])
        .await
        .unwrap();
    assert_eq!(a.load(sh).await.unwrap().as_ref(), Some(&first));
    assert_eq!(
        b.load(sh).await.unwrap().as_ref(),
        Some(&first),
        "another handle reads it"
    );

    // Another writer that never read the first one's bars: nothing of either is lost.
    let second = history(&[bar("2025-01-02", 11.0)], "2025-01-01", "2025-01-03");
    b.save(&[
        write("sh600000", second, &[2025]),
        write("sz000001", first.clone(), &[2023, 2024]),
    ])
    .await
    .unwrap();
    let merged = a.load(sh).await.unwrap().unwrap();
    assert_eq!(
        merged.bars.iter().map(|b| b.close).collect::<Vec<_>>(),
        vec![9.0, 9.5, 11.0]
    );
    assert_eq!(
        merged.coverage.ranges(),
        &[
            (d("2023-12-01"), d("2024-01-02")),
            (d("2025-01-01"), d("2025-01-03"))
        ]
    );
    assert_eq!(merged.factors, first.factors, "the factors are kept");

    // A later bar of the same day replaces the earlier one.
    let fixed = history(&[bar("2024-01-02", 9.75)], "2024-01-02", "2024-01-02");
    a.save(&[write("sh600000", fixed, &[2024])]).await.unwrap();
    let closes: Vec<f64> = (a.load(sh).await.unwrap().unwrap().bars.iter())
        .map(|b| b.close)
        .collect();
    assert_eq!(closes, vec![9.0, 9.75, 11.0]);

    a.remove(sh).await.unwrap();
    assert_eq!(b.load(sh).await.unwrap(), None);
    assert!(b.load(sz).await.unwrap().is_some(), "other symbols stay");
    a.remove(sh).await.unwrap(); // absent: no error
    b.clear().await.unwrap();
    assert_eq!(a.load(sz).await.unwrap(), None);
}
