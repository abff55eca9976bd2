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
