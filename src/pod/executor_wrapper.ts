/**
 * The POSIX `sh` wrapper that runs one TES executor inside its init container.
 *
 * The wrapper receives the user's argv as its positional parameters (`"$@"`) and every other
 * value through the environment variables below, so no user value is ever part of the script
 * text. It runs under dash, busybox `sh` and bash: no `[[`, arrays or `local`.
 *
 * @module
 */
import { STATE_DIR } from "./layout.ts";

/** `$0` of the wrapper: the name the shell reports in its own error messages. */
export const WRAPPER_ARGV0 = "planetary-executor";

/** Environment variable: state directory (default {@linkcode STATE_DIR}); tests override it. */
export const ENV_STATE_DIR = "PLANETARY_STATE_DIR";
/** Environment variable: zero-based executor index. */
export const ENV_EXECUTOR_INDEX = "PLANETARY_EXECUTOR_INDEX";
/** Environment variable: working directory (unset: the image's). */
export const ENV_WORKDIR = "PLANETARY_WORKDIR";
/** Environment variable: file piped to stdin (unset: `/dev/null`). */
export const ENV_STDIN = "PLANETARY_STDIN";
/** Environment variable: file receiving stdout (unset: the state file `exec-<i>.stdout`). */
export const ENV_STDOUT = "PLANETARY_STDOUT";
/** Environment variable: file receiving stderr (unset: the state file `exec-<i>.stderr`). */
export const ENV_STDERR = "PLANETARY_STDERR";
/** Environment variable: `true` when a failure must not stop later executors. */
export const ENV_IGNORE_ERROR = "PLANETARY_IGNORE_ERROR";

/**
 * Every environment variable the wrapper reads. They are reserved: a user variable of the same
 * name is replaced by the wrapper's, and the wrapper unsets them all before it runs the program.
 */
export const WRAPPER_ENV_NAMES: readonly string[] = Object.freeze([
  ENV_STATE_DIR,
  ENV_EXECUTOR_INDEX,
  ENV_WORKDIR,
  ENV_STDIN,
  ENV_STDOUT,
  ENV_STDERR,
  ENV_IGNORE_ERROR,
]);

/**
 * The wrapper script, for `["/bin/sh", "-c", WRAPPER_SCRIPT, WRAPPER_ARGV0, ...argv]`.
 *
 * What it does, in order:
 * 1. when the stop file exists (an earlier executor failed), exits 0 without recording anything;
 * 2. creates `exec-<i>.start` (its mtime is the start time);
 * 3. creates the parent directories of the stdout/stderr files and opens them (failure: exit
 *    code 1 recorded, message in the stderr file or the container log);
 * 4. creates and enters the working directory when one is set (failure: exit code 1 recorded,
 *    message in the stderr file);
 * 5. runs the program with `exec` in a subshell, so PATH lookup is that of `execve` (no shell
 *    builtins or functions can stand in for the program), with stdin from its file or
 *    `/dev/null`, stdout and stderr to SEPARATE files; a missing program records 127, a
 *    non-executable one 126, a signal 128+n;
 * 6. writes the exit code to `exec-<i>.exit` through a temporary file and `mv` (atomic);
 * 7. when the code is not 0 and errors are not ignored, creates the stop file;
 * 8. exits 0 always, so later init containers and the `outputs` container still run.
 *
 * `true` (a regular builtin) is used for the redirection probes rather than `:` because a
 * failed redirection on a special builtin ends a POSIX shell.
 */
export const WRAPPER_SCRIPT: string = `d="\${${ENV_STATE_DIR}:-${STATE_DIR}}"
i="\${${ENV_EXECUTOR_INDEX}:-0}"
ign="\${${ENV_IGNORE_ERROR}:-false}"
wd="\${${ENV_WORKDIR}:-}"
in="\${${ENV_STDIN}:-/dev/null}"
out="\${${ENV_STDOUT}:-$d/exec-$i.stdout}"
err="\${${ENV_STDERR}:-$d/exec-$i.stderr}"
unset ${WRAPPER_ENV_NAMES.join(" ")}
finish() {
  if printf '%s\\n' "$1" > "$d/exec-$i.exit.tmp" && mv -f "$d/exec-$i.exit.tmp" "$d/exec-$i.exit"; then
    :
  else
    printf '%s\\n' "$1" > "$d/exec-$i.exit"
  fi
  if [ "$1" != 0 ] && [ "$ign" != true ]; then
    { true > "$d/stop"; } 2>/dev/null
  fi
  exit 0
}
mkparent() {
  p="\${1%/*}"
  if [ -n "$p" ] && [ ! -d "$p" ]; then
    mkdir -p -- "$p" 2>/dev/null
  fi
}
if [ -e "$d/stop" ]; then
  exit 0
fi
{ true > "$d/exec-$i.start"; } 2>/dev/null
mkparent "$err"
if ! { true > "$err"; } 2>/dev/null; then
  printf '%s: cannot write the stderr file %s\\n' "$0" "$err" >&2
  finish 1
fi
mkparent "$out"
if ! { true > "$out"; } 2>/dev/null; then
  printf '%s: cannot write the stdout file %s\\n' "$0" "$out" >> "$err"
  finish 1
fi
if ! { true < "$in"; } 2>/dev/null; then
  printf '%s: cannot read the stdin file %s\\n' "$0" "$in" >> "$err"
  finish 1
fi
if [ -n "$wd" ]; then
  if [ ! -d "$wd" ]; then
    mkdir -p -- "$wd" 2>/dev/null
  fi
  if ! cd -- "$wd" 2>/dev/null; then
    printf '%s: cannot change to the working directory %s\\n' "$0" "$wd" >> "$err"
    finish 1
  fi
fi
if [ "$#" -eq 0 ]; then
  printf '%s: no command to run\\n' "$0" >> "$err"
  finish 127
fi
( exec "$@" ) < "$in" > "$out" 2> "$err"
finish "$?"
`;
