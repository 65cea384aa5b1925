/**
 * Images for tests on a container engine where no registry can be reached: a busybox rootfs
 * (Debian `busybox-static`'s `/bin/busybox`, or a dynamic busybox with the libraries `ldd`
 * names) with one symlink per applet, imported with `docker import` (or `podman import`, which
 * stores the names as `localhost/<name>` and finds them by the short name) under the names the
 * tests' tasks use.
 *
 * @module
 */
import type { DockerEngine, DockerResult } from "./docker.ts";
import type { PodmanEngine } from "./podman.ts";

/** An engine to import into: a private dockerd or a private podman (same CLI for this). */
export type ImageEngine = Pick<DockerEngine, "docker"> | Pick<PodmanEngine, "podman">;

/** The names the busybox rootfs is imported as (the e2e cases use `alpine:3.20`). */
export const BUSYBOX_IMAGES: readonly string[] = Object.freeze([
  "busybox:latest",
  "alpine:3.20",
  "alpine:latest",
]);

/** Where the busybox binary comes from. */
const BUSYBOX = "/bin/busybox";

/**
 * Builds the busybox rootfs and imports it into `engine` under every name of
 * {@linkcode BUSYBOX_IMAGES}.
 *
 * @param engine The engine to import into.
 * @returns The image names.
 * @throws {Error} When busybox is missing or the import fails, with the engine's reason.
 */
export async function importBusyboxImages(engine: ImageEngine): Promise<readonly string[]> {
  const client = (args: string[], stdin?: Uint8Array): Promise<DockerResult> =>
    "docker" in engine ? engine.docker(args, stdin) : engine.podman(args, stdin);
  const dir = await Deno.makeTempDir({ prefix: "planetary-busybox-" });
  try {
    const root = `${dir}/rootfs`;
    for (const sub of ["bin", "tmp", "etc", "root", "proc", "sys", "dev"]) {
      await Deno.mkdir(`${root}/${sub}`, { recursive: true });
    }
    await Deno.chmod(`${root}/tmp`, 0o1777);
    await Deno.copyFile(BUSYBOX, `${root}/bin/busybox`);
    await Deno.chmod(`${root}/bin/busybox`, 0o755);
    for (const lib of await sharedLibraries(BUSYBOX)) {
      await Deno.mkdir(`${root}${lib.slice(0, lib.lastIndexOf("/"))}`, { recursive: true });
      await Deno.copyFile(lib, `${root}${lib}`);
    }
    const list = await new Deno.Command(`${root}/bin/busybox`, { args: ["--list"] }).output();
    if (!list.success) throw new Error(`${BUSYBOX} --list failed`);
    for (const applet of new TextDecoder().decode(list.stdout).split("\n")) {
      if (!applet || applet === "busybox" || applet.includes("/")) continue;
      await Deno.symlink("busybox", `${root}/bin/${applet}`);
    }
    await Deno.writeTextFile(`${root}/etc/passwd`, "root:x:0:0:root:/root:/bin/sh\n");
    await Deno.writeTextFile(`${root}/etc/group`, "root:x:0:\n");
    const tar = await new Deno.Command("tar", { args: ["-C", root, "-c", "."], stdout: "piped" })
      .output();
    if (!tar.success) throw new Error("tar of the busybox rootfs failed");
    const [first, ...others] = BUSYBOX_IMAGES;
    const imported = await client(
      ["import", "--change", "ENV PATH=/bin", "--change", 'CMD ["sh"]', "-", first!],
      tar.stdout,
    );
    if (imported.code !== 0) throw new Error(`import failed: ${imported.stderr.trim()}`);
    for (const name of others) {
      const tagged = await client(["tag", first!, name]);
      if (tagged.code !== 0) throw new Error(`tag ${name} failed: ${tagged.stderr.trim()}`);
    }
    return BUSYBOX_IMAGES;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** The absolute paths `ldd` names for `binary` (none for a static one). */
async function sharedLibraries(binary: string): Promise<string[]> {
  const out = await new Deno.Command("ldd", { args: [binary], stdout: "piped", stderr: "null" })
    .output().catch(() => undefined);
  if (!out?.success) return [];
  return [...new TextDecoder().decode(out.stdout).matchAll(/(\/[^\s)]+)/g)].map((m) => m[1]!);
}
