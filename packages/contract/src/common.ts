// Schemas shared by every group of endpoints.
import { Type } from "@sinclair/typebox";
import { errorCodes } from "./errors.js";

export const ErrorReply = Type.Object({
  error: Type.Object({
    code: Type.Union(errorCodes.map((code) => Type.Literal(code))),
    message: Type.String(),
    details: Type.Optional(Type.Object(
      { field: Type.Optional(Type.String({ description: "Path of the field the error is about, e.g. `body/cmd/2` or `body/env/PATH`." })) },
      { description: "Present when the error concerns one field." },
    )),
  }),
});

export const Health = Type.Object({ ok: Type.Boolean(), version: Type.String(), engine: Type.String() });
