// Load test of `recur server` (ctest server_load, loopback only, bounded): 64 concurrent clients send 1000 mixed
// requests (streamed or not, short and long, every tenth abandoned mid-stream). None may be lost, every finished
// completion must equal its solo reference (an abandoned one a prefix of it), the server must not crash, and its
// RSS must come back near its idle level (within 25% plus RSS_SLACK_KIB: the sanitizer build's allocator keeps
// freed memory in quarantine, so it gets more). Usage: node load_test.mjs RECUR CHECKPOINT [REQUESTS] [CLIENTS]
// [RSS_SLACK_KIB]
import { check, post, rssKiB, startServer, streamCompletion, timeLimit } from "./harness.mjs";

const [recur, checkpoint, total = "1000", clients = "64", slack = "16384"] = process.argv.slice(2);
timeLimit(280);
const server = await startServer(recur, checkpoint, ["--max_batch", "16", "--max_queue", "1024"]);
const url = server.url;

// 24 distinct requests: prompts of 1 to 47 bytes, 2 to 16 new tokens, greedy or sampled with a seed.
const configs = Array.from({ length: 24 }, (_, i) => ({
  prompt: "In the beginning God created the heaven and the earth.".slice(0, 1 + (i * 7) % 47),
  max_tokens: 2 + (i * 5) % 15, seed: 100 + i, temperature: i % 3 ? 0.8 : 0, top_k: i % 2 ? 0 : 20,
  top_p: i % 4 === 1 ? 0.9 : 1, ...(i % 5 === 4 ? { stop: ["e"] } : {}),
}));
const reference = [];
for (const c of configs) {
  const r = await post(url + "/v1/completions", c);
  check(r.status === 200, "reference", r.text);
  reference.push(r.json.choices[0].text);
}
const idle = rssKiB(server.proc.pid);

let next = 0, lost = 0, corrupted = 0, cancelled = 0, done = 0;
const started = Date.now();
async function client() {
  while (next < Number(total)) {
    const i = next++, c = configs[i % configs.length], ref = reference[i % configs.length];
    try {
      if (i % 10 === 7) {
        const r = await streamCompletion(url, c, 1);
        if (!ref.startsWith(r.text)) corrupted++;
        cancelled++;
      } else if (i % 2) {
        const r = await streamCompletion(url, c);
        if (r.text !== ref || !r.done) corrupted++, console.error("corrupted stream", i, JSON.stringify(r));
      } else {
        const r = await post(url + "/v1/completions", c);
        if (r.status !== 200 || r.json.choices[0].text !== ref) corrupted++, console.error("corrupted", i, r.text);
      }
      done++;
    } catch (e) {
      lost++;
      console.error("lost", i, e);
    }
  }
}
await Promise.all(Array.from({ length: Number(clients) }, client));
const seconds = (Date.now() - started) / 1000;
await new Promise((r) => setTimeout(r, 500));  // abandoned streams are cancelled by the server's next write
const after = rssKiB(server.proc.pid);
console.log(`load_test: ${done} requests (${cancelled} abandoned) by ${clients} clients in ${seconds.toFixed(1)} s; ` +
            `lost ${lost}, corrupted ${corrupted}; RSS idle ${idle} KiB, after ${after} KiB`);
check(lost === 0 && corrupted === 0 && done === Number(total), "lost or corrupted requests");
check(after <= idle * 1.25 + Number(slack), "RSS did not come back near idle");
const health = await (await fetch(url + "/health")).json();
check(health.status === "ok", "health after load");
server.proc.kill("SIGTERM");
check(await server.exited === 0, "server exit code after SIGTERM");
console.log("load_test: ok");
