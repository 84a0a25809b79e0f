// Integration test of `recur server` (ctest server_disconnect): a client that leaves before its completion is
// done, streamed or whole, cancels its sequence at once: the engine frees the slot instead of generating for
// nobody. The model is large enough that 4000 tokens take far longer than the test waits.
// Usage: node disconnect_test.mjs RECUR CHECKPOINT
import { check, metric, startServer, streamCompletion, timeLimit } from "./harness.mjs";

const [recur, checkpoint] = process.argv.slice(2);
timeLimit(100);
const long = { prompt: "a", max_tokens: 4000, temperature: 0 };

// Polls the server's metrics until `cancelled` sequences are counted and none is live (or `seconds` pass).
async function expectCancelled(url, cancelled, seconds) {
  const deadline = Date.now() + seconds * 1000;
  let seen, live;
  do {
    await new Promise((r) => setTimeout(r, 100));
    seen = await metric(url, 'recur_requests_total{outcome="cancelled"}');
    live = await metric(url, "recur_live_sequences");
  } while ((seen < cancelled || live > 0) && Date.now() < deadline);
  check(seen === cancelled && live === 0, `expected ${cancelled} cancelled and 0 live sequences, got`, seen, live);
  check(await metric(url, 'recur_requests_total{outcome="finished"}') === 0, "a left request ran to its end");
}

const server = await startServer(recur, checkpoint, ["--max_batch", "2"]);
const url = server.url;

// A whole completion whose client gives up after 0.5 s (the server notices at its next heartbeat).
const abort = new AbortController();
const whole = fetch(url + "/v1/completions", { method: "POST", signal: abort.signal, body: JSON.stringify(long),
                                               headers: { "content-type": "application/json" } });
setTimeout(() => abort.abort(), 500);
try {
  await (await whole).text();
  check(false, "the aborted whole completion was answered");
} catch (e) {
  check(e.name === "AbortError", "expected an AbortError, got", e);
}
await expectCancelled(url, 1, 5);

// A stream left after its first chunk.
const streamed = await streamCompletion(url, long, 1);
check(streamed.aborted && !streamed.done, "the stream was not left early", JSON.stringify(streamed));
await expectCancelled(url, 2, 5);

server.proc.kill("SIGTERM");
check(await server.exited === 0, "server exit code after SIGTERM");
console.log("disconnect_test: ok");
