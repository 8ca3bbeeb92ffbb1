// Writes expected.json: the ids and decoded text Hugging Face's
// tokenizers.js (npm @huggingface/tokenizers 0.2.0) gives for the test
// texts with the tokenizer.json files of this folder. Run from a folder
// where the package is installed:
//   node reference.mjs /path/to/testdata
import { Tokenizer } from "@huggingface/tokenizers";
import fs from "node:fs";
import path from "node:path";

const dir = process.argv[2] ?? ".";
const texts = {
  bytelevel_bpe: ["the cat sat on the mat.", "Hello world, hello there!", "they don't know what they're doing",
    "numbers 12345 and   spaces\n\nnew line", "héllo wörld ☃", "<|endoftext|>the end", " leading space", "trailing  "],
  split_bytelevel_bpe: ["the cat sat on the mat.", "DON'T stop, they'RE here", "numbers 1234567 and   spaces\n\n  new line  ",
    "tabs\tand\r\nwindows", "héllo wörld ☃!!", "x  \n y", "   "],
  wordpiece: ["The cat sat on the mat.", "Hello, World!", "playing played plays", "unbelievable", "don't",
    "Café naïve", "abc 123", "中文 text", "qwerty [MASK] the"],
  metaspace_bpe: ["the cat sat on the mat.", "hello world", "the  cat", "héllo ☃", "<s>the"],
  metaspace_first_bpe: ["the cat sat on the mat.", "hello world", "<s>the cat", "the <s> cat", " the"],
  word_level: ["the small cat sat on the mat", "he went to the big house", "she is happy", "it ran home"],
};
const out = {};
for (const [name, list] of Object.entries(texts)) {
  const json = JSON.parse(fs.readFileSync(path.join(dir, name + ".json"), "utf8"));
  const tok = new Tokenizer(json, {});
  out[name] = list.map((text) => {
    const ids = tok.encode(text).ids.map(Number);
    const plain = tok.encode(text, { add_special_tokens: false }).ids.map(Number);
    return { text, ids, ids_no_special: plain, decoded: tok.decode(ids, { skip_special_tokens: true }) };
  });
}
fs.writeFileSync(path.join(dir, "expected.json"), JSON.stringify(out, null, 1) + "\n");
