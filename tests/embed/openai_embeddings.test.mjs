// The official `openai` npm client as a real client of `atrium embed`'s POST /v1/embeddings
// (directly, not through the relay), on a tiny random BERT model written by the test: float and
// base64 encodings, dimensions, usage, list and token-id inputs, errors as the SDK surfaces them,
// and the Prometheus names on /metrics. Run by ctest (embed_openai_sdk_test) with ATRIUM_BIN set;
// `node --test` in this folder otherwise. The `openai` package is tests/relay's (npm ci there,
// scripts/setup does it): this folder has no node_modules of its own.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from '../relay/node_modules/openai/index.mjs';
import { writeTinyBert } from '../browser/tinybert.mjs';
import { waitForListening } from '../listening.mjs';

const ATRIUM = process.env.ATRIUM_BIN ?? join(process.cwd(), '../../build/bin/atrium');
const HIDDEN = 32;  // tinybert.mjs
const TOLERANCE = 1e-6;

let child;
let base;
let workDir;

before(async () => {
  workDir = mkdtempSync(join(process.env.ATRIUM_TEST_TMPDIR ?? tmpdir(), 'embed-sdk-'));
  writeTinyBert(join(workDir, 'tiny'));
  child = spawn(ATRIUM, ['embed', '--model', `tiny=${join(workDir, 'tiny')}`, '--port', '0',
    '--data-dir', join(workDir, 'data'), '--set', 'log.level=warn'],
  // ATRIUM_* variables are configuration keys to atrium: the test's own stay out of its way.
  { stdio: ['ignore', 'pipe', 'inherit'], env: Object.fromEntries(Object.entries(process.env)
    .filter(([k]) => k !== 'ATRIUM_BIN' && k !== 'ATRIUM_TEST_TMPDIR')) });
  base = await waitForListening(child, { what: 'atrium embed' });
});

after(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGTERM');
    await new Promise((r) => child.on('exit', r));
  }
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

// `atrium embed` is public: any key will do, and nothing is retried behind the test's back.
const client = () => new OpenAI({ apiKey: 'sk-local', baseURL: `${base}/v1`, maxRetries: 0 });

const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

function assertClose(actual, expected, tolerance = TOLERANCE) {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < actual.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tolerance,
      `element ${i}: ${actual[i]} vs ${expected[i]}`);
  }
}

// Token ids of `text` as the server tokenizes it (TEI's /tokenize on the same model).
async function tokenIds(text) {
  const res = await fetch(`${base}/tokenize`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: text }),
  });
  assert.equal(res.status, 200);
  return (await res.json())[0].map((t) => t.id);
}

async function embedFloat(input, extra = {}) {
  return client().embeddings.create({ model: 'tiny', input, encoding_format: 'float', ...extra });
}

test('float encoding: the OpenAI response shape, a unit vector and usage in tokens', async () => {
  const text = 'the cat sat on the mat';
  const r = await embedFloat(text);
  assert.equal(r.object, 'list');
  assert.equal(r.model, 'tiny');
  assert.equal(r.data.length, 1);
  assert.equal(r.data[0].object, 'embedding');
  assert.equal(r.data[0].index, 0);
  assert.equal(r.data[0].embedding.length, HIDDEN);
  assert.ok(Math.abs(norm(r.data[0].embedding) - 1) < 1e-5);
  const tokens = (await tokenIds(text)).length;  // [CLS] … [SEP]
  assert.equal(r.usage.prompt_tokens, tokens);
  assert.equal(r.usage.total_tokens, tokens);
});

test('base64 encoding: the SDK default (decoded by the SDK) and explicit base64 match float', async () => {
  const text = 'a man is playing a flute.';
  const float = (await embedFloat(text)).data[0].embedding;
  // Without encoding_format the SDK asks for base64 and decodes the float32 bytes itself.
  const byDefault = await client().embeddings.create({ model: 'tiny', input: text });
  assert.ok(Array.isArray(byDefault.data[0].embedding));
  assertClose(byDefault.data[0].embedding, float);
  const explicit = await client().embeddings.create({ model: 'tiny', input: text, encoding_format: 'base64' });
  const b64 = explicit.data[0].embedding;
  assert.equal(typeof b64, 'string');
  const bytes = Buffer.from(b64, 'base64');
  assert.equal(bytes.length, HIDDEN * 4);
  const decoded = Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, HIDDEN));
  assertClose(decoded, float);
  assert.equal(explicit.usage.prompt_tokens, byDefault.usage.prompt_tokens);
});

test('dimensions: Matryoshka truncation of the full vector, renormalized', async () => {
  const text = 'the big red dog runs fast';
  const full = (await embedFloat(text)).data[0].embedding;
  const cut = (await embedFloat(text, { dimensions: 8 })).data[0].embedding;
  assert.equal(cut.length, 8);
  assert.ok(Math.abs(norm(cut) - 1) < 1e-5);
  const head = full.slice(0, 8);
  const n = norm(head);
  assertClose(cut, head.map((x) => x / n), 1e-5);
  const viaBase64 = await client().embeddings.create({ model: 'tiny', input: text, dimensions: 8 });
  assertClose(viaBase64.data[0].embedding, cut);
});

test('list input: one embedding per input, in order, each as if sent alone, usage summed', async () => {
  const texts = ['the cat', 'a dog runs fast', 'hello world', 'the slow blue cat sat on a big mat .'];
  const r = await embedFloat(texts);
  assert.equal(r.data.length, texts.length);
  let tokens = 0;
  for (let i = 0; i < texts.length; i++) {
    assert.equal(r.data[i].index, i);
    const alone = (await embedFloat(texts[i])).data[0].embedding;
    assertClose(r.data[i].embedding, alone);
    tokens += (await tokenIds(texts[i])).length;
  }
  assert.equal(r.usage.prompt_tokens, tokens);
  assert.equal(r.usage.total_tokens, tokens);
});

test('token-id inputs embed exactly like the text they came from', async () => {
  const text = 'the man plays the flute';
  const ids = await tokenIds(text);
  const fromText = (await embedFloat(text)).data[0].embedding;
  const one = await embedFloat(ids);
  assertClose(one.data[0].embedding, fromText);
  assert.equal(one.usage.prompt_tokens, ids.length);
  const many = await embedFloat([ids, ids]);
  assert.equal(many.data.length, 2);
  assertClose(many.data[1].embedding, fromText);
});

test('errors arrive as the SDK\'s typed errors with OpenAI\'s type, param and code', async () => {
  const expectError = async (body, status, param, Class) => {
    await assert.rejects(client().embeddings.create({ model: 'tiny', encoding_format: 'float', ...body }), (err) => {
      assert.ok(err instanceof Class, `${err.constructor.name}: ${err.message}`);
      assert.equal(err.status, status);
      assert.equal(err.param, param);
      assert.equal(err.type, 'invalid_request_error');
      assert.ok(err.message.includes(param), err.message);
      return true;
    });
  };
  await expectError({ input: 'the cat', model: 'text-embedding-3-large' }, 404, 'model', OpenAI.NotFoundError);
  await assert.rejects(embedFloat('the cat', { model: 'nope' }), (err) => err.code === 'model_not_found');
  await expectError({ input: [] }, 400, 'input', OpenAI.BadRequestError);
  await expectError({ input: ['the cat', ''] }, 400, 'input', OpenAI.BadRequestError);
  await expectError({ input: [[]] }, 400, 'input', OpenAI.BadRequestError);
  await expectError({ input: [1, 2, 999999] }, 400, 'input', OpenAI.BadRequestError);
  await expectError({ input: 'the cat', dimensions: 0 }, 400, 'dimensions', OpenAI.BadRequestError);
  await expectError({ input: 'the cat', dimensions: HIDDEN + 1 }, 400, 'dimensions', OpenAI.BadRequestError);
  await expectError({ input: 'the cat', encoding_format: 'int8' }, 400, 'encoding_format', OpenAI.BadRequestError);
  // After all that the service still answers.
  assert.equal((await embedFloat('the cat')).data.length, 1);
});

test('/metrics names queue depth, batch sizes, tokens, inference time and cache hits', async () => {
  await embedFloat('the cat');  // served from the cache by now
  const text = await (await fetch(`${base}/metrics`)).text();
  for (const sample of [
    'embed_queue_depth{model="tiny"}',
    'embed_batch_size_bucket{model="tiny",le="1"}',
    'embed_batch_tokens_bucket{model="tiny",',
    'embed_tokens_total{model="tiny"}',
    'embed_sequences_total{model="tiny"}',
    'embed_inference_seconds_bucket{model="tiny",',
    'embed_queue_seconds_count{model="tiny"}',
    'embed_rejected_total{model="tiny"}',
    'embed_expired_total{model="tiny"}',
    'embed_cache_hits_total',
    'embed_cache_misses_total',
  ]) {
    assert.ok(text.includes(sample), `missing ${sample}`);
  }
  const hits = Number(text.match(/^embed_cache_hits_total (\d+)/m)?.[1]);
  assert.ok(hits >= 1, `cache hits: ${hits}`);
  const tokens = Number(text.match(/^embed_tokens_total\{model="tiny"\} (\d+)/m)?.[1]);
  assert.ok(tokens > 0, `tokens: ${tokens}`);
});
