// gen/ is committed: it must be what `npm run generate` writes from ../../proto today.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { PACKAGE_DIR } from "./helpers/servers.js";

const run = promisify(execFile);

async function files(dir, prefix = "") {
  const out = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const rel = path.join(prefix, entry.name);
    if (entry.isDirectory()) out.push(...(await files(path.join(dir, entry.name), rel)));
    else out.push(rel);
  }
  return out.sort();
}

test("the committed gen/ matches a fresh buf generate", { timeout: 20000 }, async () => {
  const tmp = await mkdtemp(path.join(os.tmpdir(), "mac-client-gen-"));
  try {
    const bin = path.join(PACKAGE_DIR, "node_modules", ".bin");
    await run(
      path.join(bin, "buf"),
      ["generate", "--template", "buf.gen.yaml", "-o", tmp, "../../proto"],
      {
        cwd: PACKAGE_DIR,
        env: { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH}` },
        timeout: 15000,
      },
    );
    const committed = path.join(PACKAGE_DIR, "gen");
    const fresh = path.join(tmp, "gen");
    const [want, got] = [await files(fresh), await files(committed)];
    assert.deepEqual(got, want, "gen/ holds other files than buf generate writes: npm run generate");
    for (const file of want) {
      const [a, b] = await Promise.all([
        readFile(path.join(committed, file), "utf8"),
        readFile(path.join(fresh, file), "utf8"),
      ]);
      assert.ok(a === b, `gen/${file} is stale: run npm run generate and commit gen/`);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});
