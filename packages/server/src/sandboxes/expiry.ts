// Stops and removes sandboxes whose timeout has passed, on a timer.
import type { Context } from "../context.js";
import { removeSandbox } from "./lifecycle.js";
import { removeOrphanContainers } from "./recover.js";

const orphanSweepMs = 5000;

export interface Expiry {
  stop(): void;
  /** Removes what has expired now; also called by the timer. */
  sweep(): Promise<void>;
}

export function startExpiry(ctx: Context): Expiry {
  let running = false;
  let lastOrphanSweep = Date.now();
  const sweep = async () => {
    if (running) return;
    running = true;
    try {
      if (Date.now() - lastOrphanSweep >= orphanSweepMs) {
        lastOrphanSweep = Date.now();
        await removeOrphanContainers(ctx).catch((error) => ctx.config.log({ event: "orphan_sweep_failed", message: String(error) }));
      }
      for (const row of ctx.index.expiredSandboxes(new Date().toISOString())) {
        await removeSandbox(ctx, row)
          .then(() => ctx.config.log({ event: "sandbox_expired", sandboxId: row.id }))
          .catch((error) => ctx.config.log({ event: "expiry_failed", sandboxId: row.id, message: String(error) }));
      }
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void sweep(), ctx.config.expirySweepMs);
  timer.unref();
  // Sandboxes that expired while the server was down go now, not one interval later.
  void sweep();
  return { stop: () => clearInterval(timer), sweep };
}
