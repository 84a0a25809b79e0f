// A small SentencePiece checkpoint for the tests that need one (tests/server/tokenizer_test.mjs,
// bench/llama/greedy_test.mjs): `recur tokenizer train` (BPE, 320 pieces) on seeded word salad in which the emoji
// never occurs (so it becomes byte pieces), `recur data prepare` on paragraphs of a few sentences full of accents,
// CJK and the emoji, and `recur train` long enough that greedy continuations repeat those sentences.
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

const WORDS = ["the", "earth", "and", "God", "said", "light", "was", "good", "water", "day", "night", "café",
               "naïve", "日本", "über", "42", "of", "upon", "face", "Lord"];
export const SENTENCES = ["And God said, the café is über good 😀.", "The light of 日本 was naïve upon the water 😀.",
                          "Night and day the Lord said 42 times: café, café 😀!"];

export function runRecur(recur, args) {
  return execFileSync(recur, ["--threads", "1", ...args], { env: { ...process.env, OMP_WAIT_POLICY: "passive" } });
}

function wordSalad(lines) {
  let seed = 7, text = "";
  const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let l = 0; l < lines; l++) {
    const n = 3 + Math.floor(next() * 9);
    text += Array.from({ length: n }, () => WORDS[Math.floor(next() * WORDS.length)]).join(" ") + ".\n";
  }
  return text;
}

// Trains it in `dir` (removed first) and returns {checkpoint, tokenizer}; `modelFlags` are recur train's model flags.
export function trainSentencePieceCheckpoint(recur, dir, modelFlags = ["--n_layers", "2"], steps = 200) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const salad = path.join(dir, "salad.txt"), sentences = path.join(dir, "sentences.txt");
  writeFileSync(salad, wordSalad(800));
  const paragraphs = [];
  for (let p = 0; p < 120; p++) paragraphs.push([0, 1, 2].map((i) => SENTENCES[(p + i) % 3]).join(" "));
  writeFileSync(sentences, paragraphs.join("\n\n") + "\n");
  const tokenizer = path.join(dir, "tokenizer.model"), shards = path.join(dir, "shards");
  const checkpoint = path.join(dir, "run");
  runRecur(recur, ["tokenizer", "train", "--input", salad, "--vocab_size", "320", "--out", tokenizer]);
  runRecur(recur, ["data", "prepare", "--input", sentences, "--tokenizer", tokenizer, "--unit", "paragraph",
                   "--val_fraction", "0.1", "--out", shards]);
  runRecur(recur, ["train", "--data", shards, "--d_model", "64", "--n_heads", "4", "--n_kv_heads", "2", "--d_ff", "128",
                   "--max_seq_len", "128", ...modelFlags, "--steps", String(steps), "--warmup_steps", "20",
                   "--batch_size", "4", "--seq_len", "64", "--lr", "5e-3", "--eval_every", "0", "--sample_tokens", "0",
                   "--out", checkpoint]);
  return { checkpoint, tokenizer };
}
