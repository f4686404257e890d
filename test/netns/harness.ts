/**
 * Real `tessera node` processes on separate hosts: each host is a network namespace with its own
 * address on a private subnet, joined by veth pairs to a bridge that lives in a namespace of its
 * own, so the machine's own network is never touched except for one veth into the bridge (the
 * test process's door to the hosts' APIs and to the fault proxy). Partitions are nftables rules
 * inside the hosts; latency and resets come from the fault proxy (test/netns/fault-proxy.ts), since
 * this kernel has no netem.
 *
 * Every name carries the prefix `tsrt` and the pid of the process that made it, so a run that
 * crashed is cleaned up by the next one (its pid is gone) without touching a run still alive.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { connect, type ApiTlsTrust, type TesseraClient } from '../../src/client/index.js';
import { API_CERT_FILE, ensureSelfSignedApiCert } from '../../src/net/api-tls.js';
import type { PeerView } from '../../src/api/types.js';
import { initDataDir, newClusterKeys, type ClusterKeys } from '../../src/cluster/identity.js';
import { CLI_PATH, waitFor } from '../../src/cli/local-cluster.js';
import { nodeRuntimeArgs, withMallocEnv } from '../../src/cli/runtime-tuning.js';
import { FaultProxy, type FaultSpec } from './fault-proxy.js';

const run = promisify(execFile);

export const PREFIX = 'tsrt';
/**
 * Test subnets are 10.213.N.0/24; each run takes an N no other interface of the root namespace uses,
 * so two runs at once (a CI run beside a developer's) never share a route. They exist only on the
 * harness's own interfaces.
 */
export const SUBNET_PREFIX = '10.213';

/** A /24 under SUBNET_PREFIX that no address in the root namespace is in, starting from the pid. */
async function freeSubnet(): Promise<string> {
  const addrs = await sh('ip', '-o', '-4', 'addr', 'show').catch(() => '');
  const used = new Set<number>();
  for (const m of addrs.matchAll(/inet 10\.213\.(\d+)\./g)) used.add(Number(m[1]));
  for (let k = 0; k < 200; k++) {
    const n = 20 + ((process.pid + k) % 200);
    if (!used.has(n)) return `${SUBNET_PREFIX}.${n}`;
  }
  throw new Error(`no free /24 under ${SUBNET_PREFIX}.0.0/16`);
}
const PEER_PORT = 7400;
const API_PORT = 7401;
const READY_TIMEOUT_MS = 30_000;

async function sh(cmd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run(cmd, args, { timeout: 20_000 });
  return stdout;
}

async function ns(name: string, cmd: string, ...args: string[]): Promise<string> {
  return sh('ip', 'netns', 'exec', name, cmd, ...args);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Why the netns tests cannot run here, or undefined when they can. */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root (run the netns tests as root)';
  const probe = `${PREFIX}-${process.pid}-probe`;
  try {
    await sh('ip', 'netns', 'add', probe);
    await sh('ip', 'netns', 'del', probe);
  } catch (e) {
    return `'ip netns add' failed: ${(e as Error).message.split('\n')[0]}`;
  }
  try {
    await sh('nft', '--version');
  } catch {
    return 'nftables (nft) is not installed: apt-get install -y nftables';
  }
  return undefined;
}

/** Removes namespaces and links left by harness processes that no longer exist. */
export async function cleanStale(): Promise<string[]> {
  const removed: string[] = [];
  const list = await sh('ip', 'netns', 'list').catch(() => '');
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = new RegExp(`^${PREFIX}-(\\d+)-`).exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    await killNamespace(name);
    removed.push(name);
  }
  const links = await sh('ip', '-o', 'link', 'show').catch(() => '');
  for (const l of links.split('\n')) {
    const m = new RegExp(`^\\d+: (${PREFIX}(\\d+)r)[@:]`).exec(l);
    if (!m || pidAlive(Number(m[2]))) continue;
    await sh('ip', 'link', 'del', m[1]!).catch(() => {});
    removed.push(m[1]!);
  }
  return removed;
}

/** Kills whatever still runs inside a namespace of ours, then deletes it. */
async function killNamespace(name: string): Promise<void> {
  const pids = await sh('ip', 'netns', 'pids', name).catch(() => '');
  for (const p of pids.split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(p), 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  await sh('ip', 'netns', 'del', name).catch(() => {});
}

export interface Host {
  index: number;
  ns: string;
  /** Address on the test subnet. */
  ip: string;
  /** Address peers dial: the host itself, or its fault proxy. */
  advertise: string;
  dataDir: string;
  nodeId: string;
  /** The host's API token, for clients with other options than `client`. */
  apiToken: string;
  /** host:port of the host's API. */
  api: string;
  /** How clients trust the host's HTTPS API (its self-signed certificate, pinned). */
  apiTls: ApiTlsTrust;
  client: TesseraClient;
  proc: ChildProcess | undefined;
  proxy: FaultProxy | undefined;
  /** The last few KiB of the node's log and stderr, for failure messages. */
  logTail: string;
}

export interface NetnsClusterOptions {
  hosts: number;
  /** Put a fault proxy in front of every host's peer port (all peer traffic crosses it). */
  proxy?: FaultSpec;
  nodeArgs?: string[];
  logLevel?: string;
  /** Keep chunks in memory (faster, but a killed host loses its copies). Default: disk. */
  memory?: boolean;
  /** Flags for the Node runtime of every host, after the tuning ones (e.g. `--max-old-space-size=96`). */
  runtimeFlags?: string[];
  /** Node arguments for one host only, after `nodeArgs` (e.g. `--quota 0` for a host that stores nothing). */
  hostArgs?: (index: number) => string[];
}

/** tc's token bucket needs room for at least one full-size (GSO) packet, and a few ms of traffic. */
const TBF_MIN_BURST_BYTES = 128 << 10;
/** How long a packet may wait in a capped link's queue before it is dropped. */
const TBF_LATENCY_MS = 50;

export class NetnsCluster {
  readonly hosts: Host[] = [];
  private readonly tag = `${PREFIX}-${process.pid}`;
  private readonly sw: string;
  private readonly rootLink = `${PREFIX}${process.pid}r`;
  private readonly keys: ClusterKeys = newClusterKeys();
  private dir = '';
  private destroyed = false;
  /** This run's /24, as its first three octets; the root namespace's door is `.1`. */
  subnet = '';
  /** Rules in force, per host: peers whose packets are dropped in, and out. */
  private readonly blocked = new Map<number, { in: Set<string>; out: Set<string> }>();

  private constructor(private readonly opts: NetnsClusterOptions) {
    this.sw = `${this.tag}-sw`;
  }

  static async create(opts: NetnsClusterOptions): Promise<NetnsCluster> {
    const c = new NetnsCluster(opts);
    try {
      await c.setUp();
    } catch (e) {
      await c.destroy();
      throw e;
    }
    return c;
  }

  private async setUp(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'tessera-netns-'));
    this.subnet = await freeSubnet();
    const GATEWAY = `${this.subnet}.1`;
    await sh('ip', 'netns', 'add', this.sw);
    await ns(this.sw, 'ip', 'link', 'add', 'br0', 'type', 'bridge');
    await ns(this.sw, 'ip', 'link', 'set', 'br0', 'up');
    // The test process's own door into the subnet.
    await sh('ip', 'link', 'add', this.rootLink, 'type', 'veth', 'peer', 'name', 'root', 'netns', this.sw);
    await ns(this.sw, 'ip', 'link', 'set', 'root', 'master', 'br0', 'up');
    await sh('ip', 'addr', 'add', `${GATEWAY}/24`, 'dev', this.rootLink);
    await sh('ip', 'link', 'set', this.rootLink, 'up');
    for (let i = 0; i < this.opts.hosts; i++) {
      const name = `${this.tag}-h${i}`;
      const ip = `${this.subnet}.${10 + i}`;
      await sh('ip', 'netns', 'add', name);
      await ns(this.sw, 'ip', 'link', 'add', `h${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name);
      await ns(this.sw, 'ip', 'link', 'set', `h${i}`, 'master', 'br0', 'up');
      await ns(name, 'ip', 'link', 'set', 'lo', 'up');
      await ns(name, 'ip', 'addr', 'add', `${ip}/24`, 'dev', 'eth0');
      await ns(name, 'ip', 'link', 'set', 'eth0', 'up');
      await ns(name, 'nft', `add table inet ${PREFIX}; add chain inet ${PREFIX} input { type filter hook input priority 0; }; add chain inet ${PREFIX} output { type filter hook output priority 0; }`);
      const id = await initDataDir(join(this.dir, `h${i}`), this.keys);
      // Beyond loopback the API speaks HTTPS: the client pins the certificate, as the CLI does.
      await ensureSelfSignedApiCert(join(this.dir, `h${i}`));
      const certPem = await readFile(join(this.dir, `h${i}`, API_CERT_FILE), 'utf8');
      const apiTls: ApiTlsTrust = { certPem, fingerprint256: new X509Certificate(certPem).fingerprint256 };
      let advertise = `${ip}:${PEER_PORT}`;
      let proxy: FaultProxy | undefined;
      if (this.opts.proxy) {
        proxy = await FaultProxy.start({ listenHost: GATEWAY, target: { host: ip, port: PEER_PORT }, faults: this.opts.proxy, seed: i + 1 });
        advertise = `${GATEWAY}:${proxy.port}`;
      }
      this.hosts.push({
        index: i,
        ns: name,
        ip,
        advertise,
        dataDir: join(this.dir, `h${i}`),
        nodeId: id.credentials.nodeId,
        apiToken: id.apiToken,
        api: `${ip}:${API_PORT}`,
        apiTls,
        client: connect({ api: `${ip}:${API_PORT}`, token: id.apiToken, timeoutMs: 5_000, tls: apiTls }),
        proc: undefined,
        proxy,
        logTail: '',
      });
      this.blocked.set(i, { in: new Set(), out: new Set() });
    }
  }

  host(i: number): Host {
    const h = this.hosts[i];
    if (!h) throw new Error(`no host ${i}`);
    return h;
  }

  /** Starts (or restarts) every host, or the given ones; each bootstraps through host 0 and 1. */
  async start(which: number[] = this.hosts.map((h) => h.index)): Promise<void> {
    await Promise.all(which.map((i) => this.startOne(i)));
  }

  private async startOne(i: number): Promise<void> {
    const h = this.host(i);
    if (h.proc && h.proc.exitCode === null && h.proc.signalCode === null) throw new Error(`host ${i} is already running`);
    const boot = this.hosts.filter((x) => x.index !== i && x.index < 2).map((x) => x.advertise);
    const args = [
      // The runtime tuning the `tessera` command's #! line carries (src/cli/runtime-tuning.ts).
      'netns', 'exec', h.ns, process.execPath, ...nodeRuntimeArgs(this.opts.runtimeFlags), CLI_PATH, 'node',
      '--data', h.dataDir, '--listen', `${h.ip}:${PEER_PORT}`, '--advertise', h.advertise, '--api', `${h.ip}:${API_PORT}`,
      // Disk by default: a kill -9 must not take acknowledged copies with it.
      ...(this.opts.memory ? ['--memory'] : []),
      '--log-level', this.opts.logLevel ?? 'warn',
      ...(boot.length ? ['--bootstrap', boot.join(',')] : []),
      ...(this.opts.nodeArgs ?? []),
      ...(this.opts.hostArgs?.(i) ?? []),
    ];
    const proc = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'], env: withMallocEnv() });
    let tail = '';
    proc.stderr?.on('data', (b: Buffer) => {
      tail = (tail + b.toString('utf8')).slice(-2000);
    });
    // The node logs (at --log-level) to stdout; the last lines are kept for failure messages.
    for (const s of [proc.stdout, proc.stderr]) {
      s?.on('data', (b: Buffer) => {
        h.logTail = (h.logTail + b.toString('utf8')).slice(-8000);
      });
    }
    h.proc = proc;
    await waitFor(`host ${i} to serve its API`, READY_TIMEOUT_MS, async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`host ${i} exited during start-up: ${tail}`);
      return (await h.client.status()).nodeId === h.nodeId;
    });
  }

  running(i: number): boolean {
    const p = this.host(i).proc;
    return !!p && p.exitCode === null && p.signalCode === null;
  }

  /** kill -9 (or another signal) and wait for the exit. */
  async kill(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.host(i).proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    p.kill(signal);
    const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  /**
   * Caps host `i`'s link at `bytesPerSecond` each way with a token bucket filter (tc tbf): on its
   * own end of the veth for what it sends, on the bridge's end for what it receives.
   */
  async capLink(i: number, bytesPerSecond: number): Promise<void> {
    if (!Number.isSafeInteger(bytesPerSecond) || bytesPerSecond < 1) throw new Error(`link cap must be a positive whole number of bytes per second, got ${bytesPerSecond}`);
    const h = this.host(i);
    const spec = ['root', 'tbf', 'rate', `${bytesPerSecond * 8}bit`, 'burst', String(Math.max(TBF_MIN_BURST_BYTES, Math.ceil(bytesPerSecond / 100))), 'latency', `${TBF_LATENCY_MS}ms`];
    await ns(h.ns, 'tc', 'qdisc', 'replace', 'dev', 'eth0', ...spec);
    await ns(this.sw, 'tc', 'qdisc', 'replace', 'dev', `h${i}`, ...spec);
  }

  /** The pid of host `i`'s node process (`ip netns exec` execs it in place), while it runs. */
  pid(i: number): number | undefined {
    return this.running(i) ? this.host(i).proc?.pid : undefined;
  }

  /** Sends a signal without waiting for an exit: SIGSTOP freezes a host as a hung machine would, SIGCONT thaws it. */
  signal(i: number, sig: 'SIGSTOP' | 'SIGCONT'): void {
    const pid = this.pid(i);
    if (pid === undefined) throw new Error(`host ${i} is not running`);
    process.kill(pid, sig);
  }

  /** Drops packets between host `a` and `b`: both ways, or only those from `a` to `b`. */
  async cut(a: number, b: number, direction: 'both' | 'one-way' = 'both'): Promise<void> {
    const A = this.host(a);
    const B = this.host(b);
    this.blocked.get(a)!.out.add(B.ip);
    this.blocked.get(b)!.in.add(A.ip);
    if (direction === 'both') {
      this.blocked.get(b)!.out.add(A.ip);
      this.blocked.get(a)!.in.add(B.ip);
    }
    await Promise.all([this.applyRules(a), this.applyRules(b)]);
  }

  /** Cuts host `a` off from every other host, both ways. */
  async isolate(a: number): Promise<void> {
    for (const h of this.hosts) if (h.index !== a) await this.cut(a, h.index, 'both');
  }

  async healAll(): Promise<void> {
    for (const s of this.blocked.values()) {
      s.in.clear();
      s.out.clear();
    }
    await Promise.all(this.hosts.map((h) => this.applyRules(h.index)));
  }

  private async applyRules(i: number): Promise<void> {
    const h = this.host(i);
    const s = this.blocked.get(i)!;
    const cmds = [`flush chain inet ${PREFIX} input`, `flush chain inet ${PREFIX} output`];
    for (const ip of s.in) cmds.push(`add rule inet ${PREFIX} input ip saddr ${ip} drop`);
    for (const ip of s.out) cmds.push(`add rule inet ${PREFIX} output ip daddr ${ip} drop`);
    // One nft invocation applies the whole set atomically.
    await ns(h.ns, 'nft', cmds.join('; '));
  }

  /** Each running host's view: nodeId → state, from its API. */
  async views(among?: number[]): Promise<Map<number, Map<string, string>>> {
    const which = among ?? this.hosts.filter((h) => this.running(h.index)).map((h) => h.index);
    const out = new Map<number, Map<string, string>>();
    await Promise.all(
      which.map(async (i) => {
        const peers: PeerView[] = await this.host(i).client.peers();
        out.set(i, new Map(peers.map((p) => [p.nodeId, p.state])));
      }),
    );
    return out;
  }

  /** How `observer` sees `subject` (undefined when it does not know it or does not answer). */
  async stateOf(observer: number, subject: number): Promise<string | undefined> {
    const peers = await this.host(observer).client.peers().catch(() => undefined);
    return peers?.find((p) => p.nodeId === this.host(subject).nodeId)?.state;
  }

  /** Every listed host (default: all running) sees every listed host alive. */
  async converged(among?: number[]): Promise<boolean> {
    const which = among ?? this.hosts.filter((h) => this.running(h.index)).map((h) => h.index);
    const views = await this.views(which);
    return which.every((a) => which.every((b) => a === b || views.get(a)?.get(this.host(b).nodeId) === 'alive'));
  }

  async waitConverged(timeoutMs: number, among?: number[]): Promise<number> {
    const t0 = Date.now();
    try {
      await waitFor('membership to converge', timeoutMs, () => this.converged(among));
    } catch (e) {
      throw new Error(`${(e as Error).message}; views: ${await this.describe()}`);
    }
    return Date.now() - t0;
  }

  /** Every running host's view in one line: `0[1:alive@2 2:dead@0 ...]`, for failure messages. */
  async describe(): Promise<string> {
    const parts: string[] = [];
    for (const h of this.hosts) {
      if (!this.running(h.index)) {
        parts.push(`${h.index}[down]`);
        continue;
      }
      const peers = await h.client.peers().catch((e: unknown) => (e as Error).message);
      if (typeof peers === 'string') {
        parts.push(`${h.index}[${peers}]`);
        continue;
      }
      const idx = (id: string) => this.hosts.find((x) => x.nodeId === id)?.index ?? id.slice(0, 8);
      parts.push(`${h.index}[${peers.filter((p) => !p.self).map((p) => `${idx(p.nodeId)}:${p.state}@${p.incarnation}`).join(' ')}]`);
    }
    return parts.join(' ');
  }

  /** Kills every process, deletes every namespace and the root veth, removes the data. Idempotent. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await Promise.all(this.hosts.map((h) => this.kill(h.index).catch(() => {})));
    for (const h of this.hosts) await h.proxy?.close();
    for (const h of this.hosts) await killNamespace(h.ns);
    await killNamespace(this.sw);
    await sh('ip', 'link', 'del', this.rootLink).catch(() => {});
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}

/** Names of this harness's namespaces and links that exist right now (for teardown tests). */
export async function leftovers(pid = process.pid): Promise<string[]> {
  const list = await sh('ip', 'netns', 'list').catch(() => '');
  const links = await sh('ip', '-o', 'link', 'show').catch(() => '');
  const out = list.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(`${PREFIX}-${pid}-`));
  if (links.includes(`${PREFIX}${pid}r`)) out.push(`${PREFIX}${pid}r`);
  return out;
}
