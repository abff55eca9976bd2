// Medians, ratios and the results table shared by the benchmark scenarios.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";

export interface Row {
  scenario: string;
  strataMs: number;
  engineMs: number;
  ratio: number;
  target: number;
  runs: number;
  /** 95th percentiles of the timed runs, where a scenario has enough runs to have one. */
  strataP95Ms?: number;
  engineP95Ms?: number;
  /** Extra figures: throughput, peak memory. */
  note?: string;
  /** The run this row comes from: a partial run keeps older rows, each with its own run. */
  run?: RunInfo;
}

/** When, on what machine and against what engine a row was measured. */
export interface RunInfo {
  date: string;
  machine: { cpus: number; model?: string; node: string };
  engine: string;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The nearest-rank 95th percentile, in the values' unit; NaN when empty. */
export function p95(values: number[]): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)]!;
}

/** A timed step; what it returns is run after the clock stops (cleanup). */
export type Step = () => Promise<void | (() => Promise<void>)>;

/** Runs both sides alternately so drift on the machine hits them alike. */
export async function compare(runs: number, strata: Step, engine: Step, warmup = 3): Promise<{ strataMs: number; engineMs: number; strataP95Ms: number; engineP95Ms: number }> {
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
  return { strataMs: median(a), engineMs: median(b), strataP95Ms: p95(a), engineP95Ms: p95(b) };
}

export function printTable(rows: Row[]): void {
  const header = ["scenario", "strata ms", "baseline ms", "strata p95", "baseline p95", "ratio", "target", "runs", "note"];
  const fixed = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? "" : n.toFixed(2));
  const body = rows.map((r) => [r.scenario, fixed(r.strataMs), fixed(r.engineMs), fixed(r.strataP95Ms), fixed(r.engineP95Ms), r.ratio.toFixed(3), `<= ${r.target}`, String(r.runs), r.note ?? ""]);
  const widths = header.map((_, i) => Math.max(...[header, ...body].map((row) => row[i]!.length)));
  for (const row of [header, ...body]) console.log(row.map((cell, i) => cell.padEnd(widths[i]!)).join("  "));
}

/** Writes the rows, each carrying the run it comes from (`run`), as `{ results }`. */
export function writeResults(file: string, rows: Row[]): void {
  mkdirSync(new URL(".", `file://${file}`).pathname, { recursive: true });
  writeFileSync(file, `${JSON.stringify({ results: rows }, null, 2)}\n`);
}

/**
 * This run's rows, stamped with `run`; with partial, the rows of other
 * scenarios from the file are kept with their own run (a file from before rows
 * carried their run gives its top-level date, machine and engine to its rows).
 */
export function mergeWithLatest(file: string, rows: Row[], partial: boolean, run: RunInfo): Row[] {
  const stamped = rows.map((r) => ({ ...r, run }));
  if (!partial) return stamped;
  try {
    const previous = JSON.parse(readFileSync(file, "utf8")) as { results: Row[]; date?: string; machine?: RunInfo["machine"]; engine?: string };
    const legacy = previous.date ? { date: previous.date, machine: previous.machine!, engine: previous.engine ?? "" } : undefined;
    const fresh = new Set(rows.map((r) => r.scenario));
    return [...previous.results.filter((r) => !fresh.has(r.scenario)).map((r) => ({ ...r, run: r.run ?? legacy })), ...stamped];
  } catch {
    return stamped;
  }
}
