/**
 * A cluster of real `tessera node` processes on this machine, on loopback: what `tessera demo`
 * runs, and what the integration tests and benchmarks drive.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type TesseraClient } from '../client/index.js';
import { clientFrom } from './context.js';
import { formatJoinToken, initDataDir, newClusterKeys, type ClusterKeys } from '../cluster/identity.js';
import { TesseraError } from '../errors.js';
import { freePort } from './free-port.js';
import { nodeRuntimeArgs, withMallocEnv } from './runtime-tuning.js';

export { freePort };

export const CLI_PATH = fileURLToPath(new URL('./main.js', import.meta.url));
const READY_TIMEOUT_MS = 20_000;
const POLL_MS = 50;

export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined | false> | T | undefined | false): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new TesseraError('TIMEOUT', `timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${(lastErr as Error).message})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

export interface LocalNode {
  index: number;
  dataDir: string;
  listen: string;
  api: string;
  nodeId: string;
  apiToken: string;
  proc: ChildProcess | undefined;
  client: TesseraClient;
  /** Extra arguments this node was started with. */
  args: string[];
}

export interface LocalClusterOptions {
  nodes: number;
  dir?: string;
  memory?: boolean;
  logLevel?: string;
  /** Extra `tessera node` arguments for every node (e.g. timing knobs). */
  nodeArgs?: string[];
  /** Extra arguments for the node with this index among the first `nodes` (e.g. its --zone). */
  argsFor?: (index: number) => string[];
  /** Environment for node processes, on top of this process's. */
  env?: Record<string, string>;
  /** Bootstrap every node after the first through node 0 (default) or through these indexes. */
  bootstrapIndexes?: number[];
  /** Node.js flags for node processes (e.g. --cpu-prof for a profile). */
  execArgv?: string[];
  /** Run nodes in their own process group, so they outlive this process (demo --keep). */
  detached?: boolean;
}

export class LocalCluster {
  readonly nodes: LocalNode[] = [];
  private ownsDir = false;

  private constructor(readonly dir: string, readonly keys: ClusterKeys, private readonly opts: LocalClusterOptions) {}

  static async create(opts: LocalClusterOptions): Promise<LocalCluster> {
    const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'tessera-')));
    const cluster = new LocalCluster(dir, newClusterKeys(), opts);
    cluster.ownsDir = opts.dir === undefined;
    try {
      for (let i = 0; i < opts.nodes; i++) await cluster.addNode({ start: false, args: opts.argsFor?.(i) ?? [] });
      await Promise.all(cluster.nodes.map((n) => cluster.start(n.index)));
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
    return cluster;
  }

  get joinToken(): string {
    return formatJoinToken(this.keys);
  }

  /** Initialises one more node (and starts it unless told not to). */
  async addNode(o: { start?: boolean; bootstrap?: number[]; args?: string[]; keys?: ClusterKeys } = {}): Promise<LocalNode> {
    const index = this.nodes.length;
    const dataDir = join(this.dir, `node${index}`);
    // Other keys make a node of another cluster (tests of admission).
    const id = await initDataDir(dataDir, o.keys ?? this.keys);
    const node: LocalNode = {
      index,
      dataDir,
      listen: `127.0.0.1:${await freePort()}`,
      api: `127.0.0.1:${await freePort()}`,
      nodeId: id.credentials.nodeId,
      apiToken: id.apiToken,
      proc: undefined,
      client: undefined as unknown as TesseraClient,
      args: o.args ?? [],
    };
    node.client = connect({ api: node.api, token: id.apiToken });
    this.nodes.push(node);
    if (o.start !== false) await this.start(index, o.bootstrap);
    return node;
  }

  node(i: number): LocalNode {
    const n = this.nodes[i];
    if (!n) throw new TesseraError('BAD_INPUT', `no node ${i} in this cluster`);
    return n;
  }

  /** Starts (or restarts) node i with its same identity, addresses and data. */
  async start(i: number, bootstrap?: number[]): Promise<void> {
    const n = this.node(i);
    if (n.proc && n.proc.exitCode === null && n.proc.signalCode === null) throw new TesseraError('CONFLICT', `node ${i} is already running`);
    const via = bootstrap ?? this.opts.bootstrapIndexes ?? [0];
    const boot = via.filter((b) => b !== i && this.nodes[b]).map((b) => this.node(b).listen);
    const args = [
      ...nodeRuntimeArgs(this.opts.execArgv),
      CLI_PATH, 'node', '--data', n.dataDir, '--listen', n.listen, '--api', n.api,
      '--log-level', this.opts.logLevel ?? 'info',
      ...(boot.length ? ['--bootstrap', boot.join(',')] : []),
      ...(this.opts.memory ? ['--memory'] : []),
      ...(this.opts.nodeArgs ?? []),
      ...n.args,
    ];
    // Children write straight to their log file, so they outlive this process when detached.
    const logPath = join(this.dir, `node${i}.log`);
    const fd = openSync(logPath, 'a');
    const logStart = fstatSync(fd).size;
    const proc = spawn(process.execPath, args, {
      stdio: ['ignore', fd, fd],
      env: withMallocEnv({ ...process.env, ...this.opts.env }),
      detached: this.opts.detached === true,
    });
    closeSync(fd);
    const stderrTail = () => {
      try {
        return readFileSync(logPath, 'utf8').slice(logStart).trim().split('\n').slice(-5).join('\n');
      } catch {
        return '';
      }
    };
    n.proc = proc;
    await waitFor(`node ${i} to serve its API at ${n.api}`, READY_TIMEOUT_MS, async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new TesseraError('UNAVAILABLE', `node ${i} exited during start-up (${proc.exitCode ?? proc.signalCode}): ${stderrTail()}`);
      }
      const info = JSON.parse(await readFile(join(n.dataDir, 'node.json'), 'utf8')) as { pid: number; apiScheme?: string };
      if (info.pid !== proc.pid) return false;
      // An HTTPS API is reached the way the CLI does: its certificate pinned from the data dir.
      if (info.apiScheme === 'https' && !n.client.address.startsWith('https://')) n.client = await clientFrom({ data: n.dataDir, api: n.api, token: n.apiToken });
      return (await n.client.status()).nodeId === n.nodeId;
    }).catch((err: unknown) => {
      // Errors thrown from the probe are remembered; an early exit should win over a timeout.
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new TesseraError('UNAVAILABLE', `node ${i} exited during start-up (${proc.exitCode ?? proc.signalCode}): ${stderrTail()}`);
      }
      throw err;
    });
  }

  running(i: number): boolean {
    const p = this.node(i).proc;
    return !!p && p.exitCode === null && p.signalCode === null;
  }

  /** Sends a signal and waits for the process to exit. */
  async kill(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.node(i).proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    p.kill(signal);
    const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  /** Waits until every running node's API lists `expected` members in the given states. */
  async waitForMembers(expected: { alive: number; dead?: number }, timeoutMs = 20_000, among?: number[]): Promise<void> {
    const which = among ?? this.nodes.filter((n) => this.running(n.index)).map((n) => n.index);
    // What the node that fell short saw last, so a timeout says who is missing from whose view.
    let shortfall = '';
    await waitFor(`${which.length} nodes to see ${expected.alive} alive${expected.dead !== undefined ? ` and ${expected.dead} dead` : ''}`, timeoutMs, async () => {
      for (const i of which) {
        const peers = await this.node(i).client.peers();
        const alive = peers.filter((p) => p.state === 'alive').length;
        const dead = peers.filter((p) => p.state === 'dead' || p.state === 'left').length;
        if (alive !== expected.alive || (expected.dead !== undefined && dead !== expected.dead)) {
          shortfall = `node ${i} sees ${peers.map((p) => `${p.nodeId.slice(0, 8)}@${p.addr}=${p.state}`).join(' ')}`;
          return false;
        }
      }
      return true;
    }).catch((err: unknown) => {
      throw err instanceof TesseraError && shortfall !== '' ? new TesseraError(err.code, `${err.message}; ${shortfall}`) : err;
    });
  }

  /** Stops every node gracefully (SIGTERM), then removes the directory unless `keep`. */
  async destroy(opts: { keep?: boolean } = {}): Promise<void> {
    await Promise.all(this.nodes.map((n) => this.kill(n.index, 'SIGTERM')));
    if (this.ownsDir && !opts.keep) await rm(this.dir, { recursive: true, force: true });
  }
}
