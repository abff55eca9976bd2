// Base images named by Dockerfiles, with ARG substitution and stages.
import { test } from "node:test";
import assert from "node:assert/strict";
import { baseImages } from "./dockerfile.js";

test("FROM lines give the base images, not stage names or scratch", () => {
  const dockerfile = [
    "# syntax comment",
    "ARG BASE=busybox:1",
    "ARG TAG",
    "FROM --platform=linux/amd64 ${BASE} AS build",
    "RUN echo \\",
    "  continued",
    "FROM build AS test",
    "FROM scratch",
    "FROM registry.local/app:$TAG",
    "COPY --from=build /x /x",
  ].join("\n");
  assert.deepEqual(baseImages(dockerfile, {}), ["busybox:1", "registry.local/app:"]);
  assert.deepEqual(baseImages(dockerfile, { BASE: "alpine:3", TAG: "v2" }), ["alpine:3", "registry.local/app:v2"]);
});

test("the Dockerfile is read as the engine reads it: quotes, escape directive, comments in continuations, defaults", () => {
  // single-quoted defaults, an ARG built from another
  assert.deepEqual(baseImages("ARG REPO='strata-test/busybox'\nARG REF=\"${REPO}:latest\"\nFROM $REF\n", {}), ["strata-test/busybox:latest"]);
  // the backtick escape directive: the backslash is a plain character, the backtick continues the line
  assert.deepEqual(baseImages("# escape=`\nFROM strata-test/busybox:latest `\n  AS one\nRUN echo `\n  x\n", {}), ["strata-test/busybox:latest"]);
  // a comment line inside a continuation is skipped, the instruction goes on
  assert.deepEqual(baseImages("FROM \\\n# a comment\n  strata-test/busybox:latest\n", {}), ["strata-test/busybox:latest"]);
  // lowercase instructions, stage names in any case
  assert.deepEqual(baseImages("from strata-test/busybox:latest as Base\nfrom BASE\n", {}), ["strata-test/busybox:latest"]);
  // ${VAR:-word} and ${VAR:+word}; an ARG declared after FROM does not apply to FROM
  assert.deepEqual(baseImages("ARG T\nFROM img:${T:-v1}\nARG LATE=x\nFROM other${T:+-$T}\n", {}), ["img:v1", "other"]);
  assert.deepEqual(baseImages("ARG T\nFROM img:${T:-v1}\nFROM other${T:+-$T}\n", { T: "v2" }), ["img:v2", "other-v2"]);
  // a build arg for an ARG without a default; one the Dockerfile does not declare changes nothing
  assert.deepEqual(baseImages("FROM img:$UNDECLARED\n", { UNDECLARED: "x" }), ["img:"]);
});
