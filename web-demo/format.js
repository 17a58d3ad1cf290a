// Number and time formatting for the quote table, as a Chinese trader reads it.

const WAN = 1e4;
const YI = 1e8;

/** Prices: 2 decimals, 3 when the quote has a tenth of a fen (funds, some indices). */
export function formatPrice(value) {
  if (value === null || value === undefined) {
    return "—";
  }
  const cents = value * 100;
  const digits = Math.abs(cents - Math.round(cents)) < 1e-6 ? 2 : 3;
  return value.toFixed(digits);
}

/** A signed change: `+0.12`, `-0.06`, `0.00`. */
export function formatChange(value) {
  const text = formatPrice(value);
  return value > 0 ? `+${text}` : text;
}

/** A signed percentage: `+1.23%`. */
export function formatPercent(value) {
  return `${value > 0 ? "+" : ""}${value.toFixed(2)}%`;
}

/** Large counts in 万 (10^4) and 亿 (10^8), the way quote screens show volume and amount. */
export function formatBig(value) {
  if (Math.abs(value) >= YI) {
    return `${(value / YI).toFixed(2)}亿`;
  }
  if (Math.abs(value) >= WAN) {
    return `${(value / WAN).toFixed(2)}万`;
  }
  return String(Math.round(value));
}

/**
 * The clock time of an ISO 8601 exchange time (`2026-08-21T15:34:58+08:00` -> `15:34:58`),
 * read from the text so that it stays in exchange time whatever the viewer's time zone.
 */
export function exchangeClock(iso) {
  const match = /T(\d\d:\d\d:\d\d)/.exec(iso ?? "");
  return match ? match[1] : "—";
}

/** The viewer's local clock time now, for "last refresh". */
export function localClock(date = new Date()) {
  return date.toLocaleTimeString("en-GB", { hour12: false });
}

/** The exchange's date (UTC+8, "YYYY-MM-DD") at `ms` milliseconds since the epoch. */
export function exchangeDate(ms) {
  return new Date(ms + 8 * 3600 * 1000).toISOString().slice(0, 10);
}
