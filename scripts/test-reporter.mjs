// A node:test reporter for scripts/run-tests.mjs: appends one JSON line per
// top-level test to the file named by STRATA_TEST_RESULTS as each test ends,
// synchronously, so the record survives a forced exit of the test process.
import { appendFileSync } from "node:fs";

export default async function* results(source) {
  const out = process.env.STRATA_TEST_RESULTS;
  for await (const event of source) {
    if (!out || (event.type !== "test:pass" && event.type !== "test:fail") || event.data.nesting !== 0) continue;
    const error = event.data.details?.error;
    appendFileSync(out, `${JSON.stringify({
      name: event.data.name,
      ok: event.type === "test:pass",
      skip: !!event.data.skip,
      todo: !!event.data.todo,
      failureType: error?.failureType,
      message: error ? String(error.cause?.message ?? error.message ?? error).split("\n")[0].slice(0, 300) : undefined,
    })}\n`);
  }
}
