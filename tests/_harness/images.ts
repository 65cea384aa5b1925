/**
 * The images of `k8s/Dockerfile`, read so that a test can run what an image would run without
 * a container engine: each image's name (from the `docker build … --target T -t NAME` lines of
 * the Dockerfile's header), its ENTRYPOINT, CMD, ENV and USER (with stage inheritance), and the
 * `deno compile`d binaries it carries, each traced back to its deno.json `compile:*` task (the
 * entry file and the permission flags).
 *
 * {@linkcode denoRunCommand} turns a binary's argv into the `deno run` command with exactly the
 * compile task's flags, since `deno compile` cannot run here (its runtime download host is not
 * reachable).
 *
 * ```ts ignore
 * const catalog = loadImageCatalog();
 * const api = catalog.find("ghcr.io/planetary/planetary-api:0.1.0")!;
 * denoRunCommand(api, [...api.entrypoint, "migrate"], { sourceDir: "/planetary/source" });
 * // ["/usr/bin/deno", "run", "--config", "/planetary/source/deno.json", "--allow-net", …,
 * //  "/planetary/source/cli/api.ts", "migrate"]
 * ```
 *
 * @module
 */

const REPO = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/** A `deno compile`d binary inside an image. */
export interface ImageBinary {
  /** Its path inside the image (`/usr/local/bin/planetary-api`). */
  path: string;
  /** The deno.json task that compiles it (`compile:api`). */
  task: string;
  /** The entry file, relative to the repository (`cli/api.ts`). */
  entry: string;
  /** The permission flags the task compiles in (`--allow-net`, …), in its order. */
  permissions: string[];
  /** The `--v8-flags=…` the task compiles in (none, or the transporter's). */
  v8Flags: string[];
}

/** One image (a final target of the Dockerfile). */
export interface Image {
  /** Repository name without registry and tag (`planetary-api`). */
  name: string;
  /** The Dockerfile target (`api`). */
  target: string;
  /** ENTRYPOINT (exec form). */
  entrypoint: string[];
  /** CMD (exec form). */
  cmd: string[];
  /** ENV, in order. */
  env: [string, string][];
  /** USER (`uid[:gid]`), when set. */
  user: string | undefined;
  /** WORKDIR. */
  workingDir: string;
  /** The compiled binaries it carries. */
  binaries: ImageBinary[];
}

/** The images of the Dockerfile, found by reference. */
export interface ImageCatalog {
  /** Every image. */
  readonly images: readonly Image[];
  /**
   * The image of a reference (`ghcr.io/planetary/planetary-api:0.1.0` → `planetary-api`).
   *
   * @param ref An image reference.
   * @returns The image, or undefined when the Dockerfile builds none of that name.
   */
  find(ref: string): Image | undefined;
}

interface Stage {
  env: [string, string][];
  user: string | undefined;
  entrypoint: string[];
  cmd: string[];
  workingDir: string;
  /** Files copied from other stages: path in this stage → [stage, path there]. */
  copies: Map<string, [string, string]>;
  /** deno.json tasks run by `deno task …`. */
  tasks: string[];
}

/** The repository name of an image reference: no registry/path, no tag, no digest. */
export function imageName(ref: string): string {
  const last = ref.split("@")[0]!.split("/").at(-1)!;
  return last.split(":")[0]!;
}

function execForm(instruction: string, value: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    parsed = undefined;
  }
  if (!Array.isArray(parsed) || !parsed.every((v) => typeof v === "string")) {
    throw new Error(
      `k8s/Dockerfile: ${instruction} ${value}: only the exec (JSON) form is supported`,
    );
  }
  return parsed;
}

function unquote(value: string): string {
  return /^".*"$/.test(value) ? value.slice(1, -1) : value;
}

function resolvePath(dir: string, path: string): string {
  return path.startsWith("/") ? path : `${dir.replace(/\/$/, "")}/${path}`;
}

/**
 * Parses a deno.json `compile:*` task: `deno compile <flags> --output <file> <entry>`.
 *
 * @param task The task name.
 * @param command Its command line.
 * @returns The output file, the entry, the permission flags and the V8 flags.
 * @throws {Error} On another shape or a flag that is not a permission flag, so that a new
 * compile option cannot be silently left out of the `deno run` stand-in.
 */
export function parseCompileTask(
  task: string,
  command: string,
): { output: string; entry: string; permissions: string[]; v8Flags: string[] } {
  const words = command.trim().split(/\s+/);
  if (words[0] !== "deno" || words[1] !== "compile" || words.length < 5) {
    throw new Error(`deno.json task ${task}: expected "deno compile … --output FILE ENTRY"`);
  }
  const entry = words.at(-1)!;
  let output: string | undefined;
  const permissions: string[] = [];
  const v8Flags: string[] = [];
  for (let i = 2; i < words.length - 1; i++) {
    const word = words[i]!;
    if (word === "--output" || word === "-o") output = words[++i];
    else if (word.startsWith("--output=")) output = word.slice("--output=".length);
    else if (/^--(allow|deny)-[a-z-]+(=.*)?$/.test(word)) permissions.push(word);
    else if (/^--v8-flags=\S+$/.test(word)) v8Flags.push(word); // deno run takes it as is
    else {
      throw new Error(
        `deno.json task ${task}: the flag "${word}" is no permission flag; teach ` +
          `tests/_harness/images.ts what it means under deno run`,
      );
    }
  }
  if (!output) throw new Error(`deno.json task ${task}: no --output`);
  return { output, entry, permissions, v8Flags };
}

/**
 * Reads the images of `k8s/Dockerfile` and the compile tasks of `deno.json`.
 *
 * @param repo The repository root. @default this repository
 * @returns The catalog.
 * @throws {Error} When the Dockerfile or a task has a shape this reader does not know.
 */
export function loadImageCatalog(repo: string = REPO): ImageCatalog {
  const text = Deno.readTextFileSync(`${repo}/k8s/Dockerfile`);
  const denoJson = JSON.parse(Deno.readTextFileSync(`${repo}/deno.json`)) as {
    tasks?: Record<string, string>;
  };
  const tasks = denoJson.tasks ?? {};

  const names = new Map<string, string>();
  for (const m of text.matchAll(/^#.*docker build .*--target\s+(\S+)\s+-t\s+(\S+)/gm)) {
    names.set(m[1]!, imageName(m[2]!));
  }

  const stages = new Map<string, Stage>();
  let current: Stage | undefined;
  const lines = text.replace(/\\\n/g, " ").split("\n");
  for (const raw of lines) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const [, keyword = "", rest = ""] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    switch (keyword.toUpperCase()) {
      case "FROM": {
        const m = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
        if (!m) throw new Error(`k8s/Dockerfile: cannot read "FROM ${rest}"`);
        const base = stages.get(m[1]!);
        current = base
          ? {
            ...base,
            env: [...base.env],
            copies: new Map(base.copies),
            tasks: [...base.tasks],
          }
          : {
            env: [],
            user: undefined,
            entrypoint: [],
            cmd: [],
            workingDir: "/",
            copies: new Map(),
            tasks: [],
          };
        stages.set(m[2] ?? `#${stages.size}`, current);
        break;
      }
      case "ENV": {
        if (!current) throw new Error("k8s/Dockerfile: ENV before FROM");
        const pairs = rest.includes("=")
          ? rest.split(/\s+/).map((pair) => {
            const at = pair.indexOf("=");
            return [pair.slice(0, at), unquote(pair.slice(at + 1))] as [string, string];
          })
          : [[rest.split(/\s+/)[0]!, rest.replace(/^\S+\s+/, "")] as [string, string]];
        for (const [name, value] of pairs) {
          current.env = current.env.filter(([n]) => n !== name);
          current.env.push([name, value]);
        }
        break;
      }
      case "USER":
        if (current) current.user = rest;
        break;
      case "WORKDIR":
        if (current) current.workingDir = resolvePath(current.workingDir, rest);
        break;
      case "ENTRYPOINT":
        if (current) {
          current.entrypoint = execForm("ENTRYPOINT", rest);
          current.cmd = []; // as Docker does: a new ENTRYPOINT resets an inherited CMD
        }
        break;
      case "CMD":
        if (current) current.cmd = execForm("CMD", rest);
        break;
      case "COPY": {
        const m = /^--from=(\S+)\s+(\S+)\s+(\S+)$/.exec(rest);
        if (current && m) {
          const source = stages.get(m[1]!);
          const dest = m[3]!.endsWith("/") ? `${m[3]}${m[2]!.split("/").at(-1)}` : m[3]!;
          const from = source ? resolvePath(source.workingDir, m[2]!) : m[2]!;
          current.copies.set(resolvePath(current.workingDir, dest), [m[1]!, from]);
        }
        break;
      }
      case "RUN":
        if (current) {
          for (const m of rest.matchAll(/deno task (\S+)/g)) current.tasks.push(m[1]!);
        }
        break;
    }
  }

  const images: Image[] = [];
  for (const [target, name] of names) {
    const stage = stages.get(target);
    if (!stage) throw new Error(`k8s/Dockerfile: the header builds target "${target}": no stage`);
    const binaries: ImageBinary[] = [];
    for (const [path, [fromStage, fromPath]] of stage.copies) {
      const builder = stages.get(fromStage);
      if (!builder) continue;
      for (const task of builder.tasks) {
        const command = tasks[task];
        if (!task.startsWith("compile:") || command === undefined) continue;
        const compiled = parseCompileTask(task, command);
        if (resolvePath(builder.workingDir, compiled.output) !== fromPath) continue;
        binaries.push({
          path,
          task,
          entry: compiled.entry,
          permissions: compiled.permissions,
          v8Flags: compiled.v8Flags,
        });
      }
    }
    images.push({
      name,
      target,
      entrypoint: stage.entrypoint,
      cmd: stage.cmd,
      env: stage.env,
      user: stage.user,
      workingDir: stage.workingDir,
      binaries,
    });
  }
  return { images, find: (ref) => images.find((image) => image.name === imageName(ref)) };
}

/**
 * The argv a container of `image` runs, as a container runtime builds it: `command` replaces
 * the ENTRYPOINT, `args` the CMD (and a `command` without `args` drops the CMD).
 *
 * @param image The image.
 * @param command The container's `command`.
 * @param args The container's `args`.
 * @returns The argv.
 */
export function containerArgv(
  image: Image,
  command: readonly string[] | undefined,
  args: readonly string[] | undefined,
): string[] {
  const entry = command?.length ? [...command] : image.entrypoint;
  const rest = args?.length ? [...args] : command?.length ? [] : image.cmd;
  return [...entry, ...rest];
}

/** Options of {@linkcode denoRunCommand}. */
export interface DenoRunCommandOptions {
  /** Where the program sees this repository (the folder of deno.json). */
  sourceDir: string;
  /** The deno executable. @default Deno.execPath() */
  deno?: string;
}

/**
 * Turns the argv of one of `image`'s compiled binaries into the `deno run` command that runs
 * the same entry file with exactly the compile task's permission flags.
 *
 * @param image The image.
 * @param argv The argv the container would run (`argv[0]` is the binary).
 * @param options Where the source tree is.
 * @returns The `deno run` argv.
 * @throws {Error} When `argv[0]` is not a binary the image carries.
 */
export function denoRunCommand(
  image: Image,
  argv: readonly string[],
  options: DenoRunCommandOptions,
): string[] {
  const { sourceDir, deno = Deno.execPath() } = options;
  const binary = image.binaries.find((b) => b.path === argv[0]);
  if (!binary) {
    throw new Error(
      `Cannot run "${argv[0] ?? ""}" in image ${image.name}: it carries only ` +
        (image.binaries.map((b) => b.path).join(", ") || "no compiled binary"),
    );
  }
  return [
    deno,
    "run",
    "--config",
    `${sourceDir}/deno.json`,
    ...binary.v8Flags,
    ...binary.permissions,
    `${sourceDir}/${binary.entry}`,
    ...argv.slice(1),
  ];
}
