// The watchlist: symbols as the user added them, kept in localStorage across reloads. Once a
// symbol has been answered it is stored in its canonical form (`sh600000`), so that the
// cached quotes can be matched to it on the next load.

const STORAGE_KEY = "quantdb-dashboard.watchlist";

/** 浦发银行, 平安银行, 宁德时代, 中国平安 and the SSE Composite index. */
const DEFAULT_WATCHLIST = ["sh600000", "sz000001", "sz300750", "sh601318", "sh000001"];

export function loadWatchlist() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY));
    if (Array.isArray(saved) && saved.every((s) => typeof s === "string")) {
      return saved;
    }
  } catch {
    // Unreadable: start again from the defaults.
  }
  return [...DEFAULT_WATCHLIST];
}

export function saveWatchlist(symbols) {
  localStorage.setItem(STORAGE_KEY, JSON.stringify(symbols));
}

/** The symbols typed in the add box: separated by spaces or commas, trimmed, lower case. */
export function parseInput(text) {
  return text
    .split(/[\s,，]+/)
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s.length > 0);
}

/** The canonical key of a quote: exchange prefix and code, like `sh600000`. */
export function quoteKey(quote) {
  return quote.exchange.toLowerCase() + quote.symbol;
}
