// The bound on what imports stage at once: bytes written to staging
// directories under the home and bytes streamed into the engine's image load.
import { StrataError } from "@strata/contract";

/** One import's share of the budget; `release` gives back all it took. */
export interface StagingShare {
  /** Takes `bytes` more; throws insufficient_storage (507) past the bound. */
  take(bytes: number): void;
  release(): void;
}

export class StagingBudget {
  private used = 0;

  /** `limit`: bytes all imports together may stage. */
  constructor(readonly limit: number) {}

  /** A share for one import, empty until it takes bytes. */
  share(): StagingShare {
    let held = 0;
    return {
      take: (bytes: number) => {
        if (this.used + bytes > this.limit) {
          throw new StrataError("insufficient_storage", `staging ${bytes} more bytes would pass the server's bound of ${this.limit} bytes for imports in progress (${this.used} in use)`);
        }
        this.used += bytes;
        held += bytes;
      },
      release: () => {
        this.used -= held;
        held = 0;
      },
    };
  }
}
