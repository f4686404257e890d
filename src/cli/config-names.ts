/**
 * The config file's name and the log levels it and `--log-level` accept: what the node
 * command's help names. Apart from the file's schema, so printing help loads no schema library.
 */
export const CONFIG_FILE = 'tessera.json';
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
