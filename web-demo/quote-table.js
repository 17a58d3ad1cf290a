// Renders the quote table. A row is `{ key, quote, error, source }`: the latest answer, a
// quote or an error, and where the quote came from (`push` for the relay's stream, else the
// quote's cache tier). Its state follows from it:
//   ok      a quote
//   stale   a quote marked `stale` by quantdb: every upstream failed, this is the last one
//           a cache tier kept (the client's, or the relay's)
//   error   an error (a bad symbol, or no upstream and nothing cached)
//   loading nothing yet
// Rows are updated in place: a row keeps its element from one paint to the next, and a price,
// change or percentage that changes from one live answer (pushed, or asked) to the next
// flashes its cell (`flash-up` red, `flash-down` green, as the value moved) for the length of
// the animation; a row's first quote, and the first answer after the cache's paint, do not.
// A row is selected by a click, or by Enter or Space when it has the focus (rows are in the
// tab order); the selected row has `aria-selected="true"`.
// Hooks for tests: rows carry `data-symbol`, `data-state`, `data-source` (memory, disk,
// network or push) and `data-code` (the error code); value cells `data-field`.
import { exchangeClock, formatBig, formatChange, formatPercent, formatPrice } from "./format.js";

const COLUMNS = 12;

const SOURCE_TITLES = {
  memory: "answered from the memory cache",
  disk: "answered from IndexedDB",
  network: "fetched through the relay",
  push: "pushed by the relay's stream",
};

/** The cells that flash when their value changes, and the quote field each one shows. */
const FLASHING = { price: "current_price", change: "change", change_percent: "change_percent" };
const FLASH_CLASSES = ["flash-up", "flash-down"];
/** Longer than the animation (style.css): the class goes even if no animationend comes. */
const FLASH_FALLBACK_MS = 1500;

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

/** Sets or removes (null, undefined) the attribute `name`. */
function setAttr(node, name, value) {
  if (value === null || value === undefined) {
    node.removeAttribute(name);
  } else if (node.getAttribute(name) !== String(value)) {
    node.setAttribute(name, value);
  }
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

/** The name with its badges (suspended, stale). */
function nameContent(quote) {
  const content = [el("span", { "data-field": "name" }, quote.name)];
  if (quote.market_status === "suspended") {
    content.push(" ", el("span", { class: "badge suspended" }, "停牌"));
  }
  if (quote.stale) {
    const title = `No upstream answered: showing the quote fetched at ${exchangeClock(quote.timestamp)}.`;
    content.push(" ", el("span", { class: "badge stale", title }, "stale"));
  }
  return content;
}

/** What each value cell of a quote shows: `[field, text, class]`. */
function quoteValues(quote) {
  const dir = direction(quote);
  return [
    ["price", formatPrice(quote.current_price), `num price ${dir}`],
    ["change", formatChange(quote.change), `num ${dir}`],
    ["change_percent", formatPercent(quote.change_percent), `num ${dir}`],
    ["high", formatPrice(quote.high), "num"],
    ["low", formatPrice(quote.low), "num"],
    ["volume", formatBig(quote.volume), "num"],
    ["amount", formatBig(quote.amount), "num"],
  ];
}

function sourceMark(source) {
  return el("span", { class: `mark ${source}`, title: SOURCE_TITLES[source] }, source);
}

/** The cells of a row with a quote, from its name to its source. */
function quoteCells(row) {
  const q = row.quote;
  return [
    el("td", { class: "name" }, ...nameContent(q)),
    ...quoteValues(q).map(([field, text, cls]) => el("td", { class: cls, "data-field": field }, text)),
    el("td", { class: "time", "data-field": "quote_time", title: q.quote_time ?? "" }, exchangeClock(q.quote_time)),
    el("td", { class: "source" }, sourceMark(row.source)),
  ];
}

/**
 * Adds `flash-up` or `flash-down` to `cell` (again from the start if it is flashing); the
 * class goes when the animation ends.
 */
function flash(cell, dir) {
  clearTimeout(cell.flashTimer);
  if (FLASH_CLASSES.some((c) => cell.classList.contains(c))) {
    cell.classList.remove(...FLASH_CLASSES);
    void cell.offsetWidth; // a new animation, not the one running
  }
  cell.classList.add(`flash-${dir}`);
  cell.flashTimer = setTimeout(() => cell.classList.remove(...FLASH_CLASSES), FLASH_FALLBACK_MS);
}

/**
 * Updates the cells of `tr`, which shows the quote `before` from `beforeSource`, to show
 * `row.quote`. Values flash only when they change from a live answer: not when the first
 * answer replaces what the cache painted on load (that may be days old).
 */
function updateQuoteCells(tr, row, before, beforeSource) {
  const flashes = beforeSource === "push" || beforeSource === "network";
  const q = row.quote;
  const cells = tr.cells;
  cells[0].replaceChildren(q.symbol, " ", el("span", { class: "exchange" }, q.exchange));
  cells[1].replaceChildren(...nameContent(q));
  quoteValues(q).forEach(([field, text, cls], i) => {
    const cell = cells[2 + i];
    const flashing = FLASH_CLASSES.filter((c) => cell.classList.contains(c));
    const className = [cls, ...flashing].join(" ");
    if (cell.className !== className) {
      cell.className = className;
    }
    if (cell.textContent === text) {
      return;
    }
    cell.textContent = text;
    const name = FLASHING[field];
    if (flashes && name && before[name] !== q[name]) {
      flash(cell, q[name] > before[name] ? "up" : "down");
    }
  });
  const time = cells[9];
  time.textContent = exchangeClock(q.quote_time);
  time.title = q.quote_time ?? "";
  const mark = cells[10].firstElementChild;
  if (mark.textContent !== row.source) {
    cells[10].replaceChildren(sourceMark(row.source));
  }
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

function newRow(key, { onRemove, onSelect }) {
  const tr = el("tr", { "data-symbol": key, tabindex: "0" });
  tr.addEventListener("click", (event) => {
    if (!event.target.closest("button")) {
      onSelect(key);
    }
  });
  tr.addEventListener("keydown", (event) => {
    if (event.target === tr && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault(); // Space would scroll
      onSelect(key);
    }
  });
  tr.append(removeCell(key, onRemove));
  return tr;
}

/**
 * Brings `tr` to show `row`: in place when it showed a quote and still does (changed values
 * flash), else its cells made again.
 */
function updateRow(tr, row, selected) {
  const state = rowState(row);
  setAttr(tr, "data-state", state);
  setAttr(tr, "data-source", row.quote ? row.source : null);
  setAttr(tr, "data-code", row.error?.code);
  setAttr(tr, "class", state);
  setAttr(tr, "aria-selected", String(row.key === selected));
  const before = tr.shown;
  if (row.quote && before?.quote) {
    if (before.quote !== row.quote) {
      updateQuoteCells(tr, row, before.quote, before.source);
    } else if (before.source !== row.source) {
      tr.cells[10].replaceChildren(sourceMark(row.source));
    }
  } else if (!before || before.quote || row.quote || before.error !== row.error) {
    // What the row shows changes kind (nothing, an error, a quote): its cells made anew.
    const body = row.quote ? quoteCells(row) : [row.error ? errorCell(row.error) : loadingCell()];
    tr.replaceChildren(symbolCell(row.key, row.quote), ...body, tr.lastElementChild);
  }
  tr.shown = { quote: row.quote, error: row.error, source: row.source };
}

/**
 * Shows `rows`, in order, in the table's body: rows already shown keep their element and are
 * updated in place; others are added, and those no longer in `rows` removed. `onRemove(key)`
 * on a row's ×, `onSelect(key)` when a row is selected; `selected` is the selected key. The
 * focus stays on the row (or its ×) that had it.
 */
export function renderTable(tbody, rows, { onRemove, onSelect, selected }) {
  if (!tbody.flashListener) {
    // One listener for every cell: the flash class goes when its animation ends.
    tbody.flashListener = (event) => {
      if (event.animationName.startsWith("flash-")) {
        event.target.classList.remove(...FLASH_CLASSES);
      }
    };
    tbody.addEventListener("animationend", tbody.flashListener);
  }
  if (rows.length === 0) {
    tbody.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: COLUMNS }, "The watchlist is empty: add a symbol above.")));
    return;
  }
  const focused = tbody.contains(document.activeElement) ? document.activeElement : null;
  const shown = new Map([...tbody.rows].filter((tr) => tr.dataset.symbol).map((tr) => [tr.dataset.symbol, tr]));
  const wanted = rows.map((row) => {
    const tr = shown.get(row.key) ?? newRow(row.key, { onRemove, onSelect });
    updateRow(tr, row, selected);
    return tr;
  });
  const keep = new Set(wanted);
  for (const tr of [...tbody.rows]) {
    if (!keep.has(tr)) {
      tr.remove();
    }
  }
  // In order, moving only the rows out of place (a moved element loses the focus).
  wanted.forEach((tr, i) => {
    if (tbody.rows[i] !== tr) {
      tbody.insertBefore(tr, tbody.rows[i] ?? null);
    }
  });
  if (focused && !tbody.contains(document.activeElement)) {
    const key = focused.closest("tr")?.dataset.symbol;
    const tr = key && wanted.find((r) => r.dataset.symbol === key);
    if (tr) {
      (focused.tagName === "BUTTON" ? tr.querySelector("button") : tr).focus({ preventScroll: true });
    }
  }
}
