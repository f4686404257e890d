/**
 * The large-object steps of the S3 benchmark through `@aws-sdk/client-s3`, as an application
 * would write them with the SDK's defaults: one PutObject of a file stream (the SDK adds its
 * CRC32 trailer), one GetObject whose body goes to a file. Runs in the benchmark's own process,
 * so its CPU is this process's.
 *
 * The GET's body goes to a file the way `tessera get -o` writes a download (src/cli/download-sinks.ts),
 * so the two GETs differ in their clients' reading and the nodes' serving, not in what each does
 * with the bytes: each piece written at once through the same file sink (writes of at most
 * FILE_WRITE_BYTES) before the next is read, and one fsync at the end.
 * Piped into `createWriteStream`, as it was, each 64 KiB piece the SDK hands over was written (a
 * round trip through libuv's thread pool) before the next was read off the socket, and the file
 * was never fsynced, while the native get overlaps the two and fsyncs (about 0.45 s of a 1 GiB
 * GET here). The native way costs this process less CPU per MiB (0.9 ms against 1.2) but is not
 * faster in wall time: the fsync the pipe skipped is the difference. `getDropped` is the GET
 * without a disk: on the same machine it made 630–1,420 MiB/s, as fast as `tessera get > /dev/null`
 * or faster, so the client's file, not the S3 face, is what bounds a GET to disk.
 */
import { open } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { fileSink } from '../src/cli/download-sinks.js';

export interface SdkTransfers {
  put(file: string, bucket: string, key: string, size: number): Promise<void>;
  get(bucket: string, key: string, file: string): Promise<void>;
  /** A GetObject whose body is read and dropped, as `tessera get > /dev/null` drops a download. */
  getDropped(bucket: string, key: string): Promise<number>;
  close(): void;
}

/**
 * Writes a body to `file` as `tessera get -o` writes a download (README, "`get -o` written as it
 * is read"): each piece the SDK hands over is written at once, through the same file sink
 * (writes of at most FILE_WRITE_BYTES), before the next is taken; one fsync at the end.
 */
async function writeBodyToFile(body: AsyncIterable<Buffer>, file: string): Promise<void> {
  const fh = await open(file, 'w');
  try {
    const sink = fileSink(fh.fd, 0, { writeError: (err) => err as Error });
    const writeNow = sink.writeNow;
    if (writeNow === undefined) throw new Error('a file sink writes each piece at once');
    for await (const piece of body) writeNow.call(sink, piece);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function sdkTransfers(endpoint: string, key: { accessKeyId: string; secretKey: string }): Promise<SdkTransfers> {
  // package-lock.json pins a version that supports Node 20; its notice of later versions' Node 22
  // requirement would only break up the benchmark's output.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const { S3Client, PutObjectCommand, GetObjectCommand } = await import('@aws-sdk/client-s3');
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secretKey },
  });
  return {
    async put(file, bucket, name, size) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: name, Body: createReadStream(file), ContentLength: size }));
    },
    async get(bucket, name, file) {
      const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: name }));
      await writeBodyToFile(r.Body as Readable, file);
    },
    async getDropped(bucket, name) {
      const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: name }));
      let bytes = 0;
      for await (const piece of r.Body as AsyncIterable<Buffer>) bytes += piece.length;
      return bytes;
    },
    close: () => client.destroy(),
  };
}
