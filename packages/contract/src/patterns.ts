// Plain words for the patterns of the contract's schemas, so a refused field
// is explained by its rule rather than by a regular expression.
import { BuildArgName } from "./build.js";
import { EnvKey, ImageRef, LabelKey, Name, noNul } from "./sandbox.js";

const rules = new Map<string, string>([
  [noNul, "must not contain a NUL character"],
  ["^/[^\\u0000]*$", "must be an absolute path without NUL characters"],
  ["^/[^\\u0000]+$", "must be an absolute path other than / without NUL characters"],
  [EnvKey.pattern!, "must not be empty or contain '=' or a NUL character"],
  [LabelKey.pattern!, "must be letters, digits, '.', '_', '/' and '-', beginning and ending with a letter or digit"],
  [Name.pattern!, "must be letters, digits, '.', '_' and '-', starting with a letter or digit, and not only hex digits and '-' (it would look like an id)"],
  [ImageRef, "must be an image reference ([host[:port]/]path[:tag][@digest], the path in lower case) or an image id (sha256: and 64 hex digits)"],
  [BuildArgName.pattern!, "must be letters, digits, '_', '.' and '-', not starting with a digit, '.' or '-'"],
]);

/** The rule a contract pattern stands for, in words (`must ...`), or undefined for a pattern without one. */
export function describePattern(pattern: string): string | undefined {
  return rules.get(pattern);
}
