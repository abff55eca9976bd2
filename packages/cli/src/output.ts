// How the CLI prints: human tables by default, JSON with --json.
import type { SandboxInfo } from "@strata/sdk";

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? "").length))) ?? [];
  return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd()).join("\n");
}

export function sandboxTable(sandboxes: SandboxInfo[]): string {
  const rows = [["ID", "NAME", "STATUS", "IMAGE", "CREATED"]];
  for (const s of sandboxes) rows.push([s.id, s.name ?? "", s.status, s.image, s.createdAt]);
  return table(rows);
}

export function sandboxDetails(s: SandboxInfo): string {
  const lines: [string, string][] = [
    ["id", s.id],
    ["name", s.name ?? ""],
    ["status", s.status + (s.exitCode !== undefined ? ` (exit ${s.exitCode})` : "")],
    ["image", s.image],
    ["isolation", s.isolation],
    ["network", String(s.network)],
    ["labels", Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(", ")],
    ["created", s.createdAt],
    ["expires", s.expiresAt ?? ""],
  ];
  return lines.filter(([, value]) => value !== "").map(([key, value]) => `${key.padEnd(10)} ${value}`).join("\n");
}
