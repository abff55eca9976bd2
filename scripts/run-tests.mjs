// Runs every compiled test file with node's test runner, several files at a
// time: each file starts its own servers with their own homes.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function find(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name === "node_modules") continue;
    if (statSync(path).isDirectory()) find(path, out);
    else if (name.endsWith(".test.js")) out.push(path);
  }
  return out;
}

const roots = ["test/dist", ...readdirSync("packages").map((p) => join("packages", p, "dist"))];
const files = roots.flatMap((root) => {
  try {
    return find(root);
  } catch {
    return [];
  }
});
const filter = process.argv.slice(2);
const selected = filter.length ? files.filter((file) => filter.some((f) => file.includes(f))) : files;
const result = spawnSync(process.execPath, ["--test", "--test-concurrency=4", "--test-reporter=spec", ...selected], { stdio: "inherit" });
process.exit(result.status ?? 1);
