/**
 * A real Kubernetes node for tests: a private containerd (Debian 1.6, runc) and a kubelet
 * (built by `k8s/testenv/build.sh`) registered to a control plane of `./k8s.ts`.
 *
 * Where things live, and why:
 * - containerd (and so every pod sandbox, its CNI bridge and the pod CIDR) runs in a network
 *   namespace that this harness creates (bound to a file in the node's folder, not named in
 *   `/run/netns`), joined to the host by one veth pair (`pln-<id>`): host side `<nodeIp>/30`,
 *   namespace side `<runtimeIp>/30`. The namespace has no default
 *   route: pods reach each other, the namespace and the host's veth address, nothing else.
 *   The host gets one route to the pod CIDR through the veth (apiserver service proxy and kubelet
 *   probes reach pods); it vanishes with the veth.
 * - the kubelet runs in the host network namespace (it reaches the apiserver on 127.0.0.1), with
 *   the host-side veth address as its node IP (it refuses a loopback one), serving on that
 *   address only; the apiserver reaches it at its InternalIP (`--kubelet-preferred-address-types`
 *   and the kubelet-client certificate of `./k8s.ts`). containerd's streaming server (exec,
 *   attach, port-forward) listens on the namespace-side address, which the kubelet reaches.
 * - pods live under their own cgroup root (`/planetary-node-<id>/kubepods` in every hierarchy);
 *   containerd, its shims and the kubelet sit in `/planetary-node-<id>/runtime` of the pids
 *   hierarchy, so that one walk of that subtree finds every process a killed run left behind.
 * - everything else (containerd root/state/socket, runc root, kubelet root, pod logs, CNI
 *   config and IPAM state) is under one temp folder.
 *
 * Host side effects that cannot be moved (the kubelet's sysctls `vm.overcommit_memory`,
 * `kernel.panic`, `kernel.panic_on_oops`; `/var/lib/kubelet/device-plugins`,
 * `/var/log/containers`; the CNI result cache under `/var/lib/cni`) are recorded, before they
 * happen, in `/run/planetary-real-node/<id>.json` and undone by `stop()`; a run that was killed
 * is cleaned up by the next `startRealNode()` (or {@linkcode cleanupRealNodeLeftovers}) from that
 * record. Several nodes may run at once: the machine-wide effects are undone by the last one.
 *
 * ```ts ignore
 * const cp = await startControlPlane({ nodes: [] });
 * const node = await startRealNode({ controlPlane: cp });
 * try {
 *   await importBusyboxImagesIntoNode(node);
 *   // create pods with imagePullPolicy: Never on node.nodeName
 * } finally {
 *   await node.stop();
 *   await cp.stop();
 * }
 * ```
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";
import { stringify as stringifyYaml } from "yaml";
import { requireComponent, which } from "./component.ts";
import { type ImageEngine, importBusyboxImages } from "./docker_images.ts";
import { type ControlPlane, K8S_BUILD_COMMAND, k8sBinDir } from "./k8s.ts";
import { killWithGrace } from "./process.ts";

/** The sandbox image `k8s/testenv/build.sh` builds and containerd is configured with. */
export const PAUSE_IMAGE = "registry.k8s.io/pause:3.10";
/** Where the cleanup records of running (or killed) nodes live. */
const REGISTRY = "/run/planetary-real-node";
/** Sysctls the kubelet rewrites at every start. */
const KUBELET_SYSCTLS: readonly string[] = [
  "vm/overcommit_memory",
  "kernel/panic",
  "kernel/panic_on_oops",
];
/** Machine-wide paths the kubelet or containerd create whatever their configuration. */
const GLOBAL_PATHS: readonly string[] = [
  "/var/lib/kubelet/device-plugins",
  "/var/lib/kubelet",
  "/var/log/containers",
  "/var/lib/cni/results",
  "/var/lib/cni",
];
const CNI_BIN_DIR = "/usr/lib/cni";
const CONTAINERD = "/usr/bin/containerd";
const CTR = "/usr/bin/ctr";
const RUNC = "/usr/sbin/runc";
const CGROUP_ROOT = "/sys/fs/cgroup";
/** containerd's streaming server port (inside the node's own namespace: always free). */
const STREAM_PORT = 10010;
/** The kubelet's port (on the node's own veth address: always free). */
const KUBELET_PORT = 10250;

/** The build-time paths of the node's binaries and images. */
interface NodeArtifacts {
  kubelet: string;
  pauseTar: string;
}

function artifacts(): NodeArtifacts {
  const bin = k8sBinDir();
  return {
    kubelet: `${bin}/kubelet`,
    pauseTar: `${bin.replace(/\/bin$/, "")}/images/pause-3.10.tar`,
  };
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Why a real node cannot start on this machine, or undefined when it can: root, the kubelet and
 * the pause image of `k8s/testenv/build.sh`, Debian's containerd, runc and
 * containernetworking-plugins, iproute2, nsenter, cgroup v1 hierarchies.
 *
 * @returns A one-line reason, or undefined.
 */
export function realNodeMissing(): string | undefined {
  if (Deno.build.os !== "linux") return "real node: needs Linux";
  if (Deno.uid() !== 0) return "real node: needs root (containerd, netns, cgroups)";
  const { kubelet, pauseTar } = artifacts();
  for (const path of [kubelet, pauseTar]) {
    if (!exists(path)) return `real node: ${path} missing: run \`${K8S_BUILD_COMMAND}\``;
  }
  for (
    const [path, pkg] of [
      [CONTAINERD, "containerd"],
      [CTR, "containerd"],
      [RUNC, "runc"],
      [`${CNI_BIN_DIR}/bridge`, "containernetworking-plugins"],
      [`${CNI_BIN_DIR}/host-local`, "containernetworking-plugins"],
      [`${CNI_BIN_DIR}/loopback`, "containernetworking-plugins"],
    ] as const
  ) {
    if (!exists(path)) return `real node: ${path} missing (apt-get install ${pkg})`;
  }
  if (!which("ip")) return "real node: no `ip` (apt-get install iproute2)";
  if (!which("nsenter") || !which("unshare")) {
    return "real node: no `nsenter`/`unshare` (apt-get install util-linux)";
  }
  if (
    !exists(`${CGROUP_ROOT}/memory/cgroup.procs`) || !exists(`${CGROUP_ROOT}/pids/cgroup.procs`)
  ) {
    return `real node: needs cgroup v1 memory and pids hierarchies under ${CGROUP_ROOT}`;
  }
  return undefined;
}

/**
 * Whether tests needing a real node run: true when it can start; otherwise skips with a
 * one-line reason locally and fails under `CI=true` (see `requireComponent`).
 *
 * @returns Whether a real node can start.
 */
export function requireRealNode(): boolean {
  const missing = realNodeMissing();
  return requireComponent(missing === undefined, missing ?? "");
}

/** Options of {@linkcode startRealNode}. */
export interface RealNodeOptions {
  /** The control plane to register with (its admin kubeconfig and kubelet-client CA). */
  controlPlane: Pick<ControlPlane, "adminKubeconfigPath" | "kubeletClientCaPath">;
  /** The Node's name. @default {"node-1"} */
  nodeName?: string;
  /** The kubelet's `maxPods`. @default {110} */
  maxPods?: number;
  /** How long to wait for the Node to become Ready, in milliseconds. @default {120000} */
  readyTimeoutMs?: number;
  /** The kubelet's log verbosity (`-v`). @default {1} */
  kubeletVerbosity?: number;
}

/** How long startup took, in milliseconds (for reports, never for assertions). */
export interface RealNodeTimings {
  /** From the call to containerd answering. */
  containerdReadyMs: number;
  /** From the call to the Node Ready (and untainted). */
  readyMs: number;
}

/** What a `ctr` command gave. */
export interface CtrResult {
  /** Exit code. */
  code: number;
  /** Its stdout. */
  stdout: string;
  /** Its stderr. */
  stderr: string;
}

/** A running real node; call `stop()` when done. */
export interface RealNode {
  /** The Node's name (as registered by the kubelet). */
  nodeName: string;
  /** The node IP (host side of the veth), where the apiserver reaches the kubelet. */
  nodeIp: string;
  /** The namespace side of the veth: containerd's address, the pods' way to the host. */
  runtimeIp: string;
  /** The pods' CIDR (exists only inside the node's network namespace). */
  podCidr: string;
  /**
   * The node's network namespace, bound to a file in its folder (`nsenter --net=PATH …`,
   * `ip link set DEV netns PATH`); no `/run/netns` name, so `ip netns` leaves no trace either.
   */
  netnsPath: string;
  /** The node's cgroup, `<hierarchy>/<cgroupName>` in every hierarchy of /sys/fs/cgroup. */
  cgroupName: string;
  /** The node's temp folder (containerd, kubelet, logs). */
  dir: string;
  /** containerd's socket. */
  containerdSocket: string;
  /** Startup timings. */
  timings: RealNodeTimings;
  /**
   * Imports an image tar (docker-archive, e.g. from `docker save`, or OCI layout) into the
   * node's containerd (`ctr -n k8s.io images import`); pods then use it with
   * `imagePullPolicy: Never` or `IfNotPresent`.
   */
  importImage(tar: string): Promise<void>;
  /** Runs `ctr` against the node's containerd in namespace `k8s.io`. */
  ctr(args: string[], stdin?: Uint8Array): Promise<CtrResult>;
  /** Stops the kubelet only (the node goes away; pods keep running in containerd). */
  stopKubelet(): Promise<void>;
  /** Starts the kubelet again after {@linkcode RealNode.stopKubelet}. */
  startKubelet(): Promise<void>;
  /** The last lines of the containerd and kubelet logs, for a failing test to print. */
  logTails(lines?: number): string;
  /**
   * Stops the kubelet, every container, containerd, and undoes every host side effect
   * (mounts, cgroups, netns and links, sysctls, machine-wide paths). Keeps the temp folder
   * (and its logs) when `PLANETARY_KEEP_K8S_DIR=1`.
   */
  stop(): Promise<void>;
}

/** The cleanup record of one node, written before the side effects it lists. */
interface NodeRecord {
  id: string;
  /** The test process that owns the node, and its start time (pid reuse). */
  ownerPid: number;
  ownerStart: string;
  dir: string;
  netnsPath: string;
  hostLink: string;
  /** `k` of its addresses (10.250.k.0/30, 10.251.16k.0/20). */
  subnet: number;
  cgroup: string;
  cniNetwork: string;
  containerdSocket: string;
  /** The values before any node of this machine ran (inherited from a running node). */
  sysctls: Record<string, string>;
  /** Machine-wide paths that did not exist before any node ran. */
  createdPaths: string[];
  /** Set when its cleanup began: a node that stops does not keep the settings for others. */
  stopping?: boolean;
}

async function run(
  cmd: string,
  args: string[],
  options: { stdin?: Uint8Array; check?: boolean } = {},
): Promise<CtrResult> {
  const { stdin, check = true } = options;
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin) {
    const writer = child.stdin.getWriter();
    await writer.write(stdin);
    await writer.close();
  }
  const out = await child.output();
  const result = {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
  if (check && result.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed (exit ${result.code}): ${result.stderr.trim()}`,
    );
  }
  return result;
}

function processStart(pid: number): string | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // fields after the command name (which may hold spaces), field 22 is the start time
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

function ownerAlive(record: NodeRecord): boolean {
  return processStart(record.ownerPid) === record.ownerStart;
}

/**
 * The ids of the real nodes that a live test process runs now (on this machine, any test
 * run): while one runs, machine-wide settings (sysctls, the kubelet's folders) are theirs.
 *
 * @returns The ids.
 */
export function liveRealNodes(): string[] {
  return readRecords().filter(ownerAlive).map((record) => record.id);
}

function readRecords(): NodeRecord[] {
  const records: NodeRecord[] = [];
  try {
    for (const entry of Deno.readDirSync(REGISTRY)) {
      if (!entry.name.endsWith(".json")) continue;
      try {
        records.push(JSON.parse(Deno.readTextFileSync(`${REGISTRY}/${entry.name}`)));
      } catch {
        // a record being written or torn: its owner cleans it
      }
    }
  } catch {
    // no registry yet
  }
  return records;
}

function writeRecord(record: NodeRecord): void {
  Deno.mkdirSync(REGISTRY, { recursive: true });
  const path = `${REGISTRY}/${record.id}.json`;
  Deno.writeTextFileSync(`${path}.tmp`, JSON.stringify(record, null, 2));
  Deno.renameSync(`${path}.tmp`, path);
}

/** Every cgroup v1/v2 mount point under /sys/fs/cgroup. */
function cgroupHierarchies(): string[] {
  const mounts = Deno.readTextFileSync("/proc/self/mountinfo").split("\n");
  const result: string[] = [];
  for (const line of mounts) {
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const fstype = right.split(" ")[0];
    const mountPoint = left.split(" ")[4];
    if (
      (fstype === "cgroup" || fstype === "cgroup2") && mountPoint?.startsWith(`${CGROUP_ROOT}/`)
    ) {
      result.push(mountPoint);
    }
  }
  return result;
}

/** Every cgroup directory at or below `path`, deepest first. */
function cgroupTree(path: string): string[] {
  if (!exists(path)) return [];
  const result: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of Deno.readDirSync(dir)) {
      if (entry.isDirectory) walk(`${dir}/${entry.name}`);
    }
    result.push(dir);
  };
  walk(path);
  return result;
}

function pidsIn(path: string): number[] {
  const pids: number[] = [];
  for (const dir of cgroupTree(path)) {
    try {
      for (const line of Deno.readTextFileSync(`${dir}/cgroup.procs`).split("\n")) {
        if (line.trim()) pids.push(Number(line));
      }
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** SIGKILLs every process of the pids subtree until it is empty (or 10 s pass). */
async function killCgroupProcesses(cgroup: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const pids = pidsIn(`${CGROUP_ROOT}/pids/${cgroup}`);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await sleep(100);
  }
}

/** Every mount point at or below `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  const points = new Set<string>();
  for (const line of Deno.readTextFileSync("/proc/self/mountinfo").split("\n")) {
    const point = line.split(" ")[4]?.replace(/\\040/g, " ");
    if (point && (point === dir || point.startsWith(`${dir}/`))) points.add(point);
  }
  return [...points].sort((a, b) => b.length - a.length);
}

async function unmountAll(dir: string): Promise<void> {
  for (let pass = 0; pass < 5; pass++) {
    const points = mountsUnder(dir);
    if (points.length === 0) return;
    for (const point of points) {
      const out = await run("umount", [point], { check: false });
      if (out.code !== 0) await run("umount", ["-l", point], { check: false });
    }
  }
}

function readSysctl(name: string): string | undefined {
  try {
    return Deno.readTextFileSync(`/proc/sys/${name}`).trim();
  } catch {
    return undefined;
  }
}

function writeSysctl(name: string, value: string): void {
  try {
    if (readSysctl(name) !== value) Deno.writeTextFileSync(`/proc/sys/${name}`, `${value}\n`);
  } catch (error) {
    console.error(`real node: cannot restore ${name}=${value}: ${error}`);
  }
}

/**
 * Undoes what the node of `record` did: kills its processes, removes its shim sockets, unmounts
 * everything under its folder, deletes its netns (and so its links and routes), removes its
 * cgroups deepest first, its CNI cache entries and its folder; when no other node is alive,
 * restores the sysctls and removes the machine-wide paths that did not exist before.
 */
async function undoNode(record: NodeRecord, keepDir = false): Promise<void> {
  writeRecord({ ...record, stopping: true });
  await killCgroupProcesses(record.cgroup);
  // shim sockets live in /run/containerd/s whatever the configuration; each task's bundle names its own
  const tasks = `${record.dir}/containerd/state/io.containerd.runtime.v2.task`;
  for (const ns of exists(tasks) ? Deno.readDirSync(tasks) : []) {
    for (const task of Deno.readDirSync(`${tasks}/${ns.name}`)) {
      try {
        const address = Deno.readTextFileSync(`${tasks}/${ns.name}/${task.name}/address`).trim();
        const socket = address.replace(/^unix:\/\//, "");
        if (socket.startsWith("/run/containerd/s/")) await Deno.remove(socket).catch(() => {});
      } catch {
        // no address file
      }
    }
  }
  // the namespace file is one of these mounts: with it and its processes gone, the namespace,
  // its veth pair (host side included), bridge and routes go too
  await unmountAll(record.dir);
  if (exists(`/sys/class/net/${record.hostLink}`)) {
    await run("ip", ["link", "delete", record.hostLink], { check: false });
  }
  for (const hierarchy of cgroupHierarchies()) {
    for (const dir of cgroupTree(`${hierarchy}/${record.cgroup}`)) {
      await Deno.remove(dir).catch(() => {});
    }
  }
  // CNI results of sandboxes not torn down through CNI: ours by network name, the loopback
  // network's by the sandbox ids that containerd's CRI folders still name
  const sandboxes = new Set<string>();
  for (const base of ["root", "state"]) {
    try {
      const folder = `${record.dir}/containerd/${base}/io.containerd.grpc.v1.cri/sandboxes`;
      for (const entry of Deno.readDirSync(folder)) sandboxes.add(entry.name);
    } catch {
      // none
    }
  }
  try {
    for (const entry of Deno.readDirSync("/var/lib/cni/results")) {
      const sandbox = entry.name.match(/-([0-9a-f]{64})-[^-]+$/)?.[1];
      if (
        entry.name.startsWith(`${record.cniNetwork}-`) || (sandbox && sandboxes.has(sandbox))
      ) {
        await Deno.remove(`/var/lib/cni/results/${entry.name}`).catch(() => {});
      }
    }
  } catch {
    // no cache
  }
  try {
    for (const entry of Deno.readDirSync("/var/log/containers")) {
      const path = `/var/log/containers/${entry.name}`;
      const target = await Deno.readLink(path).catch(() => "");
      if (target.startsWith(`${record.dir}/`)) await Deno.remove(path).catch(() => {});
    }
  } catch {
    // no folder
  }
  // two nodes stopping at once may both restore (same values); never neither
  const others = readRecords().filter((r) => r.id !== record.id && !r.stopping && ownerAlive(r));
  if (others.length === 0) {
    for (const [name, value] of Object.entries(record.sysctls)) writeSysctl(name, value);
    for (const path of record.createdPaths) {
      // device-plugins holds only the kubelet's own socket; the others only our leftovers
      await Deno.remove(path, { recursive: path.endsWith("device-plugins") }).catch(() => {});
    }
  }
  if (!keepDir) await Deno.remove(record.dir, { recursive: true }).catch(() => {});
  await Deno.remove(`${REGISTRY}/${record.id}.json`).catch(() => {});
  if (readRecords().length === 0) await Deno.remove(REGISTRY).catch(() => {});
}

/**
 * Cleans up after nodes whose test process is gone (a killed or crashed run): see `undoNode`.
 * {@linkcode startRealNode} calls it first.
 *
 * @returns The ids of the nodes cleaned up.
 */
export async function cleanupRealNodeLeftovers(): Promise<string[]> {
  const cleaned: string[] = [];
  for (const record of readRecords()) {
    if (ownerAlive(record)) continue;
    await undoNode(record);
    cleaned.push(record.id);
  }
  return cleaned;
}

/**
 * Picks `k` (1–15) so that the veth pair's 10.250.k.0/30 and the pods' 10.251.16k.0/20 (4094
 * addresses: more than any `maxPods`) are in use nowhere on this machine.
 */
async function pickSubnet(taken: readonly number[]): Promise<number> {
  const used = (await run("ip", ["-4", "route", "show", "table", "all"])).stdout +
    (await run("ip", ["-4", "-o", "addr"])).stdout;
  const free = (k: number): boolean =>
    !taken.includes(k) && !used.includes(`10.250.${k}.`) &&
    Array.from({ length: 16 }, (_, i) => `10.251.${k * 16 + i}.`).every((p) => !used.includes(p));
  const candidates = Array.from({ length: 15 }, (_, i) => i + 1).filter(free);
  const k = candidates[Math.floor(Math.random() * candidates.length)];
  if (k === undefined) throw new Error("real node: no free 10.250.k.0/30 + 10.251.16k.0/20 pair");
  return k;
}

class Proc {
  readonly name: string;
  readonly logPath: string;
  readonly #child: Deno.ChildProcess;
  readonly status: Promise<Deno.CommandStatus>;
  exited = false;

  constructor(name: string, cmd: string, args: string[], logPath: string) {
    this.name = name;
    this.logPath = logPath;
    const log = Deno.openSync(logPath, { write: true, create: true, append: true });
    log.writeSync(new TextEncoder().encode(`$ ${cmd} ${args.join(" ")}\n`));
    this.#child = new Deno.Command(cmd, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const sink = (): WritableStream<Uint8Array> =>
      new WritableStream({ write: (chunk) => void log.writeSync(chunk) });
    const piping = Promise.allSettled([
      this.#child.stdout.pipeTo(sink()),
      this.#child.stderr.pipeTo(sink()),
    ]).finally(() => log.close());
    this.status = this.#child.status.then(async (s) => {
      this.exited = true;
      await piping;
      return s;
    });
  }

  async stop(graceMs = 10_000): Promise<void> {
    if (!this.exited) await killWithGrace(this.#child, this.status, "SIGTERM", graceMs);
    await this.status;
  }

  tail(lines = 30): string {
    try {
      return Deno.readTextFileSync(this.logPath).trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }
}

async function pollUntil<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined>,
  procs: Proc[],
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (true) {
    for (const p of procs) {
      if (p.exited) throw new Error(`${p.name} exited while waiting for ${what}:\n${p.tail()}`);
    }
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: lastError });
    }
    await sleep(200);
  }
}

function containerdConfig(
  dir: string,
  socket: string,
  runtimeIp: string,
  cniConfDir: string,
): string {
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return [
    "version = 2",
    `root = ${JSON.stringify(`${dir}/containerd/root`)}`,
    `state = ${JSON.stringify(`${dir}/containerd/state`)}`,
    // plugins that would look at machine-wide places or cannot work here
    'disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", ' +
    '"io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", ' +
    '"io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]',
    "[grpc]",
    `  address = ${JSON.stringify(socket)}`,
    "[ttrpc]",
    `  address = ${JSON.stringify(`${socket}.ttrpc`)}`,
    "[debug]",
    '  level = "info"',
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${JSON.stringify(`${dir}/containerd/opt`)}`,
    `[${cri}]`,
    `  sandbox_image = ${JSON.stringify(PAUSE_IMAGE)}`,
    // root may not lower oom_score_adj here: without this every sandbox fails to start
    "  restrict_oom_score_adj = true",
    "  netns_mounts_under_state_dir = true",
    "  disable_hugetlb_controller = true",
    "  disable_apparmor = true",
    "  enable_selinux = false",
    "  max_container_log_line_size = 16384",
    `  stream_server_address = ${JSON.stringify(runtimeIp)}`,
    `  stream_server_port = "${STREAM_PORT}"`,
    `[${cri}.containerd]`,
    '  snapshotter = "overlayfs"',
    '  default_runtime_name = "runc"',
    `[${cri}.containerd.runtimes.runc]`,
    '  runtime_type = "io.containerd.runc.v2"',
    `[${cri}.containerd.runtimes.runc.options]`,
    "  SystemdCgroup = false",
    `  BinaryName = ${JSON.stringify(RUNC)}`,
    `  Root = ${JSON.stringify(`${dir}/runc`)}`,
    `[${cri}.cni]`,
    `  bin_dir = ${JSON.stringify(CNI_BIN_DIR)}`,
    `  conf_dir = ${JSON.stringify(cniConfDir)}`,
    "  max_conf_num = 1",
    "",
  ].join("\n");
}

/**
 * Starts a real node: creates its network namespace, veth pair and cgroup root, starts a private
 * containerd inside the namespace, imports the pause image, starts a kubelet registered to
 * `controlPlane`, waits for the Node to be Ready and lifts the `not-ready` taint that
 * admission puts on new Nodes (no node lifecycle controller runs). Cleans up leftovers of
 * killed runs first. On failure prints the logs, undoes everything and throws.
 *
 * @param options The control plane and node settings.
 * @returns The running node.
 * @throws {Error} When a component is missing (see {@linkcode realNodeMissing}) or the Node
 * does not become Ready.
 * @example
 * ```ts ignore
 * const node = await startRealNode({ controlPlane: cp });
 * await node.importImage("/tmp/image.tar");
 * await node.stop();
 * ```
 */
export async function startRealNode(options: RealNodeOptions): Promise<RealNode> {
  const {
    controlPlane,
    nodeName = "node-1",
    maxPods = 110,
    readyTimeoutMs = 120_000,
    kubeletVerbosity = 1,
  } = options;
  const missing = realNodeMissing();
  if (missing) throw new Error(`Cannot start a real node: ${missing}`);
  const started = Date.now();
  await cleanupRealNodeLeftovers();

  const id = Array.from(
    crypto.getRandomValues(new Uint8Array(3)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
  const dir = await Deno.makeTempDir({ prefix: `planetary-node-${id}-` });
  // nodes starting at the same time see each other's record before their routes
  const k = await pickSubnet(readRecords().map((r) => r.subnet));
  const nodeIp = `10.250.${k}.1`;
  const runtimeIp = `10.250.${k}.2`;
  const podCidr = `10.251.${k * 16}.0/20`;
  const containerdSocket = `${dir}/containerd.sock`;
  // the values before the first node of those still alive (even stopping) ran
  const live = readRecords().find(ownerAlive);
  const record: NodeRecord = {
    id,
    ownerPid: Deno.pid,
    ownerStart: processStart(Deno.pid) ?? "",
    dir,
    netnsPath: `${dir}/netns`,
    hostLink: `pln-${id}`,
    subnet: k,
    cgroup: `planetary-node-${id}`,
    cniNetwork: `planetary-${id}`,
    containerdSocket,
    sysctls: live?.sysctls ??
      Object.fromEntries(
        KUBELET_SYSCTLS.flatMap((name) => {
          const value = readSysctl(name);
          return value === undefined ? [] : [[name, value]];
        }),
      ),
    createdPaths: live?.createdPaths ?? GLOBAL_PATHS.filter((path) => !exists(path)),
  };
  writeRecord(record);

  const procs: Proc[] = [];
  let kubelet: Proc | undefined;
  let stopped = false;
  const logTails = (lines = 30): string =>
    procs.map((p) => `--- ${p.name} (${p.logPath}), last lines ---\n${p.tail(lines)}`).join("\n");
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await kubelet?.stop();
    // each task deleted through containerd, so that its shim exits and removes its socket
    const containerd = procs.find((p) => p.name === "containerd");
    if (containerd && !containerd.exited) {
      const ids = (await ctr(["containers", "list", "--quiet"]).catch(() => undefined))?.stdout
        .split("\n").filter(Boolean) ?? [];
      await Promise.all(ids.map((cid) => ctr(["tasks", "delete", "--force", cid]).catch(() => {})));
      await containerd.stop();
    }
    const keep = Deno.env.get("PLANETARY_KEEP_K8S_DIR") === "1";
    await undoNode(record, keep);
    if (keep) console.error(`real node dir kept: ${dir}`);
  };
  const ctr = (args: string[], stdin?: Uint8Array): Promise<CtrResult> =>
    run(CTR, ["--address", containerdSocket, "--namespace", "k8s.io", ...args], {
      check: false,
      ...(stdin ? { stdin } : {}),
    });

  try {
    // network: a namespace joined to the host by one veth pair, no default route inside
    const inNetns = (argv: string[]): Promise<CtrResult> =>
      run("nsenter", [`--net=${record.netnsPath}`, ...argv]);
    await Deno.writeFile(record.netnsPath, new Uint8Array());
    await run("unshare", [`--net=${record.netnsPath}`, "true"]);
    await inNetns(["ip", "link", "set", "lo", "up"]);
    await run("ip", [
      "link",
      "add",
      record.hostLink,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      record.netnsPath,
    ]);
    await run("ip", ["addr", "add", `${nodeIp}/30`, "dev", record.hostLink]);
    await run("ip", ["link", "set", record.hostLink, "up"]);
    await inNetns(["ip", "addr", "add", `${runtimeIp}/30`, "dev", "eth0"]);
    await inNetns(["ip", "link", "set", "eth0", "up"]);
    await run("ip", ["route", "add", podCidr, "via", runtimeIp, "dev", record.hostLink]);
    // per namespace: the host's own setting is not touched
    await inNetns(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);

    // cgroups: the pods' root in every hierarchy, the runtime's in pids
    for (const hierarchy of cgroupHierarchies()) {
      await Deno.mkdir(`${hierarchy}/${record.cgroup}`, { recursive: true });
      if (hierarchy.endsWith("/cpuset")) {
        for (const file of ["cpuset.cpus", "cpuset.mems"]) {
          const value = await Deno.readTextFile(`${hierarchy}/${file}`);
          await Deno.writeTextFile(`${hierarchy}/${record.cgroup}/${file}`, value);
        }
      }
    }
    const runtimeProcs = `${CGROUP_ROOT}/pids/${record.cgroup}/runtime/cgroup.procs`;
    await Deno.mkdir(`${CGROUP_ROOT}/pids/${record.cgroup}/runtime`);
    /** argv that joins the runtime cgroup, then execs `argv` (no shell interpolation of it). */
    const inRuntimeCgroup = (argv: string[]): [string, string[]] => [
      "/bin/sh",
      ["-c", 'echo $$ > "$0" && exec "$@"', runtimeProcs, ...argv],
    ];

    // CNI: a bridge with host-local addresses inside the namespace, no masquerade
    const cniConfDir = `${dir}/cni/net.d`;
    await Deno.mkdir(cniConfDir, { recursive: true });
    await Deno.writeTextFile(
      `${cniConfDir}/10-planetary.conflist`,
      JSON.stringify(
        {
          cniVersion: "0.4.0",
          name: record.cniNetwork,
          plugins: [{
            type: "bridge",
            bridge: "cni0",
            isGateway: true,
            isDefaultGateway: true,
            ipMasq: false,
            hairpinMode: true,
            ipam: {
              type: "host-local",
              ranges: [[{ subnet: podCidr }]],
              dataDir: `${dir}/cni/ipam`,
            },
          }],
        },
        null,
        2,
      ),
    );

    // containerd inside the namespace
    const containerdConfigPath = `${dir}/containerd.toml`;
    await Deno.writeTextFile(
      containerdConfigPath,
      containerdConfig(dir, containerdSocket, runtimeIp, cniConfDir),
    );
    const [sh, shArgs] = inRuntimeCgroup([
      "nsenter",
      `--net=${record.netnsPath}`,
      CONTAINERD,
      "--config",
      containerdConfigPath,
    ]);
    const containerd = new Proc("containerd", sh, shArgs, `${dir}/containerd.log`);
    procs.push(containerd);
    await pollUntil("containerd", readyTimeoutMs, async () => {
      const out = await ctr(["version"]);
      return out.code === 0 ? true : undefined;
    }, procs);
    const containerdReadyMs = Date.now() - started;
    const importImage = async (tar: string): Promise<void> => {
      const out = await ctr(["images", "import", "--snapshotter", "overlayfs", tar]);
      if (out.code !== 0) {
        throw new Error(`ctr images import ${tar} failed: ${out.stderr.trim()}`);
      }
    };
    await importImage(artifacts().pauseTar);

    // kubelet in the host namespace, serving on the host side of the veth
    const kubeletRoot = `${dir}/kubelet`;
    await Deno.mkdir(kubeletRoot, { recursive: true });
    const kubeletConfigPath = `${dir}/kubelet-config.yaml`;
    await Deno.writeTextFile(
      kubeletConfigPath,
      stringifyYaml({
        apiVersion: "kubelet.config.k8s.io/v1beta1",
        kind: "KubeletConfiguration",
        address: nodeIp,
        port: KUBELET_PORT,
        readOnlyPort: 0,
        healthzBindAddress: nodeIp,
        healthzPort: 10248,
        authentication: {
          anonymous: { enabled: false },
          webhook: { enabled: true },
          x509: { clientCAFile: controlPlane.kubeletClientCaPath },
        },
        authorization: { mode: "Webhook" },
        cgroupDriver: "cgroupfs",
        cgroupRoot: `/${record.cgroup}`,
        // cgroup v1 hierarchies only on this machine
        failCgroupV1: false,
        failSwapOn: false,
        // no iptables rules on the host (it would install chains with a DROP rule)
        makeIPTablesUtilChains: false,
        containerRuntimeEndpoint: `unix://${containerdSocket}`,
        podLogsDir: `${dir}/pod-logs`,
        volumePluginDir: `${dir}/volume-plugins`,
        maxPods,
        // the machine's disk is shared: never evict, never collect the imported images
        evictionHard: {
          "memory.available": "1Mi",
          "nodefs.available": "1%",
          "imagefs.available": "1%",
          "nodefs.inodesFree": "1%",
        },
        imageGCHighThresholdPercent: 100,
        imageGCLowThresholdPercent: 99,
        serializeImagePulls: false,
        // status written quickly so that tests see transitions soon
        nodeStatusUpdateFrequency: "10s",
        syncFrequency: "10s",
        fileCheckFrequency: "20s",
        shutdownGracePeriod: "0s",
        registerNode: true,
      }),
    );
    const startKubelet = async (): Promise<void> => {
      if (kubelet && !kubelet.exited) return;
      const [ksh, kshArgs] = inRuntimeCgroup([
        artifacts().kubelet,
        `--config=${kubeletConfigPath}`,
        `--kubeconfig=${controlPlane.adminKubeconfigPath}`,
        `--root-dir=${kubeletRoot}`,
        `--cert-dir=${kubeletRoot}/pki`,
        `--hostname-override=${nodeName}`,
        `--node-ip=${nodeIp}`,
        `-v=${kubeletVerbosity}`,
      ]);
      const next = new Proc("kubelet", ksh, kshArgs, `${dir}/kubelet.log`);
      const index = kubelet ? procs.indexOf(kubelet) : -1;
      if (index >= 0) procs[index] = next;
      else procs.push(next);
      kubelet = next;
      await Promise.resolve();
    };
    await startKubelet();

    const kc = new k8s.KubeConfig();
    kc.loadFromFile(controlPlane.adminKubeconfigPath);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    await pollUntil(`Node ${nodeName} Ready`, readyTimeoutMs, async () => {
      const node = await core.readNode({ name: nodeName });
      const ready = node.status?.conditions?.find((c) => c.type === "Ready");
      return ready?.status === "True" ? true : undefined;
    }, procs);
    // admission taints new Nodes not-ready; the node lifecycle controller that lifts it is off
    await pollUntil(`Node ${nodeName} untainted`, readyTimeoutMs, async () => {
      const node = await core.readNode({ name: nodeName });
      const taints = node.spec?.taints ?? [];
      const kept = taints.filter((t) => t.key !== "node.kubernetes.io/not-ready");
      if (kept.length === taints.length) return true;
      node.spec = { ...node.spec, taints: kept };
      await core.replaceNode({ name: nodeName, body: node });
      return undefined;
    }, procs);
    const readyMs = Date.now() - started;

    return {
      nodeName,
      nodeIp,
      runtimeIp,
      podCidr,
      netnsPath: record.netnsPath,
      cgroupName: record.cgroup,
      dir,
      containerdSocket,
      timings: { containerdReadyMs, readyMs },
      importImage,
      ctr,
      stopKubelet: async () => {
        await kubelet?.stop();
      },
      startKubelet,
      logTails,
      stop,
    };
  } catch (error) {
    console.error(logTails());
    await stop();
    throw error;
  }
}

/** The reference containerd's CRI resolves a short image name to (`busybox` → `docker.io/library/busybox:latest`). */
export function normalizeImageName(name: string): string {
  const slash = name.indexOf("/");
  const first = slash < 0 ? "" : name.slice(0, slash);
  let full = name;
  if (slash < 0) full = `docker.io/library/${name}`;
  else if (!first.includes(".") && !first.includes(":") && first !== "localhost") {
    full = `docker.io/${name}`;
  }
  const lastPart = full.slice(full.lastIndexOf("/") + 1);
  return lastPart.includes(":") || lastPart.includes("@") ? full : `${full}:latest`;
}

/** The image config of {@linkcode importRootfs}. */
export interface RootfsImageConfig {
  /** ENV (`NAME=value`). @default {[]} */
  env?: string[];
  /** ENTRYPOINT. @default none */
  entrypoint?: string[];
  /** CMD. @default none */
  cmd?: string[];
  /** WORKDIR. @default none */
  workingDir?: string;
  /** USER. @default none */
  user?: string;
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Writes a one-layer docker-archive (what `docker save` writes) from a rootfs tar and imports it
 * into the node under `names` (short names are stored as containerd's CRI resolves them).
 *
 * @param node The node (its `ctr`).
 * @param layerTar The rootfs as an uncompressed tar.
 * @param names The image names.
 * @param config ENV, ENTRYPOINT, CMD, WORKDIR, USER.
 * @returns The normalized names.
 * @throws {Error} When the import fails, with ctr's reason.
 */
export async function importRootfs(
  node: Pick<RealNode, "importImage">,
  layerTar: Uint8Array,
  names: readonly string[],
  config: RootfsImageConfig = {},
): Promise<string[]> {
  const { env = [], entrypoint, cmd, workingDir, user } = config;
  const dir = await Deno.makeTempDir({ prefix: "planetary-image-" });
  try {
    const layerDigest = await sha256Hex(layerTar);
    await Deno.mkdir(`${dir}/archive/${layerDigest}`, { recursive: true });
    await Deno.writeFile(`${dir}/archive/${layerDigest}/layer.tar`, layerTar);
    const imageConfig = new TextEncoder().encode(JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: {
        Env: env,
        ...(entrypoint ? { Entrypoint: entrypoint } : {}),
        ...(cmd ? { Cmd: cmd } : {}),
        ...(workingDir ? { WorkingDir: workingDir } : {}),
        ...(user ? { User: user } : {}),
      },
      rootfs: { type: "layers", diff_ids: [`sha256:${layerDigest}`] },
    }));
    const configDigest = await sha256Hex(imageConfig);
    await Deno.writeFile(`${dir}/archive/${configDigest}.json`, imageConfig);
    const normalized = names.map(normalizeImageName);
    await Deno.writeTextFile(
      `${dir}/archive/manifest.json`,
      JSON.stringify([{
        Config: `${configDigest}.json`,
        RepoTags: normalized,
        Layers: [`${layerDigest}/layer.tar`],
      }]),
    );
    await run("tar", ["-C", `${dir}/archive`, "-cf", `${dir}/image.tar`, "."]);
    await node.importImage(`${dir}/image.tar`);
    return normalized;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * An {@linkcode ImageEngine} over the node's containerd: `import [--change ENV|CMD|ENTRYPOINT|WORKDIR|USER …] - NAME`
 * (rootfs tar on stdin) and `tag SRC DST`, the two commands `./docker_images.ts` uses, so that
 * its images are built once for every runtime.
 *
 * @param node The node.
 * @returns An engine whose `docker()` answers those two commands.
 */
export function ctrImageEngine(node: Pick<RealNode, "importImage" | "ctr">): ImageEngine {
  const fail = (stderr: string) => ({ code: 1, stdout: "", stderr });
  return {
    docker: async (args, stdin) => {
      if (args[0] === "tag" && args.length === 3) {
        const out = await node.ctr([
          "images",
          "tag",
          "--force",
          normalizeImageName(args[1]!),
          normalizeImageName(args[2]!),
        ]);
        return out;
      }
      if (args[0] !== "import" || !stdin || args.at(-2) !== "-") {
        return fail(`ctrImageEngine: unsupported command ${args.join(" ")}`);
      }
      const config: RootfsImageConfig = {};
      const env: string[] = [];
      for (let i = 1; i < args.length - 2; i++) {
        if (args[i] !== "--change") return fail(`ctrImageEngine: unsupported flag ${args[i]}`);
        const change = args[++i] ?? "";
        const [instruction = "", ...rest] = change.split(" ");
        const value = rest.join(" ");
        if (instruction === "ENV") env.push(value);
        else if (instruction === "CMD") config.cmd = JSON.parse(value);
        else if (instruction === "ENTRYPOINT") config.entrypoint = JSON.parse(value);
        else if (instruction === "WORKDIR") config.workingDir = value;
        else if (instruction === "USER") config.user = value;
        else return fail(`ctrImageEngine: unsupported change ${change}`);
      }
      config.env = env;
      try {
        await importRootfs(node, stdin, [args.at(-1)!], config);
        return { code: 0, stdout: "", stderr: "" };
      } catch (error) {
        return fail(error instanceof Error ? error.message : String(error));
      }
    },
  };
}

/**
 * Imports the static busybox images of `./docker_images.ts` (`busybox:latest`, `alpine:3.20`,
 * …) into the node.
 *
 * @param node The node.
 * @returns The image names as the tests use them.
 * @throws {Error} When busybox is missing or the import fails.
 */
export function importBusyboxImagesIntoNode(
  node: Pick<RealNode, "importImage" | "ctr">,
): Promise<readonly string[]> {
  return importBusyboxImages(ctrImageEngine(node));
}
