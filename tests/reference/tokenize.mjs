// Reference tokenizer for Atrium's parity tests (libs/infer/test/tokenizer_parity_test.cc).
//
// Usage: node tokenize.mjs TOKENIZER_JSON INPUT_FILE [--no-special]
// INPUT_FILE holds one JSON value per line: a string, or a [first, second] pair of strings (so
// inputs may contain newlines and control characters). Prints, for each input line, the token ids as a JSON array on one line.
import { readFileSync } from "node:fs";
import { Tokenizer } from "@huggingface/tokenizers";

const [tokenizerPath, inputPath, ...flags] = process.argv.slice(2);
if (!tokenizerPath || !inputPath) {
  console.error("usage: node tokenize.mjs TOKENIZER_JSON INPUT_FILE [--no-special]");
  process.exit(2);
}
const addSpecialTokens = !flags.includes("--no-special");
const tokenizer = new Tokenizer(JSON.parse(readFileSync(tokenizerPath, "utf8")), {});
const out = [];
for (const line of readFileSync(inputPath, "utf8").split("\n")) {
  if (line === "") continue;
  const input = JSON.parse(line);
  const [text, pair] = Array.isArray(input) ? input : [input, null];
  const { ids } = tokenizer.encode(text, { text_pair: pair, add_special_tokens: addSpecialTokens });
  out.push(JSON.stringify(ids.map(Number)));
}
process.stdout.write(out.join("\n") + (out.length ? "\n" : ""));
