import type { Command } from 'commander';
import { badInput } from '../../errors.js';
import { LocalCluster } from '../local-cluster.js';
import { peersTable } from './peers.js';

interface DemoFlags {
  nodes: string;
  keep?: boolean;
  json?: boolean;
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('start a local multi-process cluster, show it working, and stop it')
    .option('--nodes <n>', 'number of node processes', '3')
    .option('--keep', 'leave the cluster running and print how to use it')
    .option('--json', 'print the figures as JSON')
    .action(async (flags: DemoFlags) => {
      const count = Number(flags.nodes);
      if (!Number.isInteger(count) || count < 1 || count > 16) throw badInput('--nodes must be a whole number from 1 to 16');
      const say = (s: string) => {
        if (!flags.json) process.stdout.write(s + '\n');
      };
      const t0 = Date.now();
      say(`starting ${count} tessera nodes on 127.0.0.1 ...`);
      const cluster = await LocalCluster.create({ nodes: count, logLevel: 'warn', detached: flags.keep === true });
      try {
        await cluster.waitForMembers({ alive: count });
        const formedMs = Date.now() - t0;
        const peers = await cluster.node(count - 1).client.peers();
        say(`cluster formed in ${formedMs} ms; membership as seen by node ${count - 1}:\n`);
        say(peersTable(peers));
        if (flags.json) process.stdout.write(JSON.stringify({ nodes: count, formedMs, peers }) + '\n');
        if (flags.keep) {
          say(`\nthe cluster keeps running in ${cluster.dir}`);
          for (const n of cluster.nodes) say(`  node ${n.index}: tessera status --data ${n.dataDir}`);
          say(`stop it with: kill ${cluster.nodes.map((n) => n.proc?.pid).join(' ')}`);
          for (const n of cluster.nodes) n.proc?.unref();
          return;
        }
      } catch (err) {
        await cluster.destroy();
        throw err;
      }
      await cluster.destroy();
      say('\nstopped; all nodes left the cluster cleanly');
    });
}
