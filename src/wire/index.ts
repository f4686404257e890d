export * from './frame.js';
export * from './decoder.js';
export * from './control.js';
export * from './body-pool.js';
