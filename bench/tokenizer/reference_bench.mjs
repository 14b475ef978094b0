// The peer of tokenizer_bench: the reference @huggingface/tokenizers (npm, tests/reference) encoding
// the same STS sentences with the same tokenizer.json. Prints tokens/s as one JSON object.
// Usage: node bench/tokenizer/reference_bench.mjs DATA_DIR [seconds]
import { readFileSync } from "node:fs";

const [dataDir = "../shared/data", seconds = "3"] = process.argv.slice(2);
const { Tokenizer } = await import(
  new URL("../../tests/reference/node_modules/@huggingface/tokenizers/dist/tokenizers.mjs",
          import.meta.url).href);
const tokenizer = new Tokenizer(
  JSON.parse(readFileSync(`${dataDir}/minilm-tokenizer/tokenizer.json`, "utf8")), {});
const sentences = [];
for (const row of readFileSync(`${dataDir}/sts-test.csv`, "utf8").split("\n")) {
  const f = row.split("\t");
  if (f.length >= 7) sentences.push(f[5], f[6]);
}
let tokens = 0;
const start = process.hrtime.bigint();
const limit = Number(seconds) * 1e9;
while (Number(process.hrtime.bigint() - start) < limit) {
  for (const s of sentences) tokens += tokenizer.encode(s).ids.length;
}
const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
console.log(JSON.stringify({ tokens_per_s: tokens / elapsed }));
