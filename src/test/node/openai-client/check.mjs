// The official OpenAI Node client (npm `openai`, pinned in package.json) against a running `llava4j serve`.
//
//   node check.mjs BASE_URL API_KEY IMAGE_FILE      (BASE_URL without /v1, e.g. http://127.0.0.1:8000)
//
// Lists and retrieves the served model, asks one question about IMAGE_FILE (sent as a data: URI) non-streamed and
// streamed with greedy decoding, cuts an answer with `stop`, and checks that the server's errors reach the caller as
// the SDK's typed errors (401 AuthenticationError, 400 BadRequestError, 404 NotFoundError). Prints a JSON summary on
// stdout and exits 0; on the first mismatch prints what differed on stderr and exits 1. Run by OpenAiClientTest.
import OpenAI from 'openai';
import { VERSION } from 'openai/version';
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';

const [baseUrl, apiKey, imageFile] = process.argv.slice(2);
if (!baseUrl || !apiKey || !imageFile) {
  console.error('usage: node check.mjs BASE_URL API_KEY IMAGE_FILE');
  process.exit(2);
}

class Mismatch extends Error {}

function expect(ok, what) {
  if (!ok) throw new Mismatch(what);
}

function expectEqual(got, want, what) {
  expect(got === want, `${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

/** Runs call, which must throw the SDK's errorClass with this HTTP status and error code; returns what it saw. */
async function expectError(what, errorClass, status, code, call) {
  try {
    await call();
  } catch (e) {
    expect(e instanceof errorClass, `${what}: want OpenAI.${errorClass.name}, got ${e?.constructor?.name}: ${e?.message}`);
    expectEqual(e.status, status, `${what}: status`);
    expectEqual(e.code, code, `${what}: error code`);
    expect(typeof e.message === 'string' && e.message.length > 0, `${what}: an error message`);
    return { class: errorClass.name, status: e.status, code: e.code, message: e.message };
  }
  throw new Mismatch(`${what}: the call succeeded; want OpenAI.${errorClass.name} (${status})`);
}

const mime = { '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg' }[extname(imageFile).toLowerCase()] ?? 'image/png';
const imageUrl = `data:${mime};base64,${readFileSync(imageFile).toString('base64')}`;
const question = 'What shape is on top?';
const MAX_TOKENS = 16;

// maxRetries 0: a retried request would hide the first answer's status
const client = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey, maxRetries: 0, timeout: 120_000 });

function messages(url) {
  return [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }, { type: 'text', text: question }] }];
}

/** A streamed completion read chunk by chunk: the assembled text, the finish reason, the usage chunk. */
async function streamed(params) {
  const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let content = '', role = null, finishReason = null, usage = null, chunks = 0, contentChunks = 0;
  for await (const chunk of stream) {
    chunks++;
    expectEqual(chunk.object, 'chat.completion.chunk', 'chunk object');
    if (chunk.usage) usage = chunk.usage;
    if (chunk.choices.length === 0) continue; // the usage chunk
    const choice = chunk.choices[0];
    expect(choice.delta && typeof choice.delta === 'object', `chunk ${chunks} has no choices[0].delta: ${JSON.stringify(chunk)}`);
    if (choice.delta.role) role = choice.delta.role;
    if (choice.delta.content) {
      content += choice.delta.content;
      contentChunks++;
    }
    if (choice.finish_reason) finishReason = choice.finish_reason;
  }
  return { content, role, finish_reason: finishReason, usage, chunks, content_chunks: contentChunks };
}

async function main() {
  const summary = { openai_version: VERSION, node_version: process.version };

  // models
  const models = [];
  for await (const m of client.models.list()) models.push(m);
  expectEqual(models.length, 1, 'number of models listed');
  expectEqual(models[0].object, 'model', 'models[0].object');
  const model = models[0].id;
  const retrieved = await client.models.retrieve(model);
  expectEqual(retrieved.id, model, 'retrieved model id');
  summary.model = model;

  // non-streamed, greedy
  const greedy = { model, messages: messages(imageUrl), max_tokens: MAX_TOKENS, temperature: 0 };
  const answer = await client.chat.completions.create(greedy);
  expectEqual(answer.object, 'chat.completion', 'completion object');
  expectEqual(answer.model, model, 'completion model');
  expectEqual(answer.choices.length, 1, 'number of choices');
  const message = answer.choices[0].message;
  expectEqual(message.role, 'assistant', 'message role');
  expect(typeof message.content === 'string' && message.content.length > 0, `an answer: ${JSON.stringify(message)}`);
  expect(['length', 'stop'].includes(answer.choices[0].finish_reason), `finish_reason: ${answer.choices[0].finish_reason}`);
  expect(answer.usage.completion_tokens > 0 && answer.usage.completion_tokens <= MAX_TOKENS,
    `completion_tokens ${answer.usage.completion_tokens} in 1..${MAX_TOKENS}`);
  expectEqual(answer.usage.total_tokens, answer.usage.prompt_tokens + answer.usage.completion_tokens, 'total_tokens');
  summary.non_streamed = { content: message.content, finish_reason: answer.choices[0].finish_reason, usage: answer.usage };

  // streamed, the same request: the same text in several chunks
  const s = await streamed(greedy);
  expectEqual(s.role, 'assistant', 'streamed role');
  expect(s.content_chunks > 1, `streamed in several content chunks, got ${s.content_chunks}`);
  expectEqual(s.content.trim(), message.content, 'streamed text against the non-streamed answer');
  expectEqual(s.finish_reason, answer.choices[0].finish_reason, 'streamed finish_reason');
  expect(s.usage !== null, 'a usage chunk (stream_options.include_usage)');
  expectEqual(s.usage.completion_tokens, answer.usage.completion_tokens, 'streamed completion_tokens');
  summary.streamed = s;

  // stop: a piece of the answer's second half cuts it where it starts, streamed or not
  const full = message.content;
  const cutAt = full.indexOf(' ', Math.floor(full.length / 2));
  expect(cutAt > 0, `an answer of several words to cut: ${JSON.stringify(full)}`);
  const stop = full.substring(cutAt, cutAt + 4);
  const want = full.substring(0, full.indexOf(stop)).trim();
  const cut = await client.chat.completions.create({ ...greedy, stop });
  expectEqual(cut.choices[0].message.content, want, `answer with stop ${JSON.stringify(stop)}`);
  expectEqual(cut.choices[0].finish_reason, 'stop', 'finish_reason with stop');
  const cutStream = await streamed({ ...greedy, stop: ['never appears', stop] });
  expectEqual(cutStream.content.trim(), want, `streamed answer with stop ${JSON.stringify(stop)}`);
  expectEqual(cutStream.finish_reason, 'stop', 'streamed finish_reason with stop');
  summary.stop = { stop, content: cut.choices[0].message.content, finish_reason: cut.choices[0].finish_reason };

  // errors, as the SDK's typed errors
  const wrongKey = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey: `${apiKey}-wrong`, maxRetries: 0, timeout: 60_000 });
  const notAnImage = `data:image/png;base64,${Buffer.from('not an image').toString('base64')}`;
  summary.errors = {
    wrong_key_models: await expectError('models.list with a wrong key', OpenAI.AuthenticationError, 401, 'invalid_api_key',
      () => wrongKey.models.list()),
    wrong_key_chat: await expectError('chat with a wrong key', OpenAI.AuthenticationError, 401, 'invalid_api_key',
      () => wrongKey.chat.completions.create(greedy)),
    invalid_image: await expectError('chat with an invalid image', OpenAI.BadRequestError, 400, 'invalid_image',
      () => client.chat.completions.create({ ...greedy, messages: messages(notAnImage) })),
    invalid_image_streamed: await expectError('streamed chat with an invalid image', OpenAI.BadRequestError, 400, 'invalid_image',
      () => client.chat.completions.create({ ...greedy, messages: messages(notAnImage), stream: true })),
    unknown_model_retrieve: await expectError('models.retrieve of an unknown model', OpenAI.NotFoundError, 404, 'model_not_found',
      () => client.models.retrieve('no-such-model')),
    unknown_model_chat: await expectError('chat with an unknown model', OpenAI.NotFoundError, 404, 'model_not_found',
      () => client.chat.completions.create({ ...greedy, model: 'no-such-model' })),
  };

  console.log(JSON.stringify(summary, null, 2));
}

main().catch((e) => {
  console.error(e instanceof Mismatch ? `openai client check failed: ${e.message}` : `openai client check failed with an unexpected error: ${e?.stack ?? e}`);
  process.exit(1);
});
