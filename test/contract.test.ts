// The committed OpenAPI document is the one the contract generates, and every
// error code has one status.
import { readFileSync } from "node:fs";
import { test } from "node:test";
import assert from "node:assert/strict";
import { apiVersion, errorCodes, errorStatus, openApiYaml, StrataError } from "@strata/contract";

test("spec/openapi.yaml matches the contract (run `npm run spec` after changing a schema)", () => {
  const committed = readFileSync(new URL("../../spec/openapi.yaml", import.meta.url), "utf8");
  const generated = openApiYaml(apiVersion);
  if (committed !== generated) {
    const line = committed.split("\n").findIndex((text, i) => text !== generated.split("\n")[i]);
    assert.fail(`spec/openapi.yaml differs from the contract from line ${line + 1}; run \`npm run spec\``);
  }
});

test("every error code maps to a 4xx or 5xx status, and errors rebuild from their body", () => {
  for (const code of errorCodes) {
    const status = errorStatus[code];
    assert.ok(status >= 400 && status < 600, `${code} -> ${status}`);
    const rebuilt = StrataError.fromBody(new StrataError(code, "m").toBody(), status);
    assert.equal(rebuilt.code, code);
    assert.equal(rebuilt.status, status);
  }
  assert.equal(StrataError.fromBody({ error: { code: "made_up", message: "x" } }, 418).code, "internal");
});
