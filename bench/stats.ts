// Medians, ratios and the results table shared by the benchmark scenarios.
import { mkdirSync, writeFileSync } from "node:fs";

export interface Row {
  scenario: string;
  strataMs: number;
  engineMs: number;
  ratio: number;
  target: number;
  runs: number;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Runs both sides alternately so drift on the machine hits them alike. */
export async function compare(
  runs: number, strata: () => Promise<void>, engine: () => Promise<void>,
): Promise<{ strataMs: number; engineMs: number }> {
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < 3; i++) {
    await strata();
    await engine();
  }
  for (let i = 0; i < runs; i++) {
    const order = i % 2 === 0 ? [strata, engine] : [engine, strata];
    for (const fn of order) {
      const start = performance.now();
      await fn();
      (fn === strata ? a : b).push(performance.now() - start);
    }
  }
  return { strataMs: median(a), engineMs: median(b) };
}

export function printTable(rows: Row[]): void {
  const header = ["scenario", "strata ms", "engine ms", "ratio", "target", "runs"];
  const body = rows.map((r) => [r.scenario, r.strataMs.toFixed(2), r.engineMs.toFixed(2), r.ratio.toFixed(3), `<= ${r.target}`, String(r.runs)]);
  const widths = header.map((_, i) => Math.max(...[header, ...body].map((row) => row[i]!.length)));
  for (const row of [header, ...body]) console.log(row.map((cell, i) => cell.padEnd(widths[i]!)).join("  "));
}

export function writeResults(file: string, rows: Row[], meta: Record<string, unknown>): void {
  mkdirSync(new URL(".", `file://${file}`).pathname, { recursive: true });
  writeFileSync(file, `${JSON.stringify({ ...meta, results: rows }, null, 2)}\n`);
}
