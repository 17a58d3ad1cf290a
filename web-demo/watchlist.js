// The watchlist: the symbols the user added, kept in localStorage across reloads, in their
// canonical form (`sh600000`, from `QuantDB.normalizeSymbol`) so that quotes, cached or
// pushed, are matched to them; an input that is no symbol is kept as typed (its row says why).

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
