/** The content layer's public surface: pure transforms from streams to stored bytes and back. */
export * from './chunker.js';
export * from './crypto.js';
export * from './erasure.js';
export * from './hlc.js';
export * from './ids.js';
export * from './inline-object.js';
export * from './manifest.js';
export * from './manifest-builder.js';
export * from './manifest-reader.js';
export * from './manifest-composite.js';
export * from './names.js';
export * from './policy.js';
export * from './put-policy.js';
export * from './authority.js';
