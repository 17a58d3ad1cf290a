// Renders the quote table. A row is `{ key, quote, error }`: the latest answer, a quote or an
// error. Its state follows from it:
//   ok      a quote
//   stale   a quote marked `stale` by quantdb: every upstream failed, this is the last one
//           a cache tier kept (the client's, or the relay's)
//   error   an error (a bad symbol, or no upstream and nothing cached)
//   loading nothing yet
// A row is selected by a click, or by Enter or Space when it has the focus (rows are in the
// tab order); the selected row has `aria-selected="true"`.
// Hooks for tests: rows carry `data-symbol`, `data-state`, `data-source` (the quote's cache
// tier: memory, disk or network) and `data-code` (the error code); value cells `data-field`.
import { exchangeClock, formatBig, formatChange, formatPercent, formatPrice } from "./format.js";

const COLUMNS = 12;

const SOURCE_TITLES = {
  memory: "answered from the memory cache",
  disk: "answered from IndexedDB",
  network: "fetched through the relay",
};

export function rowState(row) {
  if (row.quote) {
    return row.quote.stale ? "stale" : "ok";
  }
  return row.error ? "error" : "loading";
}

/** `el("td", { class: "num" }, "9.05")`: an element with attributes and children. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) {
      node.setAttribute(name, value);
    }
  }
  node.append(...children);
  return node;
}

/** Red up, green down, grey flat or suspended: the A-share convention. */
function direction(quote) {
  if (quote.market_status === "suspended" || quote.change === 0) {
    return "flat";
  }
  return quote.change > 0 ? "up" : "down";
}

function symbolCell(key, quote) {
  if (!quote) {
    return el("td", { class: "symbol" }, key);
  }
  return el("td", { class: "symbol" }, quote.symbol, " ", el("span", { class: "exchange" }, quote.exchange));
}

function nameCell(row) {
  const cell = el("td", { class: "name" }, el("span", { "data-field": "name" }, row.quote.name));
  if (row.quote.market_status === "suspended") {
    cell.append(" ", el("span", { class: "badge suspended" }, "停牌"));
  }
  if (row.quote.stale) {
    const title = `No upstream answered: showing the quote fetched at ${exchangeClock(row.quote.timestamp)}.`;
    cell.append(" ", el("span", { class: "badge stale", title }, "stale"));
  }
  return cell;
}

function numberCell(field, text, cls = "") {
  return el("td", { class: `num ${cls}`.trim(), "data-field": field }, text);
}

function quoteCells(row) {
  const q = row.quote;
  const dir = direction(q);
  const source = q.cache_source;
  return [
    nameCell(row),
    numberCell("price", formatPrice(q.current_price), `price ${dir}`),
    numberCell("change", formatChange(q.change), dir),
    numberCell("change_percent", formatPercent(q.change_percent), dir),
    numberCell("high", formatPrice(q.high)),
    numberCell("low", formatPrice(q.low)),
    numberCell("volume", formatBig(q.volume)),
    numberCell("amount", formatBig(q.amount)),
    el("td", { class: "time", "data-field": "quote_time", title: q.quote_time ?? "" }, exchangeClock(q.quote_time)),
    el("td", { class: "source" }, el("span", { class: `mark ${source}`, title: SOURCE_TITLES[source] }, source)),
  ];
}

function errorCell(error) {
  return el(
    "td",
    { class: "error-message", colspan: COLUMNS - 2, "data-field": "error" },
    error.message,
    " ",
    el("code", { class: "error-code" }, error.code),
  );
}

function loadingCell() {
  return el("td", { class: "loading", colspan: COLUMNS - 2 }, "loading…");
}

function removeCell(key, onRemove) {
  const button = el("button", { type: "button", class: "remove", title: `Remove ${key}`, "aria-label": `Remove ${key}` }, "×");
  button.addEventListener("click", () => onRemove(key));
  return el("td", { class: "actions" }, button);
}

function renderRow(row, { onRemove, onSelect, selected }) {
  const state = rowState(row);
  const tr = el("tr", {
    "data-symbol": row.key,
    "data-state": state,
    "data-source": row.quote?.cache_source,
    "data-code": row.error?.code,
    class: state,
    tabindex: "0",
    "aria-selected": String(row.key === selected),
  });
  tr.addEventListener("click", (event) => {
    if (!event.target.closest("button")) {
      onSelect(row.key);
    }
  });
  tr.addEventListener("keydown", (event) => {
    if (event.target === tr && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault(); // Space would scroll
      onSelect(row.key);
    }
  });
  tr.append(symbolCell(row.key, row.quote));
  if (row.quote) {
    tr.append(...quoteCells(row));
  } else {
    tr.append(row.error ? errorCell(row.error) : loadingCell());
  }
  tr.append(removeCell(row.key, onRemove));
  return tr;
}

/**
 * Replaces the body of the table with `rows`, in order. `onRemove(key)` on a row's ×,
 * `onSelect(key)` when a row is selected; `selected` is the selected key. The focus stays on
 * the row (or its ×) that had it.
 */
export function renderTable(tbody, rows, { onRemove, onSelect, selected }) {
  const focused = tbody.contains(document.activeElement) ? document.activeElement : null;
  const focusedKey = focused?.closest("tr")?.dataset.symbol;
  if (rows.length === 0) {
    tbody.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: COLUMNS }, "The watchlist is empty: add a symbol above.")));
    return;
  }
  tbody.replaceChildren(...rows.map((row) => renderRow(row, { onRemove, onSelect, selected })));
  const tr = focusedKey && [...tbody.rows].find((r) => r.dataset.symbol === focusedKey);
  if (tr) {
    (focused.tagName === "BUTTON" ? tr.querySelector("button") : tr).focus({ preventScroll: true });
  }
}
