// The history chart under the table: the selected symbol's candles and volume, drawn with
// TradingView's lightweight-charts, with a price adjustment (none, qfq, hfq) and a range (1M to
// 5Y; 3Y and 5Y in weekly bars). The selection is kept in localStorage, so a reload opens the
// chart again.
//
// Where the bars come from: `db.getStockData` up to yesterday. Those bars are final, so once
// fetched the client answers them from its memory or IndexedDB tier with no request, a reload
// included. The day in progress is not asked from the history (the client keeps today's
// provisional bar in memory only, so every reload would fetch it again): its candle is made
// from the selected row's quote, and follows it as the relay pushes new quotes (the page
// hands it over on every paint of the table: `update`).
//
// Hooks for tests, on #history-chart: `data-state` (idle, loading, ok, empty, error),
// `data-symbol`, `data-adjust`, `data-range`, `data-period`, `data-start` and `data-end` (the
// dates shown), and for what is drawn `data-bars` (candles), `data-first-date`,
// `data-last-date`, `data-first-close`, `data-last-close`, `data-source` (cache: answered
// without a request; network) and `data-code` (the error code).
import { CandlestickSeries, ColorType, HistogramSeries, createChart } from "lightweight-charts";
import { formatBig } from "./format.js";

const STORAGE_KEY = "quantdb-dashboard.chart";

export const ADJUSTS = ["none", "qfq", "hfq"];
/** A range: how many months back from today. */
export const RANGES = { "1M": 1, "3M": 3, "6M": 6, "1Y": 12, "3Y": 36, "5Y": 60 };
/** Ranges this long are drawn in weekly bars. */
const WEEKLY_FROM_MONTHS = 36;
const DEFAULTS = { adjust: "qfq", range: "6M" };

const ADJUST_LABELS = { none: "不复权 raw", qfq: "前复权 qfq", hfq: "后复权 hfq" };

// --- The saved selection ------------------------------------------------------------------

/** The saved `{ symbol, adjust, range }`, or null. */
export function loadSelection() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY));
    if (typeof saved?.symbol === "string" && ADJUSTS.includes(saved.adjust) && saved.range in RANGES) {
      return { symbol: saved.symbol, adjust: saved.adjust, range: saved.range };
    }
  } catch {
    // Unreadable: no chart.
  }
  return null;
}

function saveSelection(selection) {
  if (selection) {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(selection));
  } else {
    localStorage.removeItem(STORAGE_KEY);
  }
}

// --- Dates ("YYYY-MM-DD") -------------------------------------------------------------------

const utc = (date) => new Date(`${date}T00:00:00Z`);
const iso = (d) => d.toISOString().slice(0, 10);

function addDays(date, days) {
  const d = utc(date);
  d.setUTCDate(d.getUTCDate() + days);
  return iso(d);
}

/** `date` less `months` months, the day kept when the month has it, else its last day. */
export function monthsBefore(date, months) {
  const d = utc(date);
  const target = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - months, 1));
  const lastDay = new Date(Date.UTC(target.getUTCFullYear(), target.getUTCMonth() + 1, 0)).getUTCDate();
  target.setUTCDate(Math.min(d.getUTCDate(), lastDay));
  return iso(target);
}

/** The Monday of `date`'s week (weekly bars are ISO weeks). */
function weekOf(date) {
  return addDays(date, -((utc(date).getUTCDay() + 6) % 7));
}

// --- Today's candle -------------------------------------------------------------------------

const round6 = (x) => Math.round(x * 1e6) / 1e6;

/**
 * The day in progress as a bar, from `quote`, when it has traded on a day after the last bar;
 * else null. Adjusted like the bars: for qfq and hfq, the last bar's close over the quote's
 * previous close is today's scale (on an ex-date the previous close is the ex-reference
 * price, so the step is in it).
 */
export function liveBar(bars, quote, adjust) {
  const date = quote?.quote_time?.slice(0, 10);
  const last = bars.at(-1);
  if (!date || quote.open === null || quote.market_status === "suspended" || (last && date <= last.date)) {
    return null;
  }
  // qfq with no bar before: today's prices as traded.
  let k = 1;
  if (adjust !== "none" && last && quote.prev_close > 0) {
    k = last.close / quote.prev_close;
  } else if (adjust === "hfq") {
    return null; // no scale to take
  }
  const scale = (x) => (k === 1 ? x : round6(x * k));
  return {
    date,
    open: scale(quote.open),
    high: scale(quote.high),
    low: scale(quote.low),
    close: scale(quote.current_price),
    volume: quote.volume,
    amount: quote.amount,
    change: round6(quote.change * k),
    change_percent: quote.change_percent,
    adjust,
  };
}

/** `bars` with `live` added: a new candle, or merged into the last one of the same week. */
function withLive(bars, live, period) {
  const last = bars.at(-1);
  if (!live) {
    return bars;
  }
  if (period !== "weekly" || !last || weekOf(last.date) !== weekOf(live.date)) {
    return [...bars, live];
  }
  // A week's change is the product of its days' changes.
  const growth = last.change_percent === null ? null : (1 + last.change_percent / 100) * (1 + live.change_percent / 100);
  const week = {
    ...last,
    date: live.date,
    high: Math.max(last.high, live.high),
    low: Math.min(last.low, live.low),
    close: live.close,
    volume: last.volume + live.volume,
    amount: last.amount === null ? null : last.amount + live.amount,
    change: growth === null ? null : round6(live.close - live.close / growth),
    change_percent: growth === null ? null : round6((growth - 1) * 100),
  };
  return [...bars.slice(0, -1), week];
}

// --- The panel ------------------------------------------------------------------------------

function cssColor(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

const formatPrice = (x) => x.toFixed(2);
const direction = (change) => (!change ? "flat" : change > 0 ? "up" : "down");

function errorText(symbol, err) {
  const code = err.code ?? "error";
  const why = {
    not_found: "the upstreams do not know it",
    invalid_symbol: "not a symbol",
    upstream_unavailable: "no upstream answered",
    upstream_error: "the upstream failed",
    timeout: "the upstream did not answer in time",
  }[code];
  return `No history for ${symbol}: ${why ? `${why}. ` : ""}${err.message} (${code})`;
}

export class HistoryChart {
  /**
   * @param {HTMLElement} panel the #chart-panel section
   * @param {object} options `db` (an open QuantDB), `today()` (the exchange's date now,
   *   "YYYY-MM-DD"), `onChange()` (another symbol was selected, or the chart closed)
   */
  constructor(panel, { db, today, onChange }) {
    this.panel = panel;
    this.db = db;
    this.today = today;
    this.onChange = onChange;
    this.box = panel.querySelector("#history-chart");
    this.message = panel.querySelector("#chart-message");
    /** `{ symbol, adjust, range }`, or null when no chart is shown. */
    this.selection = null;
    /** The selected symbol's latest quote. */
    this.quote = null;
    /** The last load's answer: `{ day, start, period, bars, source }` or `{ day, error }`. */
    this.answer = null;
    /** Loads started; an answer is drawn only if no load started after its own. */
    this.loads = 0;
    this.loading = false;
    this.chart = null;

    panel.querySelector("#chart-close").addEventListener("click", () => this.close());
    for (const button of panel.querySelectorAll("[data-adjust]")) {
      button.addEventListener("click", () => this.show({ ...this.selection, adjust: button.dataset.adjust }));
    }
    for (const button of panel.querySelectorAll("[data-range]")) {
      button.addEventListener("click", () => this.show({ ...this.selection, range: button.dataset.range }));
    }
  }

  /** The selected symbol, or null. */
  get symbol() {
    return this.selection?.symbol ?? null;
  }

  /** Shows `symbol`, with the adjustment and range in use (at first the defaults). */
  select(symbol) {
    if (symbol !== this.symbol) {
      this.show({ ...DEFAULTS, ...this.selection, symbol });
    }
  }

  /** Shows `selection` (`{ symbol, adjust, range }`), saves it and loads its bars. */
  show(selection) {
    const changed = selection.symbol !== this.symbol;
    this.selection = selection;
    saveSelection(selection);
    this.panel.hidden = false;
    if (changed) {
      this.quote = null;
    }
    this.load();
    if (changed) {
      this.onChange(); // the table marks the row, and hands its quote (update)
    }
  }

  close() {
    this.selection = null;
    this.answer = null;
    this.loads += 1; // an answer still on its way is dropped
    this.loading = false;
    saveSelection(null);
    this.panel.hidden = true;
    this.box.dataset.state = "idle";
    this.onChange();
  }

  /**
   * The selected symbol's latest quote (or null), after each paint of the table: today's
   * candle follows it. On a new day, or after a failure, the bars are loaded again.
   */
  update(quote) {
    if (!this.selection) {
      return;
    }
    this.quote = quote;
    if (!this.loading && this.answer && (this.answer.error || this.answer.day !== this.today())) {
      this.load({ again: true });
    } else {
      this.render(false);
    }
  }

  /**
   * Asks the selection's bars up to yesterday, then draws them. `again`: the same selection
   * asked again (a new day, or after a failure); what is shown stays until the answer.
   */
  async load({ again = false } = {}) {
    const load = ++this.loads;
    this.loading = true;
    const { symbol, adjust, range } = this.selection;
    const day = this.today();
    const months = RANGES[range];
    const period = months >= WEEKLY_FROM_MONTHS ? "weekly" : "daily";
    const start = monthsBefore(day, months);
    Object.assign(this.box.dataset, { symbol, adjust, range, period, start, end: day });
    this.render(false);
    if (!again) {
      this.box.dataset.state = "loading";
      this.showMessage(`Loading ${symbol}…`);
    }
    let answer;
    try {
      const requestsBefore = this.db.cacheStats().history_upstream_requests;
      const bars = await this.db.getStockData(symbol, { start, end: addDays(day, -1), adjust, period });
      const fetched = this.db.cacheStats().history_upstream_requests > requestsBefore;
      answer = { day, start, period, bars, source: fetched ? "network" : "cache" };
    } catch (err) {
      answer = { day, error: err };
    }
    if (load === this.loads) {
      this.answer = answer;
      this.loading = false;
      this.render(true);
    }
  }

  /** The controls and the header; unless a load is under way, the chart or the message. */
  render(fit) {
    const { symbol, adjust, range } = this.selection;
    for (const button of this.panel.querySelectorAll("[data-adjust]")) {
      button.setAttribute("aria-pressed", String(button.dataset.adjust === adjust));
    }
    for (const button of this.panel.querySelectorAll("[data-range]")) {
      button.setAttribute("aria-pressed", String(button.dataset.range === range));
    }
    this.setField("symbol", symbol);
    this.setField("name", this.quote?.name ?? "");
    this.setField("adjust", ADJUST_LABELS[adjust]);
    const answer = this.answer;
    if (this.loading || !answer) {
      return; // the last chart stays until the new bars come
    }
    delete this.box.dataset.code;
    delete this.box.dataset.source;
    if (answer.error) {
      this.draw([], fit);
      this.setSummary(null);
      this.showMessage(errorText(symbol, answer.error), "error");
      Object.assign(this.box.dataset, { state: "error", code: answer.error.code ?? "error" });
      return;
    }
    const bars = withLive(answer.bars, liveBar(answer.bars, this.quote, adjust), answer.period);
    this.draw(bars, fit);
    this.setSummary(bars.at(-1) ?? null, answer.source);
    this.box.dataset.source = answer.source;
    if (bars.length === 0) {
      this.showMessage(`No bars for ${symbol} from ${answer.start} to ${answer.day}: suspended, or not listed yet.`);
      this.box.dataset.state = "empty";
    } else {
      this.showMessage("");
      this.box.dataset.state = "ok";
    }
  }

  showMessage(text, kind = "info") {
    this.message.textContent = text;
    this.message.dataset.kind = kind;
    this.message.hidden = !text;
  }

  setField(name, text) {
    this.panel.querySelector(`[data-chart="${name}"]`).textContent = text;
  }

  /** The last candle's close and change, its date, where the bars came from. */
  setSummary(last, source = null) {
    const dir = direction(last?.change);
    const signed = (x, text) => (x > 0 ? `+${text}` : text);
    this.setField("close", last ? formatPrice(last.close) : "—");
    this.setField("change", last?.change == null ? "" : signed(last.change, formatPrice(last.change)));
    this.setField(
      "change_percent",
      last?.change_percent == null ? "" : signed(last.change_percent, `${last.change_percent.toFixed(2)}%`),
    );
    this.setField("date", last?.date ?? "");
    for (const name of ["close", "change", "change_percent"]) {
      this.panel.querySelector(`[data-chart="${name}"]`).classList.remove("up", "down", "flat");
      this.panel.querySelector(`[data-chart="${name}"]`).classList.add(dir);
    }
    const mark = this.panel.querySelector('[data-chart="source"]');
    mark.hidden = !source;
    mark.textContent = source ?? "";
    mark.className = `mark ${source === "cache" ? "disk" : "network"}`;
    mark.title = source === "cache" ? "answered from the history cache, no request" : "fetched through the relay";
  }

  /** Draws `bars` (creating the chart on first use) and records them in the test hooks. */
  draw(bars, fit) {
    if (!this.chart) {
      this.createChart();
    }
    const up = cssColor("--up");
    const down = cssColor("--down");
    this.candles.setData(bars.map((b) => ({ time: b.date, open: b.open, high: b.high, low: b.low, close: b.close })));
    this.volume.setData(bars.map((b) => ({ time: b.date, value: b.volume, color: b.close >= b.open ? up : down })));
    if (fit && bars.length) {
      this.chart.timeScale().fitContent();
    }
    Object.assign(this.box.dataset, {
      bars: String(bars.length),
      firstDate: bars[0]?.date ?? "",
      lastDate: bars.at(-1)?.date ?? "",
      firstClose: bars.length ? String(bars[0].close) : "",
      lastClose: bars.length ? String(bars.at(-1).close) : "",
    });
  }

  createChart() {
    const up = cssColor("--up");
    const down = cssColor("--down");
    const line = cssColor("--line");
    this.chart = createChart(this.box, {
      autoSize: true,
      layout: {
        background: { type: ColorType.Solid, color: cssColor("--panel") },
        textColor: cssColor("--muted"),
        fontFamily: getComputedStyle(document.documentElement).fontFamily,
        panes: { separatorColor: line },
      },
      grid: { vertLines: { color: line }, horzLines: { color: line } },
      rightPriceScale: { borderColor: line },
      timeScale: { borderColor: line, rightOffset: 2 },
      localization: { dateFormat: "yyyy-MM-dd" },
    });
    this.candles = this.chart.addSeries(CandlestickSeries, {
      upColor: up,
      downColor: down,
      borderUpColor: up,
      borderDownColor: down,
      wickUpColor: up,
      wickDownColor: down,
      priceFormat: { type: "price", precision: 2, minMove: 0.01 },
    });
    // The volume in a pane of its own, below the candles.
    this.volume = this.chart.addSeries(
      HistogramSeries,
      // In 万 and 亿, as in the table.
      { priceFormat: { type: "custom", formatter: formatBig, minMove: 1 }, priceLineVisible: false, lastValueVisible: false },
      1,
    );
    const [candlePane, volumePane] = this.chart.panes();
    candlePane.setStretchFactor(3);
    volumePane.setStretchFactor(1);
  }
}
