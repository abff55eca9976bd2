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
