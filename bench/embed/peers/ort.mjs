// ONNX Runtime peer of Atrium's embedding benchmark (bench/embed/peers/run drives it).
//
//   node ort.mjs MODEL.onnx INPUTS.json [--check ATRIUM.f32] [--min-cosine 0.9999] [--threads 2]
//                [--min-seconds 10] [--single-iters 200] [--optimized-model OUT.onnx]
//
// Loads the ONNX export of the same weights (torch_bench.py --export) with onnxruntime-node on the
// CPU execution provider, fp32, intra-op threads = --threads, graph optimization level "all".
// --check embeds the first batch and compares with Atrium's vectors (batch × hidden float32):
// exits 1 when a cosine similarity is below --min-cosine. Then times every batch of INPUTS.json
// padded to its longest sequence (whole passes until --min-seconds), then the single short
// request, and prints one JSON object like atrium_embed_bench.
import { readFileSync } from 'node:fs';
import ort from 'onnxruntime-node';

function parseArgs(argv) {
  const opts = { threads: 2, minSeconds: 10, singleIters: 200, minCosine: 0.9999 };
  const positional = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    const v = argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    if (a === '--check') opts.check = v;
    else if (a === '--min-cosine') opts.minCosine = Number(v);
    else if (a === '--threads') opts.threads = Number(v);
    else if (a === '--min-seconds') opts.minSeconds = Number(v);
    else if (a === '--single-iters') opts.singleIters = Number(v);
    else if (a === '--optimized-model') opts.optimizedModel = v;
    else throw new Error(`unknown flag ${a}`);
  }
  if (positional.length !== 2) throw new Error('usage: node ort.mjs MODEL.onnx INPUTS.json [flags]');
  [opts.model, opts.inputs] = positional;
  return opts;
}

// Right-padded input_ids / attention_mask tensors of one batch.
function padded(batch) {
  const n = Math.max(...batch.map((s) => s.length));
  const ids = new BigInt64Array(batch.length * n);
  const mask = new BigInt64Array(batch.length * n);
  batch.forEach((s, i) => {
    s.forEach((id, j) => {
      ids[i * n + j] = BigInt(id);
      mask[i * n + j] = 1n;
    });
  });
  return {
    feeds: {
      input_ids: new ort.Tensor('int64', ids, [batch.length, n]),
      attention_mask: new ort.Tensor('int64', mask, [batch.length, n]),
    },
    padded: batch.length * n,
  };
}

function percentile(sorted, p) {
  const rank = Math.max(1, Math.min(sorted.length, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1];
}

const now = () => Number(process.hrtime.bigint()) / 1e9;

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const inputs = JSON.parse(readFileSync(opts.inputs, 'utf8'));
  const sessionOptions = {
    executionProviders: ['cpu'],
    intraOpNumThreads: opts.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
  if (opts.optimizedModel) sessionOptions.optimizedModelFilePath = opts.optimizedModel;
  const session = await ort.InferenceSession.create(opts.model, sessionOptions);
  const batches = inputs.batches.map(padded);

  let ok = true;
  if (opts.check) {
    const out = (await session.run(batches[0].feeds)).embedding;
    const [rows, hidden] = out.dims;
    const buf = readFileSync(opts.check);
    const ref = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    if (ref.length !== rows * hidden) throw new Error(`${opts.check}: expected ${rows}×${hidden} floats`);
    let worst = 1;
    for (let r = 0; r < rows; r++) {
      let dot = 0, a2 = 0, b2 = 0;
      for (let c = 0; c < hidden; c++) {
        const a = out.data[r * hidden + c], b = ref[r * hidden + c];
        dot += a * b;
        a2 += a * a;
        b2 += b * b;
      }
      worst = Math.min(worst, dot / Math.sqrt(a2 * b2));
    }
    ok = worst >= opts.minCosine;
    console.error(`ort check: min cosine vs atrium ${worst.toFixed(7)} over ${rows} sequences ` +
                  `(${ok ? 'ok' : 'BELOW ' + opts.minCosine})`);
  }

  for (const b of batches.slice(0, 2)) await session.run(b.feeds);
  const tokens = inputs.batches.flat().reduce((n, s) => n + s.length, 0);
  const paddedTokens = batches.reduce((n, b) => n + b.padded, 0);
  const sequences = inputs.batches.reduce((n, b) => n + b.length, 0);
  const latencies = [];
  let passes = 0;
  const start = now();
  do {
    for (const b of batches) {
      const t0 = now();
      await session.run(b.feeds);
      latencies.push(now() - t0);
    }
    passes++;
  } while (now() - start < opts.minSeconds);
  const elapsed = now() - start;

  const single = padded([inputs.single]).feeds;
  const singleTimes = [];
  for (let i = 0; i < 10 + opts.singleIters; i++) {
    const t0 = now();
    await session.run(single);
    if (i >= 10) singleTimes.push(now() - t0);
  }
  latencies.sort((a, b) => a - b);
  singleTimes.sort((a, b) => a - b);
  console.log(JSON.stringify({
    engine: 'onnxruntime',
    version: ort.env.versions.node,
    threads: opts.threads,
    batch: inputs.batch_size,
    batches: batches.length,
    passes,
    seconds: elapsed,
    sequences_per_s: (sequences * passes) / elapsed,
    tokens_per_s: (tokens * passes) / elapsed,
    padded_tokens_per_s: (paddedTokens * passes) / elapsed,
    batch_p50_ms: percentile(latencies, 50) * 1e3,
    batch_p99_ms: percentile(latencies, 99) * 1e3,
    single_tokens: inputs.single.length,
    single_p50_ms: percentile(singleTimes, 50) * 1e3,
    single_p99_ms: percentile(singleTimes, 99) * 1e3,
  }));
  return ok ? 0 : 1;
}

main().then((code) => process.exit(code), (err) => {
  console.error(`ort.mjs: ${err.message}`);
  process.exit(2);
});
