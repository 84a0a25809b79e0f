// The end-of-text token ends a completion (ctest server_eos): on a byte-level model trained on documents that are
// all "hello there" (shards put the end-of-text token, byte 0, after each), the greedy completion of "hello th" is
// "ere" with finish_reason "stop", whole and streamed, as `recur sample` prints it; with llama-server's
// "ignore_eos" the completion runs to max_tokens through the end-of-text byte into the next document.
// Usage: node eos_test.mjs RECUR WORK_DIR
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import OpenAI from "openai";
import { check, startServer, streamCompletion, timeLimit } from "./harness.mjs";
import { runRecur } from "./sp_checkpoint.mjs";

const [recur, work] = process.argv.slice(2);
timeLimit(100);
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const docs = path.join(work, "docs.txt"), shards = path.join(work, "shards"), checkpoint = path.join(work, "run");
writeFileSync(docs, Array(300).fill("hello there").join("\n\n") + "\n");
runRecur(recur, ["data", "prepare", "--input", docs, "--unit", "paragraph", "--val_fraction", "0.1", "--out", shards]);
runRecur(recur, ["train", "--data", shards, "--d_model", "32", "--n_heads", "2", "--n_layers", "2", "--d_ff", "64",
                 "--max_seq_len", "64", "--steps", "150", "--warmup_steps", "10", "--batch_size", "4", "--seq_len",
                 "32", "--lr", "1e-2", "--eval_every", "0", "--sample_tokens", "0", "--out", checkpoint]);
const PROMPT = "hello th", MAX = 10;
const sample = (extra) => runRecur(recur, ["sample", "--checkpoint", checkpoint, "--prompt", PROMPT, "--max_new_tokens",
                                           String(MAX), "--temperature", "0", ...extra]).toString("latin1");
check(sample([]) === "hello there\n", "recur sample should end at the end-of-text token:", JSON.stringify(sample([])));
const ignored = sample(["--ignore_eos"]);
check(ignored.startsWith("hello there\u0000hel") && ignored.length === PROMPT.length + MAX + 1,
      "recur sample --ignore_eos should run through it:", JSON.stringify(ignored));

const server = await startServer(recur, checkpoint);
const client = new OpenAI({ baseURL: server.url + "/v1", apiKey: "unused", maxRetries: 0 });
const params = { model: "m", prompt: PROMPT, max_tokens: MAX, temperature: 0 };
const whole = await client.completions.create(params);
check(whole.choices[0].text === "ere" && whole.choices[0].finish_reason === "stop" &&
      whole.usage.completion_tokens === 4, "the end-of-text token ends the completion:", JSON.stringify(whole));
const streamed = await streamCompletion(server.url, params);
check(streamed.text === "ere" && streamed.finish === "stop" && streamed.done, "streamed", JSON.stringify(streamed));
const through = await client.completions.create({ ...params, ignore_eos: true });
check(through.choices[0].text === ignored.slice(PROMPT.length, -1) && through.choices[0].finish_reason === "length" &&
      through.usage.completion_tokens === MAX, "ignore_eos runs to max_tokens:", JSON.stringify(through));
server.proc.kill("SIGTERM");
check(await server.exited === 0, "server exit code after SIGTERM");
console.log("eos_test: ok");
