// Integration test of `recur server` (ctest server_integration): the official openai client gets a completion,
// a streamed completion and an error; a seeded completion equals `recur sample`; raw HTTP gets the documented
// 400s (field named), 413 and 429; SIGTERM exits 0. Usage: node server_test.mjs RECUR CHECKPOINT
import { execFileSync } from "node:child_process";
import OpenAI from "openai";
import { check, metric, post, startServer, streamCompletion, timeLimit } from "./harness.mjs";

const [recur, checkpoint] = process.argv.slice(2);
timeLimit(150);

async function withOpenAI(url) {
  const client = new OpenAI({ baseURL: url + "/v1", apiKey: "unused", maxRetries: 0 });
  const params = { model: "m", prompt: "And God said", max_tokens: 12, seed: 7, temperature: 0.8, top_k: 40 };
  const whole = await client.completions.create(params);
  check(whole.object === "text_completion" && whole.choices.length === 1, "completion shape", JSON.stringify(whole));
  check(whole.usage.prompt_tokens === 12 && whole.usage.completion_tokens === 12, "usage", JSON.stringify(whole.usage));
  check(whole.choices[0].finish_reason === "length", "finish_reason", whole.choices[0].finish_reason);
  // the same seed alone in `recur sample` (it prints the prompt, the completion and a newline)
  const sampled = execFileSync(recur, ["sample", "--checkpoint", checkpoint, "--prompt", params.prompt,
    "--max_new_tokens", "12", "--seed", "7", "--temperature", "0.8", "--top_k", "40"]);
  const expected = sampled.subarray(Buffer.byteLength(params.prompt), sampled.length - 1).toString("utf8");
  check(whole.choices[0].text === expected, "seeded completion differs from recur sample:",
        JSON.stringify(whole.choices[0].text), JSON.stringify(expected));
  let streamed = "", finish = null;
  for await (const chunk of await client.completions.create({ ...params, stream: true })) {
    streamed += chunk.choices[0].text;
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  check(streamed === expected && finish === "length", "streamed completion differs:", JSON.stringify(streamed));
  try {
    await client.completions.create({ ...params, temperature: 5 });
    check(false, "temperature 5 was accepted");
  } catch (e) {
    check(e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === "temperature",
          "expected a 400 naming temperature, got", e);
  }
  const models = await client.models.list();
  check(models.data.length === 1 && models.data[0].object === "model", "models", JSON.stringify(models.data));
}

async function badRequests(url) {
  const c = url + "/v1/completions";
  const cases = [
    ['{"prompt": "x"', null, "invalid_json"],
    [{ prompt: "x", max_tokens: "5" }, "max_tokens", "invalid_type"],
    [{ prompt: "x", colour: 1 }, "colour", "unknown_field"],
    [{ prompt: "x", top_p: 1.5 }, "top_p", "invalid_value"],
    [{ prompt: "x", n: 2 }, "n", "invalid_value"],
    [{ prompt: [1, 256] }, "prompt", "invalid_value"],
    [{ max_tokens: 3 }, "prompt", "missing_field"],
    [{ prompt: "x".repeat(70) }, "prompt", "context_length_exceeded"],
    [{ prompt: "x".repeat(40), max_tokens: 40 }, "max_tokens", "context_length_exceeded"],
    [{ prompt: "x", stop: [1] }, "stop", "invalid_type"],
  ];
  for (const [body, param, code] of cases) {
    const r = await post(c, body);
    check(r.status === 400 && r.json?.error?.param === param && r.json.error.code === code &&
          typeof r.json.error.message === "string" && r.json.error.type === "invalid_request_error",
          "bad request", JSON.stringify(body), "->", r.status, r.text);
  }
  const big = await post(c, { prompt: "x".repeat(10000) });  // the server runs with --max_body_bytes 4096
  check(big.status === 413 && big.json?.error?.code === "payload_too_large", "413", big.status, big.text);
  const tok = await post(url + "/tokenize", { content: "hé" });
  check(JSON.stringify(tok.json) === '{"tokens":[104,195,169]}', "tokenize", tok.text);
  const detok = await post(url + "/detokenize", { tokens: [104, 195, 169, 255] });
  check(detok.json?.content === "hé\ufffd", "detokenize", detok.text);
  check((await post(url + "/detokenize", { tokens: [300] })).status === 400, "detokenize range");
  await streamCompletion(url, { prompt: "And", max_tokens: 60, seed: 1 }, 1);  // a client leaving mid-stream
  const health = await (await fetch(url + "/health")).json();
  check(health.status === "ok", "health");
  for (const name of ["recur_time_to_first_token_seconds_count", "recur_kv_cache_bytes", "recur_batch_occupancy"])
    check(!Number.isNaN(await metric(url, name)), "metric", name);
}

// One slot and one queue place: of many simultaneous long requests most are refused with 429 and Retry-After.
async function overload(url) {
  const all = await Promise.all(Array.from({ length: 32 }, (_, i) =>
    post(url + "/v1/completions", { prompt: "abc", max_tokens: 60, seed: i })));
  const refused = all.filter((r) => r.status === 429);
  check(refused.length > 0 && refused.every((r) => r.headers.get("retry-after") === "1" &&
        r.json?.error?.code === "queue_full"), "expected 429s, got", all.map((r) => r.status).join(","));
  check(all.every((r) => r.status === 200 || r.status === 429), "statuses", all.map((r) => r.status).join(","));
}

const main = await startServer(recur, checkpoint, ["--max_body_bytes", "4096"]);
await withOpenAI(main.url);
await badRequests(main.url);
main.proc.kill("SIGTERM");
check(await main.exited === 0, "server exit code after SIGTERM");
const small = await startServer(recur, checkpoint, ["--max_batch", "1", "--max_queue", "1"]);
await overload(small.url);
small.proc.kill("SIGINT");
check(await small.exited === 0, "server exit code after SIGINT");
console.log("server_test: ok");
