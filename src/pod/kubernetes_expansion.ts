/**
 * Kubernetes expands `$(NAME)` references in a container's `command`, `args` and env `value`s
 * (and turns `$$` into `$`). User values must reach the program literally, so the pod builder
 * escapes every `$`; a backend that runs pods without a kubelet applies the same expansion.
 *
 * @module
 */

/**
 * Escapes a string so that Kubernetes' `$(NAME)` expansion gives it back unchanged.
 *
 * @param text Any string.
 * @returns `text` with every `$` doubled.
 * @example
 * ```ts
 * import { escapeKubernetesReferences } from "./kubernetes_expansion.ts";
 * escapeKubernetesReferences("$(HOME)"); // "$$(HOME)"
 * ```
 */
export function escapeKubernetesReferences(text: string): string {
  return text.replaceAll("$", () => "$$");
}

/**
 * Expands `$(NAME)` references the way the kubelet does (a port of
 * `k8s.io/kubernetes/third_party/forked/golang/expansion.Expand`): `$$` gives `$`, `$(NAME)`
 * gives `lookup(NAME)` or stays as written when `lookup` returns undefined, any other `$` stays.
 *
 * @param text The string from a pod spec.
 * @param lookup Value of a variable, or undefined when it is not defined.
 * @returns The expanded string.
 * @example
 * ```ts
 * import { expandKubernetesReferences } from "./kubernetes_expansion.ts";
 * expandKubernetesReferences("$$(A) $(A) $(B)", (n) => n === "A" ? "x" : undefined);
 * // "$(A) x $(B)"
 * ```
 */
export function expandKubernetesReferences(
  text: string,
  lookup: (name: string) => string | undefined,
): string {
  let result = "";
  let checkpoint = 0;
  for (let cursor = 0; cursor < text.length; cursor++) {
    if (text[cursor] !== "$" || cursor + 1 >= text.length) continue;
    result += text.slice(checkpoint, cursor);
    const rest = text.slice(cursor + 1);
    let advance = 1;
    if (rest[0] === "$") {
      result += "$";
    } else if (rest[0] === "(") {
      const close = rest.indexOf(")", 1);
      if (close === -1) {
        result += "$(";
      } else {
        const name = rest.slice(1, close);
        result += lookup(name) ?? `$(${name})`;
        advance = close + 1;
      }
    } else {
      result += "$" + rest[0];
    }
    cursor += advance;
    checkpoint = cursor + 1;
  }
  return result + text.slice(checkpoint);
}
