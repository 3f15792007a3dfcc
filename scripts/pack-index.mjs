// Writes dist/collector/logrules/packs/index.json: the built-in packs' YAML documents, parsed by
// the loader itself (logrules/pack.ts: packDocuments, PACK_INDEX), so that reading the built-in
// packs at run time needs no YAML parser. A pack that does not parse, or is no valid pack, fails
// the build.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { BUILTIN_PACK_DIR, checkedPack, PACK_INDEX, packDocuments } from "../dist/collector/logrules/pack.js";

const { documents, errors } = await packDocuments(BUILTIN_PACK_DIR);
for (const [name, data] of documents) {
  const pack = checkedPack(data, path.join(BUILTIN_PACK_DIR, name));
  if ("message" in pack) errors.push(pack);
}
if (errors.length > 0) {
  for (const error of errors) console.error(`${error.file}: ${error.message}`);
  process.exit(1);
}
writeFileSync(path.join(BUILTIN_PACK_DIR, PACK_INDEX), `${JSON.stringify(documents)}\n`);
