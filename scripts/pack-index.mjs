// Writes dist/collector/logrules/packs/index.json: each built-in pack's YAML document, parsed
// here with the options the loader uses (logrules/pack.ts, PACK_INDEX), so that reading the
// built-in packs at run time needs no YAML parser. A pack that does not parse fails the build.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseDocument } from "yaml";

const dir = path.resolve(import.meta.dirname, "../dist/collector/logrules/packs");
const documents = [];
for (const name of readdirSync(dir)
  .filter((n) => /\.ya?ml$/.test(n))
  .sort()) {
  const doc = parseDocument(readFileSync(path.join(dir, name), "utf8"), {
    uniqueKeys: true,
    prettyErrors: true,
  });
  if (doc.errors.length > 0) throw new Error(`${name}: ${doc.errors[0].message}`);
  documents.push([name, doc.toJS()]);
}
writeFileSync(path.join(dir, "index.json"), `${JSON.stringify(documents)}\n`);
