/**
 * What a face that serves blocks (NBD) needs from a volume, and what a volume engine provides.
 * Offsets and lengths are in bytes; callers have already checked them against `size`.
 */
export interface BlockDevice {
  /** Size of the device in bytes. */
  readonly size: number;
  /** Smallest I/O size the device handles without read-modify-write (a power of two, ≥ 512). */
  readonly minBlockSize: number;
  /** I/O size the device prefers (a stripe unit, say). */
  readonly preferredBlockSize: number;
  /** True when a flush through one client connection persists writes made through every connection. */
  readonly multiConn: boolean;
  read(offset: number, length: number): Promise<Buffer>;
  /** With `fua`, resolves only once the data is durable. */
  write(offset: number, data: Buffer, opts?: { fua?: boolean }): Promise<void>;
  /** Resolves once every write acknowledged before the call is durable. */
  flush(): Promise<void>;
  /** The range may read back as anything afterwards (zeroes, typically); an advisory discard. */
  trim(offset: number, length: number): Promise<void>;
  writeZeroes(offset: number, length: number, opts?: { fua?: boolean }): Promise<void>;
  close(): Promise<void>;
}

/** The set of volumes a block face can serve, by export name. */
export interface VolumeProvider {
  list(): Promise<Array<{ name: string; size: number; description: string }>>;
  /** Throws a NOT_FOUND TesseraError for an unknown name. */
  open(name: string): Promise<BlockDevice>;
}
