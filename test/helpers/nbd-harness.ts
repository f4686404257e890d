/**
 * Runs the memory NBD server in its own process and the real NBD clients against it. The server
 * script is found next to this file, so it runs from compiled JS after `tsc` and through tsx
 * when tests run from source.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withMallocEnv } from '../../src/cli/runtime-tuning.js';

export interface ServerProcess {
  port: number;
  uri(exportName?: string): string;
  stop(): Promise<void>;
  child: ChildProcess;
}

const SERVER_START_TIMEOUT_MS = 20_000;

export async function startMemoryServerProcess(args: string[]): Promise<ServerProcess> {
  const self = fileURLToPath(import.meta.url);
  const fromSource = self.endsWith('.ts');
  const script = join(self, '..', fromSource ? 'nbd-memory-server.ts' : 'nbd-memory-server.js');
  const nodeArgs = fromSource ? ['--import', 'tsx', script, ...args] : [script, ...args];
  const child = spawn(process.execPath, nodeArgs, {
    stdio: ['ignore', 'pipe', 'pipe'],
    // Large reads allocate fresh pages per request without these (DESIGN §9).
    env: withMallocEnv(),
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()).slice(-4096));
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`NBD server did not start in ${SERVER_START_TIMEOUT_MS} ms: ${stderr}`)), SERVER_START_TIMEOUT_MS);
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', (l) => {
      clearTimeout(timer);
      resolve(l);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`NBD server exited with ${code}: ${stderr}`));
    });
  });
  const { port } = JSON.parse(line) as { port: number };
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    port,
    child,
    uri: (name = '') => `nbd://127.0.0.1:${port}/${name}`,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** True when `tool` is an executable on PATH. */
export function hasTool(tool: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((d) => d !== '' && existsSync(join(d, tool)));
}

export function missingTools(tools: string[]): string | false {
  const missing = tools.filter((t) => !hasTool(t));
  return missing.length ? `not installed: ${missing.join(', ')} (apt-get install libnbd-bin qemu-utils fio nbdkit fuse3 e2fsprogs)` : false;
}

/** Runs a command to completion, bounded in time (SIGKILL at the bound: a tool stuck on a dead server may ignore SIGTERM); rejects with its stderr on failure. */
export function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}
