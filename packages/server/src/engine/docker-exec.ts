// How an exec is ended as a whole. The Engine API has no "kill exec", so every
// exec in a container that has /bin/sh runs under a one-line wrapper that
// reports its pid on stderr and then becomes the command (`exec "$@"`). The
// engine starts each exec as the leader of its own session and process group,
// so that pid names the command's session. Ending it is a second exec, as
// root, that stops every process of that session, of that process group, or
// descended from one of them (stopped processes cannot fork), then kills them
// all. Processes that left both the session and the tree (a daemon whose
// parent already exited) are out of reach.
//
// Without /bin/sh the wrapper cannot run: on a runc container of a local
// engine the same stop-then-kill is done from the host through /proc; on
// gVisor (whose processes are not host processes) nothing can end it, and the
// caller is told so.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** The shell the wrapper and the killer run under. */
export const shellPath = "/bin/sh";

/** The command wrapped so that its first line on stderr is `<token> <pid>`. */
export function wrapCommand(cmd: string[], token: string): string[] {
  return [shellPath, "-c", `echo "${token} $$" >&2; exec "$@"`, "sh", ...cmd];
}

/**
 * Stops, then kills, the session `$1` and everything descended from it. Only
 * shell builtins, so it needs no binary in the image and no fork of its own.
 * Prints nothing; exits 0.
 */
const killScript = `r=$1
seen=" "
n=0
while [ "$n" -lt 200 ]; do
  n=$((n + 1))
  new=
  for f in /proc/[0-9]*/stat; do
    IFS= read -r l 2>/dev/null < "$f" || continue
    p=\${f#/proc/}
    p=\${p%/stat}
    case "$seen" in *" $p "*) continue ;; esac
    [ "$p" = 1 ] && continue
    [ "$p" = "$$" ] && continue
    set -- \${l##*") "}
    case "$seen" in
      *" $2 "*) ;;
      *) [ "$p" = "$r" ] || [ "$4" = "$r" ] || [ "$3" = "$r" ] || continue ;;
    esac
    kill -s STOP "$p" 2>/dev/null
    seen="$seen$p "
    new=1
  done
  [ -n "$new" ] || break
done
for p in $seen; do kill -s KILL "$p" 2>/dev/null; done
exit 0`;

/** The argv of the exec that ends the wrapped command whose pid is `pid`. */
export function killCommand(pid: number): string[] {
  return [shellPath, "-c", killScript, "strata-kill", String(pid)];
}

/**
 * Takes stderr until the wrapper's `<token> <pid>` line, passes everything
 * else on unchanged, and resolves `pid` with the number (or null when the
 * stream ended without it, or when more than 64 KiB came first).
 */
export class PidLine {
  readonly pid: Promise<number | null>;
  private settle!: (pid: number | null) => void;
  private held: Buffer[] | null = [];
  private heldBytes = 0;

  constructor(private readonly token: string, private readonly forward: (data: Buffer) => void) {
    this.pid = new Promise((resolve) => (this.settle = resolve));
  }

  write(data: Buffer): void {
    if (!this.held) return this.forward(data);
    this.held.push(Buffer.from(data));
    this.heldBytes += data.length;
    const all = Buffer.concat(this.held);
    const mark = all.indexOf(`${this.token} `);
    if (mark >= 0) {
      const end = all.indexOf("\n", mark);
      if (end < 0) return;
      const pid = Number(all.toString("latin1", mark + this.token.length + 1, end));
      this.held = null;
      if (mark > 0) this.forward(all.subarray(0, mark));
      if (end + 1 < all.length) this.forward(all.subarray(end + 1));
      this.settle(Number.isSafeInteger(pid) && pid > 1 ? pid : null);
    } else if (this.heldBytes > 64 * 1024) {
      this.end();
    }
  }

  /** The stream ended: whatever was held goes on. */
  end(): void {
    if (!this.held) return;
    const all = Buffer.concat(this.held);
    this.held = null;
    if (all.length) this.forward(all);
    this.settle(null);
  }
}

interface HostProcess {
  pid: number;
  ppid: number;
  pgrp: number;
  session: number;
}

function hostProcesses(): HostProcess[] {
  const list: HostProcess[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const [, ppid, pgrp, session] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      list.push({ pid: Number(entry), ppid: Number(ppid), pgrp: Number(pgrp), session: Number(session) });
    } catch {
      // the process ended while we looked
    }
  }
  return list;
}

function pidNamespace(pid: number): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return null;
  }
}

/**
 * The killer's work done from the host, for an exec whose process is the host
 * process `root` (runc on a local engine): stop the session, its group and
 * their descendants until no new one appears, then kill them all. Only
 * processes in the pid namespace of the container's first process
 * (`containerPid`) are touched, so a reused pid can never reach the host's
 * own processes.
 */
export function killHostSession(root: number, containerPid: number): void {
  const namespace = pidNamespace(containerPid);
  if (!namespace || namespace === pidNamespace(process.pid) || pidNamespace(root) !== namespace) return;
  const seen = new Set<number>();
  for (let round = 0; round < 200; round++) {
    let found = false;
    for (const p of hostProcesses()) {
      if (seen.has(p.pid) || p.pid === process.pid) continue;
      if (p.pid !== root && p.session !== root && p.pgrp !== root && !seen.has(p.ppid)) continue;
      if (pidNamespace(p.pid) !== namespace) continue;
      try {
        process.kill(p.pid, "SIGSTOP");
      } catch {
        // already gone
      }
      seen.add(p.pid);
      found = true;
    }
    if (!found) break;
  }
  for (const pid of seen) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}
