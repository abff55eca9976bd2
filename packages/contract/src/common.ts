// Schemas shared by every group of endpoints.
import { Type } from "@sinclair/typebox";
import { errorCodes } from "./errors.js";

export const ErrorReply = Type.Object({
  error: Type.Object({
    code: Type.Union(errorCodes.map((code) => Type.Literal(code))),
    message: Type.String(),
  }),
});

export const Health = Type.Object({ ok: Type.Boolean(), version: Type.String(), engine: Type.String() });
