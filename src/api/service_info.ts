/**
 * The GA4GH service-info document of this TES server, built from configuration, and its route.
 *
 * @module
 */
import { Hono } from "hono";
import type { TesServiceInfo } from "../tes/model.ts";
import { renderServiceInfo } from "../tes/view.ts";
import denoJson from "../../deno.json" with { type: "json" };
import type { ResolvedApiConfig } from "./config.ts";
import { type ApiEnv, jsonResponse, methodNotAllowed } from "./_http.ts";

/** Version of this package, from deno.json. */
export const PLANETARY_VERSION: string = denoJson.version;

/** The TES specification version this server implements. */
export const TES_SPEC_VERSION = "1.1.0";

/**
 * Builds the service-info document from configuration.
 *
 * @param config The resolved API configuration.
 * @returns The service-info document, with only specification fields.
 * @example
 * ```ts
 * import { buildServiceInfo } from "./service_info.ts";
 * import { resolveApiConfig } from "./config.ts";
 * buildServiceInfo(resolveApiConfig({})).type.artifact; // "tes"
 * ```
 */
export function buildServiceInfo(config: ResolvedApiConfig): TesServiceInfo {
  const s = config.serviceInfo;
  const info: TesServiceInfo = {
    id: s.id ?? "io.planetary.tes",
    name: s.name ?? "Planetary",
    type: { group: "org.ga4gh", artifact: "tes", version: TES_SPEC_VERSION },
    organization: s.organization ?? { name: "Planetary", url: "https://github.com/planetary" },
    version: s.version ?? PLANETARY_VERSION,
    storage: [...(s.storage ?? [])],
    tesResources_backend_parameters: [...config.supportedBackendParameters],
  };
  if (s.description !== undefined) info.description = s.description;
  if (s.contactUrl !== undefined) info.contactUrl = s.contactUrl;
  if (s.documentationUrl !== undefined) info.documentationUrl = s.documentationUrl;
  if (s.environment !== undefined) info.environment = s.environment;
  if (s.createdAt !== undefined) info.createdAt = s.createdAt;
  if (s.updatedAt !== undefined) info.updatedAt = s.updatedAt;
  return renderServiceInfo(info);
}

/**
 * Builds the `GET /service-info` route (and any other paths it is also served at).
 *
 * @param config The resolved API configuration.
 * @param paths The paths to serve the document at. @default ["/service-info"]
 * @returns A Hono app serving the document at each path, with a 405 for other methods.
 * @example
 * ```ts
 * import { createServiceInfoRoutes } from "./service_info.ts";
 * import { resolveApiConfig } from "./config.ts";
 * const routes = createServiceInfoRoutes(resolveApiConfig({}));
 * ```
 */
export function createServiceInfoRoutes(
  config: ResolvedApiConfig,
  paths: readonly string[] = ["/service-info"],
): Hono<ApiEnv> {
  const info = buildServiceInfo(config);
  const app = new Hono<ApiEnv>();
  for (const path of paths) {
    app.get(path, () => jsonResponse(200, info));
    app.all(path, (c) => methodNotAllowed(c.req.method, ["GET"]));
  }
  return app;
}
