/**
 * A local cluster of real `tessera node` processes with the S3 endpoint on node 0, and access
 * keys made with `tessera s3 key create`, for the real-client tests, the conformance run and the
 * S3 benchmark.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { CLI_PATH, LocalCluster, freePort, waitFor } from '../../src/cli/local-cluster.js';
import { nodeRuntimeArgs, withMallocEnv } from '../../src/cli/runtime-tuning.js';

const run = promisify(execFile);

export interface S3Key {
  readonly accessKeyId: string;
  readonly secretKey: string;
  readonly name: string;
}

export interface S3Cluster {
  readonly cluster: LocalCluster;
  /** http://127.0.0.1:PORT */
  readonly endpoint: string;
  readonly host: string;
  readonly port: number;
  createKey(name: string): Promise<S3Key>;
  destroy(): Promise<void>;
}

export interface S3ClusterOptions {
  nodes?: number;
  memory?: boolean;
  /** Extra `tessera node` flags for every node. */
  nodeArgs?: string[];
  logLevel?: string;
  /** Node.js flags for the node processes (e.g. --cpu-prof for a profile). */
  execArgv?: string[];
}

export async function startS3Cluster(o: S3ClusterOptions = {}): Promise<S3Cluster> {
  const nodes = o.nodes ?? 3;
  const port = await freePort();
  const cluster = await LocalCluster.create({
    nodes,
    ...(o.memory !== undefined ? { memory: o.memory } : {}),
    logLevel: o.logLevel ?? 'warn',
    ...(o.nodeArgs ? { nodeArgs: o.nodeArgs } : {}),
    ...(o.execArgv ? { execArgv: o.execArgv } : {}),
    argsFor: (i) => (i === 0 ? ['--s3', `127.0.0.1:${port}`] : []),
  });
  try {
    await cluster.waitForMembers({ alive: nodes }, 30_000);
    const endpoint = `http://127.0.0.1:${port}`;
    // Served once anything answers: an unsigned request is refused with an S3 error document.
    await waitFor(`the S3 endpoint at ${endpoint}`, 20_000, async () => (await fetch(endpoint)).status === 403);
    const n0 = cluster.node(0);
    return {
      cluster,
      endpoint,
      host: '127.0.0.1',
      port,
      async createKey(name) {
        const { stdout } = await run(process.execPath, [...nodeRuntimeArgs(), CLI_PATH, 's3', 'key', 'create', '--name', name, '--api', n0.api, '--data', n0.dataDir, '--json'], { env: withMallocEnv({ ...process.env }), timeout: 30_000 });
        const k = JSON.parse(stdout) as { accessKeyId: string; secretKey: string };
        return { accessKeyId: k.accessKeyId, secretKey: k.secretKey, name };
      },
      destroy: () => cluster.destroy(),
    };
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
}

export interface ToolResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a client tool to its end (bounded by `timeoutMs`), collecting its output. */
export function tool(cmd: string, args: string[], opts: { env?: Record<string, string>; timeoutMs?: number; input?: Buffer | string; cwd?: string } = {}): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'], ...(opts.cwd ? { cwd: opts.cwd } : {}) });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (b: Buffer) => out.push(b));
    p.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    p.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    p.stdin.end(opts.input);
  });
}

/** Runs a tool and fails with its output when it exits non-zero. */
export async function mustRun(cmd: string, args: string[], opts: Parameters<typeof tool>[2] = {}): Promise<ToolResult> {
  const r = await tool(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout.slice(-2000)}\nstderr: ${r.stderr.slice(-4000)}`);
  return r;
}

/** The environment aws-cli needs to reach the cluster with a key (no config files read or written). */
export function awsEnv(key: S3Key, home: string): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: key.accessKeyId,
    AWS_SECRET_ACCESS_KEY: key.secretKey,
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_CONFIG_FILE: `${home}/aws-config`,
    AWS_SHARED_CREDENTIALS_FILE: `${home}/aws-credentials`,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_PAGER: '',
    // A CA bundle from the surrounding environment is for HTTPS elsewhere; Go's SDK (rclone, restic) fails loading one for plain HTTP.
    AWS_CA_BUNDLE: '',
    HOME: home,
  };
}
