import type { Command } from 'commander';
import { badInput } from '../../errors.js';
import { JOIN_TOKEN_ENV, readJoinToken } from '../join-token-source.js';
import { registerSecret } from './secret.js';

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('create a node identity in a data directory, for a new cluster or to join one')
    .requiredOption('--data <dir>', 'data directory of the node')
    .option('--join-file <file>', `join an existing cluster with the token in FILE ('-' reads standard input)`)
    .option('--join <token>', `join with a token given on the command line (visible to other local users; prefer --join-file or ${JOIN_TOKEN_ENV})`)
    .option('--json', 'print a JSON result (never the token: get it with `tessera token`)')
    .addHelpText('after', `\nExamples:\n  tessera init --data ./n1\n  tessera token --data ./n1 | tessera init --data ./n2 --join-file -\n  ${JOIN_TOKEN_ENV}=tsrj1_... tessera init --data ./n3`)
    .action(async (opts: { data: string; join?: string; joinFile?: string; json?: boolean }) => {
      // Keys, certificates and the schema library are loaded by the command that uses them, not by every command.
      const { formatJoinToken, initDataDir, newClusterKeys, parseJoinToken } = await import('../../cluster/identity.js');
      const given = await readJoinToken(opts);
      const keys = given !== undefined ? parseJoinToken(given) : newClusterKeys();
      const id = await initDataDir(opts.data, keys);
      if (opts.json) {
        process.stdout.write(JSON.stringify({ nodeId: id.credentials.nodeId, clusterId: keys.clusterId, storageOnly: !keys.dataKey }) + '\n');
        return;
      }
      process.stdout.write(`node id:     ${id.credentials.nodeId}\ncluster id:  ${keys.clusterId}\n`);
      if (given === undefined) process.stdout.write(`join token:  ${formatJoinToken(keys)}\n(keep it secret: it admits nodes and holds the data key; print it again with 'tessera token --data ${opts.data}')\n`);
      else if (!keys.dataKey) process.stdout.write('storage-only node: it will hold ciphertext and never see file contents or names\n');
    });

  program
    .command('token')
    .description('print the join token of the cluster a data directory belongs to')
    .requiredOption('--data <dir>', 'data directory of a member')
    .option('--storage-only', 'leave the data key out: the joining node stores ciphertext only')
    .option('--json', 'print a JSON result')
    .action(async (opts: { data: string; storageOnly?: boolean; json?: boolean }) => {
      const [{ formatJoinToken, loadDataDir }, { authorityPublicKey }] = await Promise.all([import('../../cluster/identity.js'), import('../../content/index.js')]);
      const id = await loadDataDir(opts.data);
      if (!id.cluster.dataKey && !opts.storageOnly) throw badInput('this node is storage-only and has no data key; use --storage-only');
      // A storage-only node cannot derive the key that checks destructive messages, so its token carries it.
      const cluster = id.cluster.dataKey ? { ...id.cluster, authorityKey: authorityPublicKey(id.cluster.dataKey) } : id.cluster;
      const token = formatJoinToken(cluster, { storageOnly: opts.storageOnly === true });
      process.stdout.write(opts.json ? JSON.stringify({ joinToken: token }) + '\n' : token + '\n');
    });

  // Beside init and token: the other command that changes a data directory's cluster keys.
  registerSecret(program);
}
