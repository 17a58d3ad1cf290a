/** An upstream. */
export type Provider = "sina" | "tencent" | "eastmoney" | "relay";

/** Stable error codes, on rejected promises (`error.code`) and batch error entries. */
export type ErrorCode =
  | "invalid_symbol" | "not_found" | "timeout" | "upstream_error" | "parse_error"
  | "upstream_unavailable" | "invalid_request" | "config_error" | "storage_error";

export type MarketPhase =
  | "pre_open" | "opening_auction" | "trading" | "lunch_break" | "closing_auction"
  | "after_close" | "closed";

export interface OpenOptions {
  /**
   * Base URL of a quantdb relay (`quantdb serve`). Without `providers`, the client then asks
   * only the relay; it still keeps its own memory and IndexedDB tiers.
   */
  relayUrl?: string;
  /** Base URL that answers like hq.sinajs.cn, e.g. a CORS proxy that adds Sina's Referer. */
  sinaUrl?: string;
  /** Base URL that answers like qt.gtimg.cn (a CORS proxy). */
  tencentUrl?: string;
  /** Base URL that answers like push2.eastmoney.com (a CORS proxy). */
  eastmoneyUrl?: string;
  /**
   * Providers to try, in order. Default: the relay if `relayUrl` is set, else the upstreams
   * whose URL is set (sina, tencent, eastmoney order), else all three public hosts.
   */
  providers?: Provider[];
  /**
   * History providers to try, in order. Default: the relay if `relayUrl` is set, else the
   * upstreams whose URL is set (eastmoney, tencent, sina order), else all three public hosts.
   * Adjustment factors come from Sina's URL (or the relay).
   */
  historyProviders?: Provider[];
  /** IndexedDB database name. Default "quantdb". */
  dbName?: string;
  /** Keep quotes in IndexedDB across reloads. Default true. */
  persistent?: boolean;
  /** Quotes kept in memory. Default 10000. */
  memoryCapacity?: number;
  /** TTL during trading sessions, seconds. Default 30. */
  ttlTradingSeconds?: number;
  /** TTL outside trading sessions, seconds. Default 60. */
  ttlClosedSeconds?: number;
  /** "until_next_open" keeps settled after-close quotes until the next session. Default "fixed". */
  ttlMode?: "fixed" | "until_next_open";
  /** Timeout of each upstream request, milliseconds. Default 5000. */
  timeoutMs?: number;
  /** Upstream requests in flight at once. Default 8. */
  maxConcurrentRequests?: number;
  /**
   * When every upstream fails for a symbol, answer its last quote (marked `stale: true`) if
   * it is at most this many seconds old; 0 never answers stale. Default: until the next
   * trading session starts after the quote was fetched.
   */
  maxStaleSeconds?: number;
  /**
   * A testing aid: run on a clock stopped at this instant (ISO 8601 with an offset, e.g.
   * "2026-11-30T10:00:00+08:00") instead of the system clock.
   */
  now?: string;
  /**
   * A testing aid: run on a clock that reads this instant (ISO 8601 with an offset) when the
   * client opens, and then runs with the system clock. Not together with `now`.
   */
  clockStart?: string;
  /** Extra exchange closure dates, "YYYY-MM-DD". */
  extraClosures?: string[];
}

export interface FetchOptions {
  /** Skip the caches and ask the upstream; the answer refreshes the caches. */
  forceRefresh?: boolean;
}

/** `subscribe` callbacks besides `onQuote`. */
export interface SubscribeOptions {
  /** A symbol's error (an invalid symbol, an upstream failure). */
  onError?: (error: SymbolError) => void;
  /**
   * The connection: "live", "reconnecting" (in relay mode, while the EventSource retries),
   * "closed" (the browser gave the stream up), with the relay's reason when it refused the
   * stream (for example `too_many_streams` at its limit). Not called for the app's own
   * `close()`.
   */
  onStatus?: (status: "live" | "reconnecting" | "closed", reason?: StreamRefusal) => void;
}

/** Why a relay refused a stream: its HTTP status and its error body. */
export interface StreamRefusal {
  status: number;
  /** `too_many_streams`, `too_many_symbols`, `invalid_symbol`, `bad_request`, ... */
  code: string;
  error: string;
}

/** `getStockData` options. Dates are "YYYYMMDD" or "YYYY-MM-DD". */
export interface HistoryOptions {
  /** The first date (not with `days`). */
  start?: string;
  /** The last date (default and at most: today). */
  end?: string;
  /** The last N bars up to `end` (default 30 when `start` is not given). */
  days?: number;
  /** "" or "none" (default), "qfq" (forward-adjusted) or "hfq" (backward-adjusted). */
  adjust?: "" | Adjust;
  /** "daily" (default), "weekly" or "monthly" (built from the cached daily bars). */
  period?: Period;
  /** Fetch the range (and the factors) again from the upstream. */
  forceRefresh?: boolean;
}

export type Adjust = "none" | "qfq" | "hfq";
export type Period = "daily" | "weekly" | "monthly";

/**
 * A daily (weekly, monthly) bar. Prices in yuan, `volume` in shares, `amount` in yuan,
 * percentages in percent, whichever upstream answered. `change`, `change_percent` and
 * `amplitude` are against the previous close (ex-adjusted on an ex-date), null on the first
 * bar when no earlier one is known; `amount` and `turnover_rate` are null when the upstream
 * that answered does not give them.
 */
export interface Bar {
  /** "YYYY-MM-DD": the trading day (the period's last for weekly and monthly bars). */
  date: string;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  amount: number | null;
  change: number | null;
  change_percent: number | null;
  amplitude: number | null;
  turnover_rate: number | null;
  adjust: Adjust;
}

export interface Quote {
  /** The 6-digit code. */
  symbol: string;
  exchange: "SH" | "SZ" | "BJ";
  name: string;
  current_price: number;
  change: number;
  change_percent: number;
  /** null when there was no trade today. */
  open: number | null;
  high: number | null;
  low: number | null;
  prev_close: number;
  /** Shares. */
  volume: number;
  /** Yuan. */
  amount: number;
  /** The upstream's time for the quote, ISO 8601 with +08:00. */
  quote_time: string | null;
  /** When it was fetched, ISO 8601 with +08:00. */
  timestamp: string;
  cache_hit: boolean;
  cache_source: "memory" | "disk" | "network";
  /**
   * true: an expired quote, answered because every upstream failed for this symbol;
   * `cache_source` says which tier kept it. false on every other quote.
   */
  stale: boolean;
  source: Provider;
  market_status: MarketPhase | "suspended";
}

/** A batch entry for a symbol that could not be answered. */
export interface SymbolError {
  /** The canonical symbol ("sz000001") when the input parsed, else the input as written. */
  symbol: string;
  /** The symbol exactly as it was written in the request. */
  input: string;
  error: string;
  code: ErrorCode;
}

export type BatchEntry = Quote | SymbolError;

export interface CacheStats {
  memory_hits: number;
  persistent_hits: number;
  misses: number;
  hit_rate: number;
  upstream_requests: number;
  upstream_failures: number;
  symbols_fetched: number;
  coalesced_waits: number;
  /** Expired quotes answered (marked stale) because every upstream failed. */
  stale_served: number;
  errors: number;
  corrupt_entries: number;
  store_errors: number;
  /**
   * Reads of IndexedDB: one per batch that missed memory, one per getCachedBatch that missed
   * memory. A memory hit reads none.
   */
  persistent_reads: number;
  /** Quotes written to IndexedDB, behind the answers. */
  persistent_writes: number;
  /** Quotes not written to IndexedDB because the write queue was full (kept in memory). */
  persistent_writes_dropped: number;
  /** Quotes waiting to be written to IndexedDB now; `flush()` waits for them. */
  persistent_pending: number;
  memory_entries: number;
  memory_capacity: number;
  /** null when the persistent tier is off. */
  persistent_entries: number | null;
  /** false when IndexedDB is unavailable or failed: the client works from memory. */
  persistent_enabled: boolean;
  ttl_seconds: number;
  market_phase: MarketPhase;
  calendar_covers_today: boolean;
  /** History calls answered from the cache without an upstream request. */
  history_hits: number;
  /** History calls that needed upstream requests (bars or factors). */
  history_misses: number;
  /** Daily bars received from the upstreams. */
  history_bars_fetched: number;
  /** Upstream requests for history (also counted in upstream_requests). */
  history_upstream_requests: number;
  /** Symbols whose history is in memory. */
  history_memory_entries: number;
  /** A persistent tier is configured but cannot be used now (IndexedDB closed by another page). */
  persistent_unavailable: boolean;
}

/** What a QuantDB promise rejects with. */
export interface QuantDBError extends Error {
  code: ErrorCode;
}
