// Writes the generated OpenAPI document to the path given (spec/openapi.yaml).
import { writeFileSync } from "node:fs";
import { openApiYaml } from "./openapi.js";
import { apiVersion } from "./version.js";

const target = process.argv[2];
if (!target) {
  console.error("usage: write-spec <file>");
  process.exit(2);
}
writeFileSync(target, openApiYaml(apiVersion));
