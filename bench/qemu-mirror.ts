/**
 * The block-storage peer `bench nbd` measures tessera raid1 against: QEMU's quorum driver
 * mirroring writes to two `qemu-nbd` children over NBD with TLS (pre-shared key), exported to the
 * benchmark's clients by `qemu-storage-daemon` on loopback. It is the nearest off-the-shelf thing to
 * a raid1 volume over two storage nodes: every write goes over an encrypted connection to two
 * servers that hold it on disk, and the export answers only when both did.
 *
 * `vote-threshold=2`: a write succeeds only on both children (as tessera raid1 acknowledges only
 * when both members hold it), and a read asks both and compares them. QEMU refuses reading from
 * one child ("fifo") unless one vote is enough, which would acknowledge writes held by one server;
 * equal durability was chosen over the cheaper read.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, truncate, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort, waitFor } from '../src/cli/local-cluster.js';

export const QEMU_STORAGE_DAEMON = 'qemu-storage-daemon';
export const QEMU_NBD = 'qemu-nbd';
const PSK_USER = 'tessera';
const CHILD_EXPORT = 'child';
const LISTEN_TIMEOUT_MS = 20_000;

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

const listening = (what: string, port: number) => waitFor(`${what} to listen on ${port}`, LISTEN_TIMEOUT_MS, () => accepts(port));

export interface QemuMirror {
  uri: string;
  pids(): number[];
  stop(): void;
}

/** Whether a program is on PATH; the peer is skipped, and says so, where QEMU is not installed. */
export async function haveProgram(name: string): Promise<boolean> {
  return new Promise((resolve) => {
    const p = spawn(name, ['--version'], { stdio: 'ignore' });
    p.once('error', () => resolve(false));
    p.once('exit', (code) => resolve(code === 0));
  });
}

/**
 * Starts the two TLS children on raw files of `size` bytes under `dir` and the quorum export in
 * front of them. The daemon connects to the children as it starts, so it is started only once both
 * accept connections.
 */
export async function startQemuMirror(dir: string, size: number): Promise<QemuMirror> {
  const pskDir = join(dir, 'qemu-psk');
  await mkdir(pskDir, { recursive: true });
  await writeFile(join(pskDir, 'keys.psk'), `${PSK_USER}:${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  const procs: ChildProcess[] = [];
  const stop = () => { for (const p of procs) p.kill('SIGTERM'); };
  try {
    const childPorts = [await freePort(), await freePort()];
    for (const [i, port] of childPorts.entries()) {
      const file = join(dir, `qemu-child-${i}.raw`);
      await writeFile(file, '');
      await truncate(file, size);
      procs.push(spawn(QEMU_NBD, [
        '--object', `tls-creds-psk,id=tls0,endpoint=server,dir=${pskDir}`, '--tls-creds', 'tls0',
        '-f', 'raw', '--cache=writeback', '-b', '127.0.0.1', '-p', String(port), '-x', CHILD_EXPORT, '--persistent', file,
      ], { stdio: 'ignore' }));
      await listening(QEMU_NBD, port);
    }
    const port = await freePort();
    const child = (i: number) => `driver=nbd,node-name=c${i},server.type=inet,server.host=127.0.0.1,server.port=${childPorts[i]},export=${CHILD_EXPORT},tls-creds=tls0`;
    procs.push(spawn(QEMU_STORAGE_DAEMON, [
      '--object', `tls-creds-psk,id=tls0,endpoint=client,dir=${pskDir},username=${PSK_USER}`,
      '--blockdev', child(0), '--blockdev', child(1),
      '--blockdev', 'driver=quorum,node-name=mirror,children.0=c0,children.1=c1,vote-threshold=2',
      '--nbd-server', `addr.type=inet,addr.host=127.0.0.1,addr.port=${port}`,
      '--export', 'type=nbd,id=export,node-name=mirror,name=,writable=on',
    ], { stdio: 'ignore' }));
    await listening(QEMU_STORAGE_DAEMON, port);
    return { uri: `nbd://127.0.0.1:${port}/`, pids: () => procs.map((p) => p.pid).filter((p): p is number => p !== undefined), stop };
  } catch (err) {
    stop();
    throw err;
  }
}
