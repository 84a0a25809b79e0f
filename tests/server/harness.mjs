// Shared by the server tests (run by ctest): starts `recur server` on a free loopback port, kills it whatever
// happens to the test (exit, exception, the test's own time limit), and small HTTP helpers over fetch.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";

const children = new Set();
process.on("exit", () => { for (const c of children) c.kill("SIGKILL"); });
process.on("uncaughtException", (e) => { console.error("FAIL:", e); process.exit(1); });
process.on("unhandledRejection", (e) => { console.error("FAIL:", e); process.exit(1); });

// Ends the test with a failure after `seconds` (below ctest's TIMEOUT, so the server is still killed by us).
export function timeLimit(seconds) {
  setTimeout(() => { console.error(`FAIL: over the ${seconds} s limit`); process.exit(1); }, seconds * 1000).unref();
}

export function check(cond, ...message) {
  if (!cond) throw new Error(message.join(" "));
}

// Starts the server and resolves once it listens: {url, proc, exited (a promise of the exit code)}.
export function startServer(recur, checkpoint, extra = []) {
  const proc = spawn(recur, ["server", "--checkpoint", checkpoint, "--host", "127.0.0.1", "--port", "0", ...extra],
                     { stdio: ["ignore", "pipe", "inherit"] });
  children.add(proc);
  const exited = new Promise((resolve) => proc.on("exit", (code, signal) => {
    children.delete(proc);
    resolve(code ?? signal);
  }));
  return new Promise((resolve, reject) => {
    let out = "";
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) resolve({ url: m[1], proc, exited });
    });
    exited.then((code) => reject(new Error(`server exited (${code}) before listening`)));
  });
}

export async function post(url, body, headers = {}) {
  const res = await fetch(url, { method: "POST", body: typeof body === "string" ? body : JSON.stringify(body),
                                 headers: { "content-type": "application/json", ...headers } });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON: left null */ }
  return { status: res.status, headers: res.headers, json, text };
}

// A streamed completion over fetch: the concatenated text, or (abortAfter chunks) the text until the abort.
export async function streamCompletion(url, body, abortAfter = 0) {
  const abort = new AbortController();
  const res = await fetch(url + "/v1/completions", { method: "POST", signal: abort.signal,
    body: JSON.stringify({ ...body, stream: true }), headers: { "content-type": "application/json" } });
  check(res.status === 200, "stream status", res.status);
  const decoder = new TextDecoder();
  let buffer = "", text = "", chunks = 0, done = false, finish = null, aborted = false;
  try {
    for await (const piece of res.body) {
      buffer += decoder.decode(piece, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        check(event.startsWith("data: "), "bad event", event);
        if (event === "data: [DONE]") { done = true; continue; }
        const chunk = JSON.parse(event.slice(6));
        text += chunk.choices[0].text;
        finish = chunk.choices[0].finish_reason ?? finish;
        if (abortAfter && ++chunks >= abortAfter) {
          aborted = true;  // leaving the loop cancels the body, which may throw AbortError
          abort.abort();
          break;
        }
      }
      if (aborted) break;
    }
  } catch (e) {
    if (e.name !== "AbortError") throw e;
  }
  return { text, done, finish, aborted };
}

export function rssKiB(pid) {
  const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/);
  return Number(m[1]);
}

export async function metric(url, name) {
  const text = await (await fetch(url + "/metrics")).text();
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  return line ? Number(line.split(" ")[1]) : NaN;
}
