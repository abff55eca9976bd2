// What a Dockerfile builds from: the images its FROM lines name, after ARG
// substitution, without stage names or `scratch`. Used to refuse a build whose
// base the engine lacks before the engine tries to pull it from the internet.

function substitute(text: string, args: Map<string, string>): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_m, braced, fallback, bare) => {
    const name = (braced ?? bare) as string;
    return args.get(name) ?? (fallback as string | undefined) ?? "";
  });
}

/** Joins continuation lines and drops comments. */
function instructions(dockerfile: string): string[] {
  const out: string[] = [];
  let current = "";
  for (const raw of dockerfile.split(/\r?\n/)) {
    const line = raw.trim();
    if (!current && (line.startsWith("#") || !line)) continue;
    if (line.endsWith("\\")) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    out.push(current + line);
    current = "";
  }
  if (current) out.push(current);
  return out;
}

export function baseImages(dockerfile: string, buildArgs: Record<string, string>): string[] {
  const args = new Map<string, string>();
  const stages = new Set<string>();
  const images: string[] = [];
  let seenFrom = false;
  for (const instruction of instructions(dockerfile)) {
    const [keyword = "", ...rest] = instruction.split(/\s+/);
    const upper = keyword.toUpperCase();
    if (upper === "ARG" && !seenFrom) {
      for (const spec of rest) {
        const at = spec.indexOf("=");
        const name = at < 0 ? spec : spec.slice(0, at);
        const fallback = at < 0 ? undefined : spec.slice(at + 1).replace(/^"(.*)"$/, "$1");
        const value = buildArgs[name] ?? fallback;
        if (value !== undefined) args.set(name, value);
      }
    }
    if (upper !== "FROM") continue;
    seenFrom = true;
    const words = rest.filter((word) => !word.startsWith("--"));
    const image = substitute(words[0] ?? "", args);
    if (words[1]?.toUpperCase() === "AS" && words[2]) stages.add(words[2].toLowerCase());
    if (!image || image.toLowerCase() === "scratch" || stages.has(image.toLowerCase())) continue;
    images.push(image);
  }
  return [...new Set(images)];
}
