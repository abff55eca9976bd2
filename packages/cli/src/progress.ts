// Progress on the terminal: a spinner line with elapsed time on a TTY, plain
// lines otherwise (so logs and pipes stay readable).
const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

export interface Progress {
  update(text: string): void;
  done(text: string): void;
}

export function progress(initial: string): Progress {
  const stream = process.stderr;
  const started = Date.now();
  let text = initial;
  if (!stream.isTTY) {
    stream.write(`${initial}\n`);
    return {
      update: () => undefined,
      done: (final) => void stream.write(`${final}\n`),
    };
  }
  let frame = 0;
  const draw = () => {
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    stream.write(`\r\x1b[2K${frames[frame++ % frames.length]} ${text} ${seconds}s`);
  };
  const timer = setInterval(draw, 100);
  draw();
  return {
    update(next) {
      text = next;
    },
    done(final) {
      clearInterval(timer);
      stream.write(`\r\x1b[2K${final}\n`);
    },
  };
}

export function bytes(n: number | undefined): string {
  if (n === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

/** A byte counter with rate (and percentage when the total is known), redrawn at most 10 times a second. */
export function transferBar(label: string, total?: number): { update(bytes: number): void; done(text: string): void } {
  const stream = process.stderr;
  const started = Date.now();
  let last = 0;
  let current = 0;
  const line = () => {
    const seconds = Math.max((Date.now() - started) / 1000, 0.001);
    const rate = `${bytes(current / seconds)}/s`;
    if (total) {
      const fraction = Math.min(current / total, 1);
      const width = 24;
      const filled = Math.round(fraction * width);
      return `${label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${(fraction * 100).toFixed(0)}% ${bytes(current)} / ${bytes(total)} ${rate}`;
    }
    return `${label} ${bytes(current)} ${rate}`;
  };
  return {
    update(n) {
      current = n;
      if (!stream.isTTY || Date.now() - last < 100) return;
      last = Date.now();
      stream.write(`\r\x1b[2K${line()}`);
    },
    done(text) {
      stream.write(`${stream.isTTY ? "\r\x1b[2K" : ""}${line()} ${text}\n`);
    },
  };
}
