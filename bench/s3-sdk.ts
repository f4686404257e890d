/**
 * The large-object steps of the S3 benchmark through `@aws-sdk/client-s3`, as an application
 * would write them with the SDK's defaults: one PutObject of a file stream (the SDK adds its
 * CRC32 trailer), one GetObject streamed to a file. Runs in the benchmark's own process, so its
 * CPU is this process's.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface SdkTransfers {
  put(file: string, bucket: string, key: string, size: number): Promise<void>;
  get(bucket: string, key: string, file: string): Promise<void>;
  close(): void;
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
      await pipeline(r.Body as Readable, createWriteStream(file));
    },
    close: () => client.destroy(),
  };
}
