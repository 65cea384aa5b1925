/**
 * Removes secrets from URLs before they reach a message, a log line or a report.
 *
 * @module
 */

/**
 * Returns `url` without credentials: user info (`user:password@`), the query string (which
 * may hold a SAS token or a presigned signature) and the fragment are removed. A string that
 * does not parse as a URL is returned with everything from the first `?` or `#` removed and
 * any `user:pass@` prefix of its authority dropped.
 *
 * @param url Any URL, possibly holding secrets.
 * @returns The URL safe to show to a person.
 *
 * @example Usage
 * ```ts
 * import { redactUrl } from "./redact_url.ts";
 * redactUrl("https://user:pw@example.org/a/b.txt?sig=SECRET"); // "https://example.org/a/b.txt"
 * ```
 */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = "";
    parsed.password = "";
    parsed.search = "";
    parsed.hash = "";
    return parsed.href;
  } catch {
    return url.replace(/[?#].*$/s, "").replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, "$1");
  }
}

const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>()]+/gi;

/**
 * Replaces every URL found inside free text (for example the message of an error thrown by
 * `fetch`, which quotes the full URL) with its {@linkcode redactUrl} form.
 *
 * @param text Free text that may quote URLs.
 * @returns The text with every quoted URL redacted.
 *
 * @example Usage
 * ```ts
 * import { redactText } from "./redact_url.ts";
 * redactText("error sending request for url (https://h/x?sig=S)"); // "error sending request for url (https://h/x)"
 * ```
 */
export function redactText(text: string): string {
  return text.replace(URL_IN_TEXT, (match) => redactUrl(match));
}
