import pino from 'pino';

export type Logger = pino.Logger;
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

/** JSON lines on stdout; human-readable when stdout is a terminal. */
export function createLogger(opts: { level?: LogLevel; name?: string; pretty?: boolean } = {}): Logger {
  const pretty = opts.pretty ?? process.stdout.isTTY === true;
  return pino({
    level: opts.level ?? 'info',
    base: opts.name ? { name: opts.name } : null,
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true, destination: 1 } } } : {}),
  });
}

/** A logger that drops everything, for library use and unit tests. */
export const silentLogger: Logger = pino({ level: 'silent' });
