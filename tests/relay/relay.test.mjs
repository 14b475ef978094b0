// The official SDKs (`openai`, `@anthropic-ai/sdk`) as real clients of `atrium serve --services
// relay`, in front of a local upstream that speaks the Anthropic and OpenAI wire formats.
// Run by ctest (relay_sdk_test) with ATRIUM_BIN set; `node --test` in this folder otherwise.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import OpenAI from 'openai';
import { waitForListening } from '../listening.mjs';
import Anthropic from '@anthropic-ai/sdk';

const ATRIUM = process.env.ATRIUM_BIN ?? join(process.cwd(), '../../build/bin/atrium');

// ---- the upstream: exact provider wire formats ----
const ANTHROPIC_MESSAGE = {
  id: 'msg_01XFDUDYJgAACzvnptvVoYEL', type: 'message', role: 'assistant',
  model: 'claude-sonnet-4-5-20250929',
  content: [{ type: 'text', text: 'Hello from Anthropic!' }],
  stop_reason: 'end_turn', stop_sequence: null,
  usage: { input_tokens: 12, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 6 },
};
const ANTHROPIC_TOOL_MESSAGE = {
  id: 'msg_01Aq9w938a90dw8q', type: 'message', role: 'assistant',
  model: 'claude-sonnet-4-5-20250929',
  content: [{ type: 'text', text: 'Let me check.' },
    { type: 'tool_use', id: 'toolu_01A09q90qw90lq917835lq9', name: 'get_weather', input: { city: 'Paris' } }],
  stop_reason: 'tool_use', stop_sequence: null, usage: { input_tokens: 40, output_tokens: 25 },
};
const OPENAI_COMPLETION = {
  id: 'chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT', object: 'chat.completion', created: 1741569952,
  model: 'gpt-4o-2024-08-06',
  choices: [{ index: 0, message: { role: 'assistant', content: 'Hello from OpenAI!', refusal: null, annotations: [] },
    logprobs: null, finish_reason: 'stop' }],
  usage: { prompt_tokens: 19, completion_tokens: 10, total_tokens: 29 },
  service_tier: 'default', system_fingerprint: 'fp_fc9f1d7035',
};
const OPENAI_TOOL_COMPLETION = {
  id: 'chatcmpl-abc123', object: 'chat.completion', created: 1699896916, model: 'gpt-4o-2024-08-06',
  choices: [{ index: 0, message: { role: 'assistant', content: null, tool_calls: [{ id: 'call_abc123',
    type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } }] },
  logprobs: null, finish_reason: 'tool_calls' }],
  usage: { prompt_tokens: 82, completion_tokens: 17, total_tokens: 99 },
};

function sse(res, frames, delay = 5) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  let i = 0;
  const next = () => {
    if (i >= frames.length) return res.end();
    res.write(frames[i++]);
    setTimeout(next, delay);
  };
  next();
}

function anthropicStream(text) {
  const ev = (name, data) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
  const frames = [
    ev('message_start', { type: 'message_start', message: { ...ANTHROPIC_MESSAGE, content: [], stop_reason: null,
      usage: { input_tokens: 12, output_tokens: 1 } } }),
    ev('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
    ev('ping', { type: 'ping' }),
  ];
  for (const part of text.match(/.{1,5}/g)) {
    frames.push(ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: part } }));
  }
  frames.push(ev('content_block_stop', { type: 'content_block_stop', index: 0 }));
  frames.push(ev('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null },
    usage: { output_tokens: 6 } }));
  frames.push(ev('message_stop', { type: 'message_stop' }));
  return frames;
}

function openaiStream(text) {
  const base = { id: 'chatcmpl-stream1', object: 'chat.completion.chunk', created: 1741569952,
    model: 'gpt-4o-2024-08-06', system_fingerprint: 'fp_fc9f1d7035' };
  const chunk = (delta, finish) => `data: ${JSON.stringify({ ...base,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], usage: null })}\n\n`;
  const frames = [chunk({ role: 'assistant', content: '', refusal: null }, null)];
  for (const part of text.match(/.{1,5}/g)) frames.push(chunk({ content: part }, null));
  frames.push(chunk({}, 'stop'));
  frames.push(`data: ${JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: 19, completion_tokens: 10, total_tokens: 29 } })}\n\n`);
  frames.push('data: [DONE]\n\n');
  return frames;
}

const seen = [];
const upstream = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    const json = body ? JSON.parse(body) : {};
    seen.push({ path: req.url, headers: req.headers, body: json });
    const reply = (status, obj) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(obj));
    };
    if (req.url === '/anthropic/v1/messages') {
      if (req.headers['x-api-key'] !== 'sk-ant-upstream') return reply(401, { type: 'error', error: { type: 'authentication_error', message: 'invalid x-api-key' } });
      if (json.stream) return sse(res, anthropicStream('Hello from Anthropic!'));
      return reply(200, json.tools ? ANTHROPIC_TOOL_MESSAGE : ANTHROPIC_MESSAGE);
    }
    if (req.url === '/openai/v1/chat/completions') {
      if (req.headers.authorization !== 'Bearer sk-openai-upstream') return reply(401, { error: { message: 'Incorrect API key', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
      if (json.stream) return sse(res, openaiStream('Hello from OpenAI!'));
      return reply(200, json.tools ? OPENAI_TOOL_COMPLETION : OPENAI_COMPLETION);
    }
    if (req.url === '/openai/v1/embeddings') {
      const inputs = Array.isArray(json.input) ? json.input : [json.input];
      const data = inputs.map((_, i) => {
        const v = new Float32Array([0.25, -0.5, i]);
        const embedding = json.encoding_format === 'base64' ? Buffer.from(v.buffer).toString('base64') : Array.from(v);
        return { object: 'embedding', index: i, embedding };
      });
      return reply(200, { object: 'list', data, model: 'text-embedding-3-small', usage: { prompt_tokens: 8, total_tokens: 8 } });
    }
    reply(404, { error: { message: `no route ${req.url}` } });
  });
});

let child;
let base;
let dataDir;
let relayKey;

async function api(method, path, body, token) {
  const res = await fetch(base + path, {
    method, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

before(async () => {
  await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
  const upstreamUrl = `http://127.0.0.1:${upstream.address().port}`;
  dataDir = mkdtempSync(join(process.env.ATRIUM_TEST_TMPDIR ?? tmpdir(), 'relay-sdk-'));
  child = spawn(ATRIUM, ['serve', '--services', 'relay', '--port', '0', '--data-dir', dataDir,
    '--set', 'log.level=warn'], { stdio: ['ignore', 'pipe', 'inherit'] });
  base = await waitForListening(child);
  const session = await api('POST', '/api/v1/auth/register', { email: 'sdk@example.com', password: 'password-123', name: 'SDK' });
  const admin = session.access_token;
  relayKey = (await api('POST', '/api/v1/keys', { name: 'sdk', scopes: ['relay'] }, admin)).key;
  await api('POST', '/api/v1/relay/accounts', { name: 'anthropic', provider: 'anthropic',
    base_url: `${upstreamUrl}/anthropic`, credentials: { api_key: 'sk-ant-upstream' }, models: ['claude-*'] }, admin);
  await api('POST', '/api/v1/relay/accounts', { name: 'openai', provider: 'openai-compatible',
    base_url: `${upstreamUrl}/openai/v1`, credentials: { api_key: 'sk-openai-upstream' }, models: ['gpt-*', 'text-embedding-*'] }, admin);
});

after(async () => {
  if (child) {
    child.kill('SIGTERM');
    await new Promise((r) => child.on('exit', r));
  }
  upstream.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const anthropic = () => new Anthropic({ apiKey: relayKey, baseURL: base, maxRetries: 0 });
const openai = () => new OpenAI({ apiKey: relayKey, baseURL: `${base}/v1`, maxRetries: 0 });

test('anthropic sdk: messages.create answers exactly what the upstream sent', async () => {
  const msg = await anthropic().messages.create({ model: 'claude-relay-test', max_tokens: 64,
    messages: [{ role: 'user', content: 'Hello' }] });
  assert.deepEqual(msg, ANTHROPIC_MESSAGE);
  const sent = seen.findLast((s) => s.path === '/anthropic/v1/messages');
  assert.equal(sent.headers['x-api-key'], 'sk-ant-upstream');
});

test('anthropic sdk: streaming, event by event', async () => {
  const stream = anthropic().messages.stream({ model: 'claude-relay-test', max_tokens: 64,
    messages: [{ role: 'user', content: 'Hello' }] });
  const types = [];
  stream.on('streamEvent', (e) => types.push(e.type));
  const final = await stream.finalMessage();
  assert.equal(final.content[0].text, 'Hello from Anthropic!');
  assert.equal(final.usage.output_tokens, 6);
  assert.equal(types[0], 'message_start');
  assert.equal(types.at(-1), 'message_stop');
  assert.ok(types.includes('content_block_delta'));
});

test('anthropic sdk: tool use', async () => {
  const msg = await anthropic().messages.create({ model: 'claude-relay-test', max_tokens: 64,
    tools: [{ name: 'get_weather', description: 'Weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }],
    messages: [{ role: 'user', content: 'Weather in Paris?' }] });
  assert.deepEqual(msg, ANTHROPIC_TOOL_MESSAGE);
});

test('anthropic sdk: errors come back typed', async () => {
  await assert.rejects(
    new Anthropic({ apiKey: 'atr_invalid', baseURL: base, maxRetries: 0 }).messages.create({
      model: 'claude-relay-test', max_tokens: 8, messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof Anthropic.AuthenticationError && e.status === 401);
});

test('openai sdk: chat completion passes through', async () => {
  const c = await openai().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hi' }] });
  assert.deepEqual(c, OPENAI_COMPLETION);
});

test('openai sdk: streaming with include_usage', async () => {
  const stream = await openai().chat.completions.create({ model: 'gpt-4o', stream: true,
    stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Hi' }] });
  let text = '';
  let usage;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, 'Hello from OpenAI!');
  assert.equal(usage.total_tokens, 29);
});

test('openai sdk: tool calls', async () => {
  const c = await openai().chat.completions.create({ model: 'gpt-4o',
    tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
    messages: [{ role: 'user', content: 'Weather in Rome?' }] });
  assert.deepEqual(c, OPENAI_TOOL_COMPLETION);
});

test('openai sdk: embeddings (base64 by default, and floats)', async () => {
  const e = await openai().embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b'] });
  assert.equal(e.data.length, 2);
  assert.deepEqual(Array.from(e.data[1].embedding), [0.25, -0.5, 1]);
  const f = await openai().embeddings.create({ model: 'text-embedding-3-small', input: 'a', encoding_format: 'float' });
  assert.deepEqual(f.data[0].embedding, [0.25, -0.5, 0]);
});

test('openai sdk on a claude model: translated, streaming and not', async () => {
  const c = await openai().chat.completions.create({ model: 'claude-relay-test',
    messages: [{ role: 'system', content: 'Be brief' }, { role: 'user', content: 'Hi' }] });
  assert.equal(c.choices[0].message.content, 'Hello from Anthropic!');
  assert.equal(c.choices[0].finish_reason, 'stop');
  assert.equal(c.usage.prompt_tokens, 12);
  const sent = seen.findLast((s) => s.path === '/anthropic/v1/messages');
  assert.equal(sent.body.system, 'Be brief');
  const stream = await openai().chat.completions.create({ model: 'claude-relay-test', stream: true,
    stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Hi' }] });
  let text = '';
  let usage;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, 'Hello from Anthropic!');
  assert.equal(usage.completion_tokens, 6);
});

test('openai sdk: tool calls translated from a claude model', async () => {
  const c = await openai().chat.completions.create({ model: 'claude-relay-test',
    tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
    messages: [{ role: 'user', content: 'Weather in Paris?' }] });
  assert.equal(c.choices[0].finish_reason, 'tool_calls');
  assert.equal(c.choices[0].message.tool_calls[0].function.name, 'get_weather');
  assert.deepEqual(JSON.parse(c.choices[0].message.tool_calls[0].function.arguments), { city: 'Paris' });
});

test('anthropic sdk on a gpt model: translated streaming', async () => {
  const stream = anthropic().messages.stream({ model: 'gpt-4o', max_tokens: 64,
    messages: [{ role: 'user', content: 'Hello' }] });
  const final = await stream.finalMessage();
  assert.equal(final.content[0].text, 'Hello from OpenAI!');
  assert.equal(final.usage.output_tokens, 10);
});
