/**
 * Names for the Kubernetes object types that cross the library's public API. They are the
 * classes of `@kubernetes/client-node`; the aliases keep that package's generated types out of
 * this package's documented surface.
 *
 * @module
 */
import type { V1ConfigMap, V1Pod } from "@kubernetes/client-node";

/** A Kubernetes Pod object (`V1Pod` of `@kubernetes/client-node`). */
export type Pod = V1Pod;
/** A Kubernetes ConfigMap object (`V1ConfigMap` of `@kubernetes/client-node`). */
export type ConfigMap = V1ConfigMap;
