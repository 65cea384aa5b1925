/**
 * Optional bearer-token authentication: a fixed table of tokens, each naming a user. The user
 * becomes the owner of the tasks they create, and sees only those.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { HttpError } from "./errors.ts";
import type { ApiEnv } from "./_http.ts";

/**
 * Builds the middleware that checks `Authorization: Bearer <token>` against `tokens` and sets
 * the `user` variable.
 *
 * @param tokens Token → user.
 * @returns The middleware.
 * @throws {HttpError} (from the middleware) 401 without a valid token.
 * @example
 * ```ts
 * import { bearerAuth } from "./auth.ts";
 * const auth = bearerAuth(new Map([["s3cret", "alice"]]));
 * ```
 */
export function bearerAuth(tokens: ReadonlyMap<string, string>): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    const user = match === null ? undefined : tokens.get(match[1]!);
    if (user === undefined) {
      throw new HttpError(
        401,
        match === null
          ? "Authorization: a bearer token is required"
          : "Authorization: invalid token",
        { headers: { "www-authenticate": 'Bearer realm="planetary"' } },
      );
    }
    c.set("user", user);
    await next();
  };
}
