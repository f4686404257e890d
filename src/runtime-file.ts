/** DATA/node.json: written by a running node so local clients can find its API. */
export const RUNTIME_FILE = 'node.json';

export interface RuntimeInfo {
  pid: number;
  nodeId: string;
  listen: string;
  api: string;
  startedAt: string;
  /** 'https' when the API speaks TLS. */
  apiScheme?: 'http' | 'https';
  /** Where the node serves S3 (tessera node --s3), and whether over HTTPS. */
  s3?: string;
  s3Scheme?: 'http' | 'https';
  /** The certificate the API serves; a self-signed one is pinned by its fingerprint. */
  apiTls?: { certFile: string; fingerprint256: string; selfSigned: boolean };
}
