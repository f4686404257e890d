/** Error constructors of the files layer that src/errors.ts does not already provide. */
import { TesseraError } from '../errors.js';

export const conflict = (msg: string) => new TesseraError('CONFLICT', msg);
export const auth = (msg: string) => new TesseraError('AUTH', msg);

export function errorCode(e: unknown): string {
  return e instanceof TesseraError ? e.code : 'INTERNAL';
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
