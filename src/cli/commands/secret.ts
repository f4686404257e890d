/** `tessera secret rotate|finish`: rotate the cluster secret node by node while the cluster runs. */
import type { Command } from 'commander';

export function registerSecret(program: Command): void {
  const secret = program
    .command('secret')
    .description('rotate the cluster secret, one node at a time, without stopping the cluster')
    .addHelpText('after', `
Rotation, on every node in turn (each step takes effect when the node restarts):
  1. tessera secret rotate --data DIR --secret-file new.secret   then restart the node
     (the first run makes new.secret; copy it to the other nodes' hosts)
  2. once every node runs rotated: tessera secret finish --data DIR, then restart the node
Between the steps rotated and not-yet-rotated nodes admit each other; after step 2 on every
node only the new secret admits. Join tokens printed after step 1 carry the new secret.`);

  secret
    .command('rotate')
    .description('make the secret in --secret-file this node\'s cluster secret, keeping the old one accepted until finish')
    .requiredOption('--data <dir>', 'data directory of the node')
    .requiredOption('--secret-file <file>', 'the new secret, shared by every node (made, 0600, when the file does not exist)')
    .option('--json', 'print a JSON result')
    .action(async (opts: { data: string; secretFile: string; json?: boolean }) => {
      const { rotateClusterSecret, secretFromFile } = await import('../../cluster/index.js');
      const { secret: next, made } = await secretFromFile(opts.secretFile);
      const step = await rotateClusterSecret(opts.data, next);
      if (opts.json) {
        process.stdout.write(JSON.stringify({ rotated: step === 'done', madeSecretFile: made }) + '\n');
        return;
      }
      if (made) process.stdout.write(`made a new cluster secret in ${opts.secretFile} (0600): give the same file to every node's rotate\n`);
      process.stdout.write(step === 'done'
        ? `rotated: restart the node; it proves and accepts the new and the old secret until 'tessera secret finish --data ${opts.data}'\n`
        : 'already rotated to this secret; nothing changed\n');
    });

  secret
    .command('finish')
    .description('drop the old cluster secret (run on every node once all of them are rotated)')
    .requiredOption('--data <dir>', 'data directory of the node')
    .option('--json', 'print a JSON result')
    .action(async (opts: { data: string; json?: boolean }) => {
      const { finishClusterSecretRotation } = await import('../../cluster/index.js');
      const step = await finishClusterSecretRotation(opts.data);
      if (opts.json) process.stdout.write(JSON.stringify({ finished: step === 'done' }) + '\n');
      else process.stdout.write(step === 'done' ? 'finished: restart the node; from then on it admits only the new secret\n' : 'no rotation under way; nothing changed\n');
    });
}
