/**
 * The `kubernetes` backend: runs task pods through the Kubernetes API.
 *
 * - {@linkcode KubernetesBackend} implements the orchestrator's `Backend` port with
 *   `@kubernetes/client-node`, as a least-privilege user (`k8s/rbac/task-role.yaml`).
 * - {@linkcode PodWatch} is its list+watch loop (bookmarks, reconnects, relist on 410 Gone).
 * - {@linkcode retry} retries calls on 429, 5xx and network errors with capped backoff.
 * - {@linkcode KubernetesBackendError} carries a stable `code` and the HTTP status.
 *
 * @module
 */
export * from "./kubernetes_backend.ts";
export * from "./kubernetes_backend_error.ts";
export * from "./pod_watch.ts";
export * from "./retry.ts";
