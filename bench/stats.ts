// Medians, ratios and the results table shared by the benchmark scenarios.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";

export interface Row {
  scenario: string;
  strataMs: number;
  engineMs: number;
  ratio: number;
  target: number;
  runs: number;
  /** Extra figures: throughput, peak memory. */
  note?: string;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** A timed step; what it returns is run after the clock stops (cleanup). */
export type Step = () => Promise<void | (() => Promise<void>)>;

/** Runs both sides alternately so drift on the machine hits them alike. */
export async function compare(runs: number, strata: Step, engine: Step, warmup = 3): Promise<{ strataMs: number; engineMs: number }> {
  const a: number[] = [];
  const b: number[] = [];
  const timed = async (fn: Step, into?: number[]) => {
    const start = performance.now();
    const cleanup = await fn();
    into?.push(performance.now() - start);
    if (cleanup) await cleanup();
  };
  for (let i = 0; i < warmup; i++) {
    await timed(strata);
    await timed(engine);
  }
  for (let i = 0; i < runs; i++) {
    if (i % 2 === 0) {
      await timed(strata, a);
      await timed(engine, b);
    } else {
      await timed(engine, b);
      await timed(strata, a);
    }
  }
  return { strataMs: median(a), engineMs: median(b) };
}

export function printTable(rows: Row[]): void {
  const header = ["scenario", "strata ms", "baseline ms", "ratio", "target", "runs", "note"];
  const body = rows.map((r) => [r.scenario, r.strataMs.toFixed(2), r.engineMs.toFixed(2), r.ratio.toFixed(3), `<= ${r.target}`, String(r.runs), r.note ?? ""]);
  const widths = header.map((_, i) => Math.max(...[header, ...body].map((row) => row[i]!.length)));
  for (const row of [header, ...body]) console.log(row.map((cell, i) => cell.padEnd(widths[i]!)).join("  "));
}

export function writeResults(file: string, rows: Row[], meta: Record<string, unknown>): void {
  mkdirSync(new URL(".", `file://${file}`).pathname, { recursive: true });
  writeFileSync(file, `${JSON.stringify({ ...meta, results: rows }, null, 2)}\n`);
}

/** New rows replace rows of the same scenario; with partial, other rows are kept. */
export function mergeWithLatest(file: string, rows: Row[], partial: boolean): Row[] {
  if (!partial) return rows;
  try {
    const previous = (JSON.parse(readFileSync(file, "utf8")) as { results: Row[] }).results;
    const fresh = new Set(rows.map((r) => r.scenario));
    return [...previous.filter((r) => !fresh.has(r.scenario)), ...rows];
  } catch {
    return rows;
  }
}
