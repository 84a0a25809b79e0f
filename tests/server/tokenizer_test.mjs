// `recur server` on a SentencePiece checkpoint (ctest server_tokenizer): /v1/models names the tokenizer; a greedy
// completion of a text prompt equals `recur sample`, and so does the same prompt as token ids (/tokenize gives
// `recur tokenizer encode`'s ids, /detokenize the text back); the streamed text equals the whole one, every chunk
// whole UTF-8 (CJK pieces and an emoji made of byte pieces arrive intact); stop strings cut the decoded text,
// streamed or not; a token id outside the vocabulary is a 400 naming it. Usage: node tokenizer_test.mjs RECUR WORK_DIR
import OpenAI from "openai";
import { check, post, startServer, streamCompletion, timeLimit } from "./harness.mjs";
import { runRecur, trainSentencePieceCheckpoint } from "./sp_checkpoint.mjs";

const [recur, work] = process.argv.slice(2);
timeLimit(160);
const PROMPT = "And God said, the café", NEW_TOKENS = 40;

const { checkpoint, tokenizer } = trainSentencePieceCheckpoint(recur, work);
const sampled = runRecur(recur, ["sample", "--checkpoint", checkpoint, "--prompt", PROMPT, "--max_new_tokens",
                                 String(NEW_TOKENS), "--temperature", "0"]);
const expected = sampled.subarray(Buffer.byteLength(PROMPT), sampled.length - 1).toString("utf8");
check(/[^\x00-\x7f]/.test(expected) && expected.includes("😀") && !expected.includes("\ufffd"),
      "the greedy sample should hold CJK or accents and the emoji:", JSON.stringify(expected));
const ids = runRecur(recur, ["tokenizer", "encode", "--tokenizer", tokenizer, "--text", PROMPT]).toString()
  .trim().split(" ").map(Number);

const server = await startServer(recur, checkpoint);
const url = server.url, client = new OpenAI({ baseURL: url + "/v1", apiKey: "unused", maxRetries: 0 });
const models = await client.models.list();
check(models.data[0].tokenizer === "sentencepiece (320 pieces)" && models.data[0].vocab_size === 320, "models",
      JSON.stringify(models.data));

const tok = await post(url + "/tokenize", { content: PROMPT });
check(JSON.stringify(tok.json?.tokens) === JSON.stringify(ids), "tokenize", tok.text, "vs", ids.join(" "));
check(ids.length < Buffer.byteLength(PROMPT), "pieces, not bytes", ids.length);
const detok = await post(url + "/detokenize", { tokens: ids });
check(detok.json?.content === PROMPT, "detokenize", detok.text);

const params = { model: "m", max_tokens: NEW_TOKENS, temperature: 0 };
for (const prompt of [PROMPT, ids]) {
  const whole = await client.completions.create({ ...params, prompt });
  check(whole.choices[0].text === expected, "greedy completion differs from recur sample:",
        JSON.stringify(whole.choices[0].text), JSON.stringify(expected));
  check(whole.usage.prompt_tokens === ids.length && whole.usage.completion_tokens === NEW_TOKENS, "usage",
        JSON.stringify(whole.usage));
  // (how many tokens a chunk holds depends on timing; tests/test_server_api.cpp feeds one token at a time)
  let streamed = "";
  for await (const chunk of await client.completions.create({ ...params, prompt, stream: true })) {
    check(!chunk.choices[0].text.includes("\ufffd"), "a chunk split a character:", JSON.stringify(chunk));
    streamed += chunk.choices[0].text;
  }
  check(streamed === expected, "streamed completion differs:", JSON.stringify(streamed));
}

// stop strings on the decoded text: the first non-ASCII character, and the emoji with the space before it
for (const stop of [[...expected].find((c) => c.charCodeAt(0) > 127), " 😀"]) {
  const cut = expected.slice(0, expected.indexOf(stop));
  const whole = await client.completions.create({ ...params, prompt: PROMPT, stop: [stop, "never appears"] });
  check(whole.choices[0].text === cut && whole.choices[0].finish_reason === "stop", "stop", JSON.stringify(stop),
        JSON.stringify(whole.choices[0]));
  const streamed = await streamCompletion(url, { ...params, prompt: PROMPT, stop });
  check(streamed.text === cut && streamed.finish === "stop" && streamed.done, "streamed stop", JSON.stringify(stop),
        JSON.stringify(streamed));
}

const outside = await post(url + "/v1/completions", { prompt: [5, 320], max_tokens: 2 });
check(outside.status === 400 && outside.json?.error?.param === "prompt" &&
      outside.json.error.message.includes("token id 320"), "outside the vocabulary", outside.status, outside.text);
check((await post(url + "/detokenize", { tokens: [320] })).status === 400, "detokenize range");
server.proc.kill("SIGTERM");
check(await server.exited === 0, "server exit code after SIGTERM");
console.log("tokenizer_test: ok");
