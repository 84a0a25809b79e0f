// Greedy equality with llama.cpp (ctest llama_greedy): recur trains a vanilla and a middle-looped (shared-layer,
// GQA) byte-level model for a few hundred steps, exports each with `recur export --format gguf`, and llama.cpp
// (through node-llama-cpp, pinned in this folder) must continue a prompt, given as byte token ids, exactly as
// `recur sample --temperature 0` does for 48 tokens, for each of three prompts. Then a SentencePiece model
// (tests/server/sp_checkpoint.mjs), exported with its vocabulary: llama.cpp's own tokenizer must give recur's ids
// for each prompt, and its greedy continuation of those ids, decoded by recur's tokenizer, must be recur sample's
// text. Usage: node greedy_test.mjs RECUR WORK_DIR
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { trainSentencePieceCheckpoint } from "../../tests/server/sp_checkpoint.mjs";

const [recur, work] = process.argv.slice(2);
const NEW_TOKENS = 48, PROMPTS = ["And God said unto Moses, ", "In the beginning", "Blessed are the"];
const SP_PROMPTS = ["And God said, the café", "The light of 日本 was", "Night and day the Lord said 42 times: café, café 😀"];
setTimeout(() => { console.error("llama_greedy: over 160 s, stopping"); process.exit(1); }, 160_000).unref();

let nodeLlama;
try {
  nodeLlama = await import("node-llama-cpp");
} catch (e) {
  console.error("llama_greedy: node-llama-cpp is not installed in bench/llama (" + e.message.split("\n")[0] +
                "); run bash scripts/setup.sh");
  process.exit(1);
}

const MODELS = {
  vanilla: ["--n_layers", "2"],
  looped: ["--n_layers", "5", "--prelude", "1", "--loop_block", "1", "--loop_count", "3", "--coda", "1"],
};

function run(args) {
  return execFileSync(recur, ["--threads", "1", ...args], { env: { ...process.env, OMP_WAIT_POLICY: "passive" } });
}

// Trains `name` and exports it.
function trainAndExport(name) {
  const out = path.join(work, name);
  rmSync(out, { recursive: true, force: true });
  run(["train", "--d_model", "64", "--n_heads", "4", "--n_kv_heads", "2", "--d_ff", "128", "--max_seq_len", "128",
       ...MODELS[name], "--steps", "200", "--warmup_steps", "20", "--batch_size", "4", "--seq_len", "64",
       "--lr", "5e-3", "--eval_every", "0", "--sample_tokens", "0", "--out", out]);
  run(["export", "--format", "gguf", "--checkpoint", out, "--out", path.join(out, "model.gguf")]);
}

// recur's greedy continuation of `prompt`: its bytes (recur sample prints the prompt, them and a newline).
function recurGreedy(checkpoint, prompt) {
  const sampled = run(["sample", "--checkpoint", checkpoint, "--prompt", prompt, "--max_new_tokens",
                       String(NEW_TOKENS), "--temperature", "0"]);
  return sampled.subarray(Buffer.byteLength(prompt), sampled.length - 1);
}

// llama.cpp's greedy continuation of the token ids `ids` in a fresh context.
async function llamaGreedy(model, ids) {
  // one thread: llama.cpp's threads spin while they wait, which on a busy 2-core machine costs seconds per token
  const context = await model.createContext({ contextSize: 128, threads: 1, sequences: 1 });
  const tokens = [];
  for await (const token of context.getSequence().evaluate(ids, { temperature: 0, yieldEogToken: true })) {
    tokens.push(token);
    if (tokens.length === NEW_TOKENS) break;
  }
  await context.dispose();
  return tokens;
}

// The SentencePiece model: llama.cpp's tokenization of each prompt, then its greedy continuation of recur's ids.
async function sentencePiece() {
  const { checkpoint, tokenizer } = trainSentencePieceCheckpoint(recur, path.join(work, "sentencepiece"));
  const gguf = path.join(checkpoint, "model.gguf");
  run(["export", "--format", "gguf", "--checkpoint", checkpoint, "--out", gguf]);
  const model = await llama.loadModel({ modelPath: gguf });
  let failures = 0;
  for (const prompt of SP_PROMPTS) {
    const ids = run(["tokenizer", "encode", "--tokenizer", tokenizer, "--text", prompt]).toString().trim().split(" ")
      .map(Number);
    const theirIds = [...model.tokenize(prompt)];
    const at = ids.findIndex((t, i) => t !== theirIds[i]);
    if (at !== -1 || theirIds.length !== ids.length) {
      failures++;
      console.error(`not ok sentencepiece tokenize ${JSON.stringify(prompt)}: first difference at ${at}\n` +
                    `  recur:     ${ids.join(" ")}\n  llama.cpp: ${theirIds.join(" ")}`);
    } else {
      console.log(`ok sentencepiece tokenize ${JSON.stringify(prompt)}: ${ids.length} ids equal`);
    }
    const ours = recurGreedy(checkpoint, prompt).toString("utf8");
    const generated = await llamaGreedy(model, ids);
    const theirs = run(["tokenizer", "decode", "--tokenizer", tokenizer, "--ids", generated.join(" ")]).toString("utf8");
    if (generated.length !== NEW_TOKENS || theirs !== ours) {
      failures++;
      console.error(`not ok sentencepiece ${JSON.stringify(prompt)}\n  recur:     ${JSON.stringify(ours)}\n` +
                    `  llama.cpp: ${JSON.stringify(theirs)}`);
    } else {
      console.log(`ok sentencepiece ${JSON.stringify(prompt)}: ${NEW_TOKENS} greedy tokens equal: ${JSON.stringify(ours)}`);
    }
  }
  await model.dispose();
  return failures;
}

mkdirSync(work, { recursive: true });
const llama = await nodeLlama.getLlama({ gpu: false, build: "never", logLevel: nodeLlama.LlamaLogLevel.error });
let failed = 0;
const text = (t) => JSON.stringify(Buffer.from(t).toString("latin1"));
for (const name of Object.keys(MODELS)) {
  trainAndExport(name);
  const model = await llama.loadModel({ modelPath: path.join(work, name, "model.gguf") });
  for (const prompt of PROMPTS) {
    const ours = [...recurGreedy(path.join(work, name), prompt)];
    const theirs = await llamaGreedy(model, [...Buffer.from(prompt)]);
    const first = ours.findIndex((t, i) => t !== theirs[i]);
    if (ours.length !== NEW_TOKENS || first !== -1) {
      failed++;
      console.error(`not ok ${name} ${JSON.stringify(prompt)}: first difference at token ${first}\n` +
                    `  recur:     ${text(ours)}\n  llama.cpp: ${text(theirs)}`);
    } else {
      console.log(`ok ${name} ${JSON.stringify(prompt)}: ${NEW_TOKENS} greedy tokens equal: ${text(ours)}`);
    }
  }
  await model.dispose();
}
failed += await sentencePiece();
await llama.dispose();
process.exit(failed ? 1 : 0);
