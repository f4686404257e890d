/** DATA/node.json: written by a running node so local clients can find its API. */
export const RUNTIME_FILE = 'node.json';

export interface RuntimeInfo {
  pid: number;
  nodeId: string;
  listen: string;
  api: string;
  startedAt: string;
}
