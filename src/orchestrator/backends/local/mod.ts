/**
 * The `local` backend: runs the same task pods as Kubernetes would, on this machine.
 *
 * - {@linkcode LocalBackend} implements the orchestrator's `Backend` port: it records pods,
 *   runs init containers then main containers, and reports kubelet-shaped pod status, events
 *   and container logs.
 * - {@linkcode HostRuntime} runs each container's argv directly on the host inside private
 *   mount + PID namespaces (volumes at their container paths). It does NOT isolate, ignores
 *   the image, and needs root or user namespaces.
 * - {@linkcode DockerRuntime} runs executor containers with a docker or podman engine (tested
 *   against a private dockerd and podman).
 *
 * @module
 */
export * from "./container_runtime.ts";
export * from "./docker_runtime.ts";
export * from "./host_runtime.ts";
export * from "./local_backend.ts";
export * from "./local_backend_error.ts";
export * from "./pod_runner.ts";
