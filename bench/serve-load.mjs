// Load client of bench/serve.sh (Node 18+, no packages): CLIENTS concurrent clients, each sending REQUESTS streamed chat
// requests one after another to a running `llava4j serve`, all with the same image, prompt and max_tokens (ignore_eos:
// every answer is max_tokens long). Prints one JSON line: aggregate generated tokens/s over the wall time of the whole
// run, and time to first token (request sent -> first content chunk) p50 / p95 over all requests.
//   node bench/serve-load.mjs URL CLIENTS REQUESTS MAX_TOKENS PROMPT IMAGE.png
import {readFileSync} from "node:fs";
const [url, clientsArg, requestsArg, maxTokensArg, prompt, imageFile] = process.argv.slice(2);
const clients = Number(clientsArg), requests = Number(requestsArg), maxTokens = Number(maxTokensArg);
const image = "data:image/png;base64," + readFileSync(imageFile).toString("base64");

async function one() {
  const t0 = performance.now();
  const res = await fetch(url + "/v1/chat/completions", {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({model: "bench", stream: true, max_tokens: maxTokens, ignore_eos: true, temperature: 0,
      stream_options: {include_usage: true}, messages: [{role: "user", content: [
        {type: "image_url", image_url: {url: image}}, {type: "text", text: prompt}]}]}),
  });
  if (res.status !== 200) throw new Error("HTTP " + res.status + ": " + await res.text());
  let ttft = null, tokens = null, buf = "", done = false;
  const decoder = new TextDecoder();
  for await (const bytes of res.body) {
    buf += decoder.decode(bytes, {stream: true});
    let at;
    while ((at = buf.indexOf("\n\n")) >= 0) {
      const event = buf.slice(0, at);
      buf = buf.slice(at + 2);
      if (!event.startsWith("data: ")) continue;
      const data = event.slice(6);
      if (data === "[DONE]") { done = true; continue; }
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(JSON.stringify(chunk.error));
      if (ttft === null && chunk.choices?.[0]?.delta?.content) ttft = performance.now() - t0;
      if (chunk.usage) tokens = chunk.usage.completion_tokens;
    }
  }
  if (!done || tokens === null) throw new Error("the stream ended without usage or [DONE]");
  return {ttft, tokens, seconds: (performance.now() - t0) / 1000};
}

const quantile = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]; };
const start = performance.now();
const results = (await Promise.all(Array.from({length: clients}, async () => {
  const out = [];
  for (let i = 0; i < requests; i++) out.push(await one());
  return out;
}))).flat();
const wall = (performance.now() - start) / 1000;
const tokens = results.reduce((a, r) => a + r.tokens, 0);
const ttfts = results.map(r => r.ttft / 1000);
console.log(JSON.stringify({clients, requests: results.length, max_tokens: maxTokens, generated_tokens: tokens,
  wall_s: +wall.toFixed(2), tokens_per_s: +(tokens / wall).toFixed(2),
  ttft_p50_s: +quantile(ttfts, 0.5).toFixed(3), ttft_p95_s: +quantile(ttfts, 0.95).toFixed(3)}));
