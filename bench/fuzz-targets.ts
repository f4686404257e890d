/**
 * Property-based fuzzing of everything a peer can put on the wire: frames, control sections,
 * membership messages and the admission handshake. Each target feeds generated inputs (random
 * bytes, and valid inputs mutated) through the real decoding code and demands that it only ever
 * refuses with a TesseraError, and that no single input takes longer than MAX_INPUT_MS (a bound
 * far above normal cost: it catches decoding that is superlinear in its input, as bignums were).
 * Shared by `npm run bench -- fuzz` (10^6 inputs) and a unit test (a smaller count).
 */
import { EventEmitter } from 'node:events';
import { X509Certificate } from 'node:crypto';
import fc from 'fast-check';
import { Encoder } from 'cbor-x';
import { TesseraError } from '../src/errors.js';
import { Membership } from '../src/cluster/membership.js';
import { MAX_INCARNATION, METHODS } from '../src/cluster/membership-wire.js';
import { SimClock } from '../src/cluster/sim/sim-clock.js';
import { createPrng } from '../src/cluster/sim/prng.js';
import { generateCredentials, type NodeCredentials } from '../src/net/credentials.js';
import { HANDSHAKE_FRAME_LIMITS, admissionMac, runHandshake } from '../src/net/handshake.js';
import { checkRequestControl } from '../src/net/messages.js';
import { silentLogger } from '../src/log.js';
import { PROTOCOL_VERSION } from '../src/limits.js';
import { ADMITTED_FRAME_LIMITS, FRAME_HEADER_BYTES, FrameDecoder, FrameKind, decodeControlUnknown, encodeControl, encodeFrame, type FrameLimits } from '../src/wire/index.js';

/** Longest any one input may take; normal inputs take microseconds. */
export const MAX_INPUT_MS = 2000;

export interface FuzzReport {
  target: string;
  inputs: number;
  maxInputMs: number;
  seconds: number;
}

/** Anything but a TesseraError is a crash: the node would log it as a bug or die of it. */
function expectRefusal(e: unknown, where: string): void {
  if (!(e instanceof TesseraError)) throw new Error(`${where}: ${e instanceof Error ? e.stack : String(e)}`);
}

class Timing {
  max = 0;
  private t0 = 0n;
  start(): void {
    this.t0 = process.hrtime.bigint();
  }
  stop(): void {
    const ms = Number(process.hrtime.bigint() - this.t0) / 1e6;
    if (ms > this.max) this.max = ms;
    if (ms > MAX_INPUT_MS) throw new Error(`one input took ${ms.toFixed(0)} ms, over the ${MAX_INPUT_MS} ms bound`);
  }
}

/** cbor-x with its defaults: emits tags (dates, bignums, records, typed arrays) a node must refuse. */
const taggingEncoder = new Encoder({ useRecords: true, tagUint8Array: true });

/** CBOR a hostile peer might send: arbitrary values, tagged ones, bignums, or raw bytes. */
const cborArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 512 }),
  fc.anything({ maxDepth: 4 }).map((v) => safeEncode(v)),
  fc.bigInt({ min: -(2n ** 2000n), max: 2n ** 2000n }).map((v) => safeEncode({ m: 'x', b: v })),
  fc.tuple(fc.nat({ max: 255 }), fc.uint8Array({ maxLength: 64 })).map(([tag, rest]) => Uint8Array.from([0xd8, tag, ...rest])),
  fc.record({ m: fc.string({ maxLength: 200 }), b: fc.anything({ maxDepth: 3 }) }).map((v) => safeEncode(v)),
);

function safeEncode(v: unknown): Uint8Array {
  try {
    return Uint8Array.from(taggingEncoder.encode(v));
  } catch {
    return Uint8Array.of(0xf6);
  }
}

/** Splits `buf` at the given cut points (taken modulo its length, deduplicated, sorted). */
export function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

/** Frames, valid or not, through a decoder at each stage's limits, then their control sections. */
export function fuzzFrames(runs: number, seed: number): FuzzReport {
  const timing = new Timing();
  const frameArb = fc.record({
    kind: fc.nat({ max: 8 }),
    requestId: fc.nat({ max: 0xffff_ffff }),
    control: cborArb,
    payload: fc.uint8Array({ maxLength: 256 }),
  });
  const corrupt = fc.record({ at: fc.nat(), value: fc.nat({ max: 255 }) });
  const input = fc.record({
    frames: fc.array(frameArb, { minLength: 1, maxLength: 4 }),
    corruptions: fc.array(corrupt, { maxLength: 4 }),
    cuts: fc.array(fc.nat(), { maxLength: 8 }),
    limits: fc.constantFrom<FrameLimits>(ADMITTED_FRAME_LIMITS, HANDSHAKE_FRAME_LIMITS),
  });
  const started = process.hrtime.bigint();
  fc.assert(
    fc.property(input, ({ frames, corruptions, cuts, limits }) => {
      const parts: Buffer[] = [];
      for (const f of frames) {
        const head = Buffer.alloc(FRAME_HEADER_BYTES);
        head.writeUInt32BE(f.control.length + f.payload.length, 0);
        head.writeUInt8(f.kind, 4);
        head.writeUInt32BE(f.requestId, 8);
        head.writeUInt32BE(f.control.length, 12);
        parts.push(head, Buffer.from(f.control), Buffer.from(f.payload));
      }
      const wire = Buffer.concat(parts);
      for (const c of corruptions) wire[c.at % wire.length] = c.value;
      timing.start();
      const d = new FrameDecoder(limits);
      try {
        for (const chunk of splitAt(wire, cuts)) {
          d.push(chunk);
          for (let fr = d.next(); fr !== undefined; fr = d.next()) {
            if (fr.kind !== FrameKind.REQUEST) continue;
            try {
              checkRequestControl(decodeControlUnknown(fr.control));
            } catch (e) {
              expectRefusal(e, 'control section');
            }
          }
        }
      } catch (e) {
        expectRefusal(e, 'frame decoder');
      }
      timing.stop();
    }),
    { numRuns: runs, seed },
  );
  return { target: 'frames', inputs: runs, maxInputMs: timing.max, seconds: elapsed(started) };
}

/** Control sections alone, including large bignums and every tag. */
export function fuzzControl(runs: number, seed: number): FuzzReport {
  const timing = new Timing();
  const big = fc.integer({ min: 1, max: 200 << 10 }).map((n) => {
    const b = Buffer.alloc(6 + n, 0xff);
    b[0] = 0xc2;
    b[1] = 0x5a;
    b.writeUInt32BE(n, 2);
    return Uint8Array.from(b);
  });
  const started = process.hrtime.bigint();
  fc.assert(
    fc.property(fc.oneof({ arbitrary: cborArb, weight: 20 }, { arbitrary: big, weight: 1 }), (bytes) => {
      timing.start();
      try {
        decodeControlUnknown(bytes);
      } catch (e) {
        expectRefusal(e, 'control section');
      }
      timing.stop();
    }),
    { numRuns: runs, seed },
  );
  return { target: 'control', inputs: runs, maxInputMs: timing.max, seconds: elapsed(started) };
}

/** Membership instances are replaced every so many inputs, so the member table never fills up. */
const MEMBERSHIP_INPUTS_PER_INSTANCE = 2000;

function newMembership(): Membership {
  const m = new Membership({
    self: { nodeId: 'self', addr: 'self:1' },
    net: { call: () => Promise.reject(new TesseraError('UNAVAILABLE', 'fuzzing: no network')) },
    clock: new SimClock(),
    random: createPrng(7),
    seeds: [],
    localStats: () => ({ capacity: 100, used: 1 }),
  });
  m.start();
  return m;
}

/** Membership messages: mutated valid ones and arbitrary values, through `handle`. */
export async function fuzzMembership(runs: number, seed: number): Promise<FuzzReport> {
  const timing = new Timing();
  const incarnation = fc.oneof(fc.nat({ max: 40 }), fc.constantFrom(MAX_INCARNATION, MAX_INCARNATION + 1, Number.MAX_SAFE_INTEGER, -1, 1.5, 2 ** 53));
  const record = fc.record({
    nodeId: fc.oneof(fc.constantFrom('self', 'a', 'b', 'c'), fc.string({ maxLength: 140 })),
    addr: fc.oneof(fc.constantFrom('a:1', 'b:1'), fc.string({ maxLength: 300 })),
    state: fc.oneof(fc.constantFrom('alive', 'suspect', 'dead', 'left'), fc.string({ maxLength: 8 })),
    incarnation,
    capacity: fc.oneof(fc.nat(), fc.double()),
    used: fc.nat(),
    statsVersion: fc.nat(),
  });
  const body = fc.oneof(
    fc.record({ from: record, updates: fc.array(record, { maxLength: 70 }) }),
    fc.record({ from: record, target: record, updates: fc.array(record, { maxLength: 8 }) }),
    fc.record({ from: record, members: fc.array(record, { maxLength: 40 }) }),
    fc.anything({ maxDepth: 3 }),
  );
  const method = fc.constantFrom(...Object.values(METHODS), 'member.nope');
  let m = newMembership();
  let used = 0;
  const started = process.hrtime.bigint();
  await fc.assert(
    fc.asyncProperty(method, body, async (meth, b) => {
      if (++used > MEMBERSHIP_INPUTS_PER_INSTANCE) {
        m.stop();
        m = newMembership();
        used = 0;
      }
      timing.start();
      try {
        await m.handle(meth, b);
      } catch (e) {
        expectRefusal(e, `membership ${meth}`);
      }
      timing.stop();
      if (!(Number.isSafeInteger(m.incarnation) && m.incarnation <= MAX_INCARNATION)) throw new Error(`incarnation left its range: ${m.incarnation}`);
    }),
    { numRuns: runs, seed },
  );
  m.stop();
  return { target: 'membership', inputs: runs, maxInputMs: timing.max, seconds: elapsed(started) };
}

/**
 * The TLS socket's side of the admission handshake, for the acceptor's state machine alone:
 * TLS itself is Node's; what is fuzzed is what the peer says inside it.
 */
class HandshakeSocket extends EventEmitter {
  destroyed = false;
  ended = false;
  constructor(private readonly cert: X509Certificate, private readonly ekm: Buffer) {
    super();
  }
  getProtocol(): string {
    return 'TLSv1.3';
  }
  getPeerX509Certificate(): X509Certificate {
    return this.cert;
  }
  exportKeyingMaterial(): Buffer {
    return this.ekm;
  }
  cork(): void {}
  uncork(): void {}
  pause(): this {
    return this;
  }
  write(): boolean {
    return !this.destroyed;
  }
  end(): this {
    this.ended = true;
    return this;
  }
  destroy(): this {
    this.destroyed = true;
    return this;
  }
}

export interface HandshakeFixture {
  self: NodeCredentials;
  peer: NodeCredentials;
  peerCert: X509Certificate;
}

export async function handshakeFixture(): Promise<HandshakeFixture> {
  const [self, peer] = await Promise.all([generateCredentials(), generateCredentials()]);
  return { self, peer, peerCert: new X509Certificate(peer.certificatePem) };
}

/** What a dialer sends to an acceptor, valid or not, split into arbitrary socket chunks. */
export async function fuzzHandshake(runs: number, seed: number, fx?: HandshakeFixture): Promise<FuzzReport> {
  const f = fx ?? (await handshakeFixture());
  const secret = Buffer.alloc(32, 7);
  const clusterId = 'fuzz-cluster';
  const ekm = Buffer.alloc(32, 3);
  const goodMac = admissionMac(secret, 'dialer', ekm);
  const goodHello = { v: PROTOCOL_VERSION, id: f.peer.nodeId, cluster: clusterId, caps: ['membership/1'], addr: '127.0.0.1:1' };
  const frame = fc.oneof(
    fc.constant(Buffer.concat(encodeFrame(FrameKind.ADMIT, 0, undefined, goodMac))),
    fc.uint8Array({ maxLength: 40 }).map((p) => Buffer.concat(encodeFrame(FrameKind.ADMIT, 0, undefined, Buffer.from(p)))),
    fc.record({ v: fc.oneof(fc.constant(PROTOCOL_VERSION), fc.integer()), id: fc.oneof(fc.constant(f.peer.nodeId), fc.string({ maxLength: 70 })), cluster: fc.oneof(fc.constant(clusterId), fc.string({ maxLength: 20 })), caps: fc.array(fc.string({ maxLength: 10 }), { maxLength: 5 }), addr: fc.string({ maxLength: 30 }) })
      .map((h) => Buffer.concat(encodeFrame(FrameKind.HELLO, 0, encodeControl(h)))),
    fc.constant(Buffer.concat(encodeFrame(FrameKind.HELLO, 0, encodeControl(goodHello)))),
    cborArb.map((c) => (c.length <= 4096 ? Buffer.concat(encodeFrame(FrameKind.HELLO, 0, c)) : Buffer.alloc(0))),
    fc.record({ c: fc.string({ maxLength: 40 }), m: fc.string({ maxLength: 100 }) }).map((e) => Buffer.concat(encodeFrame(FrameKind.ERROR, 0, encodeControl(e)))),
    fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
  );
  const input = fc.record({ frames: fc.array(frame, { maxLength: 4 }), cuts: fc.array(fc.nat(), { maxLength: 6 }) });
  const timing = new Timing();
  const started = process.hrtime.bigint();
  await fc.assert(
    fc.asyncProperty(input, async ({ frames, cuts }) => {
      const sock = new HandshakeSocket(f.peerCert, ekm);
      timing.start();
      const done = runHandshake(sock as unknown as import('node:tls').TLSSocket, {
        role: 'acceptor', credentials: f.self, clusterId, clusterSecret: secret, capabilities: [], listenAddr: '127.0.0.1:2',
        protocolVersion: PROTOCOL_VERSION, timeoutMs: 60_000, remote: 'fuzz:1', logger: silentLogger,
      }).then(
        (r) => ({ ok: true as const, r }),
        (e: unknown) => ({ ok: false as const, e }),
      );
      for (const chunk of splitAt(Buffer.concat(frames), cuts)) if (chunk.length > 0) sock.emit('data', chunk);
      sock.emit('close');
      const out = await done;
      timing.stop();
      if (out.ok) {
        // Admitted: only a dialer that proved the secret and said a hello that matches its certificate.
        if (out.r.peer.nodeId !== f.peer.nodeId || out.r.peer.clusterId !== clusterId) throw new Error('admitted a peer with a wrong hello');
        const wire = Buffer.concat(frames);
        if (!wire.includes(goodMac)) throw new Error('admitted a peer without the proof of the secret');
      } else {
        expectRefusal(out.e, 'handshake');
        if (!sock.destroyed && !sock.ended) throw new Error('a refused handshake left the socket open');
      }
    }),
    { numRuns: runs, seed },
  );
  return { target: 'handshake', inputs: runs, maxInputMs: timing.max, seconds: elapsed(started) };
}

function elapsed(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/** How a total is split over the targets: the cheap decoders get most of the inputs. */
export const TARGET_SHARES = { frames: 0.35, control: 0.3, membership: 0.2, handshake: 0.15 } as const;

export async function fuzzAll(total: number, seed: number, onReport?: (r: FuzzReport) => void): Promise<FuzzReport[]> {
  const n = (share: number) => Math.max(1, Math.round(total * share));
  const reports: FuzzReport[] = [];
  const add = (r: FuzzReport) => {
    reports.push(r);
    onReport?.(r);
  };
  add(fuzzFrames(n(TARGET_SHARES.frames), seed));
  add(fuzzControl(n(TARGET_SHARES.control), seed + 1));
  add(await fuzzMembership(n(TARGET_SHARES.membership), seed + 2));
  add(await fuzzHandshake(n(TARGET_SHARES.handshake), seed + 3));
  return reports;
}
