// The cache statistics panel: what `db.cacheStats()` says, painted every few seconds and after
// every update of the quotes.

const PHASES = {
  pre_open: "pre-open 盘前",
  opening_auction: "opening auction 集合竞价",
  trading: "trading 交易中",
  lunch_break: "lunch break 午间休市",
  closing_auction: "closing auction 尾盘竞价",
  after_close: "after close 已收盘",
  closed: "closed 休市",
};

function setStat(name, text) {
  document.querySelector(`[data-stat="${name}"]`).textContent = text;
}

export function renderStats(stats) {
  setStat("hit_rate", `${(stats.hit_rate * 100).toFixed(1)}%`);
  setStat("upstream_requests", String(stats.upstream_requests));
  setStat("memory_entries", String(stats.memory_entries));
  setStat("persistent_entries", stats.persistent_enabled ? String(stats.persistent_entries) : "off");
  setStat("market_phase", PHASES[stats.market_phase] ?? stats.market_phase);
  setStat("ttl_seconds", `${stats.ttl_seconds} s`);
}
