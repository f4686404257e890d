/**
 * Records loopback TCP traffic to and from a set of ports with tcpdump, for tests that check
 * what crosses the wire between nodes. The raw capture file is searched for byte strings: a
 * marker 32 bytes long, repeated in the data, cannot hide in packet boundaries every time.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';

/** Capture buffer, KiB: large enough that a few MiB of bursts are not dropped. */
const BUFFER_KIB = 131_072;
const START_TIMEOUT_MS = 10_000;

export function missingTcpdump(): string | false {
  return spawnSync('tcpdump', ['--version']).error ? 'not installed: tcpdump (apt-get install tcpdump)' : false;
}

export interface Capture {
  /** Stops the capture; resolves with the file's bytes and the packets the kernel dropped. */
  stop(): Promise<{ bytes: Buffer; dropped: number }>;
}

export async function captureLoopback(path: string, ports: number[]): Promise<Capture> {
  const filter = ports.map((p) => `tcp port ${p}`).join(' or ');
  const proc = spawn('tcpdump', ['-i', 'lo', '-U', '-n', '-s', '0', '-B', String(BUFFER_KIB), '-w', path, filter], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tcpdump did not start: ${stderr}`)), START_TIMEOUT_MS);
    const check = setInterval(() => {
      if (/listening on/.test(stderr)) {
        clearTimeout(timer);
        clearInterval(check);
        resolve();
      }
    }, 20);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      clearInterval(check);
      reject(new Error(`tcpdump exited (${code}): ${stderr}`));
    });
  });
  return {
    stop: async () => {
      const exited = new Promise<void>((r) => proc.once('exit', () => r()));
      proc.kill('SIGINT');
      await exited;
      const m = /(\d+) packets? dropped by kernel/.exec(stderr);
      return { bytes: await readFile(path), dropped: m ? Number(m[1]) : 0 };
    },
  };
}
