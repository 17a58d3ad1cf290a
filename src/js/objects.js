// Builds the objects of an answer from the buffers src/wasm/objects.rs encodes, in one call
// instead of one per field. Keys are in the order of the Rust structs, as in the native JSON.
//
// nums: per entry, 1 then the 19 fields of a Quote, or 0 then the 4 of a SymbolError; a
// string field is an index into the strings (-1 for null), NaN a number that is null.
// ends: where each string ends in `text`, in UTF-16 code units.
export function buildEntries(nums, ends, text) {
  const strings = new Array(ends.length);
  let start = 0;
  for (let i = 0; i < ends.length; i++) {
    strings[i] = text.slice(start, ends[i]);
    start = ends[i];
  }
  const num = (x) => (x === x ? x : null);
  const str = (i) => (i < 0 ? null : strings[i]);
  const out = [];
  for (let i = 0; i < nums.length; ) {
    if (nums[i] === 1) {
      out.push({
        symbol: strings[nums[i + 1]],
        exchange: strings[nums[i + 2]],
        name: strings[nums[i + 3]],
        current_price: num(nums[i + 4]),
        change: num(nums[i + 5]),
        change_percent: num(nums[i + 6]),
        open: num(nums[i + 7]),
        high: num(nums[i + 8]),
        low: num(nums[i + 9]),
        prev_close: num(nums[i + 10]),
        volume: nums[i + 11],
        amount: num(nums[i + 12]),
        quote_time: str(nums[i + 13]),
        timestamp: strings[nums[i + 14]],
        cache_hit: nums[i + 15] === 1,
        cache_source: strings[nums[i + 16]],
        stale: nums[i + 17] === 1,
        source: strings[nums[i + 18]],
        market_status: strings[nums[i + 19]],
      });
      i += 20;
    } else {
      out.push({
        symbol: strings[nums[i + 1]],
        input: strings[nums[i + 2]],
        error: strings[nums[i + 3]],
        code: strings[nums[i + 4]],
      });
      i += 5;
    }
  }
  return out;
}
