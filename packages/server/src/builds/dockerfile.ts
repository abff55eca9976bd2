// What a Dockerfile builds from: the images its FROM lines name, after ARG
// substitution, without stage names or `scratch`. Used to refuse a build whose
// base the engine lacks before the engine tries to pull it from the internet.
// The Dockerfile is read by `dockerfile-ast` (parser directives such as
// `# escape=`, continuations, comments inside them, quoting), so this reads
// the same FROM lines the engine does.
import { DockerfileParser } from "dockerfile-ast";

/**
 * Expands `$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME-word}`, `${NAME:+word}`
 * and `${NAME+word}` as the engine's shell lexer does for FROM; `escape`
 * (the Dockerfile's escape character) before `$` keeps it literal.
 */
function substitute(text: string, args: Map<string, string>, escape: string): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === escape && text[i + 1] === "$") {
      out += "$";
      i++;
      continue;
    }
    if (c !== "$") {
      out += c;
      continue;
    }
    const braced = /^\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])([^}]*))?\}/.exec(text.slice(i + 1));
    const bare = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i + 1));
    if (braced) {
      const [whole, name, operator, word = ""] = braced;
      const value = args.get(name!);
      const set = operator?.startsWith(":") ? !!value : value !== undefined;
      if (operator?.endsWith("-")) out += set ? value! : substitute(word, args, escape);
      else if (operator?.endsWith("+")) out += set ? substitute(word, args, escape) : "";
      else out += value ?? "";
      i += whole.length;
    } else if (bare) {
      out += args.get(bare[0]) ?? "";
      i += bare[0].length;
    } else out += c;
  }
  return out;
}

/**
 * The images a Dockerfile's stages start from, in order and without repeats.
 * Only ARGs declared before the first FROM apply (their defaults, or
 * `buildArgs` for them); stage names, earlier stages and `scratch` are not
 * images.
 */
export function baseImages(dockerfile: string, buildArgs: Record<string, string>): string[] {
  const parsed = DockerfileParser.parse(dockerfile);
  const escape = parsed.getEscapeCharacter();
  const args = new Map<string, string>();
  for (const arg of parsed.getInitialARGs()) {
    for (const property of arg.getProperties()) {
      const name = property.getName();
      const fallback = property.getValue();
      const value = Object.prototype.hasOwnProperty.call(buildArgs, name) ? buildArgs[name] : fallback === null ? undefined : substitute(fallback, args, escape);
      if (value !== undefined) args.set(name, value);
    }
  }
  const stages = new Set<string>();
  const images: string[] = [];
  for (const from of parsed.getFROMs()) {
    const image = substitute(from.getImage() ?? "", args, escape);
    const stage = from.getBuildStage();
    if (image && image.toLowerCase() !== "scratch" && !stages.has(image.toLowerCase())) images.push(image);
    if (stage) stages.add(stage.toLowerCase());
  }
  return [...new Set(images)];
}
