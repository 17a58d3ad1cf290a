// Why a relay refused a push stream. An EventSource that gives a stream up says nothing of the
// answer it refused, so the stream's URL is asked once more, with fetch.

/**
 * `{ status, code, error }` when the relay answers `url` with an error status; `undefined`
 * when it accepts the stream now (the answer is dropped) or cannot be reached.
 */
export async function refusal(url) {
  try {
    const answer = await fetch(url);
    if (answer.ok) {
      answer.body?.cancel();
      return undefined;
    }
    const text = await answer.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
    const known = body !== null && typeof body === "object";
    return {
      status: answer.status,
      code: String((known && body.code) || "refused"),
      error: String((known && body.error) || text),
    };
  } catch {
    return undefined;
  }
}

/**
 * Calls `onStatus("closed", reason)` once the reason is known, unless `subscription.closed`
 * is set by then (the app closed it).
 */
export function reportClosed(url, onStatus, subscription) {
  refusal(url).then((reason) => {
    if (!subscription.closed) {
      onStatus("closed", reason);
    }
  });
}
