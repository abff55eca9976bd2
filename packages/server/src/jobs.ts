// Background work of this server (snapshot captures), with a way to wait for a
// record to change and to let work finish before shutdown.
import { EventEmitter } from "node:events";
import { StreamScope } from "./streams.js";

export class Jobs {
  private readonly running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  private readonly events = new EventEmitter();

  constructor() {
    this.events.setMaxListeners(0);
  }

  /** Runs work in the background under this id; its failures are the work's own to record. */
  run(id: string, work: (signal: AbortSignal) => Promise<void>): void {
    const controller = new AbortController();
    // in a scope of its own, not the request's that started it: the work outlives the request, and
    // an error of its streams nobody handled fails this work alone
    const scope = new StreamScope((error) => controller.abort(error));
    const done = scope
      .run(() => work(controller.signal))
      .catch(() => undefined)
      .finally(async () => {
        await scope.close();
        this.running.delete(id);
        this.changed(id);
      });
    this.running.set(id, { controller, done });
  }

  isRunning(id: string): boolean {
    return this.running.has(id);
  }

  /** Asks the work to stop and waits until it has. */
  async abort(id: string): Promise<void> {
    const job = this.running.get(id);
    if (!job) return;
    job.controller.abort();
    await job.done;
  }

  /** Tells waiters that the record with this id changed. */
  changed(id: string): void {
    this.events.emit(id);
  }

  /** Resolves when the record changes or after ms, whichever is first. */
  waitForChange(id: string, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve(); // the waiter is already gone
      const finish = () => {
        clearTimeout(timer);
        this.events.off(id, finish);
        signal?.removeEventListener("abort", finish);
        resolve();
      };
      const timer = setTimeout(finish, ms);
      this.events.once(id, finish);
      signal?.addEventListener("abort", finish, { once: true });
    });
  }

  /** Waits for all running work. */
  async drain(): Promise<void> {
    await Promise.all([...this.running.values()].map((job) => job.done));
  }
}
